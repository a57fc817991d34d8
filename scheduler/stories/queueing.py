"""Queueing a story: every target platform checks it first; then one story row and one delivery per
account, in one transaction, or nothing at all. Finding, cancelling, re-timing and describing stories."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from adapters.base import Media
from scheduler.core import deliveries
from scheduler.core.errors import StoryRejected, UserError, parse_id, shown
from scheduler.core.models import Account, Delivery, Story
from scheduler.matrix import accounts
from scheduler.stories import media, slots
from scheduler.stories.checks import check_draft, check_horizon, check_targets, duplicate_problem, fingerprint
from scheduler.stories.drafts import PAST_TOLERANCE, Draft


def queue(s: Session, draft: Draft, now: datetime, *, allow_duplicate: bool = False,
          require_approval: bool = False) -> Story:
    """Check ``draft`` against every target; store it with its deliveries, or raise StoryRejected.

    ``require_approval``: the story and every delivery wait in ``awaiting_approval`` (which the claim
    never picks) until an approver moves them on. Callers OR it with the desk's stored policy
    (``scheduler.desk.approval`` does both), so a caller can only add a wait, never remove one."""
    problems = check_draft(draft, now)
    if problems:  # platform checks on a 10 MB text or a bad link would only repeat the problem
        raise StoryRejected(problems)
    targets = accounts.select_targets(s, draft.targets)
    problems = check_targets(draft, targets)
    if problems:
        raise StoryRejected(problems)
    digest = fingerprint(draft, targets)
    if not allow_duplicate and (problem := duplicate_problem(s, digest)):
        raise StoryRejected([problem])
    if draft.next_slot:
        slots.lock_accounts(s, [a.id for a in targets])
    due = draft.at or now
    timing = "next_slot" if draft.next_slot else ("at" if draft.at else "now")
    waiting = "awaiting_approval" if require_approval else None
    story = Story(text=draft.text, link=draft.link, variants=draft.variants, targets=draft.targets,
                  status=waiting or "approved", author=draft.author, due_at=draft.not_before or due,
                  created_at=now,
                  timing=timing, thread=draft.thread, media=[media.to_json(m) for m in draft.media],
                  fingerprint=digest)
    s.add(story)
    s.flush()
    after = max(now, draft.not_before or now)
    problems = []
    for account in targets:
        delivery = Delivery(story_id=story.id, account_id=account.id,
                            state=waiting or "scheduled", due_at=due,
                            created_at=now, updated_at=now)
        s.add(delivery)
        if draft.next_slot:
            try:
                slots.assign(s, delivery, account, after)
            except UserError as exc:
                problems.append(str(exc))
    if problems:
        raise StoryRejected(problems)  # the caller's transaction rolls everything back
    s.flush()
    return story


def find(s: Session, story_id: str) -> Story:
    number = parse_id(story_id)
    story = s.get(Story, number) if number is not None else None
    if story is None:
        raise UserError(f"story: no story {shown(story_id)}")
    return story


def cancel(s: Session, story: Story, now: datetime) -> int:
    """Cancel every delivery of ``story`` that has not started; a publishing one is left to finish."""
    cancelled = s.execute(
        update(Delivery)
        .where(Delivery.story_id == story.id, Delivery.state.in_(deliveries.CANCELLABLE))
        .values(state="cancelled", updated_at=now, lease_until=None, slot_at=None)  # frees the slots
        .execution_options(synchronize_session=False)
    ).rowcount or 0
    story.status = "cancelled"
    return cancelled


# A delivery already handed to a worker (queued) may still be re-timed: its message then finds it
# no longer queued and does nothing. A publishing one is never moved.
RETIMABLE = ("awaiting_approval", "scheduled", "queued", "retry_wait")


def retime(s: Session, story: Story, now: datetime, *, at: datetime | None = None,
           next_slot: bool = False) -> int:
    """Move the story's deliveries that have not started to ``at``, or to each account's next free
    slot (their old slots are freed first); return how many moved. Each move is a conditional UPDATE,
    so a delivery a worker takes meanwhile is left alone."""
    if (at is None) == (not next_slot):
        raise UserError("retime: give exactly one of --at and --next-slot")
    if at is not None and at < now - PAST_TOLERANCE:
        raise UserError(f"at: {at.isoformat()} is in the past")
    if at is not None and (problem := check_horizon(at, "at", now)):
        raise UserError(problem)
    if story.status == "cancelled":
        raise UserError(f"story: {story.id} is cancelled; a cancelled story is not re-timed")
    movable = select(Delivery.id, Delivery.account_id).where(Delivery.story_id == story.id,
                                                             Delivery.state.in_(RETIMABLE))
    rows = s.execute(movable).all()
    if not rows:
        # Published, failed, publishing...: their time is history, not a plan.
        states = [d for (d,) in s.execute(select(Delivery.state).where(Delivery.story_id == story.id))]
        counts = ", ".join(f"{n} {state}" for state, n in sorted(
            {st: states.count(st) for st in states}.items())) or "no deliveries"
        raise UserError(f"story: {story.id} has no delivery that has not started ({counts}); only those "
                        "can be re-timed")
    s.execute(update(Delivery).where(Delivery.id.in_([r[0] for r in rows]), Delivery.state.in_(RETIMABLE))
              .values(slot_at=None).execution_options(synchronize_session=False))
    moved = 0
    for delivery_id, account_id in rows:
        due, slot = at, None
        if next_slot:
            account = s.get(Account, account_id)
            assert account is not None
            slots.lock_accounts(s, [account_id])
            due = slot = slots.next_free_slot(s, account, now, exclude=delivery_id)
        moved += s.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.state.in_(RETIMABLE))
            .values(state=case((Delivery.state == "queued", "scheduled"), else_=Delivery.state),
                    due_at=due, slot_at=slot, queued_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount or 0
    story.timing, story.due_at = ("next_slot", now) if next_slot else ("at", at or now)
    s.flush()
    return moved


def set_text(s: Session, delivery: Delivery, text: str | None, now: datetime) -> None:
    """One account's own text for a story (``None``: the story's again), checked as its platform counts
    it. Only before the delivery's first attempt: a text that has been sent is history. The change is a
    conditional UPDATE, so a delivery a worker starts meanwhile is left alone."""
    if delivery.state not in RETIMABLE or delivery.attempts:
        raise UserError(f"delivery: {delivery.id} is {delivery.state} after {delivery.attempts} attempt(s); "
                        "only a delivery that has not started takes a text of its own")
    story, account = delivery.story, delivery.account
    if text is not None:
        draft = Draft(text=text, targets=[str(account.id)], link=story.link, thread=story.thread,
                      media=[Media(**m) for m in story.media or []])
        problems = check_draft(draft, now) or check_targets(draft, [account])
        if problems:
            raise StoryRejected(problems, f"delivery {delivery.id}: text not changed")
    changed = s.execute(update(Delivery).where(Delivery.id == delivery.id, Delivery.state.in_(RETIMABLE),
                                               Delivery.attempts == 0)
                        .values(text=text, updated_at=now).execution_options(synchronize_session=False))
    if not changed.rowcount:
        raise UserError(f"delivery: {delivery.id} started meanwhile; its text is the one it went with")


def describe(s: Session, story: Story) -> dict[str, Any]:
    """A story with the stable field names of ``--json``. ``due_at`` is the story's own timing (for a
    next-slot story: the time it was queued from); ``first_due_at`` and ``last_due_at`` are when its
    deliveries are due, which is what an operator asks of a story spread over accounts' slots."""
    rows = s.execute(select(Delivery.state, Delivery.due_at).where(Delivery.story_id == story.id)).all()
    states = [state for state, _ in rows]
    dues = sorted(due for _, due in rows)
    return {
        "id": story.id, "text": story.text, "link": story.link, "variants": story.variants,
        "targets": story.targets, "status": story.status, "timing": story.timing, "thread": story.thread,
        "media": [m["path"] for m in story.media or []], "due_at": story.due_at.isoformat(),
        "first_due_at": dues[0].isoformat() if dues else None,
        "last_due_at": dues[-1].isoformat() if dues else None,
        "created_at": story.created_at.isoformat(), "deliveries": len(states),
        "states": {state: states.count(state) for state in sorted(set(states))},
    }
