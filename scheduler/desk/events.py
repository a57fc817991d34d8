"""Events the desk tells its webhooks about. Each is recorded once (its ``dedupe`` key) and fanned out
to every active hook that wants its kind, in the caller's transaction: an approval requested, decided;
and, found by the notifier's scan, deliveries published, failed or unknown, accounts whose
authorisation broke, platform tokens expiring within a day, a silent worker."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.core.models import Account, Delivery
from scheduler.desk.models import Event, HookDelivery, ScanMark, Webhook

KINDS = ("approval.requested", "approval.decided", "delivery.published", "delivery.failed",
         "delivery.unknown", "account.auth_broken", "token.expiring", "worker.silent")
# The scan re-reads this far behind its mark: a row committed late with an earlier updated_at is not
# missed, and dedupe keeps a re-read row from counting twice.
OVERLAP = timedelta(minutes=2)


def emit(s: Session, kind: str, dedupe: str, now: datetime, **payload: Any) -> bool:
    """Record the event and queue it for each hook that wants it; False if it was recorded before."""
    if s.scalar(select(Event.id).where(Event.dedupe == dedupe)) is not None:
        return False
    event = Event(at=now, kind=kind, dedupe=dedupe, payload={"kind": kind, "at": now.isoformat(), **payload})
    s.add(event)
    s.flush()
    for hook in s.scalars(select(Webhook).where(Webhook.active.is_(True))):
        if not hook.events or kind in hook.events:
            s.add(HookDelivery(webhook_id=hook.id, event_id=event.id, state="pending", next_at=now))
    return True


def _mark(s: Session, name: str, now: datetime) -> datetime:
    mark = s.get(ScanMark, name, with_for_update=True)
    if mark is None:
        mark = ScanMark(name=name, until=now)  # a new installation starts from now, not from history
        s.add(mark)
        s.flush()
    return mark.until


def scan(s: Session, now: datetime, worker_silent: bool = False) -> int:
    """Turn what happened since the last scan into events; return how many are new."""
    since = _mark(s, "deliveries", now) - OVERLAP
    new = 0
    for d in s.scalars(select(Delivery).where(Delivery.updated_at >= since,
                                              Delivery.state.in_(("published", "failed", "unknown")))):
        new += emit(s, f"delivery.{d.state}", f"delivery:{d.id}:{d.state}:{d.attempts}", now,
                    delivery=d.id, story=d.story_id, account=d.account.label, url=d.published_url,
                    error=d.last_error)
    for a in s.scalars(select(Account).where(Account.status == "auth_broken")):
        new += emit(s, "account.auth_broken", f"auth_broken:{a.id}:{a.credentials_version}", now,
                    account=a.label, reason=a.status_reason)
    for a in s.scalars(select(Account).where(Account.status == "active",
                                             Account.token_expires_at < now + timedelta(days=1))):
        expires = a.token_expires_at.isoformat() if a.token_expires_at else None
        new += emit(s, "token.expiring", f"expiring:{a.id}:{expires}", now, account=a.label,
                    expires_at=expires)
    if worker_silent:  # at most once an hour
        new += emit(s, "worker.silent", f"silent:{now:%Y-%m-%dT%H}", now)
    s.get(ScanMark, "deliveries").until = now  # type: ignore[union-attr]
    return new
