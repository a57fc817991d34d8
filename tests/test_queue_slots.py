"""Queueing to each account's next free slot; cancelling and re-timing; concurrent queueing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import select

from scheduler.core.db import session_scope
from scheduler.core.errors import StoryRejected, UserError
from scheduler.core.models import Delivery, Story
from scheduler.stories import drafts, queueing
from tests.factories import make_account

NOW = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)  # Friday 15:00 in New York
pytestmark = pytest.mark.usefixtures("db_env")


def scheduled_account(tz: str = "America/New_York", gap: int = 60, handle: str | None = None) -> str:
    with session_scope() as s:
        account = make_account(s, handle=handle)
        account.tz, account.schedule, account.min_gap_minutes = tz, ["0 8,12,19 * * 1-5"], gap
        return account.label


def queue(*targets: str, now: datetime = NOW) -> int:
    with session_scope() as s:
        return queueing.queue(
            s, drafts.Draft(text="slot story", targets=list(targets), next_slot=True), now,
            # The same story many times on purpose: these tests are about slots, not duplicates.
            allow_duplicate=True,
        ).id


def slots_of(story_id: int) -> dict[str, datetime]:
    with session_scope() as s:
        return {
            d.account.label: d.slot_at
            for d in s.scalars(select(Delivery).where(Delivery.story_id == story_id))
        }


def test_each_story_takes_the_next_free_slot_in_the_accounts_zone() -> None:
    ny = scheduled_account()
    madrid = scheduled_account("Europe/Madrid")
    first = slots_of(queue(ny, madrid))
    assert first[ny] == datetime(2026, 11, 28, 0, tzinfo=UTC)  # Fri 19:00 EST
    assert first[madrid] == datetime(2026, 11, 30, 7, tzinfo=UTC)  # Mon 08:00 CET
    second = slots_of(queue(ny))
    assert second[ny] == datetime(2026, 11, 30, 13, tzinfo=UTC)  # Mon 08:00 EST


def test_a_next_slot_story_is_described_by_its_deliveries_times() -> None:
    ny = scheduled_account()
    madrid = scheduled_account("Europe/Madrid")
    story = queue(ny, madrid)
    with session_scope() as s:
        row = queueing.describe(s, s.get(Story, story))
    assert row["first_due_at"] == datetime(2026, 11, 28, 0, tzinfo=UTC).isoformat()  # New York's slot
    assert row["last_due_at"] == datetime(2026, 11, 30, 7, tzinfo=UTC).isoformat()  # Madrid's
    assert row["due_at"] == NOW.isoformat()  # the story's own timing: queued from now


def test_due_time_is_the_slot() -> None:
    ny = scheduled_account()
    story = queue(ny)
    with session_scope() as s:
        d = s.scalar(select(Delivery).where(Delivery.story_id == story))
        assert d.due_at == d.slot_at


def test_account_without_schedule_is_a_problem_and_nothing_is_stored() -> None:
    with session_scope() as s:
        plain = make_account(s).label
    ny = scheduled_account()
    with pytest.raises(StoryRejected, match="no posting schedule"):
        queue(ny, plain)
    with session_scope() as s:
        assert s.scalars(select(Delivery)).all() == []


def test_cancel_frees_the_slot_for_the_next_story() -> None:
    ny = scheduled_account()
    first = queue(ny)
    taken = slots_of(first)[ny]
    with session_scope() as s:
        queueing.cancel(s, queueing.find(s, str(first)), NOW)
    assert slots_of(queue(ny))[ny] == taken


def test_retime_moves_waiting_deliveries_but_never_a_publishing_one() -> None:
    ny = scheduled_account()
    madrid = scheduled_account("Europe/Madrid")
    story = queue(ny, madrid)
    with session_scope() as s:
        busy = s.scalar(
            select(Delivery)
            .where(Delivery.story_id == story, Delivery.slot_at.is_not(None))
            .order_by(Delivery.id)
            .limit(1)
        )
        busy.state = "publishing"
        busy_due = busy.due_at
    new_time = NOW + timedelta(days=3)
    with session_scope() as s:
        moved = queueing.retime(s, queueing.find(s, str(story)), NOW, at=new_time)
    assert moved == 1
    with session_scope() as s:
        rows = {d.state: d for d in s.scalars(select(Delivery).where(Delivery.story_id == story))}
        assert rows["publishing"].due_at == busy_due
        assert rows["scheduled"].due_at == new_time and rows["scheduled"].slot_at is None
    with pytest.raises(UserError, match="exactly one"), session_scope() as s:
        queueing.retime(s, queueing.find(s, str(story)), NOW)


def test_concurrent_queueing_never_shares_a_slot_or_breaks_the_gap() -> None:
    ny = scheduled_account(gap=120)
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def operator() -> None:
        barrier.wait()
        try:
            queue(ny)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=operator) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with session_scope() as s:
        taken = sorted(s.scalars(select(Delivery.slot_at)))
    assert len(taken) == len(set(taken)) == 6
    assert all(b - a >= timedelta(minutes=120) for a, b in pairwise(taken))
