"""attempt results, account languages and remote ids, story languages, story fingerprints, process locks

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("remote_id", sa.String(512), nullable=True))
        batch.add_column(sa.Column("url", sa.String(2048), nullable=True))
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("language", sa.String(35), nullable=True))
        batch.add_column(sa.Column("remote_id", sa.String(255), nullable=True))
    with op.batch_alter_table("stories") as batch:
        batch.add_column(sa.Column("language", sa.String(35), nullable=True))
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))
    op.create_index("ix_stories_fingerprint", "stories", ["fingerprint"], unique=False)
    op.create_table(
        "process_locks",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_process_locks")),
    )


def downgrade() -> None:
    op.drop_table("process_locks")
    op.drop_index("ix_stories_fingerprint", table_name="stories")
    with op.batch_alter_table("stories") as batch:
        batch.drop_column("fingerprint")
        batch.drop_column("language")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("remote_id")
        batch.drop_column("language")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("url")
        batch.drop_column("remote_id")
