"""The feeds' figures for /metrics: which feeds went silent and how many errors each had. Read from
the database at scrape time, like the desk's figures, so every API process reports the same."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.feeds import registry
from scheduler.feeds.models import Feed


@dataclass
class FeedFigures:
    silent: list[int] = field(default_factory=list)  # ids of active feeds quiet beyond their cadence
    errors: dict[int, int] = field(default_factory=dict)  # feed id -> errors in all
    errors_in_row: dict[int, int] = field(default_factory=dict)  # feed id -> errors since the last good fetch


def read(s: Session, now: datetime) -> FeedFigures:
    """Every feed not removed (a removed feed is no longer anyone's concern)."""
    found = FeedFigures()
    for feed in s.scalars(select(Feed).where(Feed.status != "removed").order_by(Feed.id)):
        found.errors[feed.id] = feed.error_count
        found.errors_in_row[feed.id] = feed.errors_in_row
        if registry.is_silent(s, feed, now):
            found.silent.append(feed.id)
    return found
