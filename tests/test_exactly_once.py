"""Exactly once when publishes are slow, and never on an account that stopped being active: leases
renewed while the work lives, the account checked where the attempt starts, late answers kept with
their links, adapter crashes logged without credentials. Real SQLite/PostgreSQL, real stand-ins."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from adapters.base import Credentials
from adapters.standins import Fault, StandIn, standin_class
from config.settings import get_settings
from scheduler.core import deliveries, publishing
from scheduler.core.credentials import to_ref
from scheduler.core.db import session_scope
from scheduler.core.deliveries import Lease
from scheduler.core.heartbeat import renew
from scheduler.core.models import Account, Attempt, Delivery, utcnow
from scheduler.matrix import accounts
from scheduler.stories import drafts, queueing
from tests.conftest import Env

pytestmark = pytest.mark.usefixtures("db_env")


@pytest.fixture
def telegram() -> Iterator[StandIn]:
    standin = standin_class("telegram")().start()
    yield standin
    standin.stop()


def telegram_delivery(standin: StandIn, text: str = "Budget passes after a night-long session") -> int:
    """One due delivery to a Telegram channel on the stand-in, claimed (queued) as a tick would."""
    now = utcnow()
    with session_scope() as s:
        account = s.scalar(select(Account).where(Account.handle == "@desk")) or accounts.add(
            s, "telegram", "@desk", Credentials(standin.add_account("@desk")), base_url=standin.url)
        story = queueing.queue(s, drafts.Draft(text=text, targets=[f"telegram:{account.handle}"]), now)
        delivery_id = s.scalars(select(Delivery.id).where(Delivery.story_id == story.id)).one()
        assert deliveries.claim_due(s, now + timedelta(seconds=1), 10) == [delivery_id]
    return delivery_id


def reap_now() -> deliveries.Reaped:
    settings = get_settings()
    with session_scope() as s:
        return deliveries.reap(s, utcnow(), queued_timeout=settings.queued_timeout,
                               max_attempts=settings.max_attempts, policy=publishing.policy)


def test_a_create_slower_than_the_lease_is_not_reaped_and_posts_once(db_env: Env, telegram: StandIn) -> None:
    """Issue 9: with the lease set once and never renewed, a create that outlived it was reaped while
    in flight. The heartbeat keeps it: the reaper, running all along, takes nothing."""
    db_env.set(lease_seconds="2")
    delivery_id = telegram_delivery(telegram)
    telegram.inject(Fault(path="sendMessage", delay=6, commit=True))
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(publishing.publish_delivery(delivery_id)))
    worker.start()
    reaped = deliveries.Reaped()
    while worker.is_alive():
        r = reap_now()
        reaped.retried += r.retried
        reaped.unknown += r.unknown
        reaped.failed += r.failed
        worker.join(0.2)
    assert outcome == ["published"]
    assert (reaped.retried, reaped.unknown, reaped.failed) == (0, 0, 0)
    assert len(telegram.posts()) == 1
    with session_scope() as s:
        row = s.get(Delivery, delivery_id)
        attempts = s.scalars(select(Attempt).where(Attempt.delivery_id == delivery_id)).all()
        assert (row.state, row.attempts) == ("published", 1)
        assert [(a.outcome, a.remote_id, a.url) for a in attempts] == [
            ("published", row.remote_id, row.published_url)]


def test_the_heartbeat_renews_only_a_lease_still_held() -> None:
    now = utcnow()
    with session_scope() as s:
        account = accounts.add(s, "mastodon", "hb", Credentials({"access_token": "t" * 20}),
                               base_url="http://127.0.0.1:9")
        story = queueing.queue(s, drafts.Draft(text="heartbeat", targets=["mastodon:hb"]), now)
        delivery_id = s.scalars(select(Delivery.id).where(Delivery.story_id == story.id)).one()
        deliveries.claim_due(s, now + timedelta(seconds=1), 10)
        lease = deliveries.start(s, delivery_id, now, 1)
    assert lease is not None and account.id
    assert renew([lease], 600) == 1
    with session_scope() as s:
        assert s.get(Delivery, delivery_id).lease_until > utcnow() + timedelta(seconds=500)
    # An older attempt number is another attempt's lease: never revived.
    assert renew([Lease(delivery_id, lease.attempt + 1)], 600) == 0
    with session_scope() as s:
        deliveries.fail(s, lease, utcnow(), "refused")
    assert renew([lease], 600) == 0
    with session_scope() as s:
        assert s.get(Delivery, delivery_id).lease_until is None


def test_a_progress_save_renews_the_lease(db_env: Env, telegram: StandIn) -> None:
    db_env.set(lease_seconds="300")
    delivery_id = telegram_delivery(telegram)
    now = utcnow()
    with session_scope() as s:
        lease = deliveries.start(s, delivery_id, now, 1)
    assert lease is not None
    publishing._saver(lease)({"media": ["m1"]})
    with session_scope() as s:
        assert s.get(Delivery, delivery_id).lease_until > now + timedelta(seconds=200)


@pytest.mark.parametrize(("status", "expected"), [("paused", "scheduled"), ("auth_broken", "blocked_auth")])
def test_an_account_stopped_after_the_claim_is_not_published_to(telegram: StandIn, status: str,
                                                               expected: str) -> None:
    delivery_id = telegram_delivery(telegram)
    with session_scope() as s:
        account = s.scalars(select(Account)).one()
        account.status = status
    assert publishing.publish_delivery(delivery_id) == expected
    assert telegram.posts() == []
    with session_scope() as s:
        row = s.get(Delivery, delivery_id)
        assert (row.state, row.attempts) == (expected, 0)
    if status == "auth_broken":
        with session_scope() as s:
            account = s.scalars(select(Account)).one()
            account.status = "active"
            assert deliveries.unblock_account(s, account.id, utcnow()) == 1


def test_start_checks_the_account_in_the_same_statement(telegram: StandIn) -> None:
    delivery_id = telegram_delivery(telegram)
    with session_scope() as s:
        s.scalars(select(Account)).one().status = "paused"
    with session_scope() as s:
        assert deliveries.start(s, delivery_id, utcnow(), 60) is None
        assert deliveries.hold_for_account(s, delivery_id, utcnow()) == "scheduled"


def _leased(standin: StandIn, text: str) -> tuple[int, Lease]:
    delivery_id = telegram_delivery(standin, text)
    with session_scope() as s:
        lease = deliveries.start(s, delivery_id, utcnow(), 60)
    assert lease is not None
    return delivery_id, lease


def test_a_late_success_after_failed_publishes_the_delivery(telegram: StandIn) -> None:
    delivery_id, lease = _leased(telegram, "late after failed")
    with session_scope() as s:
        deliveries._finish(s, lease, utcnow(), "failed", reason="lease expired; attempts used up",
                           outcome="lease_expired")
    with session_scope() as s:
        assert deliveries.published(s, lease, utcnow(), remote_id="@desk:7", url="https://t.me/desk/7")
    with session_scope() as s:
        row = s.get(Delivery, delivery_id)
        assert (row.state, row.published_url) == ("published", "https://t.me/desk/7")
        assert deliveries.possible_duplicates(s, [delivery_id]) == {}


def test_a_late_success_after_a_cancel_or_a_newer_attempt_is_a_possible_duplicate(
        db_env: Env, telegram: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    cancelled, lease_c = _leased(telegram, "late after cancel")
    republished, lease_r = _leased(telegram, "late after a newer attempt")
    now = utcnow()
    with session_scope() as s:
        deliveries.retry_later(s, lease_c, now, due_at=now + timedelta(hours=1), reason="x",
                               outcome="transient", spend=True, max_attempts=5)
        deliveries.cancel(s, cancelled, now)
        deliveries.unknown(s, lease_r, now, "gateway error")
        deliveries.resolve_republish(s, republished, now)
        assert deliveries.claim_due(s, now + timedelta(seconds=1), 10) == [republished]
        newer = deliveries.start(s, republished, now, 60)
        assert newer is not None and newer.attempt == lease_r.attempt + 1
    with session_scope() as s:
        assert not deliveries.published(s, lease_c, utcnow(), remote_id="@desk:8", url="https://t.me/desk/8")
        assert not deliveries.published(s, lease_r, utcnow(), remote_id="@desk:9", url="https://t.me/desk/9")
    with session_scope() as s:
        assert s.get(Delivery, cancelled).state == "cancelled"
        assert s.get(Delivery, republished).state == "publishing"
        found = deliveries.possible_duplicates(s, [cancelled, republished])
    assert [(d["attempt"], d["url"]) for d in found[cancelled]] == [(lease_c.attempt, "https://t.me/desk/8")]
    assert [(d["attempt"], d["url"]) for d in found[republished]] == [(lease_r.attempt, "https://t.me/desk/9")]
    # Operators see them where they look: deliveries show, list, export.
    shown = json.loads(db_env.cli("deliveries", "show", str(cancelled), "--json").stdout)[0]
    assert [d["url"] for d in shown["possible_duplicates"]] == ["https://t.me/desk/8"]
    assert [a["url"] for a in shown["attempt_list"]] == ["https://t.me/desk/8"]
    # The republished one is publishing: its attempt in flight shows, though its row comes with its outcome.
    shown = json.loads(db_env.cli("deliveries", "show", str(republished), "--json").stdout)[0]
    assert [(a["number"], a["outcome"]) for a in shown["attempt_list"]][-2:] == [
        (lease_r.attempt, "late_success"), (newer.attempt, "in_flight")]
    monkeypatch.setenv("COLUMNS", "400")  # one table row per line
    table = db_env.cli("deliveries", "list").stdout
    assert "possible duplicate: https://t.me/desk/9" in table
    exported = db_env.cli("deliveries", "export", "--format", "jsonl").stdout.splitlines()
    by_id = {row["id"]: row for row in map(json.loads, exported)}
    assert by_id[republished]["possible_duplicates"][0]["remote_id"] == "@desk:9"


def test_an_adapter_crash_is_logged_without_credentials(telegram: StandIn, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    from adapters.telegram import TelegramAdapter

    delivery_id = telegram_delivery(telegram)
    with session_scope() as s:
        token = to_ref(s.scalars(select(Account)).one()).credentials.get("bot_token")
    assert token

    def crash(self: TelegramAdapter, account: object, *args: object, **kwargs: object) -> None:
        secret = token  # a local in the frame, as a real bug's would be
        raise RuntimeError(f"unexpected answer for bot{secret}")

    # A crash inside the adapter is the platform-side fault here: nothing of ours is replaced.
    monkeypatch.setattr(TelegramAdapter, "publish", crash)
    with caplog.at_level(logging.INFO, logger="crosspost"):
        outcome = publishing.publish_delivery(delivery_id)
    assert outcome in ("retry_wait", "unknown")
    assert "RuntimeError" in caplog.text and "crashed" in caplog.text
    assert token not in caplog.text
    with session_scope() as s:
        assert token not in (s.get(Delivery, delivery_id).last_error or "")


def test_a_failed_delivery_is_logged_at_warning_with_the_platform_reason(
        telegram: StandIn, caplog: pytest.LogCaptureFixture) -> None:
    delivery_id = telegram_delivery(telegram)
    refusal = {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
    telegram.inject(Fault(path="sendMessage", status=400, body=refusal))
    with caplog.at_level(logging.INFO, logger="crosspost"):
        assert publishing.publish_delivery(delivery_id) == "failed"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("failed" in m and "chat not found" in m for m in warnings), warnings


def test_the_claim_looks_one_interval_ahead_and_a_publish_is_never_early(telegram: StandIn) -> None:
    now = utcnow()
    with session_scope() as s:
        account = accounts.add(s, "telegram", "@desk", Credentials(telegram.add_account("@desk")),
                               base_url=telegram.url)
        later = now + timedelta(minutes=30)
        story = queueing.queue(s, drafts.Draft(text="at half past", targets=[f"telegram:{account.handle}"],
                                               at=later), now)
        delivery_id = s.scalars(select(Delivery.id).where(Delivery.story_id == story.id)).one()
        assert deliveries.claim_due_by(s, now, 10, timedelta(minutes=29)) == []
        claimed = deliveries.claim_due_by(s, now, 10, timedelta(minutes=31))
    assert [d for d, _ in claimed] == [delivery_id]
    assert abs(claimed[0][1] - later) < timedelta(milliseconds=1)
    # A worker whose clock is behind the beat's gets it before its time: it puts it back, unposted.
    assert publishing.publish_delivery(delivery_id) == "deferred"
    assert telegram.posts() == []
    with session_scope() as s:
        row = s.get(Delivery, delivery_id)
        assert (row.state, row.attempts, row.due_at) == ("retry_wait", 0, claimed[0][1])
