"""The tick: reap what crashed or got lost, claim what is due, and hand each claimed delivery to a
worker. Beat runs it every few seconds; ``crosspost tick`` runs it once for a system crontab."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from config.settings import get_settings
from scheduler.core import deliveries
from scheduler.core.db import session_scope
from scheduler.core.models import utcnow
from scheduler.core.publishing import policy

log = logging.getLogger("crosspost.tick")


@dataclass
class TickResult:
    claimed: list[int] = field(default_factory=list)
    sent: int = 0
    reaped: deliveries.Reaped = field(default_factory=deliveries.Reaped)


def tick(send: Callable[[int, datetime | None], None], now: datetime | None = None,
         lead: float = 0.0) -> TickResult:
    """Reap, then claim everything that may go within the next tick interval (and ``lead`` seconds more)
    and ``send`` each delivery with the time it may be sent (None when that time has come already)."""
    settings = get_settings()
    now = now or utcnow()
    result = TickResult()
    with session_scope() as s:
        result.reaped = deliveries.reap(s, now, queued_timeout=settings.queued_timeout,
                                        max_attempts=settings.max_attempts, policy=policy)
    # One interval ahead, plus ``lead``: how late a worker may take a message off a polling broker, so
    # that it holds the message before its eta instead of finding it after.
    ahead = timedelta(seconds=settings.tick_interval + lead)
    # Claim in batches until nothing is due, so a burst is queued in one tick.
    while True:
        with session_scope() as s:
            batch = deliveries.claim_due_by(s, now, settings.claim_batch, ahead,
                                            spacing=settings.account_min_interval)
        result.claimed.extend(delivery_id for delivery_id, _ in batch)
        for delivery_id, due_at in batch:
            try:
                send(delivery_id, due_at if due_at > now else None)
                result.sent += 1
            except Exception as exc:
                # The delivery stays queued; the reaper hands it out again after queued_timeout.
                log.warning("delivery %s: could not hand to the broker: %s", delivery_id, exc)
        if len(batch) < settings.claim_batch:
            break
    r = result.reaped
    if result.claimed or r.requeued or r.retried or r.unknown or r.failed:
        log.info("tick: claimed %d, sent %d; reaped: %d requeued, %d retried, %d unknown, %d failed",
                 len(result.claimed), result.sent, r.requeued, r.retried, r.unknown, r.failed)
    return result
