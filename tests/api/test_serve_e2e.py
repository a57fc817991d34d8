"""End to end over HTTP: `crosspost run` serves the API from the worker's process; a story queued
through it is published once by the real worker (an Idempotency-Key retry adds nothing); a story under
an approval policy is not claimed until an approver approves it over HTTP, then it is published."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapters.base import Credentials
from adapters.standins import StandIn, standin_class
from scheduler.core.db import session_scope
from scheduler.core.models import utcnow
from scheduler.desk import approval, tokens, users, webhooks
from scheduler.desk.access import Actor, Scope
from scheduler.matrix import accounts
from tests.conftest import Env, free_port, wait_for, wait_for_api
from tests.test_desk_webhooks import Receiver, verified

pytestmark = pytest.mark.workers


@pytest.fixture
def mastodon() -> Iterator[StandIn]:
    standin = standin_class("mastodon")().start()
    yield standin
    standin.stop()


def _setup(standin: StandIn) -> tuple[str, str, str, str]:
    """Two accounts (one under an approval policy), an editor's and an approver's token."""
    cli, now = Actor.cli(), utcnow()
    with session_scope() as s:
        free = accounts.add(s, "mastodon", "free", Credentials(standin.add_account("free")),
                            base_url=standin.url, tags=["free"])
        held = accounts.add(s, "mastodon", "held", Credentials(standin.add_account("held")),
                            base_url=standin.url, tags=["held"])
        approval.add_policy(s, cli, Scope("tag", "held"), now)
        editor = users.add(s, cli, "ed", now, roles=[users.parse_role(s, "editor")])
        approver = users.add(s, cli, "ap", now, roles=[users.parse_role(s, "approver")])
        return (free.label, held.label, tokens.create(s, cli, editor, "cms", now)[1],
                tokens.create(s, cli, approver, "phone", now)[1])


def test_queue_over_http_then_the_worker_publishes_once_and_approval_releases(
        sqlite_env: Env, mastodon: StandIn, tmp_path: Path) -> None:
    free, held, editor, approver = _setup(mastodon)
    receiver = Receiver()
    with session_scope() as s:
        _, secret = webhooks.create(s, Actor.cli(), receiver.url, utcnow(),
                                    ["approval.requested", "delivery.published"])
    port = free_port()
    proc = sqlite_env.spawn("run", "--concurrency", "2", "--port", str(port), log=tmp_path / "run.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_api(base, "the API of `crosspost run`")
        as_editor = {"Authorization": f"Bearer {editor}", "Idempotency-Key": "article-1"}
        first = httpx.post(f"{base}/stories", json={"text": "free news", "to": [free]}, headers=as_editor)
        again = httpx.post(f"{base}/stories", json={"text": "free news", "to": [free]}, headers=as_editor)
        assert (first.status_code, again.status_code) == (201, 200), first.text
        waiting = httpx.post(f"{base}/stories", json={"text": "held news", "to": [held]},
                             headers={"Authorization": f"Bearer {editor}"}).json()
        assert waiting["states"] == {"awaiting_approval": 1}

        def published(story: int) -> bool:
            rows = httpx.get(f"{base}/deliveries", params={"story": story},
                             headers={"Authorization": f"Bearer {approver}"}).json()["items"]
            return [r["state"] for r in rows] == ["published"]

        wait_for(lambda: published(first.json()["id"]), 60, what="the free story published")
        # The beat has claimed due work at least once since: the held story is still held.
        held_now = httpx.get(f"{base}/stories/{waiting['id']}",
                             headers={"Authorization": f"Bearer {editor}"})
        assert held_now.json()["states"] == {"awaiting_approval": 1}
        assert [(p.data["account"], p.data["text"]) for p in mastodon.posts()] == [("free", "free news")]
        decided = httpx.post(f"{base}/stories/{waiting['id']}/approve", json={"now": True},
                             headers={"Authorization": f"Bearer {approver}"})
        assert decided.status_code == 200, decided.text
        wait_for(lambda: published(waiting["id"]), 60, what="the approved story published")
        assert [(p.data["account"], p.data["text"]) for p in mastodon.posts()] == [
            ("free", "free news"), ("held", "held news")]
        assert mastodon.duplicates() == 0
        # The beat's notifier and a worker's task told the hook, each POST signed with its secret.
        def told() -> list[tuple[str, int]]:
            events = [verified(secret, r) for r in receiver.received]
            return sorted((e["kind"], e.get("story", 0)) for e in events)

        expected = sorted([("approval.requested", waiting["id"]), ("delivery.published", first.json()["id"]),
                           ("delivery.published", waiting["id"])])
        wait_for(lambda: told() == expected, 60, what=f"the webhook told {expected}")
        log = (tmp_path / "run.log").read_text(errors="replace")
        assert "Uvicorn running" in log or "Application startup complete" in log
        assert editor not in log and approver not in log  # tokens never reach the log
    except AssertionError:
        raise AssertionError((tmp_path / "run.log").read_text(errors="replace")[-3000:]) from None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        receiver.server.shutdown()


def test_serve_answers_over_http_until_stopped(sqlite_env: Env, tmp_path: Path) -> None:
    port = free_port()
    proc = sqlite_env.spawn("serve", "--port", str(port), log=tmp_path / "serve.log")
    try:
        wait_for(lambda: proc.poll() is not None or _answers(f"http://127.0.0.1:{port}/openapi.json"), 60,
                 what="crosspost serve")
        schema = httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()
        assert "/stories" in schema["paths"] and schema["info"]["title"] == "crosspost"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) is not None


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_run_keeps_working_when_the_default_port_is_taken(sqlite_env: Env, tmp_path: Path) -> None:
    """Port 8000 taken (by this test, or by whatever already holds it): `run` warns and the worker
    still starts; only an explicit --port that cannot be had stops it."""
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 8000))
        holder.listen()
    except OSError:
        pass  # someone else holds it: the same case
    log = tmp_path / "run.log"
    proc = sqlite_env.spawn("run", "--concurrency", "1", log=log)
    try:
        wait_for(lambda: " ready." in log.read_text(errors="replace") or proc.poll() is not None, 60,
                 what="the worker ready")
        text = log.read_text(errors="replace")
        assert proc.poll() is None, text[-2000:]
        assert "warning: port: cannot serve the API on 127.0.0.1:8000" in text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        holder.close()
