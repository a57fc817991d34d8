"""Threads adapter against the Threads stand-in (containers, status polls, publish, quota)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from adapters.base import AccountRef, Credentials, Media, Post, Progress
from adapters.errors import AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.standins.base import Fault
from adapters.standins.threads import ThreadsStandIn
from adapters.threads import ThreadsAdapter, links, threads_length
from tests.adapters.helpers import finish_counted as finish

HANDLE = "newsroom"
LINK = "https://news.example/stories/42"
PUBLIC = "https://media.example/m"


# The stand-in, its reset before every test and the adapter come from conftest.py.
PLATFORM = "threads"
FOLLOWERS = 42


def post(text: str = "Council approves the tram line", link: str | None = LINK,
         media: tuple[Media, ...] = (), thread: bool = False) -> Post:
    return Post(text=text, link=link, created_at=datetime.now(UTC), media=media, thread=thread)


def image(name: str = "a.png", url: str | None = "", **kw: Any) -> Media:
    return Media(kind="image", path=f"/media/{name}", mime="image/png", size=2048,
                 url=f"{PUBLIC}/{name}" if url == "" else url, **kw)


def video(name: str = "v.mp4", url: str | None = "", **kw: Any) -> Media:
    return Media(kind="video", path=f"/media/{name}", mime="video/mp4", size=40_000,
                 url=f"{PUBLIC}/{name}" if url == "" else url, **kw)


def calls(standin: ThreadsStandIn) -> list[str]:
    return [f"{r['method']} {r['path'].rsplit('/', 1)[-1]}" for r in standin.requests]


# -- pure rules ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "length"), [
    ("hello", 5), ("日本語", 3), ("e\u0301", 2), ("😀", 4), ("👨‍👩‍👧", 18), ("🇯🇵 ok", 11), ("", 0),
])
def test_threads_length_counts_emoji_by_utf8_bytes(text: str, length: int) -> None:
    assert threads_length(text) == length


def test_links_are_unique_urls_plus_the_attachment() -> None:
    text = "a https://x.example/1 b https://x.example/1 c https://x.example/2."
    assert links(text) == {"https://x.example/1", "https://x.example/2"}
    assert len(links(text, "https://x.example/3")) == 3 and len(links(text, "https://x.example/1")) == 2


MANY_LINKS = " ".join(f"https://x.example/{i}" for i in range(6))


@pytest.mark.parametrize(("story", "problems"), [
    (post(), []),
    (post("x" * 501, link=None), ["threads: text: is 501 characters (emoji count their UTF-8 bytes) long; "
                                  "the limit is 500; use --thread for a reply chain"]),
    (post("x " * 400, link=None, thread=True), []),
    (post("😀" * 126, link=None), ["threads: text: is 504 characters (emoji count their UTF-8 bytes) long; "
                                   "the limit is 500; use --thread for a reply chain"]),
    (post(MANY_LINKS, link=None), ["threads: text: has 6 links; the limit is 5"]),
    (post(" ".join(f"https://x.example/{i}" for i in range(5))),  # the story link makes six
     ["threads: text: has 6 links; the limit is 5"]),
    (post(media=tuple(image(f"{i}.png") for i in range(21))),
     ["threads: media: 21 images; the limit is 20", "threads: media: 21 items; a carousel holds at most 20"]),
    (post(media=(image(width=2000, height=150),)),
     ["threads: media: image is 2000x150; the aspect ratio may be at most 10:1"]),
    (post(media=(video(width=3840, height=2160),)),
     ["threads: media: video is 3840 px wide; the limit is 1920"]),
    (post(media=(Media(kind="image", path="/m/a.webp", mime="image/webp", size=10, url="https://m/a"),)),
     ["threads: media: image type image/webp is not one of image/jpeg, image/png"]),
    (post(media=(image(), video())), []),
])
def test_check(adapter: ThreadsAdapter, story: Post, problems: list[str]) -> None:
    assert [str(p) for p in adapter.check(story)] == problems


# -- publish ------------------------------------------------------------------------------------------
def test_text_post_with_link_preview(adapter: ThreadsAdapter, account: AccountRef,
                                     standin: ThreadsStandIn) -> None:
    published = adapter.publish(account, post(), "d1")
    [created] = standin.posts("post")
    assert created.data["text"] == f"Council approves the tram line\n\n{LINK}"
    assert created.data["media_type"] == "TEXT" and created.data["link_attachment"] == LINK
    assert published.remote_id == created.id
    assert published.url == standin.media[created.id]["permalink"]
    assert published.published_at is not None
    # A text container needs no status poll: create, publish, read the permalink.
    assert calls(standin) == ["POST threads", "POST threads_publish", f"GET {created.id}"]
    assert all(r["scope"] == standin.requests[0]["scope"] for r in standin.requests)


@pytest.mark.parametrize(("media", "waits", "kind", "containers"), [
    ((image(alt="A tram"),), 1, "IMAGE", 1),
    ((video(),), 2, "VIDEO", 1),
    ((image("1.png"), video("2.mp4"), image("3.png")), 3, "CAROUSEL", 4),  # video child, then carousel
])
def test_media_processing_returns_in_progress_and_resumes(
        adapter: ThreadsAdapter, account: AccountRef, standin: ThreadsStandIn,
        media: tuple[Media, ...], waits: int, kind: str, containers: int) -> None:
    progress = Progress()
    published, seen = finish(adapter, account, post(media=media), progress)
    assert seen == waits
    [created] = standin.posts("post")
    assert created.data["media_type"] == kind and published.remote_id == created.id
    assert created.data["media_urls"] == [m.url for m in media]
    assert len(standin.containers) == containers  # nothing created twice across the attempts
    assert progress.get("posted") == [created.id]
    if kind == "IMAGE":
        assert next(iter(standin.containers.values())).params["alt_text"] == "A tram"


def test_media_without_a_public_url_is_rejected(adapter: ThreadsAdapter, account: AccountRef,
                                                standin: ThreadsStandIn) -> None:
    with pytest.raises(Rejected, match="CROSSPOST_MEDIA_PUBLIC_URL"):
        adapter.publish(account, post(media=(image(url=None),)), "d1")
    assert standin.requests == []


def test_media_processing_failure_is_rejected_with_meta_reason(
        adapter: ThreadsAdapter, account: AccountRef, standin: ThreadsStandIn) -> None:
    standin.fail_urls[f"{PUBLIC}/v.mp4"] = "FAILED_PROCESSING_VIDEO"
    with pytest.raises(Rejected, match="FAILED_PROCESSING_VIDEO"):
        finish(adapter, account, post(media=(video(),)), Progress())
    assert standin.posts() == []


def test_an_expired_container_is_made_again(adapter: ThreadsAdapter, account: AccountRef,
                                            standin: ThreadsStandIn) -> None:
    progress = Progress()
    story = post(media=(image("1.png"), image("2.png")))
    with pytest.raises(InProgress):
        adapter.publish(account, story, "d1", progress)
    standin.expire_containers()  # the scheduler came back a day later
    finish(adapter, account, story, progress)
    assert len(standin.posts("post")) == 1 and len(standin.containers) == 5


def test_a_lost_publish_answer_is_found_not_posted_again(adapter: ThreadsAdapter, account: AccountRef,
                                                         standin: ThreadsStandIn) -> None:
    progress = Progress()
    standin.inject(Fault(commit=True, drop=True, path="threads_publish"))
    with pytest.raises(Transient) as err:
        adapter.publish(account, post(), "d1", progress)
    assert err.value.maybe_sent and progress.get("container")
    published = adapter.publish(account, post(), "d1", progress)
    assert [c.id for c in standin.posts()] == [published.remote_id] and standin.duplicates() == 0


# -- reply chains -------------------------------------------------------------------------------------
LONG = " ".join(f"Sentence {i} of the long council story goes on for a while." for i in range(25))


def test_thread_goes_out_as_a_reply_chain(adapter: ThreadsAdapter, account: AccountRef,
                                          standin: ThreadsStandIn) -> None:
    progress = Progress()
    published = adapter.publish(account, post(LONG, thread=True), "d1", progress)
    parts = standin.posts()
    assert [p.kind for p in parts] == ["post"] + ["reply"] * (len(parts) - 1) and len(parts) == 4
    assert [p.data["reply_to"] for p in parts] == [None] + [p.id for p in parts[:-1]]
    assert [p.data["text"][-4:] for p in parts] == [f" {i}/4" for i in range(1, 5)]
    assert all(threads_length(p.data["text"]) <= 500 for p in parts)
    assert published.remote_id == parts[0].id and progress.get("posted") == [p.id for p in parts]


def test_thread_resumes_after_a_failure_mid_chain(adapter: ThreadsAdapter, account: AccountRef,
                                                  standin: ThreadsStandIn) -> None:
    def saver(state: dict[str, Any]) -> None:
        if len(state.get("posted") or []) == 1 and not state.get("container"):
            # Right after the first part: the next publish goes out but its answer is lost.
            standin.inject(Fault(commit=True, drop=True, path="threads_publish"))

    progress = Progress(saver=saver)
    story = post(LONG, thread=True)
    with pytest.raises(Transient):
        adapter.publish(account, story, "d1", progress)
    assert len(standin.posts()) == 2 and len(progress.get("posted")) == 1
    standin.reply_quota_total = 1  # the retry meets the reply quota after one more part
    with pytest.raises(RateLimited) as err:
        adapter.publish(account, story, "d1", progress)
    assert err.value.retry_after == 3600 and len(progress.get("posted")) == 2
    standin.reply_quota_total = 1000
    published = adapter.publish(account, story, "d1", progress)
    parts = standin.posts()
    assert len(parts) == 4 and standin.duplicates() == 0
    assert [p.data["reply_to"] for p in parts] == [None] + [p.id for p in parts[:-1]]
    assert published.remote_id == parts[0].id


# -- errors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fault", "error", "check"), [
    (Fault(status=429, retry_after=120, path="threads_publish"), RateLimited,
     lambda e: e.retry_after == 120 and "code 17" in e.reason),
    (Fault(status=400, path="threads_publish", body={"error": {
        "message": "Application request limit reached", "type": "OAuthException", "code": 4,
        "is_transient": True}}),  # no usage header: graph.py's default wait
     RateLimited, lambda e: e.retry_after == 300 and e.scope == "app"),
    (Fault(status=500, path="threads_publish"), Transient, lambda e: e.maybe_sent and e.status == 500),
    (Fault(status=503, path="threads_publish", body="<html>busy</html>"), Transient, lambda e: e.maybe_sent),
    (Fault(drop=True, path="/threads"), Transient, lambda e: e.maybe_sent),
    (Fault(status=400, path="/threads", body={"error": {
        "message": "Param text is invalid", "type": "OAuthException", "code": 100}}), Rejected,
     lambda e: "Param text is invalid (code 100)" in e.reason),
])
def test_faults_map_to_typed_errors(adapter: ThreadsAdapter, account: AccountRef, standin: ThreadsStandIn,
                                    fault: Fault, error: type, check: Any) -> None:
    standin.inject(fault)
    with pytest.raises(error) as err:
        adapter.publish(account, post(), "d1")
    assert check(err.value), err.value
    assert err.value.reason.startswith("threads: ")


def test_the_publishing_quota_waits_an_hour(adapter: ThreadsAdapter, account: AccountRef,
                                            standin: ThreadsStandIn) -> None:
    standin.quota_total = 1
    adapter.publish(account, post("first"), "d1")
    with pytest.raises(RateLimited, match="publishing quota") as err:
        adapter.publish(account, post("second"), "d2")
    assert err.value.retry_after == 3600 and len(standin.posts()) == 1


def test_permission_and_link_limit_are_rejected(adapter: ThreadsAdapter, standin: ThreadsStandIn,
                                                account: AccountRef) -> None:
    with pytest.raises(Rejected, match="LINK_LIMIT_EXCEEDED"):
        adapter.publish(account, post(MANY_LINKS, link=None), "d1")  # check() skipped
    reader = standin.add_account("reader", scopes=("threads_basic",))
    account.credentials = Credentials(reader)
    with pytest.raises(Rejected, match="lacks a permission"):
        adapter.publish(account, post(), "d1")
    assert standin.posts() == []


# -- tokens -------------------------------------------------------------------------------------------
def test_refresh_rotates_the_long_lived_token(adapter: ThreadsAdapter, account: AccountRef,
                                              standin: ThreadsStandIn, creds: dict[str, str]) -> None:
    fresh = adapter.refresh(account)
    values = fresh.reveal()
    assert values["access_token"] != creds["access_token"] and values["user_id"] == creds["user_id"]
    expires = datetime.fromisoformat(values["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=60))) < timedelta(minutes=1)
    with pytest.raises(AuthExpired, match="code 190"):
        adapter.publish(account, post(), "d1")  # the old token is gone
    account.credentials = fresh
    adapter.publish(account, post(), "d1")
    assert len(standin.posts()) == 1


def test_an_expired_token_needs_reauthorisation(adapter: ThreadsAdapter, account: AccountRef,
                                                standin: ThreadsStandIn) -> None:
    standin.expire_tokens()
    with pytest.raises(AuthExpired, match="Session has expired"):
        adapter.publish(account, post(), "d1")
    with pytest.raises(AuthExpired, match="re-authorise"):
        adapter.refresh(account)
    with pytest.raises(AuthExpired):
        adapter.followers(account)


# -- followers and find_published ---------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["total_value", "values"])
def test_followers(adapter: ThreadsAdapter, account: AccountRef, standin: ThreadsStandIn, shape: str) -> None:
    standin.followers_shape = shape  # the documented shape is unsure: both are read
    assert adapter.followers(account) == 42
    [call] = standin.requests
    assert call["path"].endswith(f"/{account.credentials.get('user_id')}/threads_insights")


def test_find_published(adapter: ThreadsAdapter, account: AccountRef, standin: ThreadsStandIn) -> None:
    story = post("Was it published?")
    assert adapter.find_published(account, story, "d1") is None
    published = adapter.publish(account, story, "d1")
    assert adapter.find_published(account, story, "d1") == published
    assert adapter.find_published(account, post("Another story"), "d1") is None
    later = Post(text=story.text, link=story.link, created_at=datetime.now(UTC) + timedelta(hours=1))
    assert adapter.find_published(account, later, "d1") is None  # older than the first attempt


# -- the stand-in is as strict as the API -------------------------------------------------------------
@pytest.mark.parametrize(("params", "code", "fragment"), [
    ({"media_type": "TEXT", "text": "x" * 501}, 100, "at most 500 characters"),
    ({"media_type": "TEXT"}, 100, "text is required"),
    ({"media_type": "POLL", "text": "x"}, 100, "media_type must be one of"),
    ({"media_type": "IMAGE", "image_url": "file:///etc/passwd"}, 100, "image_url must be a valid URL"),
    ({"media_type": "IMAGE", "image_url": "https://m/a.png", "link_attachment": LINK}, 100, "only supported"),
    ({"media_type": "CAROUSEL", "children": "1"}, 100, "between 2 and 20"),
    ({"media_type": "TEXT", "text": "x", "reply_to_id": "999"}, 100, "no post 999"),
    ({"media_type": "TEXT", "text": "x", "access_token": "nope"}, 190, "Cannot parse access token"),
])
def test_standin_checks_containers(standin: ThreadsStandIn, creds: dict[str, str], params: dict[str, str],
                                   code: int, fragment: str) -> None:
    headers = {} if "access_token" in params else {"Authorization": f"Bearer {creds['access_token']}"}
    answer = requests.post(f"{standin.url}/v1.0/me/threads", data=params, headers=headers, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == code and fragment in answer.json()["error"]["message"]
    assert standin.containers == {}


def test_standin_publishes_only_finished_containers(standin: ThreadsStandIn, creds: dict[str, str]) -> None:
    auth = {"access_token": creds["access_token"]}  # the query-string form Meta's docs show
    base = f"{standin.url}/v1.0/{creds['user_id']}"
    made = requests.post(f"{base}/threads", params={**auth, "media_type": "VIDEO", "video_url": "https://m/v"},
                         timeout=5).json()["id"]
    early = requests.post(f"{base}/threads_publish", params={**auth, "creation_id": made}, timeout=5)
    assert early.status_code == 400 and early.json()["error"]["code"] == 9007
    statuses = [requests.get(f"{standin.url}/v1.0/{made}", params={**auth, "fields": "status"},
                             timeout=5).json()["status"] for _ in range(3)]
    assert statuses == ["IN_PROGRESS", "IN_PROGRESS", "FINISHED"]
    assert requests.post(f"{base}/threads_publish", params={**auth, "creation_id": made}, timeout=5).ok
    again = requests.post(f"{base}/threads_publish", params={**auth, "creation_id": made}, timeout=5)
    assert again.status_code == 400 and len(standin.posts()) == 1
    limit = requests.get(f"{base}/threads_publishing_limit", params=auth, timeout=5).json()["data"][0]
    assert limit["quota_usage"] == 1 and limit["config"] == {"quota_total": 250, "quota_duration": 86400}


# -- identity: credentials model, whoami, handles ---------------------------------------------------
@pytest.mark.parametrize(("data", "lines"), [
    ({"access_token": "THAA-12345678", "user_id": 42}, []),
    ({"access_token": "THAA-12345678", "user_id": "me"},
     ["threads: credentials: user_id: is not in the expected format"]),
    ({}, ["threads: credentials: access_token: is required"]),
])
def test_credentials_model(creds: dict[str, str], data: dict[str, Any], lines: list[str]) -> None:
    from adapters import validate_credentials

    if not lines:
        assert validate_credentials("threads", data).secrets() == ["THAA-12345678"]
        assert validate_credentials("threads", creds).get("access_token") == creds["access_token"]
        return
    with pytest.raises(ValueError) as err:
        validate_credentials("threads", data)
    assert str(err.value).splitlines() == lines and "THAA" not in str(err.value)


def test_whoami(standin: ThreadsStandIn, adapter: ThreadsAdapter, account: AccountRef,
                creds: dict[str, str]) -> None:
    me = adapter.whoami(account)
    assert (me.handle, me.remote_id) == (HANDLE, str(creds["user_id"]))
    assert adapter.same_account("@NewsRoom", me)
    other = Credentials(standin.add_account("someone_else"))
    theirs = adapter.whoami(AccountRef(id=2, platform="threads", handle=HANDLE, base_url=standin.url,
                                       credentials=other))
    assert theirs.handle == "someone_else" and not adapter.same_account(HANDLE, theirs)
