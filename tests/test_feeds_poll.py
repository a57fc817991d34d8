"""Polling feeds from a real HTTP server on 127.0.0.1 into real SQLite and PostgreSQL: new items only,
conditional GETs, redirects, errors and backoff, limits, dedupe across feeds, the three modes with
language routing, Open Graph images, and two pollers at once."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import urllib3
from PIL import Image
from sqlalchemy import func, select

from config.settings import Settings, reset_settings
from scheduler.core.db import session_scope
from scheduler.core.errors import UserError
from scheduler.core.models import Delivery, Story
from scheduler.feeds import inbox, making, polling, registry
from scheduler.feeds.models import Feed, FeedItem
from scheduler.stories import fetching
from tests.conftest import Env
from tests.factories import make_account
from tests.feed_server import THREE, UNSAID_LENGTH, XML, FeedServer, rss, serving

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def srv() -> Iterator[FeedServer]:
    with serving() as server:
        yield server


@pytest.fixture
def env(db_env: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    # The test server is on loopback: the same opt-in media URLs need.
    monkeypatch.setenv("CROSSPOST_MEDIA_ALLOW_PRIVATE", "true")
    reset_settings()
    return db_env


@pytest.fixture
def http_env(sqlite_env: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    """For what is about HTTP, not the database: SQLite only (the database side runs on both)."""
    monkeypatch.setenv("CROSSPOST_MEDIA_ALLOW_PRIVATE", "true")
    reset_settings()
    return sqlite_env


def accounts(*specs: tuple[str, str | None, bool]) -> list[int]:
    """Accounts tagged "news": (platform, language, has a schedule)."""
    ids = []
    with session_scope() as s:
        for platform, language, scheduled in specs:
            account = make_account(s, platform, tags=["news"])
            account.language = language
            account.schedule = ["0 * * * *"] if scheduled else []
            ids.append(account.id)
    return ids


def add_feed(url: str, mode: str = "draft", **kw: object) -> int:
    with session_scope() as s:
        return registry.add(s, url, ["news"], T0, mode=mode, **kw).id  # type: ignore[arg-type]


def feed_row(feed_id: int) -> Feed:
    with session_scope() as s:
        feed = s.get(Feed, feed_id)
        assert feed is not None
        return feed


def count(model: type) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


# -- polling --------------------------------------------------------------------------------------
def test_new_items_become_drafts_once(env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    srv.routes["/rss"] = (200, XML, rss(THREE))
    feed_id = add_feed(srv.url("/rss"))
    first = polling.poll_feed(feed_id, T0)
    assert (first.outcome, first.new, first.drafts, first.stories) == ("fetched", 3, 3, 0)
    second = polling.poll_feed(feed_id, T0 + timedelta(minutes=15))
    assert (second.outcome, second.new) == ("fetched", 0)
    feed = feed_row(feed_id)
    assert (feed.item_count, feed.fetch_count, feed.last_new_at) == (3, 2, T0)
    assert count(FeedItem) == 3 and count(Story) == 0
    with session_scope() as s:
        # A feed lists the newest first; items are stored oldest first, the inbox shows the newest first.
        assert [i.title for i in inbox.items(s)] == ["Story number 1", "Story number 2", "Story number 3"]


def test_a_feed_is_polled_only_when_due(env: Env, srv: FeedServer) -> None:
    srv.routes["/rss"] = (200, XML, rss(THREE[:1]))
    accounts(("mastodon", None, False))
    feed_id = add_feed(srv.url("/rss"), every="10m")
    assert polling.poll_feed(feed_id, T0).outcome == "fetched"
    assert polling.poll_feed(feed_id, T0 + timedelta(minutes=9)).outcome == "skipped"
    assert polling.poll_feed(feed_id, T0 + timedelta(minutes=10)).outcome == "fetched"
    assert srv.hits("/rss") == 2


def test_etag_and_last_modified_give_a_304(http_env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    stamp = "Mon, 30 Nov 2026 10:00:00 GMT"

    def answer(headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if headers.get("if-none-match") == '"v1"' and headers.get("if-modified-since") == stamp:
            return 304, {"ETag": '"v1"'}, b""
        return 200, {**XML, "ETag": '"v1"', "Last-Modified": stamp}, rss(THREE)

    srv.routes["/rss"] = answer
    feed_id = add_feed(srv.url("/rss"))
    assert polling.poll_feed(feed_id, T0).new == 3
    again = polling.poll_feed(feed_id, T0, force=True)
    assert again.outcome == "not_modified" and again.new == 0
    feed = feed_row(feed_id)
    assert feed.etag == '"v1"' and feed.last_modified == stamp and feed.errors_in_row == 0


def test_a_permanent_redirect_is_remembered_and_a_temporary_one_is_not(http_env: Env,
                                                                       srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    srv.routes["/new"] = (200, XML, rss(THREE))
    srv.routes["/old"] = (301, {"Location": "/new"}, b"")
    srv.routes["/tmp"] = (302, {"Location": "/new"}, b"")
    moved, temporary = add_feed(srv.url("/old")), add_feed(srv.url("/tmp"))
    polling.poll_feed(moved, T0)
    polling.poll_feed(temporary, T0)
    assert feed_row(moved).url == srv.url("/new") and feed_row(moved).added_url == srv.url("/old")
    assert feed_row(temporary).url == srv.url("/tmp")
    polling.poll_feed(moved, T0, force=True)
    assert srv.hits("/old") == 1 and srv.hits("/new") == 3  # the third poll went straight to /new


def test_errors_back_off_and_a_good_fetch_resets_them(env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    srv.routes["/rss"] = (500, {}, b"oops")
    feed_id = add_feed(srv.url("/rss"), every="5m")
    first = polling.poll_feed(feed_id, T0)
    assert first.outcome == "error" and "answered 500" in (first.error or "")
    assert feed_row(feed_id).next_poll_at == T0 + timedelta(minutes=10)
    second = polling.poll_feed(feed_id, T0 + timedelta(minutes=10))
    assert second.outcome == "error"
    feed = feed_row(feed_id)
    assert feed.next_poll_at == T0 + timedelta(minutes=30) and feed.errors_in_row == 2
    srv.routes["/rss"] = (200, XML, b"<html>not a feed</html>")
    polling.poll_feed(feed_id, T0 + timedelta(minutes=30))
    assert feed_row(feed_id).errors_in_row == 3  # a page that is no feed is an error too
    srv.routes["/rss"] = (200, XML, rss(THREE))
    polling.poll_feed(feed_id, T0 + timedelta(hours=2))
    feed = feed_row(feed_id)
    assert (feed.errors_in_row, feed.error_count, feed.last_error) == (0, 3, None)
    assert feed.next_poll_at == T0 + timedelta(hours=2, minutes=5)


@pytest.mark.parametrize("said", [True, False], ids=["content-length", "no-length"])
def test_a_20_mb_feed_is_refused(http_env: Env, srv: FeedServer, said: bool) -> None:
    """Refused from its Content-Length, or (without one) once the cap is passed while reading."""
    accounts(("mastodon", None, False))
    headers = XML if said else {**XML, UNSAID_LENGTH: "1"}
    srv.routes["/big"] = (200, headers, rss(THREE) + b" " * (20 * 1024 * 1024))
    feed_id = add_feed(srv.url("/big"))
    result = polling.poll_feed(feed_id, T0)
    assert result.outcome == "error" and f"larger than {polling.FEED_MAX_BYTES} bytes" in (result.error or "")
    assert count(FeedItem) == 0


def test_a_feed_on_a_private_address_needs_the_opt_in(sqlite_env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    srv.routes["/rss"] = (200, XML, rss(THREE))
    feed_id = add_feed(srv.url("/rss"))
    result = polling.poll_feed(feed_id, T0)
    assert "non-public address (127.0.0.1)" in (result.error or "")
    assert srv.seen == []  # refused before connecting


def test_relative_links_and_an_encoding_declared_only_in_http(http_env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    body = ('<rss version="2.0"><channel><item><guid>b1</guid><link>/zh/1</link>'
            "<title>行政院會議通過臺灣高鐵延伸計畫</title></item></channel></rss>").encode("big5")
    srv.routes["/big5"] = (200, {"Content-Type": "text/xml; charset=big5"}, body)
    polling.poll_feed(add_feed(srv.url("/big5")), T0)
    with session_scope() as s:
        item = s.scalars(select(FeedItem)).one()
        assert item.title == "行政院會議通過臺灣高鐵延伸計畫" and item.link == srv.url("/zh/1")


# -- dedupe ---------------------------------------------------------------------------------------
def test_one_article_in_two_feeds_becomes_one_story(env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    srv.routes["/en"] = (200, XML, rss([("en-1", "https://news.example.com/a?utm_source=rss", "Bridge")]))
    srv.routes["/zh"] = (200, XML, rss([("zh-9", "http://NEWS.example.com/a/", "Bridge again")]))
    first, second = add_feed(srv.url("/en"), mode="auto"), add_feed(srv.url("/zh"), mode="auto")
    assert polling.poll_feed(first, T0).stories == 1
    assert polling.poll_feed(second, T0).new == 0
    assert count(Story) == 1 and count(FeedItem) == 1


def test_duplicate_guids_and_a_link_that_flips_make_one_item(env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    srv.routes["/rss"] = (200, XML, rss([("same", "https://news.example.com/x", "One"),
                                         ("same", "https://news.example.com/x", "One again")]))
    feed_id = add_feed(srv.url("/rss"))
    assert polling.poll_feed(feed_id, T0).new == 1
    srv.routes["/rss"] = (200, XML, rss([("same", "https://news.example.com/x-amp", "One")]))
    assert polling.poll_feed(feed_id, T0, force=True).new == 0
    srv.routes["/rss"] = (200, XML, rss([("same", "https://news.example.com/x", "One")]))
    assert polling.poll_feed(feed_id, T0, force=True).new == 0
    assert count(FeedItem) == 1


def _at_once(feed_id: int, force: bool) -> list[polling.PollResult]:
    results: list[polling.PollResult] = []
    threads = [threading.Thread(target=lambda: results.append(polling.poll_feed(feed_id, T0, force=force)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2
    return results


def _slow(_: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    time.sleep(0.3)  # both pollers hold the document before either stores anything
    return 200, XML, rss(THREE)


def test_two_pollers_at_once_create_each_story_once(env: Env, srv: FeedServer) -> None:
    """Forced, both fetch (the claim is bypassed): the items' unique keys are what keeps it once."""
    accounts(("mastodon", None, False))
    srv.routes["/rss"] = _slow
    results = _at_once(add_feed(srv.url("/rss"), mode="auto"), force=True)
    assert srv.hits("/rss") == 2
    assert sum(r.stories for r in results) == 3
    assert count(Story) == 3 and count(FeedItem) == 3


