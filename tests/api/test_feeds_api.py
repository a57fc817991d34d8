"""/feeds and /feed-items over HTTP, against a real feed server on 127.0.0.1 and real SQLite and
PostgreSQL: an editor adds, polls, lists and promotes; a viewer and an editor of another desk are
refused; bad settings come back as problem details naming the field; /metrics shows a silent feed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from config.settings import reset_settings
from scheduler.core.db import session_scope
from scheduler.core.models import Delivery, Story, utcnow
from scheduler.desk.access import Actor
from scheduler.desk.models import AuditEntry
from scheduler.feeds import desk as feeds
from scheduler.feeds.models import Feed, FeedItem
from tests.api.conftest import Desk
from tests.feed_server import THREE, XML, FeedServer, rss, serving

PROBLEM = "application/problem+json"


@pytest.fixture
def srv(monkeypatch: pytest.MonkeyPatch) -> Iterator[FeedServer]:
    # The test server is on loopback: the same opt-in media and feeds need for a private address.
    monkeypatch.setenv("CROSSPOST_MEDIA_ALLOW_PRIVATE", "true")
    reset_settings()
    with serving() as server:
        yield server
    reset_settings()


def cli_feed(url: str, tag: str) -> tuple[int, int]:
    """A feed aimed at ``tag`` added at the CLI (an admin everywhere), with one draft item."""
    now = utcnow()
    with session_scope() as s:
        feed = feeds.add(s, Actor.cli(), url, [tag], now)
        item = FeedItem(feed_id=feed.id, guid="x", guid_key=f"x{feed.id}", title="A draft", status="draft",
                        created_at=now)
        s.add(item)
        s.flush()
        return feed.id, item.id


def audited(object_type: str) -> list[tuple[str, str]]:
    with session_scope() as s:
        return [(e.action, e.actor) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.object_type == object_type).order_by(AuditEntry.id))]


def refused(answer: Any) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)


def test_an_editor_adds_polls_lists_and_promotes(any_desk: Desk, srv: FeedServer) -> None:
    desk, editor = any_desk, any_desk.as_("editor")
    srv.routes["/rss"] = (200, XML, rss(THREE))
    added = desk.client.post("/feeds", json={"url": srv.url("/rss"), "to": ["en"], "every": "5m",
                                             "utm": {"utm_campaign": "home"}}, headers=editor)
    assert added.status_code == 201, added.text
    feed = added.json()
    assert (feed["mode"], feed["every_seconds"], feed["targets"]) == ("draft", 300, ["en"])

    polled = desk.client.post(f"/feeds/{feed['id']}/poll", headers=editor)
    assert polled.status_code == 200, polled.text
    assert (polled.json()["outcome"], polled.json()["new"], polled.json()["drafts"]) == ("fetched", 3, 3)
    assert srv.hits("/rss") == 1
    again = desk.client.post(f"/feeds/{feed['id']}/poll", headers=editor).json()
    assert (again["outcome"], again["new"]) == ("fetched", 0)  # nothing new the second time

    (listed,) = desk.client.get("/feeds", headers=desk.as_("viewer")).json()
    assert (listed["id"], listed["item_count"], listed["error_count"], listed["silent"]) == \
        (feed["id"], 3, 0, False)

    page = desk.client.get("/feed-items", params={"feed": feed["id"], "limit": 2}, headers=editor).json()
    assert [i["status"] for i in page["items"]] == ["draft", "draft"] and page["next_cursor"]
    rest = desk.client.get("/feed-items", params={"feed": feed["id"], "cursor": page["next_cursor"]},
                           headers=editor).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    first = page["items"][0]

    promoted = desk.client.post(f"/feed-items/{first['id']}/promote", headers=editor)
    assert promoted.status_code == 200, promoted.text
    with session_scope() as s:
        story = s.get(Story, promoted.json()["story"])
        assert story is not None and "utm_campaign=home" in story.variants["mastodon"]
        assert [d.account_id for d in s.scalars(select(Delivery).where(Delivery.story_id == story.id))] \
            == [desk.en_id]
    assert desk.client.post(f"/feed-items/{first['id']}/promote", headers=editor).status_code == 422

    shown = desk.client.get(f"/feeds/{feed['id']}", headers=editor).json()
    assert len(shown["waiting"]) == 2
    assert desk.client.post(f"/feeds/{feed['id']}/pause", headers=editor).json()["status"] == "paused"
    edited = desk.client.patch(f"/feeds/{feed['id']}", json={"mode": "approve"}, headers=editor).json()
    assert (edited["mode"], edited["status"]) == ("approve", "paused")
    assert audited("feed") == [(a, "editor") for a in ("feed.add", "feed.poll", "feed.poll", "feed.pause",
                                                       "feed.edit")]
    assert audited("feed_item") == [("feed_item.promote", "editor")]


def test_a_viewer_reads_and_is_refused_every_change(desk: Desk, srv: FeedServer) -> None:
    en_feed, en_item = cli_feed(srv.url("/en"), "en")
    fr_feed, _ = cli_feed(srv.url("/fr"), "fr")
    viewer = desk.as_("viewer")
    assert [f["id"] for f in desk.client.get("/feeds", headers=viewer).json()] == [en_feed]
    assert [i["id"] for i in desk.client.get("/feed-items", headers=viewer).json()["items"]] == [en_item]
    assert desk.client.get(f"/feeds/{en_feed}", headers=viewer).status_code == 200
    refused(desk.client.get(f"/feeds/{fr_feed}", headers=viewer))
    refused(desk.client.post("/feeds", json={"url": srv.url("/new"), "to": ["en"]}, headers=viewer))
    refused(desk.client.post(f"/feeds/{en_feed}/poll", headers=viewer))
    refused(desk.client.post(f"/feeds/{en_feed}/pause", headers=viewer))
    refused(desk.client.post(f"/feed-items/{en_item}/promote", headers=viewer))
    assert srv.seen == []  # nothing was fetched for a refused poll
    assert desk.client.get("/feeds", headers={}).status_code == 401


def test_an_editor_of_another_desk_is_refused(desk: Desk, srv: FeedServer) -> None:
    fr_feed, fr_item = cli_feed(srv.url("/fr"), "fr")
    en_feed, _ = cli_feed(srv.url("/en"), "en")
    editor = desk.as_("editor")
    refused(desk.client.post("/feeds", json={"url": srv.url("/new"), "to": ["fr"]}, headers=editor))
    refused(desk.client.post("/feeds", json={"url": srv.url("/new"), "to": ["en", desk.fr]}, headers=editor))
    refused(desk.client.patch(f"/feeds/{fr_feed}", json={"mode": "auto"}, headers=editor))
    refused(desk.client.patch(f"/feeds/{en_feed}", json={"to": ["fr"]}, headers=editor))  # no moving it
    refused(desk.client.post(f"/feeds/{fr_feed}/poll", headers=editor))
    refused(desk.client.post(f"/feed-items/{fr_item}/promote", headers=editor))
    refused(desk.client.delete(f"/feeds/{en_feed}", headers=editor))  # removing is an admin's
    assert desk.client.get("/feed-items", headers=editor).json()["items"] != []
    assert fr_item not in [i["id"] for i in desk.client.get("/feed-items", headers=editor).json()["items"]]
    with session_scope() as s:
        fr, en = s.get(Feed, fr_feed), s.get(Feed, en_feed)
        assert fr is not None and en is not None
        assert (fr.mode, en.targets, en.status) == ("draft", ["en"], "active")
        assert s.scalars(select(Feed).where(Feed.url == srv.url("/new"))).first() is None
    assert srv.seen == []
    removed = desk.client.delete(f"/feeds/{en_feed}", headers=desk.as_("admin"))
    assert removed.status_code == 200 and removed.json()["status"] == "removed"
    assert desk.client.get(f"/feeds/{en_feed}", headers=desk.as_("admin")).status_code == 404


@pytest.mark.parametrize("body, field, words", [
    ({"url": "ftp://x.example/rss"}, "url", "is not an http(s) URL"),
    ({"every": "10s"}, "every", "is outside 60 s to 7 days"),
    ({"every": "soon"}, "every", "is not a duration"),
    ({"mode": "yolo"}, "mode", "is not one of draft, approve, auto"),
    ({"to": ["nobody"]}, "to", "no account has tag 'nobody'"),
])
def test_bad_settings_are_problem_details_naming_the_field(desk: Desk, body: dict[str, Any], field: str,
                                                           words: str) -> None:
    answer = desk.client.post("/feeds", json={"url": "http://x.example/rss", "to": ["en"], **body},
                              headers=desk.as_("editor"))
    assert answer.status_code == 422 and answer.headers["content-type"].startswith(PROBLEM)
    problem = answer.json()
    assert problem["status"] == 422 and problem["errors"][0]["field"] == field
    assert words in problem["errors"][0]["detail"]
    with session_scope() as s:
        assert s.scalars(select(Feed)).first() is None


def test_metrics_show_a_silent_feed_and_each_feeds_errors(desk: Desk, srv: FeedServer) -> None:
    quiet, _ = cli_feed(srv.url("/quiet"), "en")
    failing, _ = cli_feed(srv.url("/failing"), "en")
    now = utcnow()
    with session_scope() as s:
        # New items every hour until ten hours ago: silent for well over three usual gaps.
        for n in range(5):
            s.add(FeedItem(feed_id=quiet, guid=f"q{n}", guid_key=f"q{n}", title="old", status="queued",
                           created_at=now - timedelta(hours=14 - n)))
        feed = s.get(Feed, quiet)
        assert feed is not None
        feed.last_new_at = now - timedelta(hours=10)
    srv.routes["/failing"] = (500, {}, b"down")
    polled = desk.client.post(f"/feeds/{failing}/poll", headers=desk.as_("editor")).json()
    assert polled["outcome"] == "error"

    text = desk.client.get("/metrics").text
    assert "crosspost_feeds_silent 1.0" in text
    assert f'crosspost_feed_silent{{feed="{quiet}"}} 1.0' in text
    assert f'crosspost_feed_silent{{feed="{failing}"}} 0.0' in text
    assert f'crosspost_feed_errors{{feed="{failing}"}} 1.0' in text
    assert f'crosspost_feed_errors{{feed="{quiet}"}} 0.0' in text
    assert f'crosspost_feed_errors_in_row{{feed="{failing}"}} 1.0' in text
    listed = {f["id"]: f["silent"] for f in desk.client.get("/feeds", headers=desk.as_("viewer")).json()}
    assert listed == {quiet: True, failing: False}
    with session_scope() as s:
        assert [row["id"] for row in feeds.silent(s, Actor.cli(), now)] == [quiet]
