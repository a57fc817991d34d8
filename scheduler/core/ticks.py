"""The tick: reap what crashed or got lost, claim what is due, and hand each claimed delivery to a
worker. Beat runs it every few seconds; ``crosspost tick`` runs it once for a system crontab."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from config.settings import get_settings
from scheduler.core import deliveries, workers
from scheduler.core.db import session_scope
from scheduler.core.models import utcnow
from scheduler.core.publishing import policy

log = logging.getLogger("crosspost.tick")


@dataclass
class TickResult:
    claimed: list[int] = field(default_factory=list)
    sent: int = 0
    reaped: deliveries.Reaped = field(default_factory=deliveries.Reaped)


def messages(claimed: list[tuple[int, datetime]], slots: int, most: int) -> list[tuple[list[int], datetime]]:
    """The messages that hand ``claimed`` (delivery, send time) to the workers, in claim order.

    One delivery per message while the deliveries that go at the same moment fit the workers' ``slots``
    (each starts at once on a thread of its own). A burst larger than that would queue in the broker
    anyway: it goes ``ceil(n / slots)`` per message (at most ``most``), which still gives every slot work
    and spends Celery's per-message cost once for several deliveries (bench/RESULTS.md). Only deliveries
    with the same send time share a message, so none is held back behind another's eta.
    """
    by_time: dict[datetime, list[int]] = {}
    for delivery_id, due_at in claimed:
        by_time.setdefault(due_at, []).append(delivery_id)
    out: list[tuple[list[int], datetime]] = []
    for due_at, ids in by_time.items():
        size = min(most, -(-len(ids) // max(1, slots)))  # ids is never empty: at least 1
        out.extend((ids[i:i + size], due_at) for i in range(0, len(ids), size))
    return out


def tick(send: Callable[[list[int], datetime | None], None], now: datetime | None = None,
         lead: float = 0.0) -> TickResult:
    """Reap, then claim everything that may go within the next tick interval (and ``lead`` seconds more)
    and ``send`` the deliveries, a message at a time (:func:`messages`), with the time they may be sent
    (None when that time has come already)."""
    settings = get_settings()
    now = now or utcnow()
    result = TickResult()
    with session_scope() as s:
        result.reaped = deliveries.reap(s, now, queued_timeout=settings.queued_timeout,
                                        max_attempts=settings.max_attempts, policy=policy)
        slots = settings.publish_slots or workers.live_slots(s, now) or settings.worker_concurrency
    # One interval ahead, plus ``lead``: how late a worker may take a message off a polling broker, so
    # that it holds the message before its eta instead of finding it after.
    ahead = timedelta(seconds=settings.tick_interval + lead)
    # Claim in batches until nothing is due, so a burst is queued in one tick.
    while True:
        with session_scope() as s:
            batch = deliveries.claim_due_by(s, now, settings.claim_batch, ahead,
                                            spacing=settings.account_min_interval)
        result.claimed.extend(delivery_id for delivery_id, _ in batch)
        for ids, due_at in messages(batch, slots, settings.publish_batch_max):
            try:
                send(ids, due_at if due_at > now else None)
                result.sent += len(ids)
            except Exception as exc:
                # They stay queued; the reaper hands them out again after queued_timeout.
                log.warning("deliveries %s: could not hand to the broker: %s",
                            ", ".join(map(str, ids)), exc)
        if len(batch) < settings.claim_batch:
            break
    r = result.reaped
    if result.claimed or r.requeued or r.retried or r.unknown or r.failed:
        log.info("tick: claimed %d, sent %d; reaped: %d requeued, %d retried, %d unknown, %d failed",
                 len(result.claimed), result.sent, r.requeued, r.retried, r.unknown, r.failed)
    return result
