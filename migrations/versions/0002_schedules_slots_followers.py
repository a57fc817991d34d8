"""posting schedules, slots, story timing, daily follower roll-up

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 22:16:56.151478
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "follower_daily",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("first_followers", sa.Integer(), nullable=False),
        sa.Column("last_followers", sa.Integer(), nullable=False),
        sa.Column("min_followers", sa.Integer(), nullable=False),
        sa.Column("max_followers", sa.Integer(), nullable=False),
        sa.Column("last_taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_follower_daily_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "day", name=op.f("pk_follower_daily")),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("schedule", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("min_gap_minutes", sa.Integer(), nullable=False, server_default="0"))

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slot_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_deliveries_account_id_slot_at"), ["account_id", "slot_at"]
        )

    with op.batch_alter_table("stories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timing", sa.String(length=16), nullable=False, server_default="at"))


def downgrade() -> None:
    with op.batch_alter_table("stories", schema=None) as batch_op:
        batch_op.drop_column("timing")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_deliveries_account_id_slot_at"), type_="unique")
        batch_op.drop_column("slot_at")

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("min_gap_minutes")
        batch_op.drop_column("schedule")

    op.drop_table("follower_daily")
