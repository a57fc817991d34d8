"""The editors' inbox: feed items waiting for a decision (drafts, and items queueing refused)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.core.errors import UserError, parse_id, shown
from scheduler.feeds.models import FeedItem

ITEM_STATUSES = ("draft", "rejected", "queued", "skipped")


def find_item(s: Session, ref: str) -> FeedItem:
    number = parse_id(ref)
    item = s.get(FeedItem, number) if number is not None else None
    if item is None:
        raise UserError(f"item: no feed item {shown(ref)}")
    return item


def items(s: Session, *, feed_id: int | None = None, statuses: tuple[str, ...] = ("draft", "rejected"),
          limit: int = 200) -> list[FeedItem]:
    for status in statuses:
        if status not in ITEM_STATUSES:
            raise UserError(f"status: {shown(status)} is not one of {', '.join(ITEM_STATUSES)}")
    query = select(FeedItem).where(FeedItem.status.in_(statuses)).order_by(FeedItem.id.desc()).limit(limit)
    if feed_id is not None:
        query = query.where(FeedItem.feed_id == feed_id)
    return list(s.scalars(query))


def describe_item(item: FeedItem) -> dict[str, Any]:
    return {
        "id": item.id, "feed": item.feed_id, "status": item.status, "title": item.title,
        "link": item.link, "language": item.language, "categories": item.categories or [],
        "published_at": item.published_at.isoformat() if item.published_at else None,
        "story": item.story_id, "error": item.error, "image": bool((item.data or {}).get("image")),
        "created_at": item.created_at.isoformat(),
    }
