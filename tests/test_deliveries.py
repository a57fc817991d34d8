"""The delivery state machine: every transition and every illegal one, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from adapters import adapter_class
from adapters.base import FENCE
from config.settings import get_settings
from scheduler.core import deliveries
from scheduler.core.db import session_scope
from scheduler.core.deliveries import IllegalTransition, Lease
from scheduler.core.models import Account, Attempt, Delivery
from scheduler.core.publishing import policy
from tests.factories import make_account, make_delivery

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("db_env")


def state_of(delivery_id: int) -> str:
    with session_scope() as s:
        return s.get(Delivery, delivery_id).state


def new(state: str = "scheduled", platform: str = "mastodon", due: datetime = NOW) -> int:
    with session_scope() as s:
        return make_delivery(s, make_account(s, platform), due, state).id


def reap(now: datetime, max_attempts: int = 5) -> deliveries.Reaped:
    with session_scope() as s:
        return deliveries.reap(s, now, queued_timeout=60, max_attempts=max_attempts, policy=policy)


def claim(now: datetime = NOW, limit: int = 100) -> list[int]:
    with session_scope() as s:
        return deliveries.claim_due(s, now, limit)


def start(delivery_id: int, now: datetime = NOW) -> Lease | None:
    with session_scope() as s:
        return deliveries.start(s, delivery_id, now, 60, "celery-1")


def publishing(platform: str = "mastodon") -> tuple[int, Lease]:
    d = new(platform=platform)
    assert claim() == [d]
    lease = start(d)
    assert lease is not None
    return d, lease


def test_claim_takes_due_scheduled_and_retry_wait_only() -> None:
    due = new()
    retry = new("retry_wait")
    future = new(due=NOW + timedelta(minutes=1))
    others = [new(state) for state in ("awaiting_approval", "published", "failed", "unknown", "cancelled",
                                       "blocked_auth", "publishing", "queued")]
    assert sorted(claim()) == sorted([due, retry])
    assert state_of(due) == state_of(retry) == "queued"
    assert state_of(future) == "scheduled"
    assert claim() == []  # a second tick finds nothing: no double send
    for d in others:
        assert state_of(d) != "queued" or d == others[-1]


def test_claim_skips_paused_and_broken_accounts() -> None:
    with session_scope() as s:
        paused = make_account(s)
        paused.status = "paused"
        broken = make_account(s)
        broken.status = "auth_broken"
        ids = [make_delivery(s, a, NOW).id for a in (paused, broken)]
    assert claim() == []
    with session_scope() as s:
        s.get(Account, paused.id).status = "active"
    assert claim() == [ids[0]]


def test_claim_respects_limit_and_due_order() -> None:
    late = new(due=NOW - timedelta(seconds=1))
    early = new(due=NOW - timedelta(seconds=10))
    assert claim(limit=1) == [early]
    assert claim(limit=1) == [late]


def test_start_sets_lease_attempt_and_first_attempt_time() -> None:
    d, lease = publishing()
    assert (lease.delivery_id, lease.attempt) == (d, 1)
    with session_scope() as s:
        row = s.get(Delivery, d)
        assert row.state == "publishing"
        assert row.lease_until == NOW + timedelta(seconds=60)
        assert row.first_attempt_at == NOW
        # The attempt's row comes with its outcome (one statement fewer on the hot path).
        assert s.scalar(select(Attempt).where(Attempt.delivery_id == d)) is None
    with session_scope() as s:
        assert deliveries.published(s, lease, NOW + timedelta(seconds=2), remote_id="r1", url=None)
    with session_scope() as s:
        attempt = s.scalar(select(Attempt).where(Attempt.delivery_id == d))
        assert (attempt.number, attempt.celery_id, attempt.started_at, attempt.ended_at, attempt.outcome) == (
            1, "celery-1", NOW, NOW + timedelta(seconds=2), "published")


@pytest.mark.parametrize("state", [s for s in deliveries.STATES if s != "queued"])
def test_start_refuses_every_state_but_queued(state: str) -> None:
    d = new(state)
    assert start(d) is None
    assert state_of(d) == state


def test_published_records_result_and_closes_attempt() -> None:
    d, lease = publishing()
    with session_scope() as s:
        assert deliveries.published(s, lease, NOW, remote_id="r1", url="https://x/1", http_status=200)
    with session_scope() as s:
        row = s.get(Delivery, d)
        assert (row.state, row.remote_id, row.published_url, row.lease_until) == (
            "published", "r1", "https://x/1", None)
        attempt = s.scalar(select(Attempt).where(Attempt.delivery_id == d))
        assert (attempt.outcome, attempt.http_status) == ("published", 200)


def test_finish_with_a_stale_lease_changes_nothing() -> None:
    d, lease = publishing()
    stale = Lease(d, lease.attempt - 1)
    with session_scope() as s:
        assert not deliveries.fail(s, stale, NOW, "late")
        assert deliveries.retry_later(s, stale, NOW, due_at=NOW, reason="x", outcome="transient", spend=True,
                                      max_attempts=5) is None
    assert state_of(d) == "publishing"


def test_retry_spends_budget_then_fails() -> None:
    d = new()
    for n in range(1, 4):
        assert claim(NOW + timedelta(minutes=n)) == [d]
        lease = start(d)
        with session_scope() as s:
            state = deliveries.retry_later(s, lease, NOW, due_at=NOW, reason="503", outcome="transient",
                                           spend=True, max_attempts=3)
        assert state == ("failed" if n == 3 else "retry_wait")
    with session_scope() as s:
        row = s.get(Delivery, d)
        assert (row.failures, row.attempts, row.state) == (3, 3, "failed")


def test_rate_limit_wait_costs_no_attempt() -> None:
    d, lease = publishing()
    with session_scope() as s:
        state = deliveries.retry_later(s, lease, NOW, due_at=NOW + timedelta(seconds=30), reason="429",
                                       outcome="rate_limited", spend=False, max_attempts=1)
    assert state == "retry_wait"
    with session_scope() as s:
        row = s.get(Delivery, d)
        assert (row.failures, row.due_at) == (0, NOW + timedelta(seconds=30))
    assert claim(NOW) == []
    assert claim(NOW + timedelta(seconds=30)) == [d]


def test_rejected_fails_and_auth_blocks_the_account() -> None:
    d1, lease1 = publishing()
    d2, lease2 = publishing()
    with session_scope() as s:
        assert deliveries.fail(s, lease1, NOW, "too long", 422)
        account_id = s.get(Delivery, d2).account_id
        assert deliveries.block_auth(s, lease2, account_id, NOW, "token revoked", 401)
    assert state_of(d1) == "failed"
    assert state_of(d2) == "blocked_auth"
    with session_scope() as s:
        assert s.get(Account, account_id).status == "auth_broken"
        assert deliveries.unblock_account(s, account_id, NOW) == 1
    assert state_of(d2) == "scheduled"


def test_reaper_returns_lost_queue_messages() -> None:
    d = new()
    claim()
    assert reap(NOW + timedelta(seconds=30)).requeued == 0
    assert reap(NOW + timedelta(seconds=61)).requeued == 1
    assert state_of(d) == "scheduled"
    assert claim(NOW + timedelta(seconds=61)) == [d]


def test_reaper_retries_idempotent_platforms_with_same_key() -> None:
    d, _ = publishing("bluesky")
    with session_scope() as s:
        key = s.get(Delivery, d).key
    assert reap(NOW + timedelta(seconds=30)).retried == 0  # lease still live
    assert reap(NOW + timedelta(seconds=61)).retried == 1
    with session_scope() as s:
        row = s.get(Delivery, d)
        assert (row.state, row.key, row.failures) == ("retry_wait", key, 1)
        attempt = s.scalar(select(Attempt).where(Attempt.delivery_id == d))
        assert attempt.outcome == "lease_expired"


def fence(delivery_id: int, at: datetime) -> None:
    with session_scope() as s:
        s.get(Delivery, delivery_id).remote_state = {FENCE: {"step": "post", "at": at.isoformat()}}


def test_reaper_marks_a_fenced_non_idempotent_create_unknown() -> None:
    d, _ = publishing("telegram")
    fence(d, NOW)
    assert reap(NOW + timedelta(seconds=61)).unknown == 1
    assert state_of(d) == "unknown"
    assert claim(NOW + timedelta(hours=1)) == []  # never retried silently


def test_reaper_retries_a_non_idempotent_attempt_that_died_before_its_fence() -> None:
    d, _ = publishing("telegram")
    assert reap(NOW + timedelta(seconds=61)).retried == 1
    assert state_of(d) == "retry_wait"


def test_reaper_looks_a_fenced_create_up_only_after_it_could_have_landed() -> None:
    d, _ = publishing("facebook")
    # The request was sent just before the lease ran out: it may land up to the HTTP timeout later.
    fence(d, NOW + timedelta(seconds=59))
    assert reap(NOW + timedelta(seconds=61)).retried == 1
    caps = adapter_class("facebook").caps
    landed = NOW + timedelta(seconds=59 + get_settings().http_timeout) + caps.visible_after
    with session_scope() as s:
        row = s.get(Delivery, d)
        assert (row.state, row.due_at) == ("retry_wait", landed)
    assert claim(landed - timedelta(seconds=1)) == []
    assert claim(landed) == [d]


def test_reaper_fails_when_lost_leases_use_the_budget() -> None:
    d, _ = publishing("bluesky")
    assert reap(NOW + timedelta(seconds=61), max_attempts=1).failed == 1
    assert state_of(d) == "failed"


def test_late_success_after_reap_is_recorded() -> None:
    d, lease = publishing("bluesky")
    reap(NOW + timedelta(seconds=61))
    with session_scope() as s:
        assert deliveries.published(s, lease, NOW, remote_id="at://x", url=None)
    assert state_of(d) == "published"


@pytest.mark.parametrize("state", deliveries.STATES)
@pytest.mark.parametrize("action", ["cancel", "retry", "resolve_published", "resolve_republish"])
def test_operator_actions_allowed_only_from_their_states(state: str, action: str) -> None:
    allowed = {"cancel": deliveries.CANCELLABLE, "retry": ("failed",), "resolve_published": ("unknown",),
               "resolve_republish": ("unknown",)}[action]
    expected = {"cancel": "cancelled", "retry": "scheduled", "resolve_published": "published",
                "resolve_republish": "scheduled"}[action]
    d = new(state)
    call = {
        "cancel": lambda s: deliveries.cancel(s, d, NOW),
        "retry": lambda s: deliveries.retry_failed(s, d, NOW),
        "resolve_published": lambda s: deliveries.resolve_published(s, d, NOW, "https://x/1"),
        "resolve_republish": lambda s: deliveries.resolve_republish(s, d, NOW),
    }[action]
    if state in allowed:
        with session_scope() as s:
            call(s)
        assert state_of(d) == expected
        assert expected in deliveries.TRANSITIONS[state]
    else:
        with pytest.raises(IllegalTransition, match=f"delivery {d} is {state}"), session_scope() as s:
            call(s)
        assert state_of(d) == state


def test_operator_action_on_missing_delivery() -> None:
    with pytest.raises(IllegalTransition, match="does not exist"), session_scope() as s:
        deliveries.cancel(s, 999999, NOW)


def test_concurrent_claims_never_share_a_delivery() -> None:
    ids = {new() for _ in range(40)}
    results: list[list[int]] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        got: list[int] = []
        for _ in range(20):
            got += claim(limit=3)
        results.append(got)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [d for r in results for d in r]
    assert sorted(claimed) == sorted(ids)  # every one claimed exactly once


def test_backoff_grows_and_is_capped() -> None:
    assert deliveries.backoff(1, 30, 3600, rng=lambda: 0.0) == 15
    assert deliveries.backoff(1, 30, 3600, rng=lambda: 1.0) == 30
    assert deliveries.backoff(3, 30, 3600, rng=lambda: 1.0) == 120
    assert deliveries.backoff(30, 30, 3600, rng=lambda: 1.0) == 3600


def test_defer_returns_a_queued_delivery_without_an_attempt() -> None:
    d = new()
    claim()
    with session_scope() as s:
        assert deliveries.defer(s, d, NOW, NOW + timedelta(seconds=5), "gate closed")
        assert not deliveries.defer(s, d, NOW, NOW, "again")  # no longer queued
        row = s.get(Delivery, d)
        assert (row.state, row.due_at, row.attempts) == ("retry_wait", NOW + timedelta(seconds=5), 0)
    assert "retry_wait" in deliveries.TRANSITIONS["queued"]
