"""Queueing with ``require_approval``: the story and its deliveries wait, and the claim never takes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from scheduler.core import deliveries
from scheduler.core.db import session_scope
from scheduler.core.models import Delivery
from scheduler.stories import drafts, queueing
from tests.factories import make_account

NOW = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("db_env")


@pytest.mark.parametrize("required", [True, False])
def test_require_approval_holds_every_delivery_back_from_the_claim(required: bool) -> None:
    with session_scope() as s:
        labels = [make_account(s).label, make_account(s).label]
        story = queueing.queue(s, drafts.Draft(text="held", targets=labels), NOW, require_approval=required)
        story_id, status = story.id, story.status
    with session_scope() as s:
        states = set(s.scalars(select(Delivery.state).where(Delivery.story_id == story_id)))
        claimed = deliveries.claim_due(s, NOW + timedelta(minutes=1), 10)
    if required:
        assert (status, states, claimed) == ("awaiting_approval", {"awaiting_approval"}, [])
    else:
        assert (status, states, len(claimed)) == ("approved", {"scheduled"}, 2)
