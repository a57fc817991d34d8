"""The feeds an operator watches: adding, finding, editing, pausing and removing them, and how they
are described (with their health) to the CLI and the API."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.core.errors import UserError, parse_id, shown
from scheduler.feeds import health, templates
from scheduler.feeds.models import Feed, FeedItem
from scheduler.matrix import accounts

MODES = ("draft", "approve", "auto")
STATUSES = ("active", "paused", "removed")
MIN_INTERVAL = timedelta(minutes=1)
MAX_INTERVAL = timedelta(days=7)
_EVERY = re.compile(r"^\s*(\d{1,7})\s*([smhd]?)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "": 60, "m": 60, "h": 3600, "d": 86400}
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")


def parse_every(value: str) -> int:
    """``5m``, ``90s``, ``2h``, ``1d`` (a bare number is minutes) as seconds, within the limits."""
    match = _EVERY.match(value)
    if not match:
        raise UserError(f"every: {shown(value)} is not a duration such as 90s, 5m, 2h or 1d")
    seconds = int(match[1]) * _UNITS[match[2].lower()]
    if not MIN_INTERVAL.total_seconds() <= seconds <= MAX_INTERVAL.total_seconds():
        raise UserError(f"every: {shown(value)} is outside {int(MIN_INTERVAL.total_seconds())} s to "
                        f"{MAX_INTERVAL.days} days")
    return seconds


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UserError(f"mode: {shown(mode)} is not one of {', '.join(MODES)}")
    return mode


def check_utm(pairs: dict[str, str]) -> dict[str, str]:
    for key, value in pairs.items():
        if key not in UTM_KEYS:
            raise UserError(f"utm: unknown parameter {shown(key)}; known: {', '.join(UTM_KEYS)}")
        if len(value) > 100 or not value.isprintable():
            raise UserError(f"utm: {key} must be at most 100 printable characters")
    return pairs


def check_targets(s: Session, targets: list[str]) -> list[str]:
    """Targets as `stories queue --to` takes them; each must name an account or tag that exists now."""
    cleaned = [t.strip() for t in targets if t.strip()]
    if not cleaned:
        raise UserError("to: give at least one account or tag")
    for target in cleaned:
        accounts.select_targets(s, [target])
    return cleaned


def add(s: Session, url: str, targets: list[str], now: datetime, *, language: str | None = None,
        sources: dict[str, str] | None = None, mode: str = "draft", every: str = "15m",
        utm: dict[str, str] | None = None) -> Feed:
    url = accounts.check_url(url.strip(), "url")
    twin = s.scalars(select(Feed).where(Feed.status != "removed",
                                        (Feed.url == url) | (Feed.added_url == url))).first()
    if twin is not None:
        raise UserError(f"url: feed {twin.id} already watches {shown(url)}")
    feed = Feed(url=url, added_url=url, targets=check_targets(s, targets), mode=check_mode(mode),
                language=accounts.check_language(language) if language else None,
                templates={name: templates.check(src, name) for name, src in (sources or {}).items()},
                interval_seconds=parse_every(every), utm=check_utm(utm or {}), status="active",
                next_poll_at=now, created_at=now, errors_in_row=0, error_count=0, fetch_count=0,
                item_count=0)
    s.add(feed)
    s.flush()
    return feed


def find(s: Session, ref: str) -> Feed:
    """A feed by id or by URL (a removed one is not found)."""
    number = parse_id(ref)
    feed = s.get(Feed, number) if number is not None else s.scalars(
        select(Feed).where((Feed.url == ref.strip()) | (Feed.added_url == ref.strip()),
                           Feed.status != "removed")).first()
    if feed is None or feed.status == "removed":
        raise UserError(f"feed: no feed {shown(ref)}")
    return feed


def edit(s: Session, feed: Feed, now: datetime, *, targets: list[str] | None = None,
         language: str | None = None, sources: dict[str, str] | None = None, mode: str | None = None,
         every: str | None = None, utm: dict[str, str] | None = None) -> Feed:
    """Change what is given; an empty language clears it."""
    if targets is not None:
        feed.targets = check_targets(s, targets)
    if language is not None:
        feed.language = accounts.check_language(language) if language.strip() else None
    if sources is not None:
        feed.templates = {**feed.templates, **{n: templates.check(src, n) for n, src in sources.items()}}
    if mode is not None:
        feed.mode = check_mode(mode)
    if every is not None:
        feed.interval_seconds = parse_every(every)
        feed.next_poll_at = min(feed.next_poll_at, now + timedelta(seconds=feed.interval_seconds))
    if utm is not None:
        feed.utm = {**feed.utm, **check_utm(utm)}
    s.flush()
    return feed


def set_status(s: Session, feed: Feed, status: str, now: datetime) -> Feed:
    if status not in STATUSES:
        raise UserError(f"status: {shown(status)} is not one of {', '.join(STATUSES)}")
    feed.status = status
    if status == "active":
        feed.next_poll_at = now  # resumed feeds are polled at the next tick
        feed.errors_in_row = 0
    s.flush()
    return feed


def arrivals(s: Session, feed_id: int, n: int = 20) -> list[datetime]:
    """When the feed's last ``n`` new items arrived."""
    return list(s.scalars(select(FeedItem.created_at).where(FeedItem.feed_id == feed_id)
                          .order_by(FeedItem.id.desc()).limit(n)))


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def describe(s: Session, feed: Feed, now: datetime) -> dict[str, Any]:
    return {
        "id": feed.id, "url": feed.url, "added_url": feed.added_url, "targets": feed.targets,
        "language": feed.language, "mode": feed.mode, "every_seconds": feed.interval_seconds,
        "templates": sorted(feed.templates), "utm": feed.utm, "status": feed.status,
        "next_poll_at": _iso(feed.next_poll_at), "last_fetch_at": _iso(feed.last_fetch_at),
        "last_new_at": _iso(feed.last_new_at), "last_error": feed.last_error,
        "errors_in_row": feed.errors_in_row, "error_count": feed.error_count,
        "fetch_count": feed.fetch_count, "item_count": feed.item_count,
        "silent": is_silent(s, feed, now),
    }


def is_silent(s: Session, feed: Feed, now: datetime) -> bool:
    """Quiet for longer than its usual cadence; only an active feed (a paused one is quiet on purpose)."""
    return feed.status == "active" and health.silent(now, feed.last_new_at, arrivals(s, feed.id))


def listing(s: Session, now: datetime, *, include_removed: bool = False) -> list[dict[str, Any]]:
    query = select(Feed).order_by(Feed.id)
    if not include_removed:
        query = query.where(Feed.status != "removed")
    return [describe(s, feed, now) for feed in s.scalars(query)]
