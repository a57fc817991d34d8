"""Every route x every role, generated from the app's own route table (its OpenAPI paths): each answer
is allowed or forbidden as the rule table below declares. A route without a rule (or without what the
test needs to call it) fails the build, so no route ships unguarded by accident.

Personas: anonymous, and viewer, editor, approver scoped to the English desk (tag en), and an admin
everywhere. Routes about one object are called on an English object and on a French one: a scoped
persona is forbidden the French one whatever its role."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from scheduler.core.db import session_scope
from scheduler.core.models import Delivery, Story, utcnow
from scheduler.desk import approval, stories, tokens, users, webhooks
from scheduler.desk.access import ROLES, Actor, Scope
from scheduler.feeds import registry
from scheduler.feeds.models import FeedItem
from scheduler.stories import drafts
from tests.api.conftest import Desk, make_desk
from tests.conftest import Env
from tests.factories import make_account


@dataclass(frozen=True)
class Rule:
    role: str | None  # None: public; "user": any signed-in user; else the least role
    everywhere: bool = False  # the role must be held everywhere, not within a tag or account
    scoped: bool = False  # about one object (or targets): a persona outside its desk is forbidden


PUBLIC, USER = Rule(None), Rule("user")
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("POST", "/auth/login"): PUBLIC,
    ("GET", "/accounts"): Rule("viewer"),
    ("GET", "/accounts/{account_id}"): Rule("viewer", scoped=True),
    ("PATCH", "/accounts/{account_id}"): Rule("admin", everywhere=True),
    ("DELETE", "/accounts/{account_id}"): Rule("admin", everywhere=True),
    ("POST", "/accounts/{account_id}/pause"): Rule("editor", scoped=True),
    ("POST", "/accounts/{account_id}/resume"): Rule("editor", scoped=True),
    ("PUT", "/accounts/{account_id}/schedule"): Rule("editor", scoped=True),
    ("GET", "/schedule/slots"): Rule("viewer"),
    ("GET", "/followers/report"): Rule("viewer", everywhere=True),
    ("POST", "/stories"): Rule("editor", scoped=True),
    ("POST", "/stories/import"): Rule("editor", scoped=True),
    ("GET", "/stories"): Rule("viewer"),
    ("GET", "/stories/{story_id}"): Rule("viewer", scoped=True),
    ("PATCH", "/stories/{story_id}"): Rule("editor", scoped=True),
    ("POST", "/stories/{story_id}/cancel"): Rule("editor", scoped=True),
    ("POST", "/stories/{story_id}/retime"): Rule("editor", scoped=True),
    ("POST", "/stories/{story_id}/approve"): Rule("approver", scoped=True),
    ("POST", "/stories/{story_id}/reject"): Rule("approver", scoped=True),
    ("GET", "/deliveries"): Rule("viewer"),
    ("GET", "/deliveries/{delivery_id}"): Rule("viewer", scoped=True),
    ("PATCH", "/deliveries/{delivery_id}"): Rule("editor", scoped=True),
    ("POST", "/deliveries/{delivery_id}/retry"): Rule("editor", scoped=True),
    ("POST", "/deliveries/{delivery_id}/resolve"): Rule("editor", scoped=True),
    ("GET", "/exports/stories"): Rule("viewer", everywhere=True),
    ("GET", "/exports/deliveries"): Rule("viewer", everywhere=True),
    ("GET", "/users"): Rule("admin", everywhere=True),
    ("POST", "/users"): Rule("admin", everywhere=True),
    ("POST", "/users/{name}/disable"): Rule("admin", everywhere=True),
    ("PUT", "/users/{name}/notifications"): Rule("admin", everywhere=True),
    ("PUT", "/me/notifications"): USER,
    ("GET", "/me"): USER,
    ("GET", "/tokens"): USER,
    ("POST", "/tokens"): Rule("admin", everywhere=True),
    ("POST", "/tokens/{token_id}/revoke"): USER,
    ("GET", "/approval-policies"): Rule("admin", everywhere=True),
    ("POST", "/approval-policies"): Rule("admin", everywhere=True),
    ("DELETE", "/approval-policies/{policy_id}"): Rule("admin", everywhere=True),
    ("GET", "/audit"): Rule("admin", everywhere=True),
    ("GET", "/webhooks"): Rule("admin", everywhere=True),
    ("POST", "/webhooks"): Rule("admin", everywhere=True),
    ("DELETE", "/webhooks/{webhook_id}"): Rule("admin", everywhere=True),
    ("GET", "/webhooks/{webhook_id}/log"): Rule("admin", everywhere=True),
    ("GET", "/feeds"): Rule("viewer"),
    ("POST", "/feeds"): Rule("editor", scoped=True),
    ("GET", "/feeds/{feed_id}"): Rule("viewer", scoped=True),
    ("PATCH", "/feeds/{feed_id}"): Rule("editor", scoped=True),
    ("DELETE", "/feeds/{feed_id}"): Rule("admin", everywhere=True),
    ("POST", "/feeds/{feed_id}/pause"): Rule("editor", scoped=True),
    ("POST", "/feeds/{feed_id}/resume"): Rule("editor", scoped=True),
    ("POST", "/feeds/{feed_id}/poll"): Rule("editor", scoped=True),
    ("GET", "/feed-items"): Rule("viewer"),
    ("POST", "/feed-items/{item_id}/promote"): Rule("editor", scoped=True),
}
PERSONAS = (None, *ROLES)
_serial = itertools.count(1)


def allowed(rule: Rule, persona: str | None, outside: bool) -> bool:
    if rule.role is None:
        return True
    if persona is None:
        return False
    if rule.role == "user":
        return True
    if ROLES.index(persona) < ROLES.index(rule.role):
        return False
    if rule.everywhere or (rule.scoped and outside):
        return persona == "admin"  # the only persona whose role holds everywhere
    return True


def objects(desk: Desk, desk_label: str) -> dict[str, Any]:
    """A story waiting for approval (written by someone else than every persona), one of its
    deliveries, the desk's account, and a feed aimed at the desk's tag with a draft item; fresh for
    every call, so earlier calls change nothing."""
    now = utcnow()
    author = Actor(name="author", via="test", roles=Actor.cli().roles)
    tag = "en" if desk_label == desk.en else "fr"
    with session_scope() as s:
        story = stories.queue(s, author, drafts.Draft(text="matrix story", targets=[desk_label]), now,
                              allow_duplicate=True, require_approval=True)
        delivery = s.query(Delivery).filter(Delivery.story_id == story.id).one()
        # Port 9 on loopback: a poll fails at once (a private address), which is still an allowed call.
        feed = registry.add(s, f"http://127.0.0.1:9/feed{next(_serial)}.xml", [tag], now)
        item = FeedItem(feed_id=feed.id, guid="g", guid_key=f"g{feed.id}", title=f"Matrix item {feed.id}",
                        status="draft", created_at=now)
        s.add(item)
        s.flush()
        return {"story_id": story.id, "delivery_id": delivery.id, "account_id": delivery.account_id,
                "label": desk_label, "tag": tag, "feed_id": feed.id, "item_id": item.id}


def extras() -> dict[str, Any]:
    """Objects of the routes that are not about a desk: a spare user, a token, a policy."""
    cli, now = Actor.cli(), utcnow()
    with session_scope() as s:
        spare = users.add(s, cli, f"spare{next(_serial)}", now)
        token, _ = tokens.create(s, cli, spare, "spare", now)
        policy = approval.add_policy(s, cli, Scope("tag", f"t{token.id}"), now)
        account = make_account(s, tags=["spare"])
        hook, _ = webhooks.create(s, cli, "http://127.0.0.1:9/hook", now)
        return {"name": spare.name, "token_id": token.id, "policy_id": policy.id,
                "spare_account_id": account.id, "webhook_id": hook.id}


# Routes whose object must not be the desk's own account (removing it would end the matrix).
OWN_OBJECT: dict[tuple[str, str], Any] = {
    ("DELETE", "/accounts/{account_id}"): lambda o: {**o, "account_id": o["spare_account_id"]},
}
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/accounts/{account_id}"): lambda o: {"json": {"name": "renamed"}},
    ("PUT", "/accounts/{account_id}/schedule"): lambda o: {"json": {"cron": ["0 9 * * *"]}},
    ("POST", "/auth/login"): lambda o: {"data": {"username": "viewer", "password": "viewer password 123"}},
    ("POST", "/stories"): lambda o: {"json": {"text": "matrix", "to": [o["label"]], "allow_duplicate": True}},
    ("POST", "/stories/import"): lambda o: {"params": {"allow_duplicate": True}, "files": {
        "file": ("rows.jsonl", json.dumps({"text": "imported", "to": o["label"]}), "application/jsonl")}},
    ("PATCH", "/stories/{story_id}"): lambda o: {"json": {"text": "edited"}},
    ("POST", "/stories/{story_id}/retime"): lambda o: {"json": {
        "at": (utcnow() + timedelta(days=1)).isoformat()}},
    ("POST", "/stories/{story_id}/approve"): lambda o: {"json": {"now": True}},
    ("POST", "/stories/{story_id}/reject"): lambda o: {"json": {"reason": "matrix"}},
    ("POST", "/deliveries/{delivery_id}/resolve"): lambda o: {"json": {"republish": True}},
    ("PATCH", "/deliveries/{delivery_id}"): lambda o: {"json": {"text": "this account's own words"}},
    ("POST", "/users"): lambda o: {"json": {"name": "new-" + o["name"]}},
    ("POST", "/tokens"): lambda o: {"json": {"user": o["name"], "name": f"n{next(_serial)}"}},
    ("POST", "/approval-policies"): lambda o: {"json": {"scope": "tag:matrix"}},
    ("POST", "/webhooks"): lambda o: {"json": {"url": "http://127.0.0.1:9/hook"}},
    ("PUT", "/users/{name}/notifications"): lambda o: {"json": {"email": "desk@example.org", "digest": True}},
    ("PUT", "/me/notifications"): lambda o: {"json": {"email": "me@example.org",
                                                      "notify": ["worker.silent"]}},
    ("POST", "/feeds"): lambda o: {"json": {"url": f"http://127.0.0.1:9/new{next(_serial)}.xml",
                                            "to": [o["tag"]]}},
    ("PATCH", "/feeds/{feed_id}"): lambda o: {"json": {"mode": "approve"}},
}


@pytest.fixture(scope="module")
def matrix_env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One SQLite desk for the whole matrix (a few hundred requests): built once per module."""
    import os

    from cryptography.fernet import Fernet

    from config.settings import reset_settings
    from scheduler.core.db import dispose_engines, migrate

    path = tmp_path_factory.mktemp("matrix")
    env = Env(path, f"sqlite:///{path / 'crosspost.db'}", f"sqla+sqlite:///{path / 'broker.db'}")
    env.vars["CROSSPOST_SECRET_KEY"] = Fernet.generate_key().decode()
    saved = {k: os.environ.get(k) for k in env.vars}
    env.activate()
    migrate()
    yield make_desk(env)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    dispose_engines()
    reset_settings()


