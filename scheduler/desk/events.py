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
from scheduler.desk import users
from scheduler.desk.models import Event, HookDelivery, ScanMark, User, Webhook

KINDS = ("approval.requested", "approval.decided", "delivery.published", "delivery.failed",
         "delivery.unknown", "account.auth_broken", "token.expiring", "worker.silent")
# Attempt rows are written with their outcome, so new ids are new outcomes. A transaction that took an
# id and committed after a higher one is caught by re-reading this many ids behind the mark; dedupe
# keeps a re-read outcome from counting twice.
REREAD = 200
# The digest goes out with the first notifier tick after this hour (UTC) each day.
DIGEST_HOUR = 7
BATCH = 2000
OUTCOMES = ("published", "failed", "unknown")


def emit(s: Session, kind: str, dedupe: str, now: datetime, **payload: Any) -> bool:
    """Record the event and queue it for each hook that wants it; False if it was recorded before."""
    return emit_many(s, [(kind, dedupe, payload)], now) == 1


def emit_many(s: Session, found: list[tuple[str, str, dict[str, Any]]], now: datetime) -> int:
    """Record each event not recorded before (one query to tell which), queued for each hook that
    wants its kind; return how many are new."""
    hooks = list(s.scalars(select(Webhook).where(Webhook.active.is_(True))))
    readers = list(s.scalars(select(User).where(User.email.is_not(None), User.disabled.is_(False))))
    readers = [u for u in readers if u.notify or u.digest]
    if not found or not (hooks or readers):  # nobody listens: nothing is kept
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
        s.add_all(HookDelivery(user_id=u.id, event_id=event.id, state="pending", next_at=now)
                  for u in _mailed(s, readers, kind, payload))
        new += 1
    return new


def _mailed(s: Session, readers: list[User], kind: str, payload: dict[str, Any]) -> list[User]:
    """The users who chose ``kind`` and may see what it is about (an account of their desk); a digest
    goes to its one reader."""
    if kind == "digest":
        return [u for u in readers if u.id == payload.get("user_id")]
    ids = payload.get("account_ids") or []
    about = list(s.scalars(select(Account).where(Account.id.in_(ids)))) if ids else []
    chosen = []
    for user in readers:
        if kind not in user.notify:
            continue
        roles = users.roles_of(s, user.id)
        if not about or any(r.scope.covers(a) for r in roles for a in about):
            chosen.append(user)
    return chosen


def delivery_event(d: Delivery) -> tuple[str, str, dict[str, Any]]:
    return (f"delivery.{d.state}", f"delivery:{d.id}:{d.state}:{d.attempts}",
            {"delivery": d.id, "story": d.story_id, "account": d.account.label, "url": d.published_url,
             "error": d.last_error, "account_ids": [d.account_id]})


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
                      {"account": a.label, "reason": a.status_reason, "account_ids": [a.id]}))
    for a in s.scalars(select(Account).where(Account.status == "active",
                                             Account.token_expires_at < now + timedelta(days=1))):
        expires = a.token_expires_at.isoformat() if a.token_expires_at else None
        found.append(("token.expiring", f"expiring:{a.id}:{expires}",
                      {"account": a.label, "expires_at": expires, "account_ids": [a.id]}))
    if worker_silent:  # at most once an hour
        found.append(("worker.silent", f"silent:{now:%Y-%m-%dT%H}", {}))
    if now.hour >= DIGEST_HOUR:
        found += [("digest", f"digest:{u.id}:{now:%Y-%m-%d}", digest(s, u, now)) for u in s.scalars(
            select(User).where(User.digest.is_(True), User.email.is_not(None), User.disabled.is_(False)))]
    return emit_many(s, found, now)


def digest(s: Session, user: User, now: datetime) -> dict[str, Any]:
    """The last 24 hours on the accounts of the user's desk, and what waits for approval there."""
    roles = users.roles_of(s, user.id)
    ids = [a.id for a in s.scalars(select(Account)) if any(r.scope.covers(a) for r in roles)]
    mine, day = Delivery.account_id.in_(ids), Delivery.updated_at >= now - timedelta(days=1)
    ended = Delivery.state.in_(("published", "failed", "unknown", "cancelled"))
    counts = dict(s.execute(select(Delivery.state, func.count()).where(mine, day, ended)
                            .group_by(Delivery.state)).all()) if ids else {}
    waiting = s.scalar(select(func.count(func.distinct(Delivery.story_id)))
                       .where(mine, Delivery.state == "awaiting_approval")) if ids else 0
    return {"user_id": user.id, "deliveries": counts, "awaiting_approval": waiting or 0}
