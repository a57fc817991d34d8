"""What the reports read: the roll-up rows of a window, each account's newest row before it, the
failed tries in a gap; index ranges only, so a year of hourly samples costs what a month does."""


from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.selectable import ScalarSelect

from scheduler.core.db import is_postgres
from scheduler.core.models import Account, FollowerDaily, FollowerSample
from scheduler.followers.reports import AccountInfo, DayRow

# -- reports: the queries -------------------------------------------------------------------------
# Ids per statement: SQLite's oldest limit on bound parameters is 999.
CHUNK = 900


def account_infos(s: Session) -> list[AccountInfo]:
    rows = s.execute(select(Account.id, Account.platform, Account.handle, Account.tags, Account.status)
                     .where(Account.status != "removed").order_by(Account.id))
    return [AccountInfo(i, f"{p}:{h}", p, tuple(tags or ()), status) for i, p, h, tags, status in rows]


def window_query(ids: list[int], start: date) -> Select[Any]:
    """The roll-up rows of ``ids`` from ``start`` on: a primary-key range per account. The ids are
    listed rather than joined, so PostgreSQL reads the ranges instead of scanning the whole roll-up."""
    d = FollowerDaily
    return select(d.account_id, d.day, d.first_followers, d.last_followers, d.min_followers,
                  d.max_followers, d.last_taken_at, d.samples).where(d.account_id.in_(ids), d.day >= start)


def before_query(ids: list[int], start: date) -> Select[Any]:
    """Each account's newest roll-up row before ``start`` (where a carried count comes from): its day,
    last count and time, each one backward primary-key probe per account."""
    older = aliased(FollowerDaily)

    def newest(column: Any) -> ScalarSelect[Any]:
        return (select(column).where(older.account_id == Account.id, older.day < start)
                .order_by(older.day.desc()).limit(1).correlate(Account).scalar_subquery())

    return select(Account.id, newest(older.day), newest(older.last_followers),
                  newest(older.last_taken_at)).where(Account.id.in_(ids))


def report_rows(s: Session, ids: list[int], start: date) -> list[DayRow]:
    """What :func:`summarise` and :func:`series` need: every row from ``start`` on, and each account's
    newest row before it (that one carries only its last count: the only figure read from it)."""
    rows = []
    conn = s.connection()  # Core rows, not ORM entities: a year of days is 180,000 of them
    for at in range(0, len(ids), CHUNK):
        chunk = ids[at:at + CHUNK]
        rows += [DayRow(a, day, last, last, last, last, taken, 0)
                 for a, day, last, taken in conn.execute(before_query(chunk, start)) if day is not None]
        rows += [DayRow._make(r) for r in conn.execute(window_query(chunk, start))]
    return rows


@dataclass(frozen=True)
class Gap:
    failed_tries: int
    last_error: str | None
    last_error_at: datetime | None


def gaps(s: Session, stale: list[tuple[int, datetime | None]]) -> dict[int, Gap]:
    """For accounts with no recent sample: the failed tries since their last success, and the newest
    reason. Reads only the failed tries in the gap (an index range per account)."""
    out = {}
    for account_id, last_ok in stale:
        where = [FollowerSample.account_id == account_id]
        if last_ok is not None:
            where.append(FollowerSample.taken_at > last_ok)
        tries = s.scalar(select(func.count()).select_from(FollowerSample).where(*where)) or 0
        newest = s.execute(select(FollowerSample.error, FollowerSample.taken_at).where(*where)
                           .order_by(FollowerSample.taken_at.desc()).limit(1)).first()
        out[account_id] = Gap(tries, newest[0] if newest else None, newest[1] if newest else None)
    return out


def plan(s: Session, stmt: Select[Any], analyze: bool = False) -> str:
    """The database's plan for ``stmt`` (EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on SQLite), for the
    tests and the bench that show the report and the schedule stay index lookups."""
    sql = str(stmt.compile(dialect=s.get_bind().dialect, compile_kwargs={"literal_binds": True}))
    if is_postgres(s):
        prefix = "EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN "
        return "\n".join(r[0] for r in s.connection().exec_driver_sql(prefix + sql))
    return "\n".join(str(r[-1]) for r in s.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
