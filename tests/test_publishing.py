"""One attempt's bookkeeping: progress saved under the lease, late answers after the reaper."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.base import FENCE
from scheduler.core import deliveries
from scheduler.core.db import session_scope
from scheduler.core.models import Delivery, utcnow
from scheduler.core.publishing import LeaseLost, _saver, policy
from tests.factories import make_account, make_delivery

pytestmark = pytest.mark.usefixtures("db_env")


def leased(platform: str) -> deliveries.Lease:
    now = utcnow()
    with session_scope() as s:
        d = make_delivery(s, make_account(s, platform), now)
        assert deliveries.claim_due(s, now, 10) == [d.id]
        lease = deliveries.start(s, d.id, now, 1)
    assert lease is not None
    return lease


def reap_later() -> None:
    with session_scope() as s:
        deliveries.reap(s, utcnow() + timedelta(hours=1), queued_timeout=60, max_attempts=5,
                        policy=policy)


def test_late_answer_after_unknown_is_saved_and_published() -> None:
    lease = leased("telegram")
    _saver(lease)({FENCE: {"step": "post", "at": utcnow().isoformat()}})  # sendMessage went out
    reap_later()
    save = _saver(lease)
    save({"message": {"chat": "@x", "message_id": 7}})  # no LeaseLost: the answer is the truth
    with session_scope() as s:
        assert s.get(Delivery, lease.delivery_id).remote_state == {"message": {"chat": "@x", "message_id": 7}}
        assert s.get(Delivery, lease.delivery_id).state == "unknown"
        assert deliveries.published(s, lease, utcnow(), remote_id="@x:7", url=None)
    with session_scope() as s:
        assert s.get(Delivery, lease.delivery_id).state == "published"


def test_progress_of_a_reaped_resumable_attempt_is_refused() -> None:
    lease = leased("bluesky")
    reap_later()  # idempotent: back to retry_wait, another attempt will continue
    with pytest.raises(LeaseLost):
        _saver(lease)({"blobs": []})
    with session_scope() as s:
        assert s.get(Delivery, lease.delivery_id).remote_state is None


def test_progress_keeps_only_what_was_saved() -> None:
    from adapters.base import Progress

    def failing(state: dict) -> None:
        raise LeaseLost("gone")

    progress = Progress({"parts": ["a"]}, failing)
    with pytest.raises(LeaseLost):
        progress.save(message={"message_id": 1})
    # A retry must not believe the message was recorded: it was not, so it may not resume from it.
    assert progress.state == {"parts": ["a"]}
