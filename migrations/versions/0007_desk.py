"""the desk: users, their grants and API tokens, the audit log, approval policies, idempotency keys,
failed logins, webhooks with their events and log

Passwords and tokens are stored only as hashes, webhook secrets sealed with the credentials key.
Parallel to 0008 (feeds); a merge revision joins the heads.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 18:13:06.212440
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("desk_approval_policies",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("scope_kind", sa.String(length=8), nullable=False),
    sa.Column("scope_value", sa.String(length=255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_approval_policies")),
    sa.UniqueConstraint("scope_kind", "scope_value",
                  name=op.f("uq_desk_approval_policies_scope_kind_scope_value"))
    )
    op.create_table("desk_audit",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(length=255), nullable=False),
    sa.Column("via", sa.String(length=128), nullable=False),
    sa.Column("address", sa.String(length=64), nullable=True),
    sa.Column("action", sa.String(length=64), nullable=False),
    sa.Column("object_type", sa.String(length=32), nullable=False),
    sa.Column("object_id", sa.String(length=64), nullable=False),
    sa.Column("change", sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_audit"))
    )
    with op.batch_alter_table("desk_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_desk_audit_at"), ["at"], unique=False)
        batch_op.create_index("ix_desk_audit_object", ["object_type", "object_id"], unique=False)

    op.create_table("desk_login_failures",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(length=64), nullable=False),
    sa.Column("address", sa.String(length=64), nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_login_failures"))
    )
    with op.batch_alter_table("desk_login_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_desk_login_failures_address"), ["address"], unique=False)
        batch_op.create_index(batch_op.f("ix_desk_login_failures_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_desk_login_failures_name"), ["name"], unique=False)

    op.create_table("desk_users",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(length=64), nullable=False),
    sa.Column("password_hash", sa.String(length=255), nullable=True),
    sa.Column("disabled", sa.Boolean(), nullable=False),
    sa.Column("email", sa.String(length=255), nullable=True),
    sa.Column("notify", sa.JSON(), nullable=False),
    sa.Column("digest", sa.Boolean(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_users")),
    sa.UniqueConstraint("name", name=op.f("uq_desk_users_name"))
    )
    op.create_table("desk_grants",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("user_id", sa.Integer(), nullable=False),
    sa.Column("role", sa.String(length=16), nullable=False),
    sa.Column("scope_kind", sa.String(length=8), nullable=False),
    sa.Column("scope_value", sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(["user_id"], ["desk_users.id"], name=op.f("fk_desk_grants_user_id_desk_users")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_grants")),
    sa.UniqueConstraint("user_id", "role", "scope_kind", "scope_value",
                  name=op.f("uq_desk_grants_user_id_role_scope_kind_scope_value"))
    )
    with op.batch_alter_table("desk_grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_desk_grants_user_id"), ["user_id"], unique=False)

    op.create_table("desk_idempotency_keys",
    sa.Column("user_id", sa.Integer(), nullable=False),
    sa.Column("key", sa.String(length=255), nullable=False),
    sa.Column("request_hash", sa.String(length=64), nullable=False),
    sa.Column("story_id", sa.Integer(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(["story_id"], ["stories.id"],
                  name=op.f("fk_desk_idempotency_keys_story_id_stories")),
    sa.ForeignKeyConstraint(["user_id"], ["desk_users.id"],
                  name=op.f("fk_desk_idempotency_keys_user_id_desk_users")),
    sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_desk_idempotency_keys"))
    )
    op.create_table("desk_tokens",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("user_id", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(length=64), nullable=False),
    sa.Column("token_hash", sa.String(length=64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(["user_id"], ["desk_users.id"], name=op.f("fk_desk_tokens_user_id_desk_users")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_tokens")),
    sa.UniqueConstraint("token_hash", name=op.f("uq_desk_tokens_token_hash")),
    sa.UniqueConstraint("user_id", "name", name=op.f("uq_desk_tokens_user_id_name"))
    )
    with op.batch_alter_table("desk_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_desk_tokens_user_id"), ["user_id"], unique=False)

    op.create_table("desk_events",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(length=64), nullable=False),
    sa.Column("dedupe", sa.String(length=255), nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_events")),
    sa.UniqueConstraint("dedupe", name=op.f("uq_desk_events_dedupe"))
    )
    op.create_table("desk_scan_marks",
    sa.Column("name", sa.String(length=64), nullable=False),
    sa.Column("last_id", sa.Integer(), nullable=False),
    sa.Column("floor_id", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("name", name=op.f("pk_desk_scan_marks"))
    )
    op.create_table("desk_webhooks",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("url", sa.String(length=2048), nullable=False),
    sa.Column("secret", sa.LargeBinary(), nullable=False),
    sa.Column("events", sa.JSON(), nullable=False),
    sa.Column("active", sa.Boolean(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_webhooks"))
    )
    op.create_table("desk_hook_deliveries",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("webhook_id", sa.Integer(), nullable=True),
    sa.Column("user_id", sa.Integer(), nullable=True),
    sa.Column("event_id", sa.Integer(), nullable=False),
    sa.Column("state", sa.String(length=16), nullable=False),
    sa.Column("tries", sa.Integer(), nullable=False),
    sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_status", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(["event_id"], ["desk_events.id"],
                  name=op.f("fk_desk_hook_deliveries_event_id_desk_events")),
    sa.ForeignKeyConstraint(["webhook_id"], ["desk_webhooks.id"],
                  name=op.f("fk_desk_hook_deliveries_webhook_id_desk_webhooks")),
    sa.ForeignKeyConstraint(["user_id"], ["desk_users.id"],
                  name=op.f("fk_desk_hook_deliveries_user_id_desk_users")),
    sa.UniqueConstraint("user_id", "event_id", name=op.f("uq_desk_hook_deliveries_user_id_event_id")),
    sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_hook_deliveries")),
    sa.UniqueConstraint("webhook_id", "event_id", name=op.f("uq_desk_hook_deliveries_webhook_id_event_id"))
    )
    with op.batch_alter_table("desk_hook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_desk_hook_deliveries_state_next_at", ["state", "next_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_desk_hook_deliveries_webhook_id"), ["webhook_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("desk_hook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_desk_hook_deliveries_webhook_id"))
        batch_op.drop_index("ix_desk_hook_deliveries_state_next_at")

    op.drop_table("desk_hook_deliveries")
    op.drop_table("desk_webhooks")
    op.drop_table("desk_scan_marks")
    op.drop_table("desk_events")
    with op.batch_alter_table("desk_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_desk_tokens_user_id"))

    op.drop_table("desk_tokens")
    op.drop_table("desk_idempotency_keys")
    with op.batch_alter_table("desk_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_desk_grants_user_id"))

    op.drop_table("desk_grants")
    op.drop_table("desk_users")
    with op.batch_alter_table("desk_login_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_desk_login_failures_name"))
        batch_op.drop_index(batch_op.f("ix_desk_login_failures_at"))
        batch_op.drop_index(batch_op.f("ix_desk_login_failures_address"))

    op.drop_table("desk_login_failures")
    with op.batch_alter_table("desk_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_desk_audit_object")
        batch_op.drop_index(batch_op.f("ix_desk_audit_at"))

    op.drop_table("desk_audit")
    op.drop_table("desk_approval_policies")
