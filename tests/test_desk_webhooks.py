"""Webhooks against a real local receiver: events recorded once, each POST signed (HMAC-SHA256 over
timestamp and body) and verifiable with the secret shown at creation, retried with backoff after a
failure, every try in the hook's log; delivery outcomes and a silent worker found by the scan."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from scheduler.core.db import session_scope
from scheduler.core.models import Attempt, utcnow
from scheduler.desk import approval, stories, webhooks
from scheduler.desk.access import Actor, Scope
from scheduler.stories import drafts
from tests.factories import make_account, make_delivery

pytestmark = pytest.mark.usefixtures("db_env")


class Receiver:
    """A local HTTP endpoint that keeps what it receives and answers the statuses it is told to."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answers: list[int] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append({"headers": dict(self.headers), "body": body})
                self.send_response(outer.answers.pop(0) if outer.answers else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()


def hook(url: str, *kinds: str) -> tuple[int, str]:
    with session_scope() as s:
        made, secret = webhooks.create(s, Actor.cli(), url, utcnow(), list(kinds))
        return made.id, secret


def run_notifier(now: Any) -> list[str]:
    """What the beat's notifier and the workers do, in this process: one tick, then each send."""
    claimed: list[int] = []
    webhooks.tick(claimed.append, now)
    return [webhooks.send(i, now) for i in claimed]


def verified(secret: str, request: dict[str, Any]) -> dict[str, Any]:
    stamp, mac = (part.split("=", 1)[1] for part in request["headers"]["X-Crosspost-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + request["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected)
    return json.loads(request["body"])


def test_an_approval_request_reaches_the_hook_signed(receiver: Receiver) -> None:
    _, secret = hook(receiver.url, "approval.requested")
    with session_scope() as s:
        label = make_account(s, tags=["en"]).label
        approval.add_policy(s, Actor.cli(), Scope("tag", "en"), utcnow())
    author = Actor(name="writer", via="test", roles=Actor.cli().roles)
    with session_scope() as s:
        story = stories.queue(s, author, drafts.Draft(text="needs a look", targets=[label]), utcnow()).id
    assert run_notifier(utcnow()) == ["sent"]
    assert run_notifier(utcnow()) == []  # recorded once, sent once
    (request,) = receiver.received
    event = verified(secret, request)
    assert (event["kind"], event["story"], event["author"]) == ("approval.requested", story, "writer")
    assert request["headers"]["X-Crosspost-Event"] == "approval.requested"
    with pytest.raises(AssertionError):
        verified("whsec_not-the-secret", request)


def test_a_failed_send_is_retried_later_and_logged(receiver: Receiver) -> None:
    hook_id, _ = hook(receiver.url)
    receiver.answers = [500]
    now = utcnow()
    with session_scope() as s:  # a worker's outcome: the delivery's state and its attempt's row
        delivery = make_delivery(s, make_account(s), now, state="published")
        s.add(Attempt(delivery_id=delivery.id, number=1, started_at=now, ended_at=now, outcome="published"))
    assert run_notifier(now) == ["pending"]
    assert run_notifier(now + timedelta(seconds=1)) == []  # not before its backoff
    with session_scope() as s:
        (entry,) = webhooks.log(s, Actor.cli(), hook_id)
    assert (entry["state"], entry["tries"], entry["last_status"]) == ("pending", 1, 500)
    assert run_notifier(now + timedelta(seconds=webhooks.BACKOFF_BASE + 1)) == ["sent"]
    with session_scope() as s:
        (entry,) = webhooks.log(s, Actor.cli(), hook_id)
    assert (entry["kind"], entry["state"], entry["tries"]) == ("delivery.published", "sent", 2)
    assert [json.loads(r["body"])["delivery"] for r in receiver.received] == [delivery.id] * 2


def test_a_silent_worker_is_told_once_an_hour(receiver: Receiver) -> None:
    hook(receiver.url, "worker.silent")
    now = utcnow().replace(minute=5)  # within one hour whatever the clock says
    with session_scope() as s:
        make_delivery(s, make_account(s), now - timedelta(hours=1))  # due an hour ago, nothing started
    assert run_notifier(now) == ["sent"]
    assert run_notifier(now + timedelta(minutes=1)) == []
    assert json.loads(receiver.received[0]["body"])["kind"] == "worker.silent"


def test_only_outcomes_after_the_first_hook_are_told(receiver: Receiver) -> None:
    now = utcnow()
    with session_scope() as s:
        old = make_delivery(s, make_account(s), now, state="published")
        s.add(Attempt(delivery_id=old.id, number=1, started_at=now, ended_at=now, outcome="published"))
    hook(receiver.url, "delivery.published")
    with session_scope() as s:
        new = make_delivery(s, make_account(s), now, state="published")
        s.add(Attempt(delivery_id=new.id, number=1, started_at=now, ended_at=now, outcome="published"))
    assert run_notifier(now) == ["sent"]
    assert [json.loads(r["body"])["delivery"] for r in receiver.received] == [new.id]
