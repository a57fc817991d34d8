"""E-mail notifications against a real SMTP server started here (aiosmtpd): a user gets the kinds they
chose, about their desk's accounts only, and their desk's daily digest; a server that refuses is
retried like a webhook."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from scheduler.core.db import session_scope
from scheduler.core.models import Attempt, utcnow
from scheduler.desk import approval, stories, users, webhooks
from scheduler.desk.access import Actor, Scope
from scheduler.stories import drafts
from tests.conftest import Env, free_port
from tests.factories import make_account, make_delivery

# The mail path has nothing database-specific (the claim is tested on both in test_desk_webhooks).
pytestmark = [pytest.mark.usefixtures("db_env"), pytest.mark.parametrize("db_env", ["sqlite"], indirect=True)]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refuse = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            self.refuse -= 1
            return "451 try again later"
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def inbox(db_env: Env) -> Iterator[Inbox]:
    found = Inbox()
    port = free_port()
    server = Controller(found, hostname="127.0.0.1", port=port)
    server.start()
    db_env.set(smtp_url=f"smtp://127.0.0.1:{port}", mail_from="desk@crosspost.test")
    yield found
    server.stop()


def person(name: str, role: str, **notifications: Any) -> None:
    with session_scope() as s:
        users.add(s, Actor.cli(), name, utcnow(), roles=[users.parse_role(s, role)], **notifications)


def run_notifier(now: datetime) -> list[str]:
    claimed: list[int] = []
    webhooks.tick(claimed.append, now)
    return [webhooks.send(i, now) for i in claimed]


def test_an_approval_request_is_mailed_to_the_desk_that_chose_it(inbox: Inbox) -> None:
    with session_scope() as s:
        en = make_account(s, tags=["en"]).label
        approval.add_policy(s, Actor.cli(), Scope("tag", "en"), utcnow())
    person("en-desk", "approver@tag:en", email="en@example.org", notify=["approval.requested"])
    person("fr-desk", "approver@tag:fr", email="fr@example.org", notify=["approval.requested"])
    person("quiet", "approver", email="quiet@example.org", notify=["worker.silent"])
    with session_scope() as s:
        stories.queue(s, Actor(name="writer", via="test", roles=Actor.cli().roles),
                      drafts.Draft(text="Tonight: the vote", targets=[en]), utcnow())
    assert run_notifier(utcnow()) == ["sent"]
    (message,) = inbox.messages
    assert (message["To"], message["From"]) == ("en@example.org", "desk@crosspost.test")
    assert message["Subject"] == "crosspost: approval requested"
    assert "Tonight: the vote" in message.get_payload()


def test_the_daily_digest_counts_the_desk_and_a_refusal_is_retried(inbox: Inbox) -> None:
    morning = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    with session_scope() as s:
        mine, other = make_account(s, tags=["en"]), make_account(s, tags=["fr"])
        make_delivery(s, mine, morning - timedelta(hours=2), state="published")
        make_delivery(s, other, morning - timedelta(hours=2), state="failed")
    person("en-desk", "viewer@tag:en", email="en@example.org", digest=True)
    inbox.refuse = 1
    assert run_notifier(morning) == ["pending"]
    assert run_notifier(morning + timedelta(seconds=webhooks.BACKOFF_BASE + 1)) == ["sent"]
    assert run_notifier(morning + timedelta(hours=3)) == []  # once a day
    (message,) = inbox.messages
    assert message["Subject"] == "crosspost: your daily digest"
    assert "published: 1" in message.get_payload() and "failed" not in message.get_payload()


def test_an_outcome_is_mailed_only_to_who_chose_its_kind(inbox: Inbox) -> None:
    now = utcnow().replace(hour=1)  # before the digest hour
    person("failures-only", "viewer", email="failures@example.org", notify=["delivery.failed"])
    person("everything", "viewer", email="all@example.org", notify=["delivery.published", "delivery.failed"])
    assert run_notifier(now) == []  # the notifier's first scan: outcomes from here on are told
    with session_scope() as s:
        delivery = make_delivery(s, make_account(s), now, state="published")
        s.add(Attempt(delivery_id=delivery.id, number=1, started_at=now, ended_at=now, outcome="published"))
    assert run_notifier(now) == ["sent"]
    assert [m["To"] for m in inbox.messages] == ["all@example.org"]
    assert inbox.messages[0]["Subject"] == "crosspost: delivery published"
