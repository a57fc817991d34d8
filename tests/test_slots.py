"""Posting schedules: cron in the account's zone, across both daylight-saving changes in two zones."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise

import pytest

from scheduler.core.db import session_scope
from scheduler.core.errors import UserError
from scheduler.stories import slots
from tests.conftest import Env
from tests.factories import make_account, make_delivery


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def first(schedule: list[str], tz: str, after: datetime, n: int) -> list[datetime]:
    return list(islice(slots.slots(schedule, tz, after), n))


def test_weekday_slots_in_the_accounts_zone() -> None:
    # Friday 2026-11-27 20:00 UTC = 15:00 in New York; next slots 19:00 Fri, then Mon 08:00.
    got = first(["0 8,12,19 * * 1-5"], "America/New_York", utc(2026, 11, 27, 20), 3)
    assert got == [utc(2026, 11, 28, 0), utc(2026, 11, 30, 13), utc(2026, 11, 30, 17)]


@pytest.mark.parametrize(
    ("tz", "after", "expected"),
    [
        # spring forward: 02:30 does not exist; it is taken at 03:30 local (shifted by the gap)
        ("America/New_York", utc(2026, 3, 7, 12), [utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)]),
        ("Europe/Madrid", utc(2026, 3, 28, 12), [utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]),
    ],
)
def test_nonexistent_slot_moves_forward_by_the_gap(
    tz: str, after: datetime, expected: list[datetime]
) -> None:
    assert first(["30 2 * * *"], tz, after, 2) == expected


@pytest.mark.parametrize(
    ("tz", "expr", "after", "expected"),
    [
        # fall back: 01:30 happens twice in New York; the slot is taken once, at summer time (EDT)
        (
            "America/New_York",
            "30 1 * * *",
            utc(2026, 10, 31, 12),
            [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
        ),
        # and 02:30 twice in Madrid; first occurrence is CEST
        (
            "Europe/Madrid",
            "30 2 * * *",
            utc(2026, 10, 24, 12),
            [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
        ),
    ],
)
def test_ambiguous_slot_is_taken_once(tz: str, expr: str, after: datetime, expected: list[datetime]) -> None:
    assert first([expr], tz, after, 2) == expected


@pytest.mark.parametrize(
    ("tz", "day"),
    [
        ("America/New_York", utc(2026, 3, 8)),
        ("Europe/Madrid", utc(2026, 3, 29)),
        ("America/New_York", utc(2026, 11, 1)),
        ("Europe/Madrid", utc(2026, 10, 25)),
    ],
)
def test_frequent_slots_stay_strictly_increasing_across_changes(tz: str, day: datetime) -> None:
    got = first(["*/15 * * * *"], tz, day, 24 * 4)
    assert all(b > a for a, b in pairwise(got))
    assert len(set(got)) == len(got)


def test_several_expressions_merge_in_order_without_repeats() -> None:
    got = first(["0 9 * * *", "0 9,18 * * *"], "UTC", utc(2026, 1, 1), 3)
    assert got == [utc(2026, 1, 1, 9), utc(2026, 1, 1, 18), utc(2026, 1, 2, 9)]


@pytest.mark.parametrize("bad", ["", "* * * *", "61 * * * *", "0 25 * * *", "* * * * * *", "every day"])
def test_bad_cron_is_refused_with_the_expression(bad: str) -> None:
    with pytest.raises(UserError, match="cron"):
        slots.check_cron(bad)


@pytest.mark.parametrize("never", ["0 9 30 2 *", "0 9 31 4 *", "0 0 31 2,4,6,9,11 *"])
def test_cron_that_never_fires_is_refused(never: str) -> None:
    with pytest.raises(UserError, match=r"cron: .* never fires"):
        slots.check_cron(never)


def test_rare_cron_is_accepted() -> None:
    assert slots.check_cron("0 9 29 2 *") == "0 9 29 2 *"  # leap days come
    assert first(["0 9 29 2 *"], "UTC", utc(2026, 12, 1), 1) == [utc(2028, 2, 29, 9)]


def test_a_stored_schedule_that_never_fires_gives_errors_not_tracebacks(sqlite_env: Env) -> None:
    """A schedule stored before check_cron knew about 30 February: `schedule show` lists nothing for
    it and `--next-slot` says what is wrong, in one line."""
    with session_scope() as s:
        account = make_account(s, "mastodon", "desk", tags=["en"])
        account.schedule = ["0 9 30 2 *"]
        mixed = make_account(s, "mastodon", "mixed", tags=["mixed"])
        mixed.schedule = ["0 9 30 2 *", "0 12 * * *"]
    assert first(["0 9 30 2 *", "0 12 * * *"], "UTC", utc(2026, 12, 1), 2) == [
        utc(2026, 12, 1, 12), utc(2026, 12, 2, 12)]
    shown = sqlite_env.cli("schedule", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert {row["account"] for row in json.loads(shown.stdout)} == {"mastodon:mixed"}
    queued = sqlite_env.cli("stories", "queue", "--text", "hi", "--to", "en", "--next-slot")
    assert queued.returncode != 0 and "Traceback" not in queued.stderr
    assert queued.stderr.strip() == ("error: story not queued: mastodon:desk: schedule: never fires "
                                     "(0 9 30 2 *); set a new one with `crosspost schedule set`")
    assert sqlite_env.cli("stories", "queue", "--text", "hi", "--to", "mixed", "--next-slot").returncode == 0


@pytest.mark.usefixtures("db_env")
def test_next_free_slot_skips_taken_slots_and_honours_the_gap() -> None:
    after = utc(2026, 12, 1, 0)
    with session_scope() as s:
        account = make_account(s)
        account.schedule, account.min_gap_minutes = ["0 * * * *"], 90
        s.flush()
        first_slot = slots.next_free_slot(s, account, after)
        assert first_slot == utc(2026, 12, 1, 1)
        make_delivery(s, account, first_slot)
        # 02:00 is only 60 min after 01:00 (gap 90), so 03:00 is next
        assert slots.next_free_slot(s, account, after) == utc(2026, 12, 1, 3)


@pytest.mark.usefixtures("db_env")
def test_account_without_schedule_is_a_clear_problem() -> None:
    with session_scope() as s, pytest.raises(UserError, match="no posting schedule"):
        slots.next_free_slot(s, make_account(s), utc(2026, 12, 1))


def test_horizon_reached_is_a_clear_problem() -> None:
    assert timedelta(days=365) < slots.HORIZON
