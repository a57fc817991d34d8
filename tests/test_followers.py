"""Follower counts over time: the jittered schedule, sampling against the stand-ins (on SQLite and
PostgreSQL), the daily roll-up, report figures against hand-computed data, the CLI, the query plans,
and sampling on schedule through real worker processes."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from adapters.base import Credentials
from adapters.standins import Fault, StandIn, standin_class
from scheduler.core import ratelimit
from scheduler.core.db import session_scope
from scheduler.core.models import Account, FollowerDaily, FollowerSample, RateGate, utcnow
from scheduler.followers import queries, reports, sampling, schedule
from scheduler.followers.reports import AccountInfo, DayRow
from scheduler.followers.schedule import Schedule
from scheduler.matrix import accounts
from tests.conftest import REDIS_URL, Env, wait_for

PLATFORMS = ("mastodon", "bluesky", "telegram")


# -- the schedule (pure) ---------------------------------------------------------------------------
def test_500_accounts_are_spread_over_the_hour_never_two_in_one_second() -> None:
    offsets = sorted(schedule.offset(i, 3600) for i in range(1, 501))
    assert all(0 <= o < 3600 for o in offsets)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert min(gaps) > 2.0  # even with ticks a second apart, no two accounts start together
    assert len({int(o) for o in offsets}) == 500


def test_slot_start_is_the_last_offset_instant_at_or_before_now() -> None:
    off = schedule.offset(7, 3600)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    start = schedule.slot_start(7, now, 3600)
    assert timedelta(0) <= now - start < timedelta(hours=1)
    assert round(start.timestamp() % 3600, 3) == round(off, 3)
    assert schedule.slot_start(7, start, 3600) == start


SCHED = Schedule(interval=3600, period=1, grace=120, retry_gap=900, claim_ttl=120)


@pytest.mark.parametrize(("after_slot", "last_try", "last_ok", "due"), [
    (5, None, None, True),  # never sampled, slot just began
    (600, None, None, False),  # never sampled, slot long gone: wait for the next (no herd after an outage)
    (5, -3000, -3000, True),  # sampled in the previous slot
    (5, 2, 2, False),  # already sampled in this slot
    (1000, 2, None, True),  # this slot's try failed 998 s ago (> retry gap): try again
    (600, 2, -3000, False),  # failed 598 s ago: not yet
    (1000, 2, 1, False),  # failed after a success in this slot: the slot has its sample
])
def test_is_due(after_slot: float, last_try: float | None, last_ok: float | None, due: bool) -> None:
    start = schedule.slot_start(42, datetime(2026, 3, 1, 12, tzinfo=UTC), 3600)
    now = start + timedelta(seconds=after_slot)

    def at(x: float | None) -> datetime | None:
        return None if x is None else start + timedelta(seconds=x)

    assert schedule.is_due(42, now, SCHED, at(last_try), at(last_ok)) is due


# -- report figures against hand-computed data (pure) ----------------------------------------------
NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
INFOS = [
    AccountInfo(1, "mastodon:a", "mastodon", ("en", "news"), "active"),
    AccountInfo(2, "bluesky:b", "bluesky", ("en",), "active"),
    AccountInfo(3, "telegram:@c", "telegram", (), "active"),
    AccountInfo(4, "mastodon:d", "mastodon", ("news",), "paused"),  # never sampled
    AccountInfo(5, "telegram:@e", "telegram", ("es",), "active"),  # last sample yesterday
]


def _row(account: int, day: str, first: int, last: int, at: str = "10:00") -> DayRow:
    d = date.fromisoformat(day)
    taken = datetime.combine(d, time.fromisoformat(at), UTC)
    return DayRow(account, d, first, last, min(first, last), max(first, last), taken, 2)


ROWS = [
    _row(1, "2026-02-20", 900, 1000), _row(1, "2026-03-10", 1100, 1150), _row(1, "2026-03-23", 1190, 1200),
    _row(1, "2026-03-29", 1240, 1250), _row(1, "2026-03-31", 1255, 1260, "11:30"),
    _row(2, "2026-03-01", 500, 520), _row(2, "2026-03-30", 480, 470),
    _row(2, "2026-03-31", 465, 450, "11:45"),
    _row(3, "2026-03-28", 2000, 2100), _row(3, "2026-03-31", 2150, 2200, "11:50"),
    _row(5, "2026-03-30", 300, 310, "09:00"),
]


def _changes(group: reports.GroupFigures) -> dict[str, tuple[int, float | None]]:
    return {k: (c.absolute, None if c.percent is None else round(c.percent, 2))
            for k, c in group.changes.items()}


def test_report_figures_by_platform_match_hand_computed() -> None:
    # References (the last count before the UTC day began; an account first sampled later: its first):
    #   1d = 03-30: a 1250, b 520 (03-01 carried), c 2100, e 300 (first)  -> 4170
    #   7d = 03-24: a 1200, b 520, c 2000 (first), e 300                  -> 4020
    #  30d = 03-01: a 1000 (02-20), b 500 (first), c 2000, e 300          -> 3800
    # Newest: a 1260 + b 450 + c 2200 + e 310 = 4220.
    report = reports.summarise(INFOS, ROWS, NOW, "platform", stale_after=timedelta(hours=2))
    total = report.total
    assert (total.accounts, total.sampled, total.followers) == (5, 4, 4220)
    assert _changes(total) == {"1d": (50, 1.2), "7d": (200, 4.98), "30d": (420, 11.05)}
    assert [c.since for c in total.changes.values()] == [date(2026, 3, 30), date(2026, 3, 24),
                                                         date(2026, 3, 1)]
    groups = {g.name: g for g in report.groups}
    assert list(groups) == ["bluesky", "mastodon", "telegram"]
    assert (groups["bluesky"].followers, _changes(groups["bluesky"])) == (
        450, {"1d": (-70, -13.46), "7d": (-70, -13.46), "30d": (-50, -10.0)})
    mastodon = groups["mastodon"]
    assert (mastodon.accounts, mastodon.sampled, mastodon.followers) == (2, 1, 1260)
    assert _changes(groups["mastodon"]) == {"1d": (10, 0.8), "7d": (60, 5.0), "30d": (260, 26.0)}
    assert (groups["telegram"].followers, _changes(groups["telegram"])) == (
        2510, {"1d": (110, 4.58), "7d": (210, 9.13), "30d": (210, 9.13)})
    assert [f.account for f in report.fell] == ["bluesky:b"]
    assert [(s.account, s.status, s.last_sample) for s in report.stale] == [
        ("mastodon:d", "paused", None), ("telegram:@e", "active", datetime(2026, 3, 30, 9, tzinfo=UTC))]


def test_report_by_tag_counts_an_account_in_each_of_its_tags_and_since() -> None:
    report = reports.summarise(INFOS, ROWS, NOW, "tag", since=date(2026, 3, 15))
    groups = {g.name: g for g in report.groups}
    assert list(groups) == ["(untagged)", "en", "es", "news"]
    # en = a + b: newest 1710; 1d refs 1250 + 520; 7d 1200 + 520; 30d 1000 + 500; since 03-15: 1150 + 520
    assert groups["en"].followers == 1710
    assert _changes(groups["en"]) == {"1d": (-60, -3.39), "7d": (-10, -0.58), "30d": (210, 14.0),
                                      "since": (40, 2.4)}
    assert (groups["news"].accounts, groups["news"].followers) == (2, 1260)
    assert (groups["(untagged)"].followers, groups["es"].followers) == (2200, 310)
    # The matrix counts every account once however many tags it has: since 03-15 the references are
    # a 1150, b 520, c 2000 (first), e 300 (first) -> 3970.
    assert report.total.followers == 4220
    assert _changes(report.total)["since"] == (250, 6.3)


def test_series_carries_counts_forward_and_starts_each_account_at_its_first_sample() -> None:
    daily = reports.series(INFOS, ROWS, "platform", date(2026, 3, 28), date(2026, 3, 31))
    assert daily["mastodon"] == [(date(2026, 3, 28), 1200, 1), (date(2026, 3, 29), 1250, 1),
                                 (date(2026, 3, 30), 1250, 1), (date(2026, 3, 31), 1260, 1)]
    assert daily["telegram"] == [(date(2026, 3, 28), 2100, 1), (date(2026, 3, 29), 2100, 1),
                                 (date(2026, 3, 30), 2410, 2), (date(2026, 3, 31), 2510, 2)]
    assert [v for _, v, _ in daily["bluesky"]] == [520, 520, 470, 450]


def test_reference_of_an_account_without_samples_is_none_and_zero_base_has_no_percent() -> None:
    assert reports.reference([], date(2026, 3, 1)) is None
    zero = [AccountInfo(9, "mastodon:z", "mastodon", (), "active")]
    report = reports.summarise(zero, [_row(9, "2026-03-31", 0, 5)], NOW, "platform")
    assert report.total.changes["1d"].absolute == 5
    assert report.total.changes["1d"].percent is None


def test_chart_axis_spans_the_data() -> None:
    from scheduler.followers.charts import span

    day = date(2026, 11, 1)
    series = {"en": [(day + timedelta(days=i), 10 + i) for i in range(3, 20)],
              "zh": [(day + timedelta(days=i), 5) for i in range(7, 25)]}
    assert span(series) == (day + timedelta(days=3), day + timedelta(days=24))
    assert span({"one": [(day, 1)]}) == (day - timedelta(days=1), day + timedelta(days=1))


def test_chart_draws_the_ten_largest_groups_and_refuses_other_formats(tmp_path: Path) -> None:
    from scheduler.followers.charts import render

    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(40)]
    groups = {f"g{n}": [(d, n * 100 + i) for i, d in enumerate(days)] for n in range(12)}
    assert render(groups, tmp_path / "c.svg", "Followers by tag") == 10
    assert b"<svg" in (tmp_path / "c.svg").read_bytes()[:500]
    assert render({"one": [(days[0], 5)]}, tmp_path / "one.png", "A single day") == 1
    with pytest.raises(ValueError, match=r"chart: c\.jpg must end with \.png or \.svg"):
        render(groups, tmp_path / "c.jpg", "x")


# -- sampling against the stand-ins, on SQLite and PostgreSQL --------------------------------------
@pytest.fixture
def standins() -> Iterator[dict[str, StandIn]]:
    started = {p: standin_class(p)().start() for p in PLATFORMS}
    yield started
    for standin in started.values():
        standin.stop()


def add(standin: StandIn, platform: str, handle: str, followers_: int, tags: list[str] | None = None) -> int:
    handle = f"@{handle}" if platform == "telegram" else handle
    creds = Credentials(standin.add_account(handle, followers=followers_))
    with session_scope() as s:
        return accounts.add(s, platform, handle, creds, base_url=standin.url, tags=tags).id


def set_followers(standin: StandIn, platform: str, handle: str, n: int) -> None:
    standin.add_account(f"@{handle}" if platform == "telegram" else handle, followers=n)


def samples(account_id: int) -> list[FollowerSample]:
    with session_scope() as s:
        return list(s.scalars(select(FollowerSample).where(FollowerSample.account_id == account_id)
                              .order_by(FollowerSample.taken_at)))


def daily(account_id: int) -> list[FollowerDaily]:
    with session_scope() as s:
        return list(s.scalars(select(FollowerDaily).where(FollowerDaily.account_id == account_id)
                              .order_by(FollowerDaily.day)))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_sample_writes_the_sample_and_the_daily_rollup(db_env: Env, standins: dict[str, StandIn],
                                                       platform: str) -> None:
    standin = standins[platform]
    account = add(standin, platform, "desk", 120)
    day = utcnow().date() - timedelta(days=2)
    times = [datetime.combine(day, time(h), UTC) for h in (8, 9, 10)]
    for at, n in zip(times, (120, 95, 130), strict=True):
        set_followers(standin, platform, "desk", n)
        assert sampling.sample_account(account, at) == sampling.Sampled(account, "sampled", followers=n)
    # A late sample (taken before the newest one) moves min/max but not the day's last count.
    set_followers(standin, platform, "desk", 90)
    sampling.sample_account(account, datetime.combine(day, time(9, 30), UTC))
    [row] = daily(account)
    assert (row.day, row.first_followers, row.last_followers, row.min_followers, row.max_followers,
            row.samples, row.last_taken_at) == (day, 120, 130, 90, 130, 4, times[-1])
    assert [s.followers for s in samples(account)] == [120, 95, 90, 130]
    sampling.sample_account(account)  # today: a second row
    assert [r.day for r in daily(account)] == [day, utcnow().date()]


def test_failed_tries_are_stored_with_their_reason_and_leave_the_rollup(
        db_env: Env, standins: dict[str, StandIn]) -> None:
    standin = standins["telegram"]
    account = add(standin, "telegram", "chan", 50)
    assert sampling.sample_account(account).outcome == "sampled"
    standin.inject(Fault(status=502))
    failed = sampling.sample_account(account)
    assert failed.outcome == "failed"
    assert failed.error is not None and failed.error.startswith("transient: telegram")
    last = samples(account)[-1]
    assert (last.followers, last.error) == (None, failed.error)
    [row] = daily(account)
    assert (row.samples, row.last_followers) == (1, 50)
    token = standin.add_account("@chan", followers=50)["bot_token"]
    assert all(token not in (s.error or "") for s in samples(account))


def test_rate_limited_sample_closes_the_gate_and_the_next_try_makes_no_request(
        db_env: Env, standins: dict[str, StandIn]) -> None:
    standin = standins["mastodon"]
    account = add(standin, "mastodon", "busy", 10)
    standin.inject(Fault(status=429, retry_after=120))
    result = sampling.sample_account(account)
    assert result.outcome == "failed"
    assert result.error is not None and result.error.startswith("rate limited for 120 s")
    seen = len(standin.requests)
    deferred = sampling.sample_account(account)
    assert deferred.outcome == "deferred"
    assert deferred.until is not None and deferred.until > utcnow() + timedelta(seconds=100)
    assert len(standin.requests) == seen
    assert standin.early_requests == 0
    with session_scope() as s:
        assert account not in schedule.due_for_sampling(s, utcnow(), schedule.current())
    assert [s.followers for s in samples(account)] == [None]


def test_expired_session_is_refreshed_once_then_sampled(db_env: Env, standins: dict[str, StandIn]) -> None:
    bluesky = standins["bluesky"]
    account = add(bluesky, "bluesky", "desk.test", 77)
    bluesky.expire_access_tokens()  # type: ignore[attr-defined]
    assert sampling.sample_account(account) == sampling.Sampled(account, "sampled", followers=77)
    with session_scope() as s:
        row = s.get(Account, account)
        assert row is not None
        assert (row.credentials_version, row.status) == (2, "active")


def test_refused_credentials_are_a_failed_try_and_the_account_keeps_publishing(
        db_env: Env, standins: dict[str, StandIn]) -> None:
    mastodon = standins["mastodon"]
    token = mastodon.add_account("gone", followers=5)["access_token"]
    with session_scope() as s:
        account = accounts.add(s, "mastodon", "gone", Credentials({"access_token": token}),
                               base_url=mastodon.url).id
    mastodon.revoke(token)  # type: ignore[attr-defined]
    result = sampling.sample_account(account)
    assert result.outcome == "failed"
    assert result.error is not None and result.error.startswith("credentials refused: mastodon")
    assert token not in result.error
    with session_scope() as s:
        # Reading followers may need a scope publishing does not: a refused read does not stop publishing.
        assert s.get(Account, account).status == "active"  # type: ignore[union-attr]


def test_concurrent_samples_of_one_account_lose_no_rollup_update(db_env: Env) -> None:
    with session_scope() as s:
        account = accounts.add(s, "mastodon", "many", Credentials({"access_token": "x" * 12}),
                               base_url="http://127.0.0.1:9").id
    day = datetime(2026, 3, 2, tzinfo=UTC)

    def write(worker: int) -> None:
        for i in range(10):
            with session_scope() as s:
                sampling.record(s, account, day + timedelta(minutes=worker * 10 + i), 1000 + worker * 10 + i)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    [row] = daily(account)
    assert (row.samples, row.min_followers, row.max_followers, row.last_followers) == (60, 1000, 1059, 1059)
    assert row.last_taken_at == day + timedelta(minutes=59)


# -- the schedule against the database -----------------------------------------------------------
def test_tick_claims_a_due_account_once_and_the_task_skips_a_sampled_slot(
        db_env: Env, standins: dict[str, StandIn]) -> None:
    standin = standins["mastodon"]
    account = add(standin, "mastodon", "slot", 10)
    sched = schedule.current()
    # Just after the account's next slot begins (a first sample waits for the account's own slot).
    now = schedule.slot_start(account, utcnow(), sched.interval) + timedelta(seconds=sched.interval + 1)
    sent: list[int] = []
    assert schedule.tick(sent.append, now) == [account] == sent
    assert schedule.tick(sent.append, now + timedelta(seconds=1)) == []  # claimed: not sent twice
    assert sampling.sample_account(account, scheduled=True).outcome == "sampled"
    # A duplicate message for the same slot makes no second request.
    seen = len(standin.requests)
    assert sampling.sample_account(account, scheduled=True).outcome == "skipped"
    assert len(standin.requests) == seen
    with session_scope() as s:
        assert s.scalar(select(RateGate.next_at).where(RateGate.scope == schedule.claim_scope(account)))


def test_paused_and_gated_accounts_are_not_due(db_env: Env, standins: dict[str, StandIn]) -> None:
    paused = add(standins["mastodon"], "mastodon", "paused", 1)
    gated = add(standins["telegram"], "telegram", "gated", 1)
    free = add(standins["bluesky"], "bluesky", "free.test", 1)
    with session_scope() as s:
        accounts.set_status(s, s.get(Account, paused), "paused")  # type: ignore[arg-type]
        ratelimit.block(s, ratelimit.app_scope("telegram"), utcnow() + timedelta(minutes=5))
    sched = Schedule(interval=3600, period=1, grace=7200, retry_gap=900, claim_ttl=60)
    with session_scope() as s:
        assert schedule.due_for_sampling(s, utcnow(), sched) == [free]
    assert sampling.sample_account(paused, scheduled=True).outcome == "skipped"
    assert sampling.sample_account(gated).outcome == "deferred"
    assert samples(gated) == []


def test_report_and_schedule_queries_use_the_indexes_on_sqlite(sqlite_env: Env) -> None:
    start = date(2026, 3, 1)
    with session_scope() as s:
        due = queries.plan(s, schedule.due_query())
        window = queries.plan(s, queries.window_query([1, 2, 3], start))
        before = queries.plan(s, queries.before_query([1, 2, 3], start))
    assert "SCAN follower_samples" not in due and "SCAN follower_daily" not in due
    assert "USING COVERING INDEX ix_follower_samples_account_taken (account_id=?)" in due
    assert "SEARCH follower_daily USING INDEX" in window and "SCAN follower_daily" not in window
    assert "(account_id=? AND day>?)" in window
    assert "SCAN follower_daily" not in before and "SCAN accounts" not in before
    assert before.count("(account_id=? AND day<?)") == 3  # day, count, time: one backward probe each


# -- the CLI ---------------------------------------------------------------------------------------
def _at(days_ago: int, hour: int) -> datetime:
    return datetime.combine(utcnow().date() - timedelta(days=days_ago), time(hour), UTC)


def test_cli_report_matches_hand_computed_figures(db_env: Env, standins: dict[str, StandIn],
                                                  tmp_path: Path) -> None:
    mastodon, telegram, bluesky = standins["mastodon"], standins["telegram"], standins["bluesky"]
    m = add(mastodon, "mastodon", "desk", 0, tags=["en"])
    t = add(telegram, "telegram", "chan", 0, tags=["en", "es"])
    b = add(bluesky, "bluesky", "down.test", 0)
    for standin, platform, handle, account, at, n in [
        (mastodon, "mastodon", "desk", m, _at(40, 12), 1000),
        (mastodon, "mastodon", "desk", m, _at(8, 12), 1100),
        (mastodon, "mastodon", "desk", m, _at(2, 12), 1200),
        (mastodon, "mastodon", "desk", m, _at(2, 13), 1190),
        (mastodon, "mastodon", "desk", m, utcnow() - timedelta(minutes=5), 1300),
        (telegram, "telegram", "chan", t, _at(3, 9), 500),
        (telegram, "telegram", "chan", t, utcnow() - timedelta(minutes=4), 450),
    ]:
        set_followers(standin, platform, handle, n)
        assert sampling.sample_account(account, at).outcome == "sampled"
    bluesky.inject(Fault(status=503, path="getProfile"), Fault(status=503, path="getProfile"))
    assert sampling.sample_account(b).outcome == "failed"
    assert sampling.sample_account(b).outcome == "failed"

    done = db_env.cli("followers", "report", "--json", "--by", "tag", "--csv", str(tmp_path / "f.csv"),
                      "--chart", str(tmp_path / "f.png"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # 1d refs: m 1190 (last of 2 days ago), t 500 -> 1690; 7d: m 1100, t 500 (first) -> 1600;
    # 30d: m 1000, t 500 -> 1500. Newest 1300 + 450 = 1750.
    total = report["total"]
    assert (total["accounts"], total["sampled"], total["followers"]) == (3, 2, 1750)
    assert {k: (c["absolute"], c["percent"]) for k, c in total["changes"].items()} == {
        "1d": (60, 3.55), "7d": (150, 9.38), "30d": (250, 16.67)}
    groups = {g["group"]: g for g in report["groups"]}
    assert (groups["en"]["followers"], groups["es"]["followers"], groups["(untagged)"]["followers"]) == (
        1750, 450, 0)
    assert groups["es"]["changes"]["1d"] == {"since": str(utcnow().date() - timedelta(days=1)),
                                             "absolute": -50, "percent": -10.0}
    assert [f["account"] for f in report["fell"]] == ["telegram:@chan"]
    [stale] = report["stale"]
    assert (stale["account"], stale["last_sample"], stale["failed_tries"]) == ("bluesky:down.test", None, 2)
    assert stale["last_error"].startswith("transient: bluesky")
    with open(tmp_path / "f.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    en = [r for r in rows if r["group"] == "en"]
    assert en[-1] == {"day": str(utcnow().date()), "group": "en", "followers": "1750", "accounts": "2"}
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    [rollup] = [r for r in daily(m) if r.day == _at(2, 0).date()]
    assert (rollup.first_followers, rollup.last_followers, rollup.min_followers, rollup.max_followers,
            rollup.samples) == (1200, 1190, 1190, 1200, 2)


def test_cli_sample_and_text_report(sqlite_env: Env, standins: dict[str, StandIn]) -> None:
    account = add(standins["telegram"], "telegram", "news", 321, tags=["en"])
    done = sqlite_env.cli("followers", "sample", "--account", "telegram:@news", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"id": account, "account": "telegram:@news", "outcome": "sampled",
                                        "followers": 321, "error": None, "until": None}]
    standins["telegram"].inject(Fault(status=500))
    failed = sqlite_env.cli("followers", "sample")
    assert failed.returncode == 1
    assert "failed" in failed.stdout
    text = sqlite_env.cli("followers", "report", "--by", "account")
    assert text.returncode == 0, text.stderr
    assert "telegram:@news" in text.stdout and "321" in text.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["report", "--by", "country"], "error: by: 'country' is not one of platform, tag, account"),
    (["report", "--since", "last week"], "error: since: 'last week' is not a date (YYYY-MM-DD)"),
    (["report", "--since", "2999-01-01"], "error: since: 2999-01-01 is after today"),
    (["report", "--chart", "out.jpg"], "error: chart: out.jpg must end with .png or .svg"),
    (["report", "--csv", "/no/such/dir/out.csv"], "error: csv: directory /no/such/dir does not exist"),
    (["sample", "--account", "mastodon:nobody"], "error: account: no account 'mastodon:nobody'"),
])
def test_cli_bad_input_is_one_clear_line_and_changes_nothing(
        sqlite_env: Env, standins: dict[str, StandIn], args: list[str], message: str) -> None:
    add(standins["mastodon"], "mastodon", "desk", 5)
    before = _counts()
    done = sqlite_env.cli("followers", *args)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(message)
    assert _counts() == before


def _counts() -> tuple[int, int, int]:
    with session_scope() as s:
        return (s.scalar(select(func.count()).select_from(FollowerSample)) or 0,
                s.scalar(select(func.count()).select_from(FollowerDaily)) or 0,
                s.scalar(select(func.count()).select_from(RateGate)) or 0)


def test_chart_needs_samples_in_the_period(sqlite_env: Env, tmp_path: Path) -> None:
    done = sqlite_env.cli("followers", "report", "--chart", str(tmp_path / "c.svg"))
    assert done.returncode == 2
    assert "error: chart: no follower samples since" in done.stderr
    assert not (tmp_path / "c.svg").exists()


# -- sampling on schedule through real worker processes -------------------------------------------
class Procs:
    def __init__(self, env: Env, logs: Path) -> None:
        self.env, self.logs = env, logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> None:
        self.running.append(self.env.spawn(*args, log=self.logs / f"{args[0]}.log"))

    def stop(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def tail(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.logs.glob("*.log"))


def _sampled_on_schedule(env: Env, standins: dict[str, StandIn], tmp_path: Path, commands: list[list[str]]) \
        -> None:
    env.set(follower_interval="3")
    ids = {p: add(standins[p], p, f"{p[:4]}live", 100) for p in PLATFORMS}
    standins["telegram"].inject(Fault(status=500, path="getChatMemberCount"))  # the first try fails
    procs = Procs(env, tmp_path)
    for command in commands:
        procs.start(*command)

    def successes(account: int) -> list[FollowerSample]:
        return [s for s in samples(account) if s.followers is not None]

    try:
        wait_for(lambda: all(len(successes(a)) >= 2 for a in ids.values()), 90,
                 what="two samples per account")
        set_followers(standins["mastodon"], "mastodon", "mastlive", 250)
        wait_for(lambda: daily(ids["mastodon"])[-1].last_followers == 250, 60, what="the new count sampled")
    except AssertionError:
        raise AssertionError(procs.tail()) from None
    finally:
        procs.stop()
    telegram = samples(ids["telegram"])
    assert telegram[0].followers is None and telegram[0].error.startswith("transient: telegram")  # type: ignore[union-attr]
    for account in ids.values():
        # Every success is in the roll-up, once.
        assert sum(r.samples for r in daily(account)) == len(successes(account))


@pytest.mark.workers
def test_embedded_worker_samples_on_schedule(sqlite_env: Env, standins: dict[str, StandIn],
                                             tmp_path: Path) -> None:
    _sampled_on_schedule(sqlite_env, standins, tmp_path, [["run"]])


@pytest.mark.workers
def test_redis_postgres_workers_sample_on_schedule(pg_env: Env, redis_url: str, standins: dict[str, StandIn],
                                                   tmp_path: Path) -> None:
    # A Redis database of this test's own, so no other test's worker takes these tasks.
    broker = REDIS_URL.rsplit("/", 1)[0] + "/13"
    redis.Redis.from_url(broker).flushdb()
    pg_env.set(broker_url=broker)
    _sampled_on_schedule(pg_env, standins, tmp_path, [["worker", "--concurrency", "4"], ["beat"]])
