"""The desk's tables: people, their roles and tokens, the audit log, approval policies, idempotency keys
and failed logins. Secrets are stored only as hashes (argon2 for passwords, SHA-256 for tokens)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scheduler.core.models import Base, UTCDateTime, utcnow


class User(Base):
    __tablename__ = "desk_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # argon2id; None for a user who only ever uses tokens (the CMS).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # E-mail notifications: the event kinds this user wants, and a daily digest of their desk.
    email: Mapped[str | None] = mapped_column(String(255))
    notify: Mapped[list[str]] = mapped_column(JSON, default=list)
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:  # never the hash
        return f"User({self.id}, {self.name!r}{', disabled' if self.disabled else ''})"


class Grant(Base):
    """One role of a user within a scope: everywhere (kind ``all``), a tag, or one account id."""

    __tablename__ = "desk_grants"
    __table_args__ = (UniqueConstraint("user_id", "role", "scope_kind", "scope_value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("desk_users.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    scope_kind: Mapped[str] = mapped_column(String(8))
    scope_value: Mapped[str] = mapped_column(String(255), default="")


class ApiToken(Base):
    __tablename__ = "desk_tokens"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("desk_users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    # SHA-256 of a 256-bit random secret: a slow hash adds nothing against guessing one, and every
    # request looks the token up by it.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:  # never the hash
        return f"ApiToken({self.id}, {self.name!r}, user {self.user_id})"


class AuditEntry(Base):
    """Append-only: nothing in crosspost updates or deletes a row of this table."""

    __tablename__ = "desk_audit"
    __table_args__ = (Index("ix_desk_audit_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(255))
    # How the actor came: "token:NAME", "password", or "cli" (the host's user and name are the actor).
    via: Mapped[str] = mapped_column(String(128))
    address: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    change: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ApprovalPolicy(Base):
    """Stories to an account (kind ``account``) or to accounts with a tag (kind ``tag``) wait for an
    approver."""

    __tablename__ = "desk_approval_policies"
    __table_args__ = (UniqueConstraint("scope_kind", "scope_value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope_kind: Mapped[str] = mapped_column(String(8))
    scope_value: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyKey(Base):
    """A client's ``Idempotency-Key`` and the story it queued, so a retry returns that story."""

    __tablename__ = "desk_idempotency_keys"

    user_id: Mapped[int] = mapped_column(ForeignKey("desk_users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # SHA-256 of the request body: the same key with another body is the client's mistake, said so.
    request_hash: Mapped[str] = mapped_column(String(64))
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoginFailure(Base):
    """A failed password login, counted per name and per address to slow guessing down."""

    __tablename__ = "desk_login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str | None] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    reason: Mapped[str | None] = mapped_column(Text)


class Webhook(Base):
    """A URL told about events, each POST signed with HMAC-SHA256 under the hook's secret."""

    __tablename__ = "desk_webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    # Fernet token of the signing secret (the credentials key's vault), shown once at creation.
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    # Event kinds it wants; empty: every kind.
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:  # never the secret
        return f"Webhook({self.id}, {self.url!r})"


class Event(Base):
    """Something a desk wants to hear about, recorded once (``dedupe``) in the transaction that made
    it happen, or by the notifier's scan of deliveries and accounts."""

    __tablename__ = "desk_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(64))
    dedupe: Mapped[str] = mapped_column(String(255), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class HookDelivery(Base):
    """One event for one hook, or (``user_id``) for one user's e-mail: its tries, the last answer, and
    when to try again (the hook's log)."""

    __tablename__ = "desk_hook_deliveries"
    __table_args__ = (UniqueConstraint("webhook_id", "event_id"), UniqueConstraint("user_id", "event_id"),
                      Index("ix_desk_hook_deliveries_state_next_at", "state", "next_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int | None] = mapped_column(ForeignKey("desk_webhooks.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("desk_users.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("desk_events.id"))
    # pending -> sending -> sent | pending (again, later) | failed
    state: Mapped[str] = mapped_column(String(16), default="pending")
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ScanMark(Base):
    """How far the notifier's scan of a table has read (the last id seen)."""

    __tablename__ = "desk_scan_marks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer, default=0)
    # Where reading began (the first webhook's creation): nothing at or before it is told.
    floor_id: Mapped[int] = mapped_column(Integer, default=0)
