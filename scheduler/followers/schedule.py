"""When each account's follower count is sampled: once per ``follower_interval``, at an offset
into the interval derived from its id (a Weyl sequence), so a matrix of 500 accounts is spread over
the hour; and the tick that claims the accounts whose slot has come."""


from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import ScalarSelect

from config.settings import Settings, get_settings
from scheduler.core import ratelimit
from scheduler.core.db import read_scope, session_scope
from scheduler.core.models import Account, FollowerDaily, FollowerSample, RateGate, utcnow

log = logging.getLogger("crosspost.followers")

# -- the schedule ---------------------------------------------------------------------------------
# Fractional part of the golden ratio: id * GOLDEN mod 1 is a Weyl sequence, so consecutive account
# ids land as far apart in the interval as possible (500 accounts in an hour: at least ~2.5 s apart).
GOLDEN = 0.6180339887498949


@dataclass(frozen=True)
class Schedule:
    interval: float  # seconds between two samples of one account
    period: float  # seconds between two follower ticks
    grace: float  # how late after its slot a never- or long-unsampled account may still start
    retry_gap: float  # seconds before a failed try is tried again within the same slot
    claim_ttl: float  # how long a tick's claim keeps other ticks from sending the account again


def tick_period(settings: Settings) -> float:
    """Seconds between follower ticks: short, so the per-account offsets are not bunched per tick."""
    return min(settings.tick_interval, 1.0)


def current(settings: Settings | None = None) -> Schedule:
    settings = settings or get_settings()
    interval = settings.follower_interval
    period = tick_period(settings)
    # A slot missed by more than grace (beat was down) waits for the next one: after an outage the
    # matrix stays spread instead of every account being sampled at once.
    grace = max(3 * period, 120.0)
    return Schedule(interval=interval, period=period, grace=grace, retry_gap=interval / 4,
                    claim_ttl=min(grace, interval / 2))


def offset(account_id: int, interval: float) -> float:
    """Seconds into every interval at which ``account_id`` is sampled."""
    return (account_id * GOLDEN) % 1.0 * interval


def slot_start(account_id: int, now: datetime, interval: float) -> datetime:
    """The start of the account's sampling slot that contains ``now``."""
    t = now.timestamp()
    return datetime.fromtimestamp(t - (t - offset(account_id, interval)) % interval, UTC)


def is_due(account_id: int, now: datetime, sched: Schedule, last_try: datetime | None,
           last_ok: datetime | None) -> bool:
    """Whether the account should be sampled now, given its last try and its last success."""
    start = slot_start(account_id, now, sched.interval)
    if last_ok is not None and last_ok >= start:
        return False  # this slot has its sample
    if last_try is None or last_try < start:
        return (now - start).total_seconds() <= sched.grace
    return (now - last_try).total_seconds() >= sched.retry_gap  # this slot's try failed


def claim_scope(account_id: int) -> str:
    """The rate-gate scope a tick takes to claim an account's sample (no second send meanwhile)."""
    return f"followers:{account_id}"


# ORDER BY ... LIMIT 1 rather than max(): on both databases a guaranteed single backward index probe.
def _last_try() -> ScalarSelect[datetime]:
    return (select(FollowerSample.taken_at).where(FollowerSample.account_id == Account.id)
            .order_by(FollowerSample.taken_at.desc()).limit(1).correlate(Account).scalar_subquery())


def _last_ok() -> ScalarSelect[datetime]:
    return (select(FollowerDaily.last_taken_at).where(FollowerDaily.account_id == Account.id)
            .order_by(FollowerDaily.day.desc()).limit(1).correlate(Account).scalar_subquery())


def due_query() -> Select[tuple[int, str, datetime | None, datetime | None]]:
    """Each active account with its last try and last success: two index probes per account, however
    many samples are stored."""
    return (select(Account.id, Account.platform, _last_try(), _last_ok())
            .where(Account.status == "active").order_by(Account.id))


def due_for_sampling(s: Session, now: datetime, sched: Schedule) -> list[int]:
    """Active accounts due now whose account, platform and claim gates are all open."""
    closed = set(s.scalars(select(RateGate.scope).where(RateGate.next_at > now)))
    due = []
    for account_id, platform, last_try, last_ok in s.execute(due_query()):
        scopes = (ratelimit.account_scope(account_id), ratelimit.app_scope(platform), claim_scope(account_id))
        if not closed.intersection(scopes) and is_due(account_id, now, sched, last_try, last_ok):
            due.append(account_id)
    return due


def tick(send: Callable[[int], None], now: datetime | None = None) -> list[int]:
    """Claim the accounts due now and hand each to ``send``; return the ids sent."""
    now = now or utcnow()
    sched = current()
    with read_scope() as s:
        due = due_for_sampling(s, now, sched)
    if not due:
        return []
    with session_scope() as s:
        claimed = [a for a in due if ratelimit.take(s, [claim_scope(a)], now, sched.claim_ttl) is None]
    sent = []
    for account_id in claimed:
        try:
            send(account_id)
            sent.append(account_id)
        except Exception as exc:
            # The claim expires after claim_ttl and a later tick sends the account again.
            log.warning("account %s: could not hand the follower sample to the broker: %s", account_id, exc)
    if sent:
        log.info("followers tick: sent %d samples", len(sent))
    return sent


