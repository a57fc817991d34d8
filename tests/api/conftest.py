"""A desk for API tests: an English and a French account, one user per role (scoped to the English
desk, the admin everywhere) each with a token, and the app in-process over httpx."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from scheduler.api.app import create_app
from scheduler.core.db import session_scope
from scheduler.core.models import utcnow
from scheduler.desk import tokens, users
from scheduler.desk.access import Actor
from tests.conftest import Env
from tests.factories import make_account

ROLES = ("viewer", "editor", "approver", "admin")


@dataclass
class Desk:
    client: TestClient
    en: str  # account labels
    fr: str
    en_id: int
    fr_id: int
    tokens: dict[str, str] = field(default_factory=dict)

    def as_(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}


def make_desk(env: Env) -> Desk:
    cli = Actor.cli()
    now = utcnow()
    with session_scope() as s:
        en, fr = make_account(s, tags=["en"]), make_account(s, tags=["fr"])
        secrets = {}
        for role in ROLES:
            spec = role if role == "admin" else f"{role}@tag:en"
            # One password is enough (argon2 is slow on purpose): the viewer's, for the login tests.
            user = users.add(s, cli, role, now, password="viewer password 123" if role == "viewer" else None,
                             roles=[users.parse_role(s, spec)])
            secrets[role] = tokens.create(s, cli, user, "tests", now)[1]
        labels, ids = (en.label, fr.label), (en.id, fr.id)
    return Desk(TestClient(create_app(), raise_server_exceptions=False), *labels, *ids, tokens=secrets)


@pytest.fixture
def desk(sqlite_env: Env) -> Iterator[Desk]:
    made = make_desk(sqlite_env)
    yield made
    made.client.close()


@pytest.fixture
def any_desk(db_env: Env) -> Iterator[Desk]:
    """The desk on SQLite and on PostgreSQL."""
    made = make_desk(db_env)
    yield made
    made.client.close()
