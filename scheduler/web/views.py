"""What the pages show, read through the desk's service functions (so scopes hold): the stories x
accounts grid, the inbox of what waits for a person, and a week of deliveries."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from scheduler.core.errors import UserError, parse_id, shown
from scheduler.core.models import Account, Delivery, Story, utcnow
from scheduler.desk import accounts as desk_accounts
from scheduler.desk import approval
from scheduler.desk import deliveries as desk_deliveries
from scheduler.desk import stories as desk_stories
from scheduler.desk.access import Actor
from scheduler.desk.models import AuditEntry
from scheduler.feeds import desk as feeds_desk
from scheduler.stories.queueing import RETIMABLE

HEADING = ("status", "text", "approvable", "overdue", "editable", "writers", "first_due_at", "due_at",
           "fingerprint")
ATTENTION = ("failed", "unknown", "blocked_auth", "awaiting_approval")
WAITING = ("scheduled", "queued", "retry_wait")
EXPIRING = timedelta(days=3)


@dataclass
class Grid:
    accounts: list[str]  # the columns: account labels
    rows: list[dict[str, Any]]  # a story with ``cells``: label -> delivery description
    next_cursor: str | None


def grid(s: Session, actor: Actor, *, status: str | None, account: str | None, attention: bool,
         cursor: str | None, limit: int = 30) -> Grid:
    if account:
        stories, next_cursor = _stories_to(s, actor, account, status, cursor, limit)
    else:
        page = desk_stories.listing(s, actor, status=desk_stories.check_status(status), cursor=cursor,
                                    limit=limit)
        stories = [story for item in page.items if (story := s.get(Story, item["id"])) is not None]
        next_cursor = page.next_cursor
    rows, columns = [], {}
    for story in stories:
        shown = desk_stories.show(s, actor, story)
        cells = {d["account"]: d for d in shown["delivery_list"]}
        if attention and not any(d["state"] in ATTENTION for d in cells.values()):
            continue
        columns.update(dict.fromkeys(cells))
        writable = {d.account.label for d in story.deliveries if actor.may("editor", d.account)}
        for d in cells.values():
            d["stamp"] = stamp(d)
            d["editable"] = text_editable(story, d, d["account"] in writable)
        rows.append({**shown, "cells": cells, "approvable": approvable(s, actor, story),
                     "writers": sorted(approval.writers(s, story)),
                     "overdue": overdue(story, shown["first_due_at"], utcnow()),
                     "editable": story_editable(story, len(writable) == len(story.deliveries))})
        # The row's heading (its text, approve, edit and cancel) is refreshed live like its cells.
        rows[-1]["stamp"] = stamp({k: rows[-1][k] for k in HEADING} | {"states": sorted(
            d["state"] for d in cells.values())})
    labels = [account] if account else sorted(columns)
    return Grid(labels, rows, next_cursor)


def _stories_to(s: Session, actor: Actor, label: str, status: str | None, cursor: str | None,
                limit: int) -> tuple[list[Story], str | None]:
    """A page of the stories with a delivery to one account (which the actor must be able to see)."""
    account = desk_accounts.find(s, actor, label)
    query = select(Story).where(exists().where(Delivery.story_id == Story.id,
                                               Delivery.account_id == account.id))
    if desk_stories.check_status(status):
        query = query.where(Story.status == status)
    if cursor:
        after = parse_id(cursor)
        if not after:
            raise UserError(f"cursor: {shown(cursor)} is not a cursor from a previous page")
        query = query.where(Story.id < after)
    found = list(s.scalars(query.order_by(Story.id.desc()).limit(limit + 1)))
    more = len(found) > limit
    return found[:limit], str(found[limit - 1].id) if more else None


def stamp(cell: dict[str, Any]) -> str:
    """A short digest of everything a grid cell shows: the live refresh replaces only cells whose
    stamp changed, and leaves alone the one an operator is typing in."""
    return hashlib.sha256(json.dumps(cell, sort_keys=True, default=str).encode()).hexdigest()[:16]


def story_editable(story: Story, editor_of_all: bool) -> bool:
    """Offer "edit the story" only where ``desk.stories.edit`` would accept it: an editor of every
    account, and none of its deliveries started (the desk checks both again on the POST)."""
    return (editor_of_all and story.status not in ("cancelled", "rejected")
            and all(d.state in desk_stories.EDITABLE and not d.attempts for d in story.deliveries))


def waits_again_after_edit(s: Session, story: Story) -> bool:
    """Whether an edit sends the story (back) to approval, as ``desk.stories.back_to_approval`` decides:
    it waits, was approved once, or a policy covers one of its accounts; the edit form says so first."""
    if story.status == "awaiting_approval" or approval.needed(s, [d.account for d in story.deliveries]):
        return True
    return s.scalar(select(AuditEntry.id).where(
        AuditEntry.object_type == "story", AuditEntry.object_id == str(story.id),
        AuditEntry.action == "story.approve").limit(1)) is not None


def text_editable(story: Story, cell: dict[str, Any], editor: bool) -> bool:
    """One account's own text may change before that delivery's first attempt (``queueing.set_text``)."""
    return (editor and story.status not in ("cancelled", "rejected") and cell["state"] in RETIMABLE
            and not cell["attempts"])


def approvable(s: Session, actor: Actor, story: Story) -> bool:
    """Offer approve/reject only to an approver of every waiting account who did not write it (the
    desk's rule: whoever queued or edited it, or its byline)."""
    if story.status != "awaiting_approval" or actor.name in approval.writers(s, story):
        return False
    waiting = s.scalars(select(Account).join(Delivery, Delivery.account_id == Account.id).where(
        Delivery.story_id == story.id, Delivery.state == "awaiting_approval"))
    return all(actor.may("approver", a) for a in waiting)


def overdue(story: Story, first_due: str | None, now: datetime) -> bool:
    """A waiting story whose time has passed: approving it means "publish now" (said on the button),
    never a silent late post."""
    return (story.status == "awaiting_approval" and story.timing != "now" and first_due is not None
            and datetime.fromisoformat(first_due) < now)


@dataclass
class Inbox:
    failed: list[dict[str, Any]] = field(default_factory=list)
    unknown: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[dict[str, Any]] = field(default_factory=list)
    expiring: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    silent_feeds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(len(v) for v in (self.failed, self.unknown, self.blocked, self.expiring, self.approvals,
                                    self.duplicates, self.silent_feeds))


def inbox(s: Session, actor: Actor, now: datetime) -> Inbox:
    box = Inbox()
    box.failed = desk_deliveries.listing(s, actor, state="failed", limit=100).items
    box.unknown = desk_deliveries.listing(s, actor, state="unknown", limit=100).items
    for a in desk_accounts.listing(s, actor):
        if a["status"] not in ("active", "paused"):
            box.blocked.append(a)
        expires = a["token_expires_at"]
        if expires and datetime.fromisoformat(expires) < now + EXPIRING:
            box.expiring.append(a)
    for item in desk_stories.listing(s, actor, status="awaiting_approval", limit=100).items:
        story = s.get(Story, item["id"])
        if story is not None:
            box.approvals.append({**item, "approvable": approvable(s, actor, story),
                                  "writers": sorted(approval.writers(s, story)),
                                  "overdue": overdue(story, item["first_due_at"], now)})
    recent = desk_deliveries.listing(s, actor, state="published", limit=200).items
    box.duplicates = [d for d in recent if d["possible_duplicates"]]
    # A website that stopped publishing (or a feed that broke) leaves the matrix quiet: a person looks.
    box.silent_feeds = feeds_desk.silent(s, actor, now)
    return box


def week(s: Session, actor: Actor, start: datetime, *, account: str | None, tag: str | None,
         tz: str, days: int = 7) -> list[tuple[str, list[dict[str, Any]]]]:
    """``days`` days (a week, or a month) from ``start`` in the operator's zone ``tz``: each day and its
    deliveries, each with the time in the operator's zone and in the account's own."""
    zone = ZoneInfo(tz)
    end = start + timedelta(days=days)
    ids = desk_stories.in_scope_ids(s, actor)
    query = (select(Delivery, Account, Story).join(Account, Account.id == Delivery.account_id)
             .join(Story, Story.id == Delivery.story_id)
             .where(Delivery.due_at >= start, Delivery.due_at < end, Delivery.state != "cancelled",
                    Account.status != "removed").order_by(Delivery.due_at, Delivery.id))
    if ids is not None:
        query = query.where(Delivery.account_id.in_(ids))
    found: dict[str, list[dict[str, Any]]] = {}
    for offset in range(days):
        found[(start + timedelta(days=offset)).astimezone(zone).date().isoformat()] = []
    for d, a, st in s.execute(query):
        if (account and a.label != account) or (tag and tag not in (a.tags or [])):
            continue
        local = d.due_at.astimezone(ZoneInfo(a.tz))
        found.setdefault(d.due_at.astimezone(zone).date().isoformat(), []).append({
            "delivery": d.id, "story": st.id, "text": st.text[:80], "account": a.label, "state": d.state,
            "due_at": d.due_at, "account_time": local.strftime("%H:%M %Z"), "account_tz": a.tz,
            "local": d.due_at.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
            "movable": d.state in RETIMABLE and actor.may("editor", a)})
    return sorted(found.items())


def sparkline(points: list[tuple[date, int, int]], first: date, days: int, width: int = 120,
              height: int = 28) -> str:
    """An SVG path of a follower series over ``days`` days from ``first``: days without a count break
    the line (a gap stays a gap), and a flat series is drawn mid-height."""
    values = {d: v for d, v, _ in points}
    if not values:
        return ""
    low, high = min(values.values()), max(values.values())
    span = (high - low) or 1
    step = width / max(days - 1, 1)
    path, drawing = [], False
    for i in range(days):
        value = values.get(first + timedelta(days=i))
        if value is None:
            drawing = False
            continue
        y = height / 2 if high == low else height - 2 - (value - low) / span * (height - 4)
        path.append(f"{'L' if drawing else 'M'}{i * step:.1f},{y:.1f}")
        drawing = True
    return " ".join(path)
