"""story media and threads, delivery progress

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 22:19:27.465404
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("remote_state", sa.JSON(), nullable=True))

    with op.batch_alter_table("stories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media", sa.JSON(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("thread", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("stories", schema=None) as batch_op:
        batch_op.drop_column("thread")
        batch_op.drop_column("media")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("remote_state")
