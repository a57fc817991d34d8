"""The desk's service functions on SQLite and PostgreSQL: users and tokens (stored hashed, revocable,
expiring), scopes, approval (policy, not the author, compare-and-set, past due, reject, edit sends back,
no bypass by retry), the audit log, and the login limit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from scheduler.core.db import session_scope
from scheduler.core.models import Delivery, Story
from scheduler.desk import approval, audit, logins, tokens, users
from scheduler.desk import deliveries as desk_deliveries
from scheduler.desk import stories as desk
from scheduler.desk.access import Actor, Role, Scope
from scheduler.desk.errors import Conflict, Forbidden, TooManyAttempts, Unauthenticated
from scheduler.desk.models import ApiToken, AuditEntry, User
from scheduler.stories import drafts
from tests.factories import make_account

NOW = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
ADMIN = Actor.cli()
pytestmark = pytest.mark.usefixtures("db_env")
# Nothing in these differs between the databases; the time goes to the ones where something does.
SQLITE_ONLY = pytest.mark.parametrize("db_env", ["sqlite"], indirect=True)


def person(name: str, *roles: str) -> Actor:
    """A user with ``roles`` (``editor``, ``editor@tag:en``) and the Actor a token of theirs stands for."""
    with session_scope() as s:
        user = users.add(s, ADMIN, name, NOW, roles=[users.parse_role(s, r) for r in roles])
        _, secret = tokens.create(s, ADMIN, user, "t", NOW)
        return tokens.authenticate(s, secret, NOW)


def accounts_tagged(*tags: str) -> list[str]:
    with session_scope() as s:
        return [make_account(s, tags=[tag]).label for tag in tags]


def queue(actor: Actor, targets: list[str], text: str = "a story", at: datetime | None = None) -> int:
    with session_scope() as s:
        return desk.queue(s, actor, drafts.Draft(text=text, targets=targets, at=at), NOW).id


def states(story_id: int) -> set[str]:
    with session_scope() as s:
        return set(s.scalars(select(Delivery.state).where(Delivery.story_id == story_id)))


@SQLITE_ONLY
def test_a_token_is_stored_only_as_its_hash_and_stops_at_revoke_expiry_or_disable() -> None:
    with session_scope() as s:
        user = users.add(s, ADMIN, "cms", NOW, roles=[Role("editor", Scope("all"))])
        token, secret = tokens.create(s, ADMIN, user, "cms", NOW, days=1)
        token_id, user_id = token.id, user.id
        assert secret not in repr(token) and secret not in str(tokens.describe(token, "cms"))
    with session_scope() as s:
        stored = s.get(ApiToken, token_id)
        assert stored is not None and stored.token_hash == tokens.digest(secret) != secret
        assert tokens.authenticate(s, secret, NOW).name == "cms"
        with pytest.raises(Unauthenticated):
            tokens.authenticate(s, secret, NOW + timedelta(days=1, seconds=1))  # expired
        with pytest.raises(Unauthenticated):
            tokens.authenticate(s, secret + "x", NOW)
        users.disable(s, ADMIN, s.get(User, user_id), NOW)  # type: ignore[arg-type]
    with session_scope() as s, pytest.raises(Unauthenticated):
        tokens.authenticate(s, secret, NOW)
    with session_scope() as s:
        s.get(User, user_id).disabled = False  # type: ignore[union-attr]
        tokens.revoke(s, ADMIN, token_id, NOW)
    with session_scope() as s, pytest.raises(Unauthenticated):
        tokens.authenticate(s, secret, NOW)


@SQLITE_ONLY
def test_a_password_is_stored_as_argon2_and_login_is_limited_after_five_failures() -> None:
    with session_scope() as s:
        users.add(s, ADMIN, "ana", NOW, password="correct horse battery", roles=[])
        stored = s.scalar(select(User.password_hash).where(User.name == "ana"))
    assert stored is not None and stored.startswith("$argon2id$") and "correct horse" not in stored
    with session_scope() as s:
        secret, actor = logins.login(s, "ana", "correct horse battery", NOW, "10.0.0.1")
    assert actor.name == "ana" and secret.startswith(tokens.PREFIX)
    for _ in range(logins.MAX_FAILURES):
        with session_scope() as s, pytest.raises(Unauthenticated):
            logins.login(s, "ana", "wrong password!!", NOW, "10.0.0.2")
        with session_scope() as s:
            logins.record_failure(s, "ana", "10.0.0.2", NOW)
    with session_scope() as s, pytest.raises(TooManyAttempts) as refused:
        logins.login(s, "ana", "correct horse battery", NOW, "10.0.0.3")  # even the right password
    assert 0 < refused.value.retry_after <= logins.WINDOW.total_seconds() + 1
    with session_scope() as s:  # once the window has passed
        _, actor = logins.login(s, "ana", "correct horse battery", NOW + logins.WINDOW, "10.0.0.3")
    assert actor.name == "ana"


def test_an_editor_queues_only_to_accounts_in_scope_and_a_shared_story_is_refused_whole() -> None:
    en, fr = accounts_tagged("en", "fr")
    editor = person("en-editor", "editor@tag:en")
    assert states(queue(editor, [en])) == {"scheduled"}
    with pytest.raises(Forbidden, match=fr.split(":")[0]):
        queue(editor, [en, fr], text="both desks")
    with session_scope() as s:
        assert s.scalar(select(Story.id).where(Story.text == "both desks")) is None


def test_a_policy_holds_the_story_until_another_approver_approves_once() -> None:
    (en,) = accounts_tagged("en")
    with session_scope() as s:
        approval.add_policy(s, ADMIN, Scope("tag", "en"), NOW)
    writer = person("writer", "approver@tag:en")  # an approver, but the author
    other = person("other", "approver@tag:en")
    story_id = queue(writer, [en], at=NOW + timedelta(hours=1))
    assert states(story_id) == {"awaiting_approval"}
    with session_scope() as s, pytest.raises(Forbidden, match="another approver"):
        approval.approve(s, writer, s.get(Story, story_id), NOW)  # type: ignore[arg-type]
    with session_scope() as s:
        story = s.get(Story, story_id)
        assert story is not None and approval.approve(s, other, story, NOW) == 1
    assert states(story_id) == {"scheduled"}
    with session_scope() as s, pytest.raises(Conflict, match="not awaiting approval"):
        approval.approve(s, other, s.get(Story, story_id), NOW)  # type: ignore[arg-type]
    with session_scope() as s:
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "story",
                                                                AuditEntry.object_id == str(story_id))
                                 .order_by(AuditEntry.id)))
    assert actions == ["story.queue", "story.approve"]


def test_approving_after_the_time_passed_asks_now_or_a_new_time() -> None:
    (en,) = accounts_tagged("en")
    editor, approver = person("ed", "editor"), person("ap", "approver")
    with session_scope() as s:
        story = desk.queue(s, editor, drafts.Draft(text="late", targets=[en], at=NOW + timedelta(minutes=10)),
                           NOW, require_approval=True)
        story_id = story.id
    later = NOW + timedelta(hours=1)
    with session_scope() as s, pytest.raises(Conflict, match="has passed"):
        approval.approve(s, approver, s.get(Story, story_id), later)  # type: ignore[arg-type]
    new_time = later + timedelta(hours=2)
    with session_scope() as s:
        approval.approve(s, approver, s.get(Story, story_id), later, at=new_time)  # type: ignore[arg-type]
    with session_scope() as s:
        assert set(s.scalars(select(Delivery.due_at).where(Delivery.story_id == story_id))) == {new_time}


def test_an_approval_for_a_text_edited_since_it_was_read_is_refused() -> None:
    (en,) = accounts_tagged("en")
    editor, approver = person("ed", "editor"), person("ap", "approver")
    with session_scope() as s:
        story = desk.queue(s, editor, drafts.Draft(text="first", targets=[en]), NOW, require_approval=True)
        story_id, seen = story.id, story.fingerprint
    with session_scope() as s:
        desk.edit(s, editor, story_id, NOW, text="second")
    with session_scope() as s, pytest.raises(Conflict, match="edited since you read it"):
        approval.approve(s, approver, s.get(Story, story_id), NOW, fingerprint=seen)  # type: ignore[arg-type]
    assert states(story_id) == {"awaiting_approval"}


@SQLITE_ONLY
def test_reject_needs_a_reason_and_cancels() -> None:
    (en,) = accounts_tagged("en")
    story_id = queue(person("ed", "editor"), [en])
    with session_scope() as s:
        s.execute(update(Story).where(Story.id == story_id).values(status="awaiting_approval"))
        s.execute(update(Delivery).where(Delivery.story_id == story_id).values(state="awaiting_approval"))
    approver = person("ap", "approver")
    with session_scope() as s, pytest.raises(Exception, match="reason"):
        approval.reject(s, approver, s.get(Story, story_id), "   ", NOW)  # type: ignore[arg-type]
    with session_scope() as s:
        assert approval.reject(s, approver, s.get(Story, story_id), "wrong photo", NOW) == 1  # type: ignore[arg-type]
        newest = audit.entries(s, ADMIN, object_type="story", object_id=str(story_id)).items[0]
    assert states(story_id) == {"cancelled"}
    assert (newest["action"], newest["actor"]) == ("story.reject", "ap")
    assert newest["change"]["reason"] == "wrong photo"


def test_an_edit_after_approval_sends_the_story_back_and_a_retry_cannot_release_it() -> None:
    en, en2 = accounts_tagged("en", "en")
    editor, approver = person("ed", "editor"), person("ap", "approver")
    with session_scope() as s:
        story_id = desk.queue(s, editor, drafts.Draft(text="v1", targets=[en, en2]), NOW,
                              require_approval=True).id
    with session_scope() as s:
        approval.approve(s, approver, s.get(Story, story_id), NOW)  # type: ignore[arg-type]
        failed = s.scalars(select(Delivery.id).where(Delivery.story_id == story_id)).first()
        s.execute(update(Delivery).where(Delivery.id == failed).values(state="failed"))
    with session_scope() as s, pytest.raises(Conflict, match="started"):
        desk.edit(s, editor, story_id, NOW, text="v2")  # a failed delivery has started
    with session_scope() as s:
        s.execute(update(Delivery).where(Delivery.id == failed).values(state="scheduled"))
    with session_scope() as s:
        desk.edit(s, editor, story_id, NOW, text="v2")
    assert states(story_id) == {"awaiting_approval"}
    with session_scope() as s:
        s.execute(update(Delivery).where(Delivery.id == failed).values(state="failed"))
    with session_scope() as s, pytest.raises(Conflict, match="awaiting approval"):
        desk_deliveries.retry(s, editor, failed, NOW)  # type: ignore[arg-type]
    with session_scope() as s:
        assert s.get(Delivery, failed).state == "failed"  # type: ignore[union-attr]


@SQLITE_ONLY
def test_a_scoped_viewer_lists_only_its_desks_stories_and_deliveries() -> None:
    en, fr = accounts_tagged("en", "fr")
    editor = person("ed", "editor")
    en_story, fr_story = queue(editor, [en], "en news"), queue(editor, [fr], "fr news")
    viewer = person("en-viewer", "viewer@tag:en")
    with session_scope() as s:
        seen = [row["id"] for row in desk.listing(s, viewer).items]
        delivered = {row["story"] for row in desk_deliveries.listing(s, viewer).items}
        with pytest.raises(Forbidden):
            desk.find(s, viewer, fr_story)
    assert seen == [en_story] and delivered == {en_story}


@SQLITE_ONLY
def test_pages_follow_the_cursor_without_repeats() -> None:
    (en,) = accounts_tagged("en")
    editor = person("ed", "editor")
    made = [queue(editor, [en], f"story {n}") for n in range(5)]
    seen: list[int] = []
    cursor = None
    with session_scope() as s:
        while True:
            page = desk.listing(s, editor, cursor=cursor, limit=2)
            seen += [row["id"] for row in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert seen == sorted(made, reverse=True)


def test_two_approvers_at_once_one_wins() -> None:
    (en,) = accounts_tagged("en")
    story_id = queue(person("ed", "editor"), [en])
    with session_scope() as s:
        s.execute(update(Story).where(Story.id == story_id).values(status="awaiting_approval"))
        s.execute(update(Delivery).where(Delivery.story_id == story_id).values(state="awaiting_approval"))
    approvers = [person("ap1", "approver"), person("ap2", "approver")]
    barrier = threading.Barrier(2)
    results: list[str] = []

    def decide(actor: Actor) -> None:
        with session_scope() as s:
            read = s.get(Story, story_id)
        barrier.wait(10)  # both have read it awaiting approval before either decides
        try:
            with session_scope() as s:
                assert read is not None
                approval.approve(s, actor, s.merge(read, load=False), NOW)  # decides on what it read
            results.append("approved")
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=decide, args=(a,)) for a in approvers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["approved", "conflict"]
    with session_scope() as s:
        approvals = s.scalars(select(AuditEntry.actor).where(AuditEntry.action == "story.approve")).all()
    assert len(approvals) == 1 and states(story_id) == {"scheduled"}
