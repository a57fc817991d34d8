"""Notifications: webhooks, URLs told about events, each POST signed with HMAC-SHA256 over
``TIMESTAMP.BODY`` under the hook's secret (``X-Crosspost-Signature: t=TIMESTAMP,v1=HEX``); and e-mails
to the users who chose an event kind or a daily digest (``mail``). Each send is retried with backoff
until it succeeds or the tries are spent, every try kept (a hook's log).

The beat's notifier tick scans for events, claims the due sends (a compare-and-set with a lease, as
deliveries are claimed) and hands their ids to a Celery task that calls ``send``."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
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
from scheduler.desk import audit, events, health, mail
from scheduler.desk.access import Actor, require_everywhere
from scheduler.desk.errors import NotFound, UserError
from scheduler.desk.events import KINDS
from scheduler.desk.models import Event, HookDelivery, User, Webhook

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


@dataclass(frozen=True)
class _Send:
    kind: str
    payload: dict[str, Any]
    body: bytes
    tries: int
    url: str | None = None  # a webhook's
    secret: str = ""
    to: str | None = None  # a user's e-mail


def _prepare(send_id: int) -> _Send | None:
    """What a claimed send sends, counting the try; None if it is gone."""
    with session_scope() as s:
        found = s.execute(select(HookDelivery, Event).join(Event, Event.id == HookDelivery.event_id)
                          .where(HookDelivery.id == send_id)).first()
        if found is None or found[0].state != "sending":
            return None
        delivery, event = found
        delivery.tries += 1
        body = json.dumps({"id": event.id, **event.payload}, ensure_ascii=False, sort_keys=True).encode()
        common = {"kind": event.kind, "payload": event.payload, "body": body, "tries": delivery.tries}
        if delivery.user_id is not None:
            user = s.get(User, delivery.user_id)
            return _Send(**common, to=user.email if user is not None and not user.disabled else None)
        hook = s.get(Webhook, delivery.webhook_id)
        assert hook is not None
        try:
            secret = vault.unseal(hook.secret).require("secret", "webhook")
        except vault.VaultError:
            secret = ""
        return _Send(**common, url=hook.url, secret=secret)


def _post(job: _Send, send_id: int, now: datetime, post: Post) -> tuple[int | None, str | None]:
    """(HTTP status, error) of one POST to a webhook."""
    if not job.secret:
        return None, "the secret cannot be opened with this credentials key; re-create the webhook"
    assert job.url is not None
    try:
        answer = post(job.url, data=job.body, timeout=TIMEOUT, allow_redirects=False, headers={
            "Content-Type": "application/json", "User-Agent": "crosspost-webhooks",
            "X-Crosspost-Event": job.kind, "X-Crosspost-Delivery": str(send_id),
            "X-Crosspost-Signature": signature(job.secret, int(now.timestamp()), job.body)})
    except requests.RequestException as exc:
        return None, type(exc).__name__  # the class only: a message may repeat the URL and its query
    return answer.status_code, None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"


def _mail(job: _Send) -> str | None:
    if job.to is None:
        return "the user is disabled or has no e-mail address"
    try:
        mail.send(job.to, *mail.render(job.kind, job.payload))
    except mail.MailError as exc:
        return str(exc)
    return None


def send(send_id: int, now: datetime, post: Post = requests.post) -> str:
    """One try of one claimed send (a POST to a webhook, or an e-mail); returns its new state. It waits
    on no transaction (on SQLite one would hold every writer back); its outcome is a compare-and-set on
    the claim."""
    job = _prepare(send_id)
    if job is None:
        return "gone"
    status, error = _post(job, send_id, now, post) if job.url is not None else (None, _mail(job))
    values: dict[str, object] = {"lease_until": None, "last_status": status, "last_error": error}
    permanent = error is not None and job.url is not None and not job.secret
    if error is None:
        values.update(state="sent", sent_at=now)
    elif job.tries >= MAX_TRIES or permanent:
        values.update(state="failed")
    else:
        wait = backoff(job.tries, BACKOFF_BASE, BACKOFF_CAP)
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


def reseal_all(s: Session) -> int:
    """Re-seal every hook's secret under the newest key (during a key rotation both keys open)."""
    hooks = list(s.scalars(select(Webhook).with_for_update()))
    for hook in hooks:
        hook.secret = vault.seal(vault.unseal(hook.secret))
    return len(hooks)
