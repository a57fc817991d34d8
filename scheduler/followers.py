"""Follower counts over time: sampling on a jittered schedule, the daily roll-up, and reports.

Sampling: every active account is sampled once per ``follower_interval``, at an offset into the interval
derived from its id, so a matrix of 500 accounts is spread over the hour instead of hitting a platform
in one second. A sample passes the same rate gates as a publish and honours a platform's Retry-After.
Every try is stored, the failed ones with their reason, so a gap in the data is visible; a success also
updates the account's row of the daily roll-up in the same transaction.

Reports read only the roll-up (one row per account and UTC day): the figures are pure functions over
those rows, so they are tested against hand-computed data.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Select, case, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.selectable import ScalarSelect

from adapters import get_adapter
from adapters.base import AccountRef, Adapter
from adapters.errors import AdapterError, AuthExpired, RateLimited, Rejected, Transient
from adapters.http import scrub
from config.settings import Settings, get_settings
from scheduler import accounts, ratelimit
from scheduler.db import is_postgres, session_scope
from scheduler.models import Account, FollowerDaily, FollowerSample, RateGate, utcnow
from scheduler.publishing import refresh_credentials

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


def schedule(settings: Settings | None = None) -> Schedule:
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
    sched = schedule()
    with session_scope() as s:
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


# -- one sample -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sampled:
    account_id: int
    outcome: str  # sampled | failed | deferred (a rate gate is closed) | skipped
    followers: int | None = None
    error: str | None = None
    until: datetime | None = None  # when deferred: when the gate opens


def sample_account(account_id: int, at: datetime | None = None, *, scheduled: bool = False) -> Sampled:
    """Ask the platform for ``account_id``'s follower count and store the sample or the failed try.

    ``scheduled``: called by the schedule, so only an active account whose current slot has no sample
    yet is sampled (a duplicate message is harmless). ``at`` records the sample as taken at that
    instant instead of now (for back-filling and tests).
    """
    settings = get_settings()
    now = utcnow()
    with session_scope() as s:
        account = s.get(Account, account_id)
        if account is None or account.status == "removed" or (scheduled and account.status != "active"):
            return Sampled(account_id, "skipped", error="no such active account")
        if scheduled:
            daily = FollowerDaily
            last_ok = s.scalar(select(daily.last_taken_at).where(daily.account_id == account_id)
                               .order_by(daily.day.desc()).limit(1))
            if last_ok is not None and last_ok >= slot_start(account_id, now, settings.follower_interval):
                return Sampled(account_id, "skipped", error="already sampled in this slot")
        wait = ratelimit.take(s, [ratelimit.account_scope(account_id), ratelimit.app_scope(account.platform)],
                              now, settings.account_min_interval)
        if wait is not None:
            return Sampled(account_id, "deferred", error="waiting for a rate gate", until=wait)
        ref = accounts.to_ref(account)
        version = account.credentials_version
    adapter = get_adapter(ref.platform, timeout=settings.http_timeout)
    count: int | None = None
    error: AdapterError | None = None
    try:
        count = _followers_with_refresh(adapter, ref, version)
    except AdapterError as exc:
        error = exc
    except Exception as exc:  # a bug in an adapter is a failed try too, with its reason
        log.exception("account %s: adapter %s crashed reading followers", account_id, ref.platform)
        error = Transient(f"{ref.platform}: internal error {type(exc).__name__}: {exc}")
    taken_at = at or utcnow()
    reason = None if error is None else scrub(describe_error(error), ref.credentials.secrets())[:2000]
    with session_scope() as s:
        if isinstance(error, RateLimited):
            scope = (ratelimit.app_scope(ref.platform) if error.scope == "app"
                     else ratelimit.account_scope(account_id))
            ratelimit.block(s, scope, utcnow() + timedelta(seconds=error.retry_after))
        record(s, account_id, taken_at, count, reason)
    log.info("followers of %s:%s: %s", ref.platform, ref.handle, count if reason is None else reason)
    if reason is not None:
        return Sampled(account_id, "failed", error=reason)
    return Sampled(account_id, "sampled", followers=count)


def _followers_with_refresh(adapter: Adapter, ref: AccountRef, version: int) -> int:
    try:
        return adapter.followers(ref)
    except AuthExpired:
        ref.credentials = refresh_credentials(adapter, ref, version)
        return adapter.followers(ref)


def describe_error(error: AdapterError) -> str:
    """The reason stored with a failed try, led by its kind so a report can group them."""
    if isinstance(error, RateLimited):
        kind = f"rate limited for {error.retry_after:g} s"
    elif isinstance(error, AuthExpired):
        kind = "credentials refused"
    elif isinstance(error, Rejected):
        kind = "rejected"
    else:  # Transient, and a refresh another worker holds (tried again next time)
        kind = "transient"
    return f"{kind}: {error.reason}"


def record(s: Session, account_id: int, taken_at: datetime, followers: int | None,
           error: str | None = None) -> None:
    """Store one try; a success also updates the account's daily roll-up row (inserted or updated in
    one statement, so concurrent samples of one account never lose an update)."""
    s.execute(insert(FollowerSample).values(account_id=account_id, taken_at=taken_at, followers=followers,
                                            error=error))
    if followers is None:
        return
    upsert = postgresql.insert if is_postgres(s) else sqlite.insert
    new = upsert(FollowerDaily).values(
        account_id=account_id, day=taken_at.astimezone(UTC).date(), first_followers=followers,
        last_followers=followers, min_followers=followers, max_followers=followers, last_taken_at=taken_at,
        samples=1)
    old, ex = FollowerDaily, new.excluded
    newer = ex.last_taken_at >= old.last_taken_at
    s.execute(new.on_conflict_do_update(index_elements=[old.account_id, old.day], set_={
        # A late sample (taken before the stored last one) counts for min/max, not for "last".
        "last_followers": case((newer, ex.last_followers), else_=old.last_followers),
        "last_taken_at": case((newer, ex.last_taken_at), else_=old.last_taken_at),
        "min_followers": case((ex.min_followers < old.min_followers, ex.min_followers),
                              else_=old.min_followers),
        "max_followers": case((ex.max_followers > old.max_followers, ex.max_followers),
                              else_=old.max_followers),
        "samples": old.samples + 1,
    }))


# -- reports: pure functions over roll-up rows ----------------------------------------------------
WINDOWS = (1, 7, 30)
GROUPINGS = ("platform", "tag", "account")
UNTAGGED = "(untagged)"


@dataclass(frozen=True)
class AccountInfo:
    id: int
    label: str
    platform: str
    tags: tuple[str, ...]
    status: str


class DayRow(NamedTuple):
    """One row of the roll-up: an account's counts on one UTC day (a tuple: reports build thousands)."""

    account_id: int
    day: date
    first: int
    last: int
    low: int
    high: int
    last_taken_at: datetime
    samples: int


