"""The audit log: one row per change, who made it, how, from where, and what changed. Append-only:
this module records and reads; nothing updates or deletes a row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.core.db import session_scope
from scheduler.desk.access import Actor, require_everywhere
from scheduler.desk.models import AuditEntry
from scheduler.desk.pages import Page, page_of


def record(s: Session, actor: Actor, action: str, object_type: str, object_id: object, now: datetime,
           **change: Any) -> None:
    """Add the entry in the caller's transaction, so a change and its entry commit (or not) together."""
    s.add(AuditEntry(at=now, actor=actor.name, via=actor.via, address=actor.address, action=action,
                     object_type=object_type, object_id=str(object_id), change=change))


def describe(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "at": entry.at.isoformat(), "actor": entry.actor, "via": entry.via,
            "address": entry.address, "action": entry.action, "object_type": entry.object_type,
            "object_id": entry.object_id, "change": entry.change}


def entries(s: Session, actor: Actor, *, since: datetime | None = None, object_type: str | None = None,
            object_id: str | None = None, cursor: str | None = None, limit: int = 100,
            order: str = "newest") -> Page:
    """Newest first. Only admins read it: it names every user's actions on every desk."""
    require_everywhere(actor, "admin", "audit")
    query = select(AuditEntry)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if object_type is not None:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id is not None:
        query = query.where(AuditEntry.object_id == object_id)
    return page_of(s, query, AuditEntry.id, cursor, limit, describe, order=order)


def parse_object(value: str) -> tuple[str, str | None]:
    """``story:12`` or ``story`` (every story)."""
    kind, _, ident = value.partition(":")
    return kind.strip(), (ident.strip() or None)


def note(actor: Actor, action: str, object_type: str, object_id: object, now: datetime,
         **change: Any) -> None:
    """Record in a transaction of its own: for actions that manage theirs (an account connected after
    asking the platform, a key rotation), recorded once they succeeded."""
    with session_scope() as s:
        record(s, actor, action, object_type, object_id, now, **change)
