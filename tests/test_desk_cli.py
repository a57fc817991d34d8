"""The desk's commands, as an operator runs them: users, tokens (the secret printed once, never
listed), policies, stories approve/reject, audit; each with --json."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from adapters.standins import standin_class
from scheduler.cli.main import main
from scheduler.core.db import session_scope
from scheduler.core.models import utcnow
from scheduler.desk import stories
from scheduler.desk.access import Actor
from scheduler.stories import drafts
from tests.conftest import Env
from tests.factories import make_account, make_delivery


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        sqlite_env: Env) -> Callable[..., Ran]:
    """The command in this process (the entry point and its error handling, without a Python start-up
    per call): ``cli(*args, stdin=...)``."""
    def run(*args: str, stdin: str = "") -> Ran:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


def ok(cli: Callable[..., Ran], *args: str, stdin: str = "") -> list[dict[str, object]]:
    done = cli(*args, "--json", stdin=stdin)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_users_and_tokens(cli: Callable[..., Ran]) -> None:
    added = ok(cli, "users", "add", "ana", "--role", "editor@tag:en", "--password", stdin="long enough pw\n")
    assert added[0]["roles"] == ["editor@tag:en"] and added[0]["has_password"] is True
    short = cli("users", "add", "bob", "--password", stdin="short\n")
    assert short.returncode == 2 and "at least 12 characters" in short.stderr and "short" not in short.stderr
    bad_role = cli("users", "add", "bob", "--role", "boss")
    assert bad_role.returncode == 2
    assert "role: 'boss' is not one of viewer, editor, approver, admin" in bad_role.stderr
    created = ok(cli, "tokens", "create", "ana", "--name", "laptop", "--days", "1")[0]
    secret = str(created["token"])
    listed = cli("tokens", "list", "--json")
    assert secret not in listed.stdout and json.loads(listed.stdout)[0]["name"] == "laptop"
    people = cli("users", "list", "--json")
    assert "argon2" not in people.stdout and "long enough" not in people.stdout
    assert ok(cli, "tokens", "revoke", str(created["id"]))[0]["revoked"] is True
    assert ok(cli, "users", "disable", "ana")[0]["disabled"] is True
    actions = [e["action"] for e in ok(cli, "audit")]
    assert actions == ["user.disable", "token.revoke", "token.create", "user.add"]
    assert all(secret not in json.dumps(e) for e in ok(cli, "audit"))


def test_policies_and_approval_from_the_command(cli: Callable[..., Ran]) -> None:
    with session_scope() as s:
        label = make_account(s, tags=["en"]).label
    assert ok(cli, "policies", "add", "tag:en")[0]["scope"] == "tag:en"
    own = ok(cli, "stories", "queue", "--text", "mine", "--to", label)[0]
    assert own["states"] == {"awaiting_approval": 1}
    refused = cli("stories", "approve", str(own["id"]))
    assert refused.returncode == 2 and "another approver must approve it" in refused.stderr
    writer = Actor(name="writer", via="test", roles=Actor.cli().roles)
    with session_scope() as s:
        theirs = stories.queue(s, writer, drafts.Draft(text="theirs", targets=[label]), utcnow()).id
    approved = ok(cli, "stories", "approve", str(theirs), "--now")[0]
    assert (approved["status"], approved["scheduled"]) == ("approved", 1)
    rejected = ok(cli, "stories", "reject", str(own["id"]), "--reason", "not ours to publish")[0]
    assert (rejected["status"], rejected["cancelled"]) == ("rejected", 1)
    trail = ok(cli, "audit", "--object", f"story:{own['id']}")
    assert [e["action"] for e in trail] == ["story.reject", "story.queue"]
    assert trail[0]["change"]["reason"] == "not ours to publish" and trail[0]["via"] == "cli"


def test_doctor_says_what_is_missing(cli: Callable[..., Ran]) -> None:
    answer = cli("doctor", "--json")
    found = json.loads(answer.stdout)[0]
    assert (answer.returncode, found["ready"]) == (0, True)
    assert found["checks"]["database"]["ok"] is True and found["checks"]["beat"]["ok"] is False
    with session_scope() as s:  # due an hour ago, and no worker started anything
        make_delivery(s, make_account(s), utcnow() - timedelta(hours=1))
    silent = cli("doctor")
    assert silent.returncode == 1 and "NOT READY" in silent.stdout
    assert "no beat holds the lock" in silent.stdout and "no attempt started since" in silent.stdout


def test_adding_an_account_is_audited_without_its_credentials(cli: Callable[..., Ran]) -> None:
    standin = standin_class("mastodon")().start()
    try:
        creds = standin.add_account("newsdesk")
        added = ok(cli, "accounts", "add", "mastodon", "newsdesk", "--base-url", standin.url, "--tag", "en",
                   "--credentials-file", "-", stdin=json.dumps(creds))
    finally:
        standin.stop()
    (entry,) = ok(cli, "audit", "--object", "account")
    assert (entry["action"], entry["object_id"]) == ("account.add", str(added[0]["id"]))
    assert entry["change"]["verified"] is True
    assert all(secret not in json.dumps(entry) for secret in creds.values())


def test_serve_on_a_port_in_use_says_so(cli: Callable[..., Ran]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        answer = cli("serve", "--port", str(busy.getsockname()[1]))
    assert answer.returncode == 2 and "port: cannot serve the API on 127.0.0.1:" in answer.stderr