@dataclass(frozen=True)
class Change:
    since: date  # the reference is the last count before this UTC day began
    absolute: int
    percent: float | None  # None when the reference total is 0


@dataclass
class GroupFigures:
    name: str
    accounts: int  # accounts in the group
    sampled: int  # of which have at least one sample
    followers: int  # sum of each sampled account's newest count
    changes: dict[str, Change] = field(default_factory=dict)  # "1d", "7d", "30d", "since"


@dataclass(frozen=True)
class AccountChange:
    account: str
    platform: str
    followers: int
    changes: dict[str, Change]


@dataclass(frozen=True)
class Stale:
    account: str
    status: str
    last_sample: datetime | None  # the newest successful sample, if any


@dataclass
class Report:
    as_of: datetime
    by: str
    total: GroupFigures
    groups: list[GroupFigures]
    fell: list[AccountChange]
    stale: list[Stale]


def histories(rows: Iterable[DayRow]) -> dict[int, list[DayRow]]:
    by_account: dict[int, list[DayRow]] = defaultdict(list)
    for row in rows:
        by_account[row.account_id].append(row)
    for days in by_account.values():
        days.sort(key=lambda r: r.day)
    return by_account


def value_on(days: list[DayRow], day: date) -> int | None:
    """The account's count at the end of ``day``: the last count of the newest row on or before it."""
    at = bisect_right(days, day, key=lambda r: r.day)
    return days[at - 1].last if at else None


def reference(days: list[DayRow], since: date) -> int | None:
    """The count a change "since ``since``" starts from: the last count before that UTC day began, or,
    for an account first sampled later, its first count (so joining the matrix is not growth)."""
    before = value_on(days, since - timedelta(days=1))
    if before is not None:
        return before
    return days[0].first if days else None


