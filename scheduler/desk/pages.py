"""Cursor pagination, newest (or oldest) first: the cursor is the last id seen, so a page never
repeats or skips a row when new ones arrive meanwhile (an offset would)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from scheduler.core.errors import parse_id, shown
from scheduler.desk.errors import UserError

MAX_LIMIT = 500


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise UserError(f"limit: {limit} is not between 1 and {MAX_LIMIT}")
    return limit


ORDERS = ("newest", "oldest")


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise UserError(f"order: {shown(order)} is not one of {', '.join(ORDERS)}")
    return order


def page_of(s: Session, query: Select[Any], key: InstrumentedAttribute[int], cursor: str | None, limit: int,
            describe: Callable[[Any], dict[str, Any]],
            describe_all: Callable[[list[Any]], list[dict[str, Any]]] | None = None,
            order: str = "newest") -> Page:
    """A page in ``order`` (newest or oldest first, by id); the cursor carries on in the same order."""
    check_limit(limit)
    newest = check_order(order) == "newest"
    if cursor is not None:
        after = parse_id(cursor)
        if not after:
            raise UserError(f"cursor: {shown(cursor)} is not a cursor from a previous page")
        query = query.where(key < after if newest else key > after)
    rows = list(s.scalars(query.order_by(key.desc() if newest else key.asc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    items = describe_all(rows) if describe_all else [describe(r) for r in rows]
    return Page(items, str(rows[-1].id) if more and rows else None)
