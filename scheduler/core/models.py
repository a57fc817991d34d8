"""The stored matrix: accounts, stories, deliveries, attempts, follower samples, rate gates."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive, so normalise both ways)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; times are stored in UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("platform", "handle"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    handle: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    tz: Mapped[str] = mapped_column(String(64), default="UTC")
    base_url: Mapped[str | None] = mapped_column(String(1024))
    # Fernet token of the credentials JSON; never stored in the clear.
    credentials: Mapped[bytes] = mapped_column(LargeBinary)
    credentials_version: Mapped[int] = mapped_column(Integer, default=1)
    # A worker refreshing the credentials holds this lease, so two workers never rotate one token.
    refresh_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Posting schedule: cron expressions evaluated in ``tz``, and the least gap between two posts.
    schedule: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    min_gap_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    # BCP-47 tag of what the account posts in (Bluesky ``langs``; routing feeds by language).
    language: Mapped[str | None] = mapped_column(String(35))
    # The platform's own id of the account (from ``whoami``), so re-authorisation with another
    # account's credentials is refused even after a handle was renamed.
    remote_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the newest attempt on this account started. A start writes it only if the previous one began
    # ACCOUNT_MIN_INTERVAL ago or earlier: the claim spaces the send times, but messages that reach the
    # workers late (a backlog, workers started after the tick) would otherwise go out back to back.
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def label(self) -> str:
        return f"{self.platform}:{self.handle}"

    def __repr__(self) -> str:
        return f"Account({self.id}, {self.label}, {self.status})"


class Story(Base):
    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(2048))
    variants: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # Media in the local store: [{"kind", "path", "mime", "size", "width", "height", "alt", "sha256"}]
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default="[]")
    thread: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    targets: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), default="approved")
    # "at" (a fixed instant), "now", or "next_slot" (each account's next free slot after due_at)
    timing: Mapped[str] = mapped_column(String(16), default="at", server_default="at")
    author: Mapped[str | None] = mapped_column(String(255))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # BCP-47 tag of the story's text; overrides the account's language where set.
    language: Mapped[str | None] = mapped_column(String(35))
    # A hash of what makes two stories the same (text, link, variants, media, targets, time), so the
    # same story queued or imported twice is refused unless asked for.
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    deliveries: Mapped[list[Delivery]] = relationship(back_populates="story")

    def text_for(self, platform: str) -> str:
        return self.variants.get(platform) or self.text


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        # The claim: due deliveries by state and due time.
        Index("ix_deliveries_state_due_at", "state", "due_at"),
        # ...and only the pending ones, so the claim reads a few entries however many published
        # deliveries the table holds (8x faster at 1 M rows, bench/RESULTS.md).
        Index("ix_deliveries_pending_due", "due_at",
              postgresql_where=text("state IN ('scheduled', 'retry_wait')"),
              sqlite_where=text("state IN ('scheduled', 'retry_wait')")),
        # The reaper: expired leases and lost queue messages.
        Index("ix_deliveries_state_lease_until", "state", "lease_until"),
        Index("ix_deliveries_state_queued_at", "state", "queued_at"),
        UniqueConstraint("story_id", "account_id"),
        # Two stories never take the same slot on one account (NULL: not slotted, or slot freed).
        UniqueConstraint("account_id", "slot_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    state: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # This account's own text (an operator's edit for one account), instead of the story's for its platform.
    text: Mapped[str | None] = mapped_column(Text)
    # Idempotency key: the same on every retry of this delivery.
    key: Mapped[str] = mapped_column(String(64), default=lambda: uuid.uuid4().hex)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Fixed at the first attempt so a retried record is identical (Bluesky createdAt, TID).
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    remote_id: Mapped[str | None] = mapped_column(String(512))
    published_url: Mapped[str | None] = mapped_column(String(2048))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # What a multi-step publish has done (media ids, thread parts posted), so a retry continues.
    remote_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    story: Mapped[Story] = relationship(back_populates="deliveries")
    account: Mapped[Account] = relationship()


class Attempt(Base):
    __tablename__ = "attempts"
    # The worker writes its attempt's row with the outcome; the reaper writes it for a dead worker.
    __table_args__ = (UniqueConstraint("delivery_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(20))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    celery_id: Mapped[str | None] = mapped_column(String(64))
    # Any success this attempt saw, even one that came after the reaper or an operator moved the
    # delivery on: a possible duplicate must be findable.
    remote_id: Mapped[str | None] = mapped_column(String(512))
    url: Mapped[str | None] = mapped_column(String(2048))


class FollowerSample(Base):
    __tablename__ = "follower_samples"
    __table_args__ = (Index("ix_follower_samples_account_taken", "account_id", "taken_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # None with an error: the try failed, and the gap stays visible.
    followers: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class FollowerDaily(Base):
    """One row per account and UTC day, kept up to date with every sample, so a report over a year
    of hourly samples reads a few thousand rows instead of millions."""

    __tablename__ = "follower_daily"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    first_followers: Mapped[int] = mapped_column(Integer)
    last_followers: Mapped[int] = mapped_column(Integer)
    min_followers: Mapped[int] = mapped_column(Integer)
    max_followers: Mapped[int] = mapped_column(Integer)
    last_taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    samples: Mapped[int] = mapped_column(Integer, default=1)


class ProcessLock(Base):
    """A singleton role (the beat) held by one process, renewed while it lives: a second beat on the
    same database refuses to start and says who holds it."""

    __tablename__ = "process_locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WorkerSlots(Base):
    """A live worker process and how many publishes it runs at once, renewed while it lives: the tick
    sizes its messages to the fleet's slots (``scheduler.core.workers``)."""

    __tablename__ = "worker_slots"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    slots: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RateGate(Base):
    """The earliest time anything may be sent within a scope (an account, or a platform app)."""

    __tablename__ = "rate_gates"

    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    next_at: Mapped[datetime] = mapped_column(UTCDateTime)