def groups_of(account: AccountInfo, by: str) -> list[str]:
    if by == "platform":
        return [account.platform]
    if by == "tag":
        return list(account.tags) or [UNTAGGED]
    if by == "account":
        return [account.label]
    raise ValueError(f"by: {by!r} is not one of {', '.join(GROUPINGS)}")


def members_by_group(accounts_: list[AccountInfo], by: str) -> dict[str, list[AccountInfo]]:
    members: dict[str, list[AccountInfo]] = defaultdict(list)
    for account in accounts_:
        for name in groups_of(account, by):
            members[name].append(account)
    return dict(sorted(members.items()))


def windows(today: date, since: date | None = None) -> dict[str, date]:
    """The reference days of each growth figure: "1d" is since the start of yesterday (UTC)."""
    refs = {f"{n}d": today - timedelta(days=n) for n in WINDOWS}
    if since is not None:
        refs["since"] = since
    return refs


# Per sampled account: its newest count and its reference count for each window.
Own = tuple[int, dict[str, int]]


def figures(name: str, members: list[AccountInfo], own: dict[int, Own], refs: dict[str, date]) \
        -> GroupFigures:
    sampled = [own[a.id] for a in members if a.id in own]
    current = sum(c for c, _ in sampled)
    group = GroupFigures(name, len(members), len(sampled), current)
    for key, since in refs.items():
        base = sum(r[key] for _, r in sampled)
        change = current - base
        group.changes[key] = Change(since, change, change / base * 100 if base else None)
    return group


def summarise(accounts_: list[AccountInfo], rows: Iterable[DayRow], now: datetime, by: str,
              since: date | None = None, stale_after: timedelta = timedelta(hours=2)) -> Report:
    """Totals, per group, growth, accounts that fell, accounts with no recent sample.

    ``rows`` must hold, per account, every roll-up row from the earliest reference day on and the last
    row before it (see :func:`report_rows`).
    """
    hist = histories(rows)
    refs = windows(now.astimezone(UTC).date(), since)
    own: dict[int, Own] = {}
    for account_id, days in hist.items():
        own[account_id] = (days[-1].last, {k: reference(days, d) or 0 for k, d in refs.items()})
    groups = [figures(name, members, own, refs) for name, members in members_by_group(accounts_, by).items()]
    total = figures("all accounts", accounts_, own, refs)
    fell, stale = [], []
    for account in accounts_:
        if account.id in own:
            mine = figures(account.label, [account], own, refs)
            if any(c.absolute < 0 for c in mine.changes.values()):
                fell.append(AccountChange(account.label, account.platform, mine.followers, mine.changes))
        last = hist[account.id][-1].last_taken_at if account.id in hist else None
        if last is None or now - last > stale_after:
            stale.append(Stale(account.label, account.status, last))
    return Report(now, by, total, groups, fell, stale)


def daily_counts(days: list[DayRow], start: date, end: date) -> list[int | None]:
    """The account's count at the end of each day from ``start`` to ``end`` (None before its first
    sample), carried forward over days without a sample, in one pass."""
    out: list[int | None] = []
    at = bisect_right(days, start, key=lambda r: r.day)
    current = days[at - 1].last if at else None
    day = start
    while day <= end:
        while at < len(days) and days[at].day <= day:
            current = days[at].last
            at += 1
        out.append(current)
        day += timedelta(days=1)
    return out


def series(accounts_: list[AccountInfo], rows: Iterable[DayRow], by: str, start: date,
           end: date) -> dict[str, list[tuple[date, int, int]]]:
    """Per group and UTC day from ``start`` to ``end``: (day, followers, accounts counted).

    An account counts from its first sampled day on, with its last count carried forward over days
    without a sample (a missing sample is a gap in the data, not a loss of followers).
    """
    hist = histories(rows)
    span = (end - start).days + 1
    counts = {a.id: daily_counts(hist[a.id], start, end) for a in accounts_ if a.id in hist}
    out: dict[str, list[tuple[date, int, int]]] = {}
    for name, members in members_by_group(accounts_, by).items():
        totals, counted = [0] * span, [0] * span
        for account in members:
            for i, value in enumerate(counts.get(account.id, ())):
                if value is not None:
                    totals[i] += value
                    counted[i] += 1
        points = [(start + timedelta(days=i), totals[i], counted[i]) for i in range(span) if counted[i]]
        if points:
            out[name] = points
    return out


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
