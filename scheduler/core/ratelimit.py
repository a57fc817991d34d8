"""Rate gates shared by every worker on every machine, kept in the database.

A gate is the earliest instant anything may be sent within a scope (``account:<id>`` or
``app:<platform>``). Taking a gate is one conditional UPDATE, so it is atomic on SQLite and on
PostgreSQL; a Retry-After from a platform pushes the gate forward and never back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from scheduler.core.db import is_postgres
from scheduler.core.models import RateGate


def account_scope(account_id: int) -> str:
    return f"account:{account_id}"


def app_scope(platform: str) -> str:
    return f"app:{platform}"


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
    _ensure(s, scope, until)
    s.execute(update(RateGate).where(RateGate.scope == scope, RateGate.next_at < until)
              .values(next_at=until).execution_options(synchronize_session=False))
