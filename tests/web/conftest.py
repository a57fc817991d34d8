"""A desk for the dashboard's tests: English accounts on X, Bluesky, Telegram and Mastodon (tag en),
a French one (tag fr), one user per role scoped to the English desk (the admin everywhere), each with a
password, and the whole app (API and dashboard) in-process over httpx."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.core.db import session_scope
from scheduler.core.models import utcnow
from scheduler.desk import users
from scheduler.desk.access import Actor
from tests.conftest import Env
from tests.factories import make_account

ROLES = ("viewer", "editor", "approver", "admin")
PASSWORD = "a long enough password"


@dataclass
class WebDesk:
    env: Env
    accounts: dict[str, str] = field(default_factory=dict)  # platform (or "fr") -> label
    ids: dict[str, int] = field(default_factory=dict)

    def client(self, base_url: str = "http://testserver") -> TestClient:
        return TestClient(create_app(), base_url=base_url, raise_server_exceptions=False,
                          follow_redirects=False)

    def sign_in(self, role: str, client: TestClient | None = None) -> TestClient:
        client = client or self.client()
        form = client.get("/ui/login")
        answer = client.post("/ui/login", data={"name": role, "password": PASSWORD,
                                                "csrf": csrf_of(form.text), "next": "/ui/stories"})
        assert answer.status_code == 303, answer.text
        return client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def make_web_desk(env: Env) -> WebDesk:
    desk = WebDesk(env)
    cli = Actor.cli()
    with session_scope() as s:
        for platform in ("x", "bluesky", "telegram", "mastodon"):
            account = make_account(s, platform, tags=["en"])
            desk.accounts[platform], desk.ids[platform] = account.label, account.id
        french = make_account(s, "mastodon", tags=["fr"])
        desk.accounts["fr"], desk.ids["fr"] = french.label, french.id
        for role in ROLES:
            spec = role if role == "admin" else f"{role}@tag:en"
            user = users.add(s, cli, role, utcnow(), password=None if _HASH else PASSWORD,
                             roles=[users.parse_role(s, spec)])
            # One argon2 hash for every user of every test: it is slow on purpose.
            if _HASH:
                user.password_hash = _HASH[0]
            else:
                _HASH.append(user.password_hash)
    return desk


_HASH: list[str | None] = []


@pytest.fixture
def web(sqlite_env: Env) -> Iterator[WebDesk]:
    yield make_web_desk(sqlite_env)


@pytest.fixture
def any_web(db_env: Env) -> Iterator[WebDesk]:
    """The desk on SQLite and on PostgreSQL."""
    yield make_web_desk(db_env)
