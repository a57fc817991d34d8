"""core: live worker processes and their publish slots, so the tick sizes its messages to the fleet

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 01:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_slots",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_slots")),
    )


def downgrade() -> None:
    op.drop_table("worker_slots")
