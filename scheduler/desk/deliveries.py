"""What the desk does to deliveries, for the CLI and the API alike: list with filters, show with
attempts, retry, resolve; each within the actor's scopes, changes in the audit log. A delivery of a
story that waits for approval is never released by a retry or a resolve."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.core import deliveries
from scheduler.core.errors import shown
from scheduler.core.models import Attempt, Delivery, Story
from scheduler.desk import audit, events
from scheduler.desk.access import Actor
from scheduler.desk.errors import Conflict, Forbidden, NotFound, UserError
from scheduler.desk.pages import Page, page_of
from scheduler.desk.stories import back_to_approval, in_scope_ids
from scheduler.matrix import accounts as matrix
from scheduler.stories import bulk, queueing


def check_state(state: str | None) -> str | None:
    if state is not None and state not in deliveries.STATES:
        raise UserError(f"state: {shown(state)} is not one of {', '.join(deliveries.STATES)}")
    return state


def listing(s: Session, actor: Actor, *, state: str | None = None, story: int | None = None,
            account: str | None = None, cursor: str | None = None, limit: int = 200,
            order: str = "newest") -> Page:
    """Newest first, filtered by state, story or account (id or platform:handle)."""
    query = select(Delivery)
    if check_state(state):
        query = query.where(Delivery.state == state)
    if story is not None:
        query = query.where(Delivery.story_id == story)
    if account is not None:
        query = query.where(Delivery.account_id == matrix.find(s, account).id)
    ids = in_scope_ids(s, actor)
    if ids is not None:
        query = query.where(Delivery.account_id.in_(ids))
    return page_of(s, query, Delivery.id, cursor, limit, lambda d: {},
                   lambda rows: bulk.describe_deliveries(s, rows), order=order)


def find(s: Session, actor: Actor, delivery_id: int, role: str = "viewer") -> Delivery:
    found = s.get(Delivery, delivery_id) if delivery_id > 0 else None
    if found is None:
        raise NotFound(f"delivery: no delivery {delivery_id}")
    if not actor.may(role, found.account):
        raise Forbidden(f"delivery: {actor.name} is not {'an' if role[0] in 'aeiou' else 'a'} {role} "
                        f"for {found.account.label}")
    return found


def show(s: Session, actor: Actor, delivery_id: int) -> dict[str, Any]:
    found = find(s, actor, delivery_id)
    row = bulk.describe_deliveries(s, [found])[0]
    tries = [{"number": a.number, "started_at": a.started_at.isoformat(),
              "ended_at": a.ended_at.isoformat() if a.ended_at else None, "outcome": a.outcome,
              "http_status": a.http_status, "remote_id": a.remote_id, "url": a.url, "error": a.error}
             for a in s.scalars(select(Attempt).where(Attempt.delivery_id == delivery_id)
                                .order_by(Attempt.number))]
    if found.state == "publishing" and all(t["number"] != found.attempts for t in tries):
        # An attempt's row is written with its outcome: the one in flight is read off the delivery.
        tries.append({"number": found.attempts, "started_at": found.updated_at.isoformat(), "ended_at": None,
                      "outcome": "in_flight", "http_status": None, "remote_id": None, "url": None,
                      "error": None})
    return {**row, "attempt_list": tries}


def _releasable(s: Session, actor: Actor, delivery_id: int, what: str) -> Delivery:
    found = find(s, actor, delivery_id, "editor")
    story = s.get(Story, found.story_id, with_for_update=True)  # an edit sending it back waits
    if story is not None and story.status in ("awaiting_approval", "rejected"):
        raise Conflict(f"{what}: story {story.id} is {story.status.replace('_', ' ')}; "
                       "its deliveries go out only after approval")
    return found


def edit_text(s: Session, actor: Actor, delivery_id: int, text: str | None, now: datetime) -> None:
    """One account's own text for its story (None: the story's again), before its first attempt;
    checked as that platform counts it; an approved story waits for its approver again."""
    found = find(s, actor, delivery_id, "editor")
    story = s.get(Story, found.story_id, with_for_update=True)  # one edit or decision at a time
    assert story is not None
    if story.status in ("cancelled", "rejected"):
        raise Conflict(f"edit: story {story.id} is {story.status}")
    before = found.text
    queueing.set_text(s, found, text, now)
    back = back_to_approval(s, story, [found.account], now)
    audit.record(s, actor, "delivery.edit", "delivery", delivery_id, now, before=before, after=text,
                 sent_back=back)


def retry(s: Session, actor: Actor, delivery_id: int, now: datetime) -> None:
    _releasable(s, actor, delivery_id, "retry")
    deliveries.retry_failed(s, delivery_id, now)
    audit.record(s, actor, "delivery.retry", "delivery", delivery_id, now)


def resolve(s: Session, actor: Actor, delivery_id: int, now: datetime, *, published: str | None = None,
            republish: bool = False) -> str:
    """Decide an ``unknown`` delivery; return its new state."""
    if (published is None) == (not republish):
        raise UserError("resolve: give exactly one of --published URL and --republish")
    if published is not None:
        url = matrix.check_url(published, "published")
        find(s, actor, delivery_id, "editor")
        deliveries.resolve_published(s, delivery_id, now, url)
        audit.record(s, actor, "delivery.resolve", "delivery", delivery_id, now, published_url=url)
        found = find(s, actor, delivery_id)
        s.refresh(found)
        events.emit_many(s, [events.delivery_event(found)], now)  # no attempt row tells the scan
        return "published"
    _releasable(s, actor, delivery_id, "resolve")
    deliveries.resolve_republish(s, delivery_id, now)
    audit.record(s, actor, "delivery.resolve", "delivery", delivery_id, now, republish=True)
    return "scheduled"
