"""Posting schedules: cron expressions evaluated in an account's own time zone, and next-slot assignment.

Daylight-saving rule (documented in the README):
- A slot whose wall-clock time does not exist that day (02:30 on a spring-forward night) is taken
  after the change, shifted forward by the length of the gap (02:30 -> 03:30 in New York); if that
  lands on or before a slot already produced, it is dropped, so a slot never repeats.
- A slot whose wall-clock time happens twice (01:30 on an autumn night) is taken once, at its first
  occurrence (summer time).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.core.errors import UserError
from scheduler.core.models import Account, Delivery

# How far ahead a slot is searched before the account is declared full.
HORIZON = timedelta(days=400)
LIVE = ("awaiting_approval", "scheduled", "queued", "publishing", "retry_wait", "blocked_auth")


def check_cron(expr: str) -> str:
    expr = " ".join(expr.split())
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise UserError(f"cron: {expr!r} is not a 5-field cron expression such as '0 8,12,19 * * 1-5'")
    # Valid fields can still name a day that never comes (30 February): such a schedule would
    # accept stories and never give them a slot.
    try:
        croniter(expr, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError:
        raise UserError(f"cron: {expr!r} never fires (no such day in any year)") from None
    return expr


def _next(it: croniter) -> datetime | None:
    """The iterator's next wall-clock time, or None when it has none (a schedule stored before
    check_cron refused dates that never come)."""
    try:
        return it.get_next(datetime)
    except CroniterError:
        return None


def slots(schedule: list[str], tz: str, after: datetime) -> Iterator[datetime]:
    """Every slot of ``schedule`` strictly after ``after``, in UTC, in order, each once."""
    zone = ZoneInfo(tz)
    # Walk wall-clock time: croniter on naive local times never sees the DST jumps.
    start = after.astimezone(zone).replace(tzinfo=None) - timedelta(hours=3)
    pairs = [(head, it) for it in (croniter(expr, start) for expr in schedule)
             if (head := _next(it)) is not None]
    heads, iters = [h for h, _ in pairs], [it for _, it in pairs]
    last: datetime | None = None
    while heads:
        i = min(range(len(heads)), key=heads.__getitem__)
        wall = heads[i]
        following = _next(iters[i])
        if following is None:
            del heads[i], iters[i]
        else:
            heads[i] = following
        # fold=0: a nonexistent time takes the offset before the change (so it moves forward by
        # the gap); an ambiguous time takes its first occurrence.
        instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
        if instant <= after or (last is not None and instant <= last):
            continue
        last = instant
        yield instant


def _taken(s: Session, account_id: int, start: datetime, end: datetime,
           exclude: int | None) -> list[datetime]:
    """Times on the account already promised to a post (other than ``exclude``), within [start, end]."""
    query = select(Delivery.due_at).where(Delivery.account_id == account_id, Delivery.state.in_(LIVE),
                                          Delivery.due_at >= start, Delivery.due_at <= end)
    if exclude is not None:
        query = query.where(Delivery.id != exclude)
    return list(s.scalars(query))


def next_free_slot(s: Session, account: Account, after: datetime, exclude: int | None = None) -> datetime:
    """The first slot of ``account`` after ``after`` that is at least ``min_gap_minutes`` from every
    other pending post of the account (``exclude``: the delivery being moved)."""
    if not account.schedule:
        raise UserError(f"{account.label}: has no posting schedule; set one with `crosspost schedule set`")
    gap = timedelta(minutes=account.min_gap_minutes or 0)
    # A slot is free when no pending post sits closer than the gap (or at the same instant).
    fired = False
    for slot in slots(account.schedule, account.tz, after):
        fired = True
        if slot - after > HORIZON:
            break
        if not _taken(s, account.id, slot - gap, slot + gap, exclude):
            return slot
    if not fired:  # a schedule stored before check_cron refused days that never come
        raise UserError(f"{account.label}: schedule: never fires ({'; '.join(account.schedule)}); set a new "
                        "one with `crosspost schedule set`")
    raise UserError(f"{account.label}: no free slot in the next {HORIZON.days} days")


def lock_accounts(s: Session, account_ids: list[int]) -> None:
    """Serialise slot assignment per account: a PostgreSQL row lock taken in id order (so two
    operators queueing to overlapping accounts cannot deadlock), before anything is inserted. NO KEY
    UPDATE does not conflict with the key-share locks that inserting deliveries takes. SQLite writes
    are serial already."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(select(Account.id).where(Account.id.in_(sorted(account_ids))).order_by(Account.id)
                  .with_for_update(key_share=True))


def assign(s: Session, delivery: Delivery, account: Account, after: datetime) -> datetime:
    """Give ``delivery`` the account's next free slot. The account's row lock makes concurrent queueing
    take turns; the unique (account, slot) index is the backstop if anything ever bypasses it."""
    lock_accounts(s, [account.id])
    slot = next_free_slot(s, account, after)
    delivery.slot_at = delivery.due_at = slot
    s.flush()
    return slot
