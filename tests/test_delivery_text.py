"""One account's own text for a story (issue 12: per-delivery edits): checked as that platform counts
it, only before the first attempt, published instead of the story's, and an approved story waits for
its approver again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from adapters.base import Credentials
from adapters.standins import StandIn, standin_class
from scheduler.core import deliveries, publishing
from scheduler.core.db import session_scope
from scheduler.core.errors import StoryRejected, UserError
from scheduler.core.models import Delivery, utcnow
from scheduler.desk import deliveries as desk
from scheduler.desk.access import Actor
from scheduler.desk.models import ApprovalPolicy
from scheduler.matrix import accounts
from scheduler.stories import drafts, queueing
from tests.conftest import Env
from tests.factories import make_account

pytestmark = pytest.mark.usefixtures("db_env")


@pytest.fixture
def mastodon() -> Iterator[StandIn]:
    standin = standin_class("mastodon")().start()
    yield standin
    standin.stop()


def queue_to(*labels: str) -> dict[str, int]:
    """A story due now to ``labels``; its deliveries by account label."""
    now = utcnow()
    with session_scope() as s:
        draft = drafts.Draft(text="The council passes the budget", targets=list(labels))
        story = queueing.queue(s, draft, now)
        return {d.account.label: d.id for d in story.deliveries}


def test_an_accounts_own_text_is_what_that_account_publishes(mastodon: StandIn) -> None:
    with session_scope() as s:
        for name in ("desk", "city"):
            accounts.add(s, "mastodon", f"{name}@example.social", Credentials(mastodon.add_account(name)),
                         base_url=mastodon.url)
    ids = queue_to("mastodon:desk@example.social", "mastodon:city@example.social")
    own = ids["mastodon:city@example.social"]
    with session_scope() as s:
        desk.edit_text(s, Actor.cli(), own, "City desk: the budget passes, 31 to 20", utcnow())
    with session_scope() as s:
        claimed = deliveries.claim_due(s, utcnow() + timedelta(seconds=1), 10)
    assert sorted(claimed) == sorted(ids.values())
    assert {publishing.publish_delivery(d) for d in claimed} == {"published"}
    texts = sorted(status["content"] for status in mastodon.statuses)
    assert texts == ["<p>City desk: the budget passes, 31 to 20</p>", "<p>The council passes the budget</p>"]


def test_a_text_too_long_for_the_platform_is_refused_and_nothing_changes() -> None:
    with session_scope() as s:
        label = make_account(s, "x").label
    delivery_id = queue_to(label)[label]
    with session_scope() as s, pytest.raises(StoryRejected) as refused:
        desk.edit_text(s, Actor.cli(), delivery_id, "é" * 281, utcnow())
    assert label in str(refused.value.problems) and "280" in str(refused.value.problems)
    assert refused.value.outcome == f"delivery {delivery_id}: text not changed"  # not "story not queued"
    with session_scope() as s:
        assert s.get(Delivery, delivery_id).text is None


def test_a_delivery_that_started_keeps_the_text_it_went_with() -> None:
    with session_scope() as s:
        make_account(s, "mastodon", "desk@example.social")
    delivery_id = queue_to("mastodon:desk@example.social")["mastodon:desk@example.social"]
    with session_scope() as s:
        deliveries.claim_due(s, utcnow() + timedelta(seconds=1), 10)
        assert deliveries.start(s, delivery_id, utcnow(), 60) is not None
    with session_scope() as s, pytest.raises(UserError, match="has not started"):
        desk.edit_text(s, Actor.cli(), delivery_id, "too late", utcnow())


def test_an_approved_story_waits_again_after_one_accounts_text_changes() -> None:
    with session_scope() as s:
        make_account(s, "mastodon", "desk@example.social", tags=["en"])
        s.add(ApprovalPolicy(scope_kind="tag", scope_value="en", created_at=utcnow()))
    delivery_id = queue_to("mastodon:desk@example.social")["mastodon:desk@example.social"]
    with session_scope() as s:
        s.get(Delivery, delivery_id).state = "scheduled"  # as an approver's decision leaves it
    with session_scope() as s:
        desk.edit_text(s, Actor.cli(), delivery_id, "Edited after approval", utcnow())
    with session_scope() as s:
        row = s.get(Delivery, delivery_id)
        assert (row.state, row.text, row.story.status) == ("awaiting_approval", "Edited after approval",
                                                           "awaiting_approval")


def test_the_command_sets_and_clears_an_accounts_text(db_env: Env) -> None:
    with session_scope() as s:
        make_account(s, "mastodon", "desk@example.social")
    delivery_id = queue_to("mastodon:desk@example.social")["mastodon:desk@example.social"]
    done = db_env.cli("deliveries", "edit", str(delivery_id), "--text", "Its own words", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(db_env.cli("deliveries", "show", str(delivery_id), "--json").stdout)[0]
    assert shown["text"] == "Its own words"
    table = db_env.cli("deliveries", "show", str(delivery_id)).stdout
    assert "its own text (not the story's): Its own words" in table
    both = db_env.cli("deliveries", "edit", str(delivery_id), "--text", "x", "--clear")
    assert both.returncode != 0 and "exactly one of --text and --clear" in both.stderr
    assert db_env.cli("deliveries", "edit", str(delivery_id), "--clear").returncode == 0
    with session_scope() as s:
        assert s.scalar(select(Delivery.text).where(Delivery.id == delivery_id)) is None
