"""Approval cannot be bypassed: a story under a policy stays out of the claim whatever route touches
it before an approver decides (queue, import, edit, retime, retry, resolve, the author approving)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from scheduler.core import deliveries
from scheduler.core.db import session_scope
from scheduler.core.models import Delivery, utcnow
from scheduler.desk import approval, stories
from scheduler.desk import deliveries as desk_deliveries
from scheduler.desk.access import Actor, Role, Scope
from scheduler.desk.errors import Conflict, Forbidden
from scheduler.stories import bulk, drafts
from tests.factories import make_account

pytestmark = pytest.mark.usefixtures("db_env")
EVERYWHERE = Scope("all")
EDITOR = Actor(name="ed", via="test", roles=(Role("approver", EVERYWHERE),))  # writes; may approve others'


@pytest.fixture
def held() -> str:
    """An account under an approval policy (by its tag)."""
    with session_scope() as s:
        label = make_account(s, tags=["gated"]).label
        approval.add_policy(s, Actor.cli(), Scope("tag", "gated"), utcnow())
        return label


def waiting_story(target: str) -> int:
    with session_scope() as s:
        return stories.queue(s, EDITOR, drafts.Draft(text="gated", targets=[target]), utcnow()).id


def claim_nothing_of(story_id: int) -> None:
    """The claim, a day ahead, takes none of the story's deliveries."""
    with session_scope() as s:
        claimed = deliveries.claim_due(s, utcnow() + timedelta(days=1), 1000)
        mine = set(s.scalars(select(Delivery.id).where(Delivery.story_id == story_id)))
        states = set(s.scalars(select(Delivery.state).where(Delivery.story_id == story_id)))
    assert not mine & set(claimed) and states == {"awaiting_approval"}


def test_queue_and_import_wait(held: str, tmp_path: Path) -> None:
    claim_nothing_of(waiting_story(held))
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"text": "imported", "to": held}) + "\n", encoding="utf-8")
    now = utcnow()
    prepared = bulk.prepare(str(path), now)
    with session_scope() as s:
        (imported,) = stories.import_prepared(s, EDITOR, prepared, now).imported
    claim_nothing_of(imported)


def test_retime_keeps_waiting(held: str) -> None:
    story_id = waiting_story(held)
    with session_scope() as s:
        assert stories.retime(s, EDITOR, story_id, utcnow(), at=utcnow() + timedelta(minutes=1)) == 1
    claim_nothing_of(story_id)


def test_edit_keeps_waiting(held: str) -> None:
    story_id = waiting_story(held)
    with session_scope() as s:
        stories.edit(s, EDITOR, story_id, utcnow(), text="edited while waiting")
    claim_nothing_of(story_id)


def test_the_author_cannot_approve_and_nobody_approves_twice(held: str) -> None:
    story_id = waiting_story(held)
    with session_scope() as s, pytest.raises(Forbidden):
        approval.approve(s, EDITOR, stories.find(s, EDITOR, story_id, "approver"), utcnow())
    claim_nothing_of(story_id)


@pytest.mark.parametrize("route", ["retry", "republish"])
def test_retry_and_resolve_never_release_a_delivery_of_a_waiting_story(held: str, route: str) -> None:
    """Defence in depth: the desk's own routes never leave a failed or unknown delivery in a story that
    waits (an edit needs every delivery unstarted), but if a story ever were so, releasing that delivery
    by hand would publish text nobody approved; both routes refuse."""
    story_id = waiting_story(held)
    with session_scope() as s:
        delivery = s.scalars(select(Delivery.id).where(Delivery.story_id == story_id)).one()
        s.execute(update(Delivery).where(Delivery.id == delivery)
                  .values(state="failed" if route == "retry" else "unknown"))
    with session_scope() as s, pytest.raises(Conflict, match="awaiting approval"):
        if route == "retry":
            desk_deliveries.retry(s, EDITOR, delivery, utcnow())
        else:
            desk_deliveries.resolve(s, EDITOR, delivery, utcnow(), republish=True)
    with session_scope() as s:
        assert s.get(Delivery, delivery).state in ("failed", "unknown")  # type: ignore[union-attr]


def test_an_author_field_naming_someone_else_does_not_let_the_importer_approve(held: str,
                                                                              tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"text": "signed by another", "to": held, "author": "someone else"}) + "\n",
                    encoding="utf-8")
    now = utcnow()
    prepared = bulk.prepare(str(path), now)
    with session_scope() as s:
        (story_id,) = stories.import_prepared(s, EDITOR, prepared, now).imported
    with session_scope() as s, pytest.raises(Forbidden, match="another approver"):
        approval.approve(s, EDITOR, stories.find(s, EDITOR, story_id, "approver"), now)
    claim_nothing_of(story_id)