def test_of_two_pollers_of_a_due_feed_one_fetches(env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    srv.routes["/rss"] = _slow
    results = _at_once(add_feed(srv.url("/rss"), mode="auto"), force=False)
    assert sorted(r.outcome for r in results) == ["fetched", "skipped"]
    assert srv.hits("/rss") == 1 and count(Story) == 3


# -- modes ----------------------------------------------------------------------------------------
def test_auto_routes_by_language_to_each_accounts_next_slot(env: Env, srv: FeedServer) -> None:
    en_masto, zh_masto, zh_bsky, _ = accounts(("mastodon", "en", True), ("mastodon", "zh-Hans", True),
                                             ("bluesky", "zh", True), ("mastodon", "fr", True))
    srv.routes["/zh"] = (200, XML, rss(THREE[:1], language="zh-CN"))
    feed_id = add_feed(srv.url("/zh"), mode="auto", utm={"utm_campaign": "cn-site"})
    assert polling.poll_feed(feed_id, T0).stories == 1
    with session_scope() as s:
        story = s.scalars(select(Story)).one()
        deliveries = list(s.scalars(select(Delivery).order_by(Delivery.account_id)))
        assert [d.account_id for d in deliveries] == [zh_masto, zh_bsky]
        assert all(d.slot_at is not None and d.slot_at > T0 for d in deliveries)
        assert story.language == "zh-CN" and en_masto not in [d.account_id for d in deliveries]
        assert "utm_source=mastodon&utm_medium=social&utm_campaign=cn-site" in story.variants["mastodon"]
        assert "utm_source=bluesky" in story.variants["bluesky"]
        # Each account's own text names it, so the centre can tell what each account brings back.
        for d in deliveries:
            assert d.text is not None and f"utm_content={quote(d.account.handle)}" in d.text
        assert "#CityNews" in story.variants["mastodon"]
        item = s.scalars(select(FeedItem)).one()
        assert (item.status, item.story_id) == ("queued", story.id)


def test_approve_mode_waits_for_approval(env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    srv.routes["/rss"] = (200, XML, rss(THREE[:1]))
    polling.poll_feed(add_feed(srv.url("/rss"), mode="approve"), T0)
    with session_scope() as s:
        assert [d.state for d in s.scalars(select(Delivery))] == ["awaiting_approval"]


def test_a_draft_is_promoted_once(env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    srv.routes["/rss"] = (200, XML, rss(THREE[:1]))
    polling.poll_feed(add_feed(srv.url("/rss")), T0)
    with session_scope() as s:
        (item,) = inbox.items(s)
        story = making.promote(s, item, T0)
        assert story.text.startswith("Story number 1") and item.status == "queued"
    with session_scope() as s, pytest.raises(UserError, match="only a draft or a rejected item"):
        making.promote(s, inbox.find_item(s, str(item.id)), T0)
    with session_scope() as s:
        assert inbox.items(s) == []
    assert count(Delivery) == 1


def test_an_item_no_account_can_take_waits_with_the_reason(env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", "en", False))
    srv.routes["/rss"] = (200, XML, rss(THREE[:1], language="zh"))
    result = polling.poll_feed(add_feed(srv.url("/rss"), mode="auto"), T0)
    assert (result.new, result.rejected, result.stories) == (1, 1, 0)
    with session_scope() as s:
        (item,) = inbox.items(s)
        assert item.status == "rejected" and "takes language 'zh'" in (item.error or "")


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(out, "PNG")
    return out.getvalue()


def test_the_articles_open_graph_image_is_fetched_once(env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False), ("bluesky", None, False))
    page = (b'<html><head><meta property="og:image" content="/img.png">'
            b'<meta property="og:image:alt" content="The bridge at dusk"></head></html>')
    srv.routes["/article"] = (200, {"Content-Type": "text/html; charset=utf-8"}, page)
    srv.routes["/img.png"] = (200, {"Content-Type": "image/png"}, png_bytes())
    srv.routes["/rss"] = (200, XML, rss([("a1", srv.url("/article"), "Bridge")]))
    template = "{{ title }}{% if image %} [{{ image.alt }}]{% endif %} {{ link }}"
    polling.poll_feed(add_feed(srv.url("/rss"), mode="auto", sources={"default": template}), T0)
    with session_scope() as s:
        story = s.scalars(select(Story)).one()
        assert [m["alt"] for m in story.media] == ["The bridge at dusk"]
        assert story.media[0]["width"] == 64
        assert story.variants["bluesky"].startswith("Bridge [The bridge at dusk] ")
    assert srv.hits("/article") == 1 and srv.hits("/img.png") == 1


def test_a_redirect_to_a_private_address_is_refused(sqlite_env: Env, srv: FeedServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the opt-in: a public host (played by the local server: the connect to the vetted public
    address is carried to it) redirects to loopback; the second hop is vetted and refused."""
    port = int(srv.base.rsplit(":", 1)[1])
    real = socket.getaddrinfo

    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "feeds.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr(urllib3.util.connection, "create_connection",
                        lambda address, *a, **k: socket.create_connection(("127.0.0.1", port), timeout=5))
    accounts(("mastodon", None, False))
    srv.routes["/rss"] = (302, {"Location": srv.url("/inside")}, b"")
    srv.routes["/inside"] = (200, XML, rss(THREE))
    result = polling.poll_feed(add_feed(f"http://feeds.test:{port}/rss"), T0)
    assert result.outcome == "error" and "non-public address (127.0.0.1)" in (result.error or "")
    assert srv.hits("/rss") == 1 and srv.hits("/inside") == 0


def test_the_tick_hands_out_only_due_active_feeds(env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    due, later, paused = (add_feed(srv.url(f"/{n}")) for n in ("a", "b", "c"))
    with session_scope() as s:
        s.get(Feed, later).next_poll_at = T0 + timedelta(minutes=1)  # type: ignore[union-attr]
        registry.set_status(s, s.get(Feed, paused), "paused", T0)  # type: ignore[arg-type]
    sent: list[int] = []
    assert polling.tick(sent.append, T0) == [due] and sent == [due]


def test_the_poll_task_polls_one_feed(http_env: Env, srv: FeedServer) -> None:
    from scheduler.tasks import poll_feed

    accounts(("mastodon", None, False))
    srv.routes["/rss"] = (200, XML, rss(THREE))
    feed_id = add_feed(srv.url("/rss"))
    assert poll_feed.run(feed_id) == "fetched"
    assert poll_feed.run(feed_id) == "skipped"  # not due again for its interval
    assert count(FeedItem) == 3


def test_a_feed_quiet_for_three_usual_gaps_is_flagged_silent(env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    srv.routes["/rss"] = (200, XML, rss(THREE))
    feed_id = add_feed(srv.url("/rss"))
    for hours, entries in enumerate([THREE[:1], THREE[:2], THREE]):
        srv.routes["/rss"] = (200, XML, rss(entries))
        polling.poll_feed(feed_id, T0 + timedelta(hours=hours), force=True)
    last = T0 + timedelta(hours=2)
    with session_scope() as s:
        feed = s.get(Feed, feed_id)
        assert feed is not None and feed.last_new_at == last
        assert registry.describe(s, feed, last + timedelta(hours=2))["silent"] is False
        assert registry.describe(s, feed, last + timedelta(hours=3, minutes=1))["silent"] is True


def test_a_feed_that_trickles_past_the_time_limit_is_cut_off(srv: FeedServer, tmp_path: Path) -> None:
    srv.routes["/slow"] = (200, XML, [b"<rss>" + b" " * 100] * 30)  # six seconds in all
    settings = Settings(data_dir=tmp_path, media_allow_private=True)
    with pytest.raises(UserError, match=r"took longer than 1 s"):
        fetching.fetch(srv.url("/slow"), io.BytesIO(), settings, what="feed", total=1)


def test_the_desks_approval_policy_holds_an_auto_story_too(env: Env, srv: FeedServer) -> None:
    from scheduler.desk.models import ApprovalPolicy, AuditEntry

    accounts(("mastodon", None, False))
    with session_scope() as s:
        s.add(ApprovalPolicy(scope_kind="tag", scope_value="news", created_at=T0))
    srv.routes["/rss"] = (200, XML, rss(THREE[:1]))
    feed_id = add_feed(srv.url("/rss"), mode="auto")
    polling.poll_feed(feed_id, T0)
    with session_scope() as s:
        assert [d.state for d in s.scalars(select(Delivery))] == ["awaiting_approval"]
        # Queued through the desk, as the feed: the audit log says who, and approvers are asked.
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "story.queue")).one()
        assert (entry.actor, entry.via) == (f"feed:{feed_id}", "feed")


def test_a_first_poll_takes_the_newest_items_and_remembers_the_rest(env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    many = [(f"m{i}", f"https://news.example.com/m/{i}", f"Item {i}") for i in range(25, 0, -1)]
    srv.routes["/rss"] = (200, XML, rss(many))  # newest (25) first
    feed_id = add_feed(srv.url("/rss"))
    first = polling.poll_feed(feed_id, T0)
    assert (first.new, first.drafts, first.skipped) == (25, polling.MAX_NEW_PER_POLL, 5)
    with session_scope() as s:
        skipped = inbox.items(s, statuses=("skipped",))
        assert sorted(i.title for i in skipped) == [f"Item {i}" for i in range(1, 6)]
    assert polling.poll_feed(feed_id, T0, force=True).new == 0


def test_future_and_missing_dates_do_not_hold_an_item_back(http_env: Env, srv: FeedServer) -> None:
    accounts(("mastodon", None, False))
    srv.routes["/rss"] = (200, XML, (
        b'<rss version="2.0"><channel><item><guid>f1</guid><link>https://news.example.com/f</link>'
        b"<title>From the future</title><pubDate>Wed, 01 Jan 2031 08:00:00 GMT</pubDate></item>"
        b"<item><guid>n1</guid><link>https://news.example.com/n</link><title>Undated</title></item>"
        b"</channel></rss>"))
    result = polling.poll_feed(add_feed(srv.url("/rss"), mode="auto"), T0)
    assert (result.new, result.stories) == (2, 2)
    with session_scope() as s:
        dates = {i.title: i.published_at for i in s.scalars(select(FeedItem))}
        assert dates == {"From the future": datetime(2031, 1, 1, 8, tzinfo=UTC), "Undated": None}
        # Queued now (the account has no schedule), not at the article's date.
        assert {d.due_at for d in s.scalars(select(Delivery))} == {T0}


def test_auto_with_an_account_without_a_schedule_names_it(env: Env, srv: FeedServer) -> None:
    """Some accounts keep schedules: the story goes to next slots, so the one without is a problem
    the editor sees, rather than every account posting now."""
    accounts(("mastodon", None, True), ("mastodon", None, False))
    srv.routes["/rss"] = (200, XML, rss(THREE[:1]))
    result = polling.poll_feed(add_feed(srv.url("/rss"), mode="auto"), T0)
    assert (result.stories, result.rejected) == (0, 1)
    with session_scope() as s:
        (item,) = inbox.items(s)
        assert "has no posting schedule" in (item.error or "")
    assert count(Delivery) == 0
