"""one attempt row per delivery and attempt number

The attempt row is written with its outcome (one statement on the hot path) and the reaper writes the
row of an attempt whose worker died; the constraint makes the two meet in one row whoever comes first.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 18:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.create_unique_constraint("uq_attempts_delivery_id_number", ["delivery_id", "number"])


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_constraint("uq_attempts_delivery_id_number", type_="unique")
