"""partial index of pending deliveries by due time, for the claim

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 23:59:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PENDING = sa.text("state IN ('scheduled', 'retry_wait')")


def upgrade() -> None:
    op.create_index("ix_deliveries_pending_due", "deliveries", ["due_at"], unique=False,
                    postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    op.drop_index("ix_deliveries_pending_due", table_name="deliveries")
