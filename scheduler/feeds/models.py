"""The stored feeds and every item seen in them (the item rows are also the dedupe memory)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scheduler.core.models import Base, UTCDateTime, utcnow


class Feed(Base):
    __tablename__ = "feeds"
    # The poll's claim: active feeds whose time has come.
    __table_args__ = (Index("ix_feeds_status_next_poll_at", "status", "next_poll_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Where it is polled now: a permanent redirect replaces it; ``added_url`` keeps what was given.
    url: Mapped[str] = mapped_column(String(1024))
    added_url: Mapped[str] = mapped_column(String(1024))
    # Account ids, platform:handle or tags, as `stories queue --to` takes them.
    targets: Mapped[list[str]] = mapped_column(JSON, default=list)
    language: Mapped[str | None] = mapped_column(String(35))
    # Jinja2 sources: "default" and optionally one per platform.
    templates: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # draft | approve | auto
    mode: Mapped[str] = mapped_column(String(8), default="draft")
    interval_seconds: Mapped[int] = mapped_column(Integer, default=900)
    # UTM parameters added to links: {"utm_source": "{platform}", "utm_medium": "social", ...}.
    utm: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # active | paused | removed (a removed feed's items stay: they are the dedupe memory)
    status: Mapped[str] = mapped_column(String(16), default="active")
    etag: Mapped[str | None] = mapped_column(String(512))
    last_modified: Mapped[str | None] = mapped_column(String(128))
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_new_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Errors since the last good fetch (the backoff's exponent), and in all.
    errors_in_row: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    fetch_count: Mapped[int] = mapped_column(Integer, default=0)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeedItem(Base):
    """One article as first seen. The two unique keys are the dedupe: its GUID within its feed, and
    its canonical link across every feed (NULL when it has no link), so a second poll, a second worker
    or a second feed carrying the same article all fail to insert it again."""

    __tablename__ = "feed_items"
    __table_args__ = (UniqueConstraint("feed_id", "guid_key"), UniqueConstraint("link_key"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id"), index=True)
    guid: Mapped[str] = mapped_column(Text)
    # sha256 of the GUID and of the canonical link: fixed-size keys however long the text.
    guid_key: Mapped[str] = mapped_column(String(64))
    link_key: Mapped[str | None] = mapped_column(String(64))
    link: Mapped[str | None] = mapped_column(String(2048))
    title: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    language: Mapped[str | None] = mapped_column(String(35))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # draft (waits for an editor) | queued | rejected (queueing refused it; an editor may retry)
    status: Mapped[str] = mapped_column(String(16))
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id"))
    error: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
