"""Events the desk tells its webhooks about. Each is recorded once (its ``dedupe`` key) and fanned out
to every active hook that wants its kind, in the caller's transaction: an approval requested, decided;
and, found by the notifier's scan, deliveries published, failed or unknown, accounts whose
authorisation broke, platform tokens expiring within a day, a silent worker. The scan reads new attempt
rows by id (their primary key), never a whole table."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scheduler.core.models import Account, Attempt, Delivery
from scheduler.desk.models import Event, HookDelivery, ScanMark, Webhook

KINDS = ("approval.requested", "approval.decided", "delivery.published", "delivery.failed",
         "delivery.unknown", "account.auth_broken", "token.expiring", "worker.silent")
# Attempt rows are written with their outcome, so new ids are new outcomes. A transaction that took an
# id and committed after a higher one is caught by re-reading this many ids behind the mark; dedupe
# keeps a re-read outcome from counting twice.
REREAD = 200
BATCH = 2000
OUTCOMES = ("published", "failed", "unknown")


def emit(s: Session, kind: str, dedupe: str, now: datetime, **payload: Any) -> bool:
    """Record the event and queue it for each hook that wants it; False if it was recorded before."""
    return emit_many(s, [(kind, dedupe, payload)], now) == 1


def emit_many(s: Session, found: list[tuple[str, str, dict[str, Any]]], now: datetime) -> int:
    """Record each event not recorded before (one query to tell which), queued for each hook that
    wants its kind; return how many are new."""
    hooks = list(s.scalars(select(Webhook).where(Webhook.active.is_(True))))
    if not found or not hooks:  # nobody listens: nothing is kept
        return 0
    seen = set(s.scalars(select(Event.dedupe).where(Event.dedupe.in_([d for _, d, _ in found]))))
    new = 0
    for kind, dedupe, payload in found:
        if dedupe in seen:
            continue
        seen.add(dedupe)
        event = Event(at=now, kind=kind, dedupe=dedupe,
                      payload={"kind": kind, "at": now.isoformat(), **payload})
        s.add(event)
        s.flush()
        s.add_all(HookDelivery(webhook_id=h.id, event_id=event.id, state="pending", next_at=now)
                  for h in hooks if not h.events or kind in h.events)
        new += 1
    return new


def delivery_event(d: Delivery) -> tuple[str, str, dict[str, Any]]:
    return (f"delivery.{d.state}", f"delivery:{d.id}:{d.state}:{d.attempts}",
            {"delivery": d.id, "story": d.story_id, "account": d.account.label, "url": d.published_url,
             "error": d.last_error})


def start_mark(s: Session) -> ScanMark:
    """The scan's mark, set at the newest attempt when first asked (the first webhook's creation): hooks
    hear of what happens after they exist, not of the installation's history."""
    mark = s.get(ScanMark, "attempts", with_for_update=True)
    if mark is None:
        newest = s.scalar(select(func.max(Attempt.id))) or 0
        mark = ScanMark(name="attempts", last_id=newest, floor_id=newest)
        s.add(mark)
        s.flush()
    return mark


def scan(s: Session, now: datetime, worker_silent: bool = False) -> int:
    """Turn what happened since the last scan into events; return how many are new."""
    mark = start_mark(s)
    rows = s.execute(select(Attempt.id, Delivery).join(Delivery, Delivery.id == Attempt.delivery_id)
                     .where(Attempt.id > max(mark.floor_id, mark.last_id - REREAD))
                     .order_by(Attempt.id).limit(BATCH)).all()
    found = [delivery_event(d) for _, d in rows if d.state in OUTCOMES]
    if rows:
        mark.last_id = max(mark.last_id, rows[-1][0])
    for a in s.scalars(select(Account).where(Account.status == "auth_broken")):
        found.append(("account.auth_broken", f"auth_broken:{a.id}:{a.credentials_version}",
                      {"account": a.label, "reason": a.status_reason}))
    for a in s.scalars(select(Account).where(Account.status == "active",
                                             Account.token_expires_at < now + timedelta(days=1))):
        expires = a.token_expires_at.isoformat() if a.token_expires_at else None
        found.append(("token.expiring", f"expiring:{a.id}:{expires}",
                      {"account": a.label, "expires_at": expires}))
    if worker_silent:  # at most once an hour
        found.append(("worker.silent", f"silent:{now:%Y-%m-%dT%H}", {}))
    return emit_many(s, found, now)
