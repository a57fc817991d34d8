"""Follower reports as pure functions over the daily roll-up rows (one per account and UTC day):
totals, growth over 1, 7 and 30 days, falls, and the daily series; tested against hand-computed
data."""


from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

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