def routes(desk: Desk) -> list[tuple[str, str, bool]]:
    """(method, path, has a request body) for every operation of the app's route table."""
    found = []
    for path, operations in desk.client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        for method, operation in operations.items():
            found.append((method.upper(), path, "requestBody" in operation))
    return found


def test_every_route_has_a_rule_and_a_way_to_call_it(matrix_env: Desk) -> None:
    table = routes(matrix_env)
    assert len(table) >= 25
    missing = [f"{m} {p}" for m, p, _ in table if (m, p) not in RULES]
    assert missing == [], f"routes without a rule in {__name__}.RULES: {missing}"
    stale = [f"{m} {p}" for m, p in RULES if (m, p) not in {(m, p) for m, p, _ in table}]
    assert stale == [], f"rules for routes that no longer exist: {stale}"
    no_body = [f"{m} {p}" for m, p, body in table if body and (m, p) not in BODIES]
    assert no_body == [], f"routes with a body but no sample body in BODIES: {no_body}"


@pytest.mark.parametrize("persona", PERSONAS, ids=lambda p: p or "anonymous")
def test_each_role_gets_exactly_what_the_rules_allow(matrix_env: Desk, persona: str | None) -> None:
    desk = matrix_env
    wrong = []
    for method, path, _ in routes(desk):
        rule = RULES[(method, path)]
        for outside in ((False, True) if rule.scoped else (False,)):
            found = {**objects(desk, desk.fr if outside else desk.en), **extras()}
            found = OWN_OBJECT.get((method, path), lambda o: o)(found)
            url = path.format(**found)
            sample = BODIES.get((method, path), lambda o: {})(found)
            answer = desk.client.request(method, url, headers=desk.as_(persona), **sample)
            expected = allowed(rule, persona, outside)
            denied = answer.status_code in (401, 403)
            if denied == expected or answer.status_code >= 500:
                where = "a French object" if outside else "an English object"
                wrong.append(f"{method} {path} on {where}: {answer.status_code} "
                             f"(expected {'allowed' if expected else 'forbidden'}) {answer.text[:120]}")
    assert wrong == []


def test_the_matrix_really_acted_where_allowed(matrix_env: Desk) -> None:
    """An allowed call did its work (not merely 'not forbidden'): the approver's approval moved a story."""
    desk = matrix_env
    found = objects(desk, desk.en)
    answer = desk.client.post(f"/stories/{found['story_id']}/approve", json={"now": True},
                              headers=desk.as_("approver"))
    assert answer.status_code == 200, answer.text
    with session_scope() as s:
        story = s.get(Story, found["story_id"])
        assert story is not None and story.status == "approved"

