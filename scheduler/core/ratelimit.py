"""Rate gates shared by every worker on every machine, kept in the database.

A gate is the earliest instant anything may be sent within a scope (``account:<id>`` or
``app:<platform>``). Taking a gate is one conditional UPDATE, so it is atomic on SQLite and on
PostgreSQL; a Retry-After from a platform pushes the gate forward and never back.

Publishing takes its account's gate at the claim (:func:`scheduler.core.deliveries.claim_due_by`
reserves each claimed delivery a send time, spaced, and moves the gate past the last one), so the
publish itself pays no gate statement. What it still checks, inside the statement that starts the
attempt, is a *block*: a Retry-After on the account (``blocked:account:<id>``) or on the platform app
(``app:<platform>``), which may have come after the claim.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from scheduler.core.db import is_postgres
from scheduler.core.models import RateGate


def account_scope(account_id: int) -> str:
    return f"account:{account_id}"


def app_scope(platform: str) -> str:
    return f"app:{platform}"


BLOCKED = "blocked:"


def blocked_scope(account_id: int) -> str:
    """Set only by a platform's Retry-After, never by spacing: what a started publish must respect."""
    return f"{BLOCKED}{account_scope(account_id)}"


def _ensure(s: Session, scope: str, at: datetime) -> None:
    insert = postgresql.insert if is_postgres(s) else sqlite.insert
    s.execute(insert(RateGate).values(scope=scope, next_at=at).on_conflict_do_nothing())


def take(s: Session, scopes: list[str], now: datetime, spacing: float) -> datetime | None:
    """Take the gates of ``scopes`` at ``now``; None if allowed, else the earliest allowed instant.

    The first scope (the account) is spaced by ``spacing`` seconds; the others (the platform app)
    are only checked for a block set by :func:`block`.
    """
    for scope in scopes:
        _ensure(s, scope, now)
    blocked = s.scalars(select(RateGate.next_at).where(RateGate.scope.in_(scopes[1:]),
                                                       RateGate.next_at > now)).all()
    if blocked:
        return max(blocked)
    taken = s.execute(
        update(RateGate)
        .where(RateGate.scope == scopes[0], RateGate.next_at <= now)
        .values(next_at=now + timedelta(seconds=spacing))
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken:
        return None
    return s.scalar(select(RateGate.next_at).where(RateGate.scope == scopes[0]))


def block(s: Session, scope: str, until: datetime) -> None:
    """Nothing may be sent within ``scope`` before ``until`` (a platform's Retry-After)."""
    scopes = [scope]
    if scope.startswith("account:"):
        # The gate (so the claim and samplers wait) and the block (so publishes claimed before it do).
        scopes.append(BLOCKED + scope)
    for each in scopes:
        _ensure(s, each, until)
        s.execute(update(RateGate).where(RateGate.scope == each, RateGate.next_at < until)
                  .values(next_at=until).execution_options(synchronize_session=False))


def reserve(due: list[tuple[int, int, datetime]], gates: dict[int, datetime], spacing: float,
            until: datetime) -> tuple[dict[int, datetime], dict[int, datetime]]:
    """Send times for due deliveries under their accounts' gates: pure, so the claim's rule is testable.

    ``due`` holds (delivery, account, due time), each account's in the order they should go. Each
    delivery goes at its due time, but no earlier than its account's gate or ``spacing`` seconds after
    the account's previous one. Returns the send time of every delivery that can go by ``until``, and
    each account's gate after them (the last send time + ``spacing``).
    """
    step = timedelta(seconds=spacing)
    times: dict[int, datetime] = {}
    after: dict[int, datetime] = {}
    for delivery_id, account_id, due_at in due:
        earliest = after.get(account_id, gates.get(account_id))
        at = due_at if earliest is None else max(due_at, earliest)
        if at > until:
            continue  # and so is every later one of this account: it waits for a later tick
        times[delivery_id] = at
        after[account_id] = at + step
    return times, after


def advance(s: Session, gates: dict[int, datetime]) -> None:
    """Move each account's gate to at least the given instant (one statement for them all)."""
    if not gates:
        return
    insert = postgresql.insert if is_postgres(s) else sqlite.insert
    stmt = insert(RateGate).values([{"scope": account_scope(a), "next_at": at} for a, at in gates.items()])
    s.execute(stmt.on_conflict_do_update(
        index_elements=[RateGate.scope],
        set_={"next_at": case((RateGate.next_at < stmt.excluded.next_at, stmt.excluded.next_at),
                              else_=RateGate.next_at)}))
