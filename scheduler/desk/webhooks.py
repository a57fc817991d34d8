"""Webhooks: URLs told about events (``events``), each POST signed with HMAC-SHA256 over
``TIMESTAMP.BODY`` under the hook's secret (``X-Crosspost-Signature: t=TIMESTAMP,v1=HEX``), retried
with backoff until the hook answers 2xx or the tries are spent, every try kept in the hook's log.

The beat's notifier tick scans for events, claims the due sends (a compare-and-set with a lease, as
deliveries are claimed) and hands their ids to a Celery task that calls ``send``."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapters.base import Credentials
from scheduler.core import vault
from scheduler.core.db import session_scope
from scheduler.core.deliveries import backoff
from scheduler.core.errors import shown
from scheduler.desk import audit, events, health
from scheduler.desk.access import Actor, require_everywhere
from scheduler.desk.errors import NotFound, UserError
from scheduler.desk.events import KINDS
from scheduler.desk.models import Event, HookDelivery, Webhook

MAX_TRIES = 8
TIMEOUT = 10.0
LEASE = timedelta(seconds=60)
BACKOFF_BASE, BACKOFF_CAP = 10.0, 3600.0

Post = Callable[..., requests.Response]


def check_url(url: str) -> str:
    if not url.startswith(("https://", "http://")) or len(url) > 2048 or not url.isprintable():
        raise UserError(f"url: {shown(url)} is not an http(s) URL")
    return url


def check_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in KINDS]
    if unknown:
        raise UserError(f"events: {', '.join(map(shown, unknown))} not among {', '.join(KINDS)}")
    return events


def create(s: Session, actor: Actor, url: str, now: datetime, kinds: list[str] | None = None) \
        -> tuple[Webhook, str]:
    """A new hook and its signing secret, shown this once."""
    require_everywhere(actor, "admin", "webhooks")
    secret = "whsec_" + secrets.token_urlsafe(32)
    hook = Webhook(url=check_url(url), events=check_events(kinds or []), active=True, created_at=now,
                   secret=vault.seal(Credentials({"secret": secret})))
    s.add(hook)
    s.flush()
    events.start_mark(s)
    audit.record(s, actor, "webhook.add", "webhook", hook.id, now, url=url, events=hook.events)
    return hook, secret


def describe(hook: Webhook) -> dict[str, Any]:
    return {"id": hook.id, "url": hook.url, "events": hook.events, "active": hook.active,
            "created_at": hook.created_at.isoformat()}


def listing(s: Session, actor: Actor) -> list[dict[str, Any]]:
    require_everywhere(actor, "admin", "webhooks")
    return [describe(h) for h in s.scalars(select(Webhook).order_by(Webhook.id))]


def remove(s: Session, actor: Actor, hook_id: int, now: datetime) -> None:
    """Deactivate (its log stays); pending sends are dropped."""
    require_everywhere(actor, "admin", "webhooks")
    hook = s.get(Webhook, hook_id)
    if hook is None or not hook.active:
        raise NotFound(f"webhook: no webhook {hook_id}")
    hook.active = False
    s.execute(update(HookDelivery).where(HookDelivery.webhook_id == hook_id,
                                         HookDelivery.state.in_(("pending", "sending")))
              .values(state="failed", last_error="webhook removed")
              .execution_options(synchronize_session=False))
    audit.record(s, actor, "webhook.remove", "webhook", hook.id, now, url=hook.url)


def log(s: Session, actor: Actor, hook_id: int, limit: int = 100) -> list[dict[str, Any]]:
    require_everywhere(actor, "admin", "webhooks")
    if s.get(Webhook, hook_id) is None:
        raise NotFound(f"webhook: no webhook {hook_id}")
    rows = s.execute(select(HookDelivery, Event.kind).join(Event, Event.id == HookDelivery.event_id)
                     .where(HookDelivery.webhook_id == hook_id).order_by(HookDelivery.id.desc()).limit(limit))
    return [{"id": d.id, "event": d.event_id, "kind": kind, "state": d.state, "tries": d.tries,
             "next_at": d.next_at.isoformat(), "last_status": d.last_status, "last_error": d.last_error,
             "sent_at": d.sent_at.isoformat() if d.sent_at else None} for d, kind in rows]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def claim_due(s: Session, now: datetime, limit: int = 200) -> list[int]:
    """Take the due sends (and those whose sender died: its lease ran out) for this tick."""
    s.execute(update(HookDelivery).where(HookDelivery.state == "sending", HookDelivery.lease_until < now)
              .values(state="pending").execution_options(synchronize_session=False))
    due = select(HookDelivery.id).where(HookDelivery.state == "pending", HookDelivery.next_at <= now) \
        .order_by(HookDelivery.next_at).limit(limit)
    ids = list(s.scalars(due))
    if not ids:
        return []
    claimed = s.execute(update(HookDelivery)
                        .where(HookDelivery.id.in_(ids), HookDelivery.state == "pending")
                        .values(state="sending", lease_until=now + LEASE)
                        .returning(HookDelivery.id).execution_options(synchronize_session=False))
    return [row[0] for row in claimed]


def _prepare(send_id: int) -> tuple[str, str, str, bytes, int] | None:
    """(url, secret, kind, body, try number) of a claimed send, counting the try; None if it is gone."""
    with session_scope() as s:
        found = s.execute(select(HookDelivery, Webhook, Event)
                          .join(Webhook, Webhook.id == HookDelivery.webhook_id)
                          .join(Event, Event.id == HookDelivery.event_id)
                          .where(HookDelivery.id == send_id)).first()
        if found is None or found[0].state != "sending":
            return None
        delivery, hook, event = found
        delivery.tries += 1
        body = json.dumps({"id": event.id, **event.payload}, ensure_ascii=False, sort_keys=True).encode()
        try:
            secret = vault.unseal(hook.secret).require("secret", "webhook")
        except vault.VaultError:
            secret = ""
        return hook.url, secret, event.kind, body, delivery.tries


def send(send_id: int, now: datetime, post: Post = requests.post) -> str:
    """One try of one claimed send; returns its new state. The POST waits on no transaction (on SQLite
    one would hold every writer back); its outcome is a compare-and-set on the claim."""
    prepared = _prepare(send_id)
    if prepared is None:
        return "gone"
    url, secret, kind, body, tries = prepared
    status: int | None = None
    if not secret:
        error: str | None = "the secret cannot be opened with this credentials key; re-create the webhook"
        tries = MAX_TRIES
    else:
        try:
            answer = post(url, data=body, timeout=TIMEOUT, allow_redirects=False, headers={
                "Content-Type": "application/json", "User-Agent": "crosspost-webhooks",
                "X-Crosspost-Event": kind, "X-Crosspost-Delivery": str(send_id),
                "X-Crosspost-Signature": signature(secret, int(now.timestamp()), body)})
            status = answer.status_code
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except requests.RequestException as exc:
            error = type(exc).__name__  # the class only: a message may repeat the URL and its query
    values: dict[str, object] = {"lease_until": None, "last_status": status, "last_error": error}
    if error is None:
        values.update(state="sent", sent_at=now)
    elif tries >= MAX_TRIES:
        values.update(state="failed")
    else:
        wait = backoff(tries, BACKOFF_BASE, BACKOFF_CAP)
        values.update(state="pending", next_at=now + timedelta(seconds=wait))
    with session_scope() as s:
        s.execute(update(HookDelivery).where(HookDelivery.id == send_id, HookDelivery.state == "sending")
                  .values(**values).execution_options(synchronize_session=False))
    return str(values["state"])


def tick(hand_out: Callable[[int], None], now: datetime) -> list[int]:
    """The beat's notifier: new events from the scan (a silent worker among them), then the due sends
    claimed and handed to the workers (``hand_out`` queues the Celery task)."""
    with session_scope() as s:
        events.scan(s, now, worker_silent=not health.worker_check(s, now)["ok"])
        claimed = claim_due(s, now)
    for send_id in claimed:
        hand_out(send_id)
    return claimed
