"""The Mastodon adapter against the Mastodon stand-in (a real local HTTP server), and the stand-in's
own strictness. Each table row: what the stand-in is told or sent, what we expect back."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from adapters import mastodon
from adapters.base import AccountRef, Credentials, Media, Post, Progress, Published
from adapters.errors import AdapterError, AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.http import parse_reset
from adapters.mastodon import MAX_PROCESSING, MEDIA_REUSE, MastodonAdapter, forget_instances
from adapters.standins.base import Fault
from adapters.standins.mastodon import MastodonStandIn
from adapters.text import mastodon_length, split_thread
from tests.adapters.helpers import account_on, unique

WHEN = datetime(2026, 11, 28, 12, tzinfo=UTC)
LINK = "https://news.example.com/2026/11/28/a-rather-long-story-slug-for-the-front-page?utm_source=x"
_handles = itertools.count(1)


# The stand-in, its reset before every test and the adapter come from conftest.py.
PLATFORM = "mastodon"


@pytest.fixture(autouse=True)
def fresh() -> None:
    # Every test reads the instance afresh: some change its limits.
    forget_instances()


def make_account(standin: MastodonStandIn, followers: int = 10, **kwargs: Any) -> AccountRef:
    return account_on(standin, PLATFORM, unique(), followers, **kwargs)


def token(account: AccountRef) -> str:
    return account.credentials.require("access_token", "mastodon")


def unique_post(text: str = "Council approves the new tram line", link: str | None = LINK,
                created_at: datetime | None = WHEN) -> Post:
    return Post(text=f"{text} ({next(_handles)})", link=link, created_at=created_at)


# -- check ---------------------------------------------------------------------------------------
TOO_LONG = "mastodon: text: is 501 characters long; the limit is 500; use --thread for a reply chain"
CHECKS = [
    # (case, text, link, problems)
    ("fits: a link counts 23 whatever its length", "a" * 475, LINK, []),
    ("one over the limit", "a" * 476, LINK, [TOO_LONG]),
    ("an emoji family is one character", "👨‍👩‍👧" * 500, None, []),
    ("skin-toned emoji counted as graphemes", "👍🏽" * 501, None,
     [TOO_LONG]),
    ("a remote mention counts as its local part", "@ed@" + "d" * 200 + ".org " + "a" * 495, None, []),
    ("empty story", "   ", None, ["mastodon: text: is empty"]),
]


@pytest.mark.parametrize(("case", "text", "link", "problems"), CHECKS, ids=[c[0] for c in CHECKS])
def test_check(adapter: MastodonAdapter, case: str, text: str, link: str | None, problems: list[str]) -> None:
    found = adapter.check(Post(text=text, link=link, created_at=WHEN))
    assert [str(p) for p in found] == problems
    assert all(p.platform == "mastodon" and p.field == "text" for p in found)


def test_caps_declare_idempotency_for_an_hour(adapter: MastodonAdapter) -> None:
    assert adapter.caps.idempotent and adapter.caps.idempotent_for == timedelta(hours=1)
    assert adapter.caps.can_find and adapter.caps.text_limit == 500


def media(tmp_path: Path, kind: str = "image", name: str | None = None, size: tuple[int, int] = (64, 48),
          alt: str = "", mime: str | None = None) -> Media:
    """A real file in tmp_path: a PNG drawn with Pillow, or a small MP4 (an ``ftyp`` box and padding)."""
    path = tmp_path / (name or f"m{next(_handles)}.{'png' if kind == 'image' else 'mp4'}")
    if kind == "image":
        Image.new("RGB", size, (200, 30, 30)).save(path, "PNG")
    else:
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 4000)
    return Media(kind=kind, path=str(path), mime=mime or ("image/png" if kind == "image" else "video/mp4"),
                 size=path.stat().st_size, width=size[0], height=size[1], alt=alt)


def _fake(kind: str = "image", mime: str = "image/png", size: int = 1000, width: int | None = 800,
          height: int | None = 600, alt: str = "") -> Media:
    return Media(kind=kind, path="/nowhere", mime=mime, size=size, width=width, height=height, alt=alt)


MEDIA_CHECKS: list[tuple[str, tuple[Media, ...], bool, list[str]]] = [
    # (case, media, thread, problems)
    ("four images", (_fake(),) * 4, False, []),
    ("five images", (_fake(),) * 5, False, ["mastodon: media: 5 images; the limit is 4"]),
    ("two videos", (_fake("video", "video/mp4"),) * 2, False, ["mastodon: media: 2 videos; the limit is 1"]),
    ("an image and a video", (_fake(), _fake("video", "video/mp4")), False,
     ["mastodon: media: images and a video cannot go in one post"]),
    ("a QuickTime video", (_fake("video", "video/quicktime"),), False, []),
    ("image over 16 MiB", (_fake(size=16 * 1024 * 1024 + 1),), False,
     ["mastodon: media: image is 16777217 bytes; the limit is 16777216"]),
    ("video over 99 MiB", (_fake("video", "video/mp4", size=103_809_025),), False,
     ["mastodon: media: video is 103809025 bytes; the limit is 103809024"]),
    ("alt text over 1500", (_fake(alt="x" * 1501),), False,
     ["mastodon: media: alt text of media 1 is 1501 characters; the limit is 1500"]),
    ("video larger than 4K", (_fake("video", "video/mp4", width=4096, height=2160),), False,
     ["mastodon: media: video 1 is 4096x2160 (8847360 pixels); the limit is 8294400 pixels"]),
    ("8K image is fine", (_fake(width=7680, height=4320),), False, []),
    ("dimensions unknown", (_fake(width=None, height=None),), False, []),
]


@pytest.mark.parametrize(("case", "items", "thread", "problems"), MEDIA_CHECKS,
                         ids=[c[0] for c in MEDIA_CHECKS])
def test_check_media(adapter: MastodonAdapter, case: str, items: tuple[Media, ...], thread: bool,
                     problems: list[str]) -> None:
    assert [str(p) for p in adapter.check(Post(text="Photos", media=items, thread=thread))] == problems


def test_check_allows_a_long_thread(adapter: MastodonAdapter) -> None:
    assert adapter.check(Post(text="a" * 2000, thread=True)) == []
    assert adapter.caps.threads


# -- publish ---------------------------------------------------------------------------------------
def test_publish_sends_status_with_key(standin: MastodonStandIn, adapter: MastodonAdapter,
                                       account: AccountRef) -> None:
    post = unique_post()
    published = adapter.publish(account, post, "d42-6f1c")

    [created] = standin.posts("status")
    assert created.key == "d42-6f1c"
    assert created.data["account"] == account.handle
    assert created.data["text"] == post.body
    assert created.data["visibility"] == "public"
    assert created.data["format"] == "json"
    assert created.data["user_agent"].startswith("crosspost/")
    assert published == Published(remote_id=created.id, url=f"{standin.url}/@{account.handle}/{created.id}",
                                  published_at=published.published_at)
    assert published.published_at is not None and published.published_at.tzinfo is not None
    assert standin.requests[-1]["method"] == "POST" and standin.requests[-1]["path"] == "/api/v1/statuses"


def test_same_key_returns_the_original_status(standin: MastodonStandIn, adapter: MastodonAdapter,
                                              account: AccountRef) -> None:
    post = unique_post()
    first = adapter.publish(account, post, "d7-a")
    again = adapter.publish(account, post, "d7-a")
    assert again.remote_id == first.remote_id
    assert len(standin.posts("status")) == 1 and standin.duplicates() == 0


def test_key_forgotten_after_the_idempotency_window(standin: MastodonStandIn, adapter: MastodonAdapter,
                                                    account: AccountRef) -> None:
    # Why caps.idempotent_for is one hour: past it, the same key posts again.
    standin.idempotency_ttl = 0
    post = unique_post()
    first = adapter.publish(account, post, "d8-a")
    assert adapter.publish(account, post, "d8-a").remote_id != first.remote_id
    assert standin.duplicates() == 1


def test_dropped_after_commit_then_retry_is_not_a_double_post(standin: MastodonStandIn,
                                                              adapter: MastodonAdapter,
                                                              account: AccountRef) -> None:
    standin.inject(Fault(commit=True, drop=True, path="/api/v1/statuses"))
    post = unique_post()
    with pytest.raises(Transient) as err:
        adapter.publish(account, post, "d9-a")
    assert err.value.maybe_sent
    [created] = standin.posts("status")
    assert adapter.publish(account, post, "d9-a").remote_id == created.id
    assert standin.duplicates() == 0


# The first request of a publish reads the instance; these faults are for the status itself.
STATUSES = "/api/v1/statuses"


def on_status(**kwargs: Any) -> Fault:
    return Fault(path=STATUSES, **kwargs)


# (case, faults, error type, expected attributes, statuses created)
FAULTS: list[tuple[str, list[Fault], type[AdapterError], dict[str, Any], int]] = [
    ("429 with Retry-After", [on_status(status=429, retry_after=7)], RateLimited,
     {"retry_after": 7.0, "scope": "account", "status": 429}, 0),
    ("503", [on_status(status=503, body={"error": "Service Unavailable"})], Transient,
     {"maybe_sent": True, "status": 503}, 0),
    ("502 from the proxy", [on_status(status=502)], Transient, {"maybe_sent": True, "status": 502}, 0),
    ("404 instance path gone", [on_status(status=404, body={"error": "Record not found"})], Rejected,
     {"status": 404}, 0),
    ("410 account gone", [on_status(status=410, body={"error": "Gone"})], Rejected, {"status": 410}, 0),
    ("dropped before an answer", [on_status(drop=True)], Transient, {"maybe_sent": True, "status": None}, 0),
    ("dropped after the post was made", [on_status(drop=True, commit=True)], Transient,
     {"maybe_sent": True}, 1),
]


@pytest.mark.parametrize(("case", "faults", "error", "attrs", "created"), FAULTS, ids=[f[0] for f in FAULTS])
def test_publish_faults(standin: MastodonStandIn, adapter: MastodonAdapter, account: AccountRef, case: str,
                        faults: list[Fault], error: type[AdapterError], attrs: dict[str, Any],
                        created: int) -> None:
    standin.inject(*faults)
    with pytest.raises(error) as err:
        adapter.publish(account, unique_post(), "d1-fault")
    assert type(err.value) is error
    assert {k: getattr(err.value, k) for k in attrs} == attrs
    assert str(err.value).startswith("mastodon: ")
    assert len(standin.posts("status")) == created


def test_rate_limit_without_retry_after_uses_iso_reset(standin: MastodonStandIn, adapter: MastodonAdapter,
                                                       account: AccountRef) -> None:
    # Mastodon's own throttle answer carries only X-RateLimit-Reset, an ISO-8601 time.
    standin.retry_after_header = False
    standin.inject(Fault(status=429, retry_after=300, path=STATUSES))
    with pytest.raises(RateLimited) as err:
        adapter.publish(account, unique_post(), "d2-rl")
    assert 290 <= err.value.retry_after <= 300
    assert "Too many requests" in str(err.value)


def test_timeout_is_transient_maybe_sent(standin: MastodonStandIn, account: AccountRef) -> None:
    standin.inject(Fault(delay=1.0, commit=True, path=STATUSES))
    with pytest.raises(Transient) as err:
        MastodonAdapter(timeout=0.2).publish(account, unique_post(), "d3-slow")
    assert err.value.maybe_sent and "timed out" in str(err.value)



# -- media -----------------------------------------------------------------------------------------
def paths(standin: MastodonStandIn) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in standin.requests]


def test_publish_images_with_alt_text(standin: MastodonStandIn, adapter: MastodonAdapter, account: AccountRef,
                                      tmp_path: Path) -> None:
    images = (media(tmp_path, alt="The council chamber"), media(tmp_path, size=(30, 90)))
    post = Post(text="Council votes", link=LINK, created_at=WHEN, media=images)
    published = adapter.publish(account, post, "d20-a")

    assert paths(standin) == ["GET /api/v2/instance", "POST /api/v2/media", "POST /api/v2/media",
                              "POST /api/v1/statuses"]
    [created] = standin.posts("status")
    assert created.id == published.remote_id and created.data["text"] == post.body
    assert [(m["type"], m["description"]) for m in created.data["media"]] == [
        ("image", "The council chamber"), ("image", None)]
    assert [m["sha256"] for m in created.data["media"]] == [
        hashlib.sha256(Path(m.path).read_bytes()).hexdigest() for m in images]
    assert standin.uploads == 2


def test_video_processing_returns_in_progress_then_completes_without_uploading_again(
        standin: MastodonStandIn, adapter: MastodonAdapter, account: AccountRef, tmp_path: Path) -> None:
    saved: list[dict[str, Any]] = []
    progress = Progress(saver=saved.append)
    post = Post(text="Watch the storm", created_at=WHEN, media=(media(tmp_path, "video", alt="Waves"),))

    with pytest.raises(InProgress) as first:  # 202: accepted, processing
        adapter.publish(account, post, "d21-v", progress)
    [entry] = progress.get("media")
    assert entry["ready"] is False and saved[-1]["media"] == [entry]
    assert first.value.after > 0 and "media 1 of 1 still processing" in str(first.value)
    with pytest.raises(InProgress):  # one poll: 206
        adapter.publish(account, post, "d21-v", progress)
    published = adapter.publish(account, post, "d21-v", progress)  # 200, then the status

    assert standin.uploads == 1
    assert paths(standin).count(f"GET /api/v1/media/{entry['id']}") == 2
    [created] = standin.posts("status")
    assert [m["id"] for m in created.data["media"]] == [entry["id"]]
    assert published.remote_id == created.id and published.url and published.published_at
    # A retry after success (the worker died before recording it) posts nothing more.
    assert adapter.publish(account, post, "d21-v", progress) == published
    assert len(standin.posts("status")) == 1 and standin.uploads == 1
    json.dumps(saved)  # progress is stored on the delivery as JSON


def test_media_the_instance_still_processes_at_post_time_is_waited_for(
        standin: MastodonStandIn, adapter: MastodonAdapter, account: AccountRef, tmp_path: Path) -> None:
    progress = Progress()
    post = Post(text="Still encoding", created_at=WHEN, media=(media(tmp_path, "video"),))
    with pytest.raises(InProgress):
        adapter.publish(account, post, "d22-v", progress)
    # Progress claims it is ready (an instance that answered 200 too early): the 422 is a wait.
    progress.state["media"][0]["ready"] = True
    with pytest.raises(InProgress, match="still processing the media"):
        adapter.publish(account, post, "d22-v", progress)
    assert progress.get("media")[0]["ready"] is False
    with pytest.raises(InProgress):
        adapter.publish(account, post, "d22-v", progress)  # the poll answers 206 once
    adapter.publish(account, post, "d22-v", progress)
    assert standin.uploads == 1 and len(standin.posts("status")) == 1


def test_processing_that_never_ends_is_rejected(standin: MastodonStandIn, adapter: MastodonAdapter,
                                                account: AccountRef, tmp_path: Path) -> None:
    standin.processing_polls = 1000
    progress = Progress()
    post = Post(text="Broken video", created_at=WHEN, media=(media(tmp_path, "video"),))
    with pytest.raises(InProgress):
        adapter.publish(account, post, "d23-v", progress)
    progress.state["media"][0]["at"] -= MAX_PROCESSING + 1
    with pytest.raises(Rejected, match="still processing after 3600 s"):
        adapter.publish(account, post, "d23-v", progress)
    assert progress.get("media") is None  # "publish again" uploads afresh
    assert standin.posts("status") == []


@pytest.mark.parametrize("case", ["gone from the instance", "older than the instance keeps it"])
def test_saved_media_that_no_longer_exists_is_uploaded_again(standin: MastodonStandIn,
                                                             adapter: MastodonAdapter, account: AccountRef,
                                                             tmp_path: Path, case: str) -> None:
    post = Post(text="Second try", created_at=WHEN, media=(media(tmp_path),))
    if case == "gone from the instance":
        entry = {"id": "424242", "ready": False, "at": time.time()}
    else:
        entry = {"id": "424242", "ready": True, "at": time.time() - MEDIA_REUSE - 1}
    progress = Progress({"media": [entry]})
    adapter.publish(account, post, "d24-m", progress)
    assert standin.uploads == 1
    [created] = standin.posts("status")
    assert [m["id"] for m in created.data["media"]] == [progress.get("media")[0]["id"]] != ["424242"]


def test_unreadable_media_file_is_rejected_before_any_upload(standin: MastodonStandIn,
                                                            adapter: MastodonAdapter,
                                                            account: AccountRef) -> None:
    with pytest.raises(Rejected, match="media 1 cannot be read from the media store"):
        adapter.publish(account, Post(text="x", created_at=WHEN, media=(_fake(),)), "d25-m")
    assert standin.uploads == 0 and "POST /api/v2/media" not in paths(standin)


def test_media_the_instance_refuses_is_rejected(standin: MastodonStandIn, adapter: MastodonAdapter,
                                                account: AccountRef, tmp_path: Path) -> None:
    # check() would have caught it; the instance's answer is the last word.
    post = Post(text="x", created_at=WHEN, media=(media(tmp_path, alt="d" * 1501),))
    with pytest.raises(Rejected, match="Description is too long") as err:
        adapter.publish(account, post, "d26-m")
    assert err.value.status == 422 and standin.uploads == 0


def test_media_upload_rate_limited(standin: MastodonStandIn, adapter: MastodonAdapter, account: AccountRef,
                                   tmp_path: Path) -> None:
    standin.inject(Fault(status=429, retry_after=30, path="/api/v2/media"))
    with pytest.raises(RateLimited) as err:
        adapter.publish(account, Post(text="x", created_at=WHEN, media=(media(tmp_path),)), "d27-m")
    assert err.value.retry_after == 30.0


# -- threads -----------------------------------------------------------------------------------------
STORY = " ".join(f"Sentence number {n} of the long council story, with enough words to matter."
                 for n in range(16))


def chain(standin: MastodonStandIn) -> list[tuple[str | None, str | None]]:
    """(in_reply_to_id, key) of every status created, in order."""
    return [(c.data["in_reply_to_id"], c.key) for c in standin.posts("status")]


def test_thread_posts_a_reply_chain(standin: MastodonStandIn, adapter: MastodonAdapter, account: AccountRef,
                                    tmp_path: Path) -> None:
    post = Post(text=STORY, link=LINK, created_at=WHEN, thread=True, media=(media(tmp_path),))
    published = adapter.publish(account, post, "d30-t")

    created = standin.posts("status")
    assert len(created) == 3
    assert [c.data["text"] for c in created] == split_thread(post.body, 500, mastodon_length)
    assert all(mastodon_length(c.data["text"]) <= 500 for c in created)
    assert chain(standin) == [(None, "d30-t:0"), (created[0].id, "d30-t:1"), (created[1].id, "d30-t:2")]
    assert [len(c.data["media"]) for c in created] == [1, 0, 0]
    assert published.remote_id == created[0].id
    assert published.url == f"{standin.url}/@{account.handle}/{created[0].id}"


def test_thread_resumes_after_a_failure_mid_chain(standin: MastodonStandIn, adapter: MastodonAdapter,
                                                  account: AccountRef, tmp_path: Path) -> None:
    def fail_second_part(state: dict[str, Any]) -> None:
        if len(state.get("parts") or []) == 1 and not standin.faults:
            standin.inject(on_status(status=503, body={"error": "Service Unavailable"}))

    progress = Progress(saver=fail_second_part)
    post = Post(text=STORY, created_at=WHEN, thread=True, media=(media(tmp_path),))
    with pytest.raises(Transient):
        adapter.publish(account, post, "d31-t", progress)
    assert len(progress.get("parts")) == 1 and len(standin.posts("status")) == 1

    published = adapter.publish(account, post, "d31-t", progress)
    created = standin.posts("status")
    assert len(created) == 3 and standin.duplicates() == 0 and standin.uploads == 1
    assert chain(standin) == [(None, "d31-t:0"), (created[0].id, "d31-t:1"), (created[1].id, "d31-t:2")]
    assert published.remote_id == created[0].id and published.url and published.published_at


def test_thread_part_whose_answer_was_lost_is_not_posted_twice(standin: MastodonStandIn,
                                                               adapter: MastodonAdapter,
                                                               account: AccountRef) -> None:
    def lose_second_answer(state: dict[str, Any]) -> None:
        if len(state.get("parts") or []) == 1 and not standin.faults:
            standin.inject(on_status(drop=True, commit=True))

    progress = Progress(saver=lose_second_answer)
    post = Post(text=STORY, created_at=WHEN, thread=True)
    with pytest.raises(Transient) as err:
        adapter.publish(account, post, "d32-t", progress)
    assert err.value.maybe_sent and len(standin.posts("status")) == 2
    adapter.publish(account, post, "d32-t", progress)  # the same key for part 2 returns it
    assert len(standin.posts("status")) == 3 and standin.duplicates() == 0
    assert progress.get("parts") == [c.id for c in standin.posts("status")]


# (case, instance max_characters, text length, statuses expected)
THREAD_SIZES = [
    ("fits in one status: no numbering", 500, 400, 1),
    ("an instance that allows more takes it whole", 1000, 800, 1),
    ("an instance that allows less gets shorter parts", 200, 450, 3),
]


@pytest.mark.parametrize(("case", "limit", "length", "parts"), THREAD_SIZES, ids=[t[0] for t in THREAD_SIZES])
def test_thread_follows_the_instance_limit(standin: MastodonStandIn, adapter: MastodonAdapter,
                                           account: AccountRef, case: str, limit: int, length: int,
                                           parts: int) -> None:
    standin.max_characters = limit
    text = ("word " * length)[:length].strip()
    published = adapter.publish(account, Post(text=text, created_at=WHEN, thread=True), "d33-t")
    created = standin.posts("status")
    assert len(created) == parts and published.remote_id == created[0].id
    assert all(mastodon_length(c.data["text"]) <= limit for c in created)
    if parts == 1:
        assert created[0].data["text"] == text and created[0].key == "d33-t"


# -- the instance's own limits ---------------------------------------------------------------------
def test_instance_is_read_once_per_base_url(standin: MastodonStandIn, adapter: MastodonAdapter,
                                            account: AccountRef) -> None:
    for n in range(3):
        MastodonAdapter().publish(account, unique_post(), f"d40-{n}")
    assert paths(standin).count("GET /api/v2/instance") == 1
    # Past the TTL it is read again.
    with mastodon._instances_lock:
        mastodon._instances[standin.url] = (0.0, mastodon._instances[standin.url][1])
    adapter.publish(account, unique_post(), "d40-x")
    assert paths(standin).count("GET /api/v2/instance") == 2


def test_instance_cache_is_thread_safe(standin: MastodonStandIn, account: AccountRef) -> None:
    standin.max_characters = 321
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda _: MastodonAdapter().instance(account), range(32)))
    assert {f.max_characters for f in found} == {321}
    assert 1 <= paths(standin).count("GET /api/v2/instance") <= 8


def test_instance_without_v2_endpoint_uses_the_defaults(standin: MastodonStandIn, adapter: MastodonAdapter,
                                                        account: AccountRef) -> None:
    standin.inject(Fault(status=404, body={"error": "Record not found"}, path="/api/v2/instance"))
    adapter.publish(account, unique_post(), "d41-a")
    assert adapter.instance(account).max_characters == 500
    assert len(standin.posts("status")) == 1


def test_instance_rate_limited_is_rate_limited(standin: MastodonStandIn, adapter: MastodonAdapter,
                                               account: AccountRef) -> None:
    standin.inject(Fault(status=429, retry_after=9, path="/api/v2/instance"))
    with pytest.raises(RateLimited) as err:
        adapter.publish(account, unique_post(), "d42-a")
    assert err.value.retry_after == 9.0 and standin.posts("status") == []


def test_limit_lowered_after_the_instance_was_read_is_refused_by_the_instance(
        standin: MastodonStandIn, adapter: MastodonAdapter, account: AccountRef) -> None:
    adapter.publish(account, unique_post(), "d43-a")
    standin.max_characters = 100
    with pytest.raises(Rejected, match="Text character limit of 100 exceeded") as err:
        adapter.publish(account, Post(text="b" * 150, created_at=WHEN), "d43-b")
    assert err.value.status == 422


# -- what the instance itself refuses ---------------------------------------------------------------
def _lower_limit(s: MastodonStandIn, a: AccountRef) -> AccountRef:
    s.max_characters = 100
    return a


def _disabled(s: MastodonStandIn, a: AccountRef) -> AccountRef:
    s.disable(a.handle)
    return a


def _revoked(s: MastodonStandIn, a: AccountRef) -> AccountRef:
    s.revoke(token(a))
    return a


# (case, setup, post, error type, status, words in the message)
REFUSALS: list[tuple[str, Callable[[MastodonStandIn, AccountRef], AccountRef], Post, type[AdapterError],
                     int | None, str]] = [
    ("instance limit below 500", _lower_limit, Post(text="b" * 150, created_at=WHEN), Rejected, None,
     "is 150 characters long; the instance 127.0.0.1"),
    ("blank text", lambda s, a: a, Post(text="  ", created_at=WHEN), Rejected, 422, "Text can't be blank"),
    ("disabled login", _disabled, unique_post(), Rejected, 403, "Your login is currently disabled"),
    ("token without write scope", lambda s, a: make_account(s, scopes=("read",)), unique_post(), Rejected,
     403, "outside the authorized scopes"),
    ("revoked token", _revoked, unique_post(), AuthExpired, 401, "The access token is invalid"),
    ("unknown token", lambda s, a: replace(a, credentials=Credentials({"access_token": "not-a-real-token"})),
     unique_post(), AuthExpired, 401, "re-authorise"),
    ("no token stored", lambda s, a: replace(a, credentials=Credentials()), unique_post(), AuthExpired, None,
     "no 'access_token'"),
]


@pytest.mark.parametrize(("case", "setup", "post", "error", "status", "words"), REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_publish_refused(standin: MastodonStandIn, adapter: MastodonAdapter, account: AccountRef, case: str,
                         setup: Callable[[MastodonStandIn, AccountRef], AccountRef], post: Post,
                         error: type[AdapterError], status: int | None, words: str) -> None:
    target = setup(standin, account)
    with pytest.raises(error) as err:
        adapter.publish(target, post, "d5-no")
    assert type(err.value) is error
    assert err.value.status == status
    assert words in str(err.value)
    assert standin.posts("status") == []


def test_refresh_is_impossible(adapter: MastodonAdapter, account: AccountRef) -> None:
    with pytest.raises(AuthExpired, match="re-authorise"):
        adapter.refresh(account)


# -- followers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [0, 10, 123_456])
def test_followers(standin: MastodonStandIn, adapter: MastodonAdapter, count: int) -> None:
    assert adapter.followers(make_account(standin, followers=count)) == count


def test_followers_with_revoked_token(standin: MastodonStandIn, adapter: MastodonAdapter,
                                      account: AccountRef) -> None:
    standin.revoke(token(account))
    with pytest.raises(AuthExpired):
        adapter.followers(account)


def test_followers_rate_limited(standin: MastodonStandIn, adapter: MastodonAdapter,
                                account: AccountRef) -> None:
    standin.inject(Fault(status=429, retry_after=12, path="verify_credentials"))
    with pytest.raises(RateLimited) as err:
        adapter.followers(account)
    assert err.value.retry_after == 12.0


# -- find_published --------------------------------------------------------------------------------
NOW = datetime.now(UTC)
FINDS = [
    # (case, published text, text looked for, created_at looked for, found)
    ("plain text and link", "Markets close higher", "Markets close higher", NOW, True),
    ("escaped HTML, hashtag and remote mention", "Q&A: <why> it's \"late\" #budget @ed@example.org",
     "Q&A: <why> it's \"late\" #budget @ed@example.org", NOW, True),
    ("line breaks and paragraphs", "line one\nline two\n\nthird paragraph",
     "line one\nline two\n\nthird paragraph", NOW, True),
    ("clock skew under a minute", "Storm warning lifted", "Storm warning lifted", NOW + timedelta(seconds=50),
     True),
    ("posted before the first attempt", "Old news", "Old news", NOW + timedelta(minutes=5), False),
    ("other text", "Rates unchanged", "Rates raised", NOW, False),
    ("no first-attempt time: text only", "Ferry strike ends", "Ferry strike ends", None, True),
]


@pytest.mark.parametrize(("case", "sent", "wanted", "since", "found"), FINDS, ids=[f[0] for f in FINDS])
def test_find_published(standin: MastodonStandIn, adapter: MastodonAdapter, account: AccountRef, case: str,
                        sent: str, wanted: str, since: datetime | None, found: bool) -> None:
    published = adapter.publish(account, Post(text=sent, link=LINK, created_at=NOW), "d6-a")
    result = adapter.find_published(account, Post(text=wanted, link=LINK, created_at=since), "d6-a")
    assert result == (published if found else None)


def test_find_published_pages_past_newer_statuses(standin: MastodonStandIn, adapter: MastodonAdapter,
                                                   account: AccountRef) -> None:
    post = Post(text="The one we look for", link=LINK, created_at=NOW)
    published = adapter.publish(account, post, "d10-a")
    for n in range(45):
        adapter.publish(account, Post(text=f"later story {n}", created_at=NOW), f"d10-{n}")
    standin.requests.clear()
    assert adapter.find_published(account, post, "d10-a") == published
    assert [r["path"].rsplit("/", 1)[-1] for r in standin.requests] == ["verify_credentials", "statuses",
                                                                         "statuses"]


def test_find_published_ignores_replies(standin: MastodonStandIn, adapter: MastodonAdapter,
                                        account: AccountRef) -> None:
    post = Post(text="Reply-shaped", created_at=NOW)
    parent = adapter.publish(account, Post(text="parent", created_at=NOW), "d11-p")
    answer = requests.post(f"{standin.url}/api/v1/statuses", json={"status": post.body,
                                                                  "in_reply_to_id": parent.remote_id},
                           headers={"Authorization": f"Bearer {token(account)}"}, timeout=5)
    assert answer.status_code == 200
    assert adapter.find_published(account, post, "d11-a") is None


def test_find_published_rate_limited(standin: MastodonStandIn, adapter: MastodonAdapter,
                                     account: AccountRef) -> None:
    standin.inject(Fault(status=429, retry_after=5, path="/statuses"))
    with pytest.raises(RateLimited):
        adapter.find_published(account, unique_post(created_at=NOW), "d12-a")


def test_find_published_finds_a_thread_by_its_first_part(standin: MastodonStandIn, adapter: MastodonAdapter,
                                                         account: AccountRef) -> None:
    post = Post(text=STORY, created_at=NOW, thread=True)
    published = adapter.publish(account, post, "d15-t")
    forget_instances()  # another worker, another process: it reads the instance itself
    assert adapter.find_published(account, post, "d15-t") == published
    assert adapter.find_published(account, replace(post, text="Breaking. " + STORY), "d15-u") is None



# -- the stand-in is as strict as the instance -----------------------------------------------------
# (case, method, path, auth, body kind, body, status, words in the answer)
STRICT: list[tuple[str, str, str, str, str, Any, int, str]] = [
    ("no token", "POST", "/api/v1/statuses", "none", "json", {"status": "hi"}, 401,
     "The access token is invalid"),
    ("unknown token", "POST", "/api/v1/statuses", "bad", "json", {"status": "hi"}, 401,
     "The access token is invalid"),
    ("empty status", "POST", "/api/v1/statuses", "ok", "json", {"status": ""}, 422, "Text can't be blank"),
    ("white space in a form", "POST", "/api/v1/statuses", "ok", "form", {"status": "  \n "}, 422,
     "Text can't be blank"),
    ("status is not text", "POST", "/api/v1/statuses", "ok", "json", {"status": ["a"]}, 422,
     "Text can't be blank"),
    ("501 characters", "POST", "/api/v1/statuses", "ok", "json", {"status": "é" * 501}, 422,
     "Text character limit of 500 exceeded"),
    ("a long URL counts 23", "POST", "/api/v1/statuses", "ok", "json",
     {"status": "a" * 470 + " https://example.com/" + "x" * 300}, 200, '"visibility": "public"'),
    ("unknown visibility", "POST", "/api/v1/statuses", "ok", "json",
     {"status": "hi", "visibility": "everyone"}, 422, "not a valid visibility"),
    ("form body, unlisted", "POST", "/api/v1/statuses", "ok", "form",
     {"status": "hi", "visibility": "unlisted"}, 200, '"visibility": "unlisted"'),
    ("unknown media", "POST", "/api/v1/statuses", "ok", "json", {"media_ids": ["12"]}, 422,
     "Media 12 not found"),
    ("five media", "POST", "/api/v1/statuses", "ok", "json", {"status": "x", "media_ids": list("12345")}, 422,
     "Cannot attach more than 4 files"),
    ("not JSON", "POST", "/api/v1/statuses", "ok", "raw-json", b"{nope", 400, "error"),
    ("instance limits are public", "GET", "/api/v2/instance", "none", "none", None, 200,
     '"max_characters": 500'),
    ("own account", "GET", "/api/v1/accounts/verify_credentials", "ok", "none", None, 200,
     '"followers_count": 10'),
    ("own account without read scope", "GET", "/api/v1/accounts/verify_credentials", "write-only", "none",
     None, 403, "outside the authorized scopes"),
    ("statuses of an unknown account", "GET", "/api/v1/accounts/999/statuses", "ok", "none", None, 404,
     "Record not found"),
]


@pytest.mark.parametrize(("case", "method", "path", "auth", "kind", "body", "status", "words"), STRICT,
                         ids=[s[0] for s in STRICT])
def test_standin_checks_like_the_instance(standin: MastodonStandIn, case: str, method: str, path: str,
                                          auth: str, kind: str, body: Any, status: int, words: str) -> None:
    headers = {}
    if auth == "ok":
        headers["Authorization"] = f"Bearer {token(make_account(standin))}"
    elif auth == "write-only":
        headers["Authorization"] = f"Bearer {token(make_account(standin, scopes=('write',)))}"
    elif auth == "bad":
        headers["Authorization"] = "Bearer nope"
    kwargs: dict[str, Any] = {"json": body} if kind == "json" else {"data": body} if kind == "form" else {}
    if kind == "raw-json":
        kwargs = {"data": body}
        headers["Content-Type"] = "application/json"
    answer = requests.request(method, standin.url + path, headers=headers, timeout=5, **kwargs)
    assert answer.status_code == status
    assert words in answer.text
    if status >= 400:
        assert set(answer.json()) == {"error"}


def test_standin_rate_limit_answer(standin: MastodonStandIn) -> None:
    standin.inject(Fault(status=429, retry_after=3))
    answer = requests.get(f"{standin.url}/api/v2/instance", timeout=5)
    assert answer.status_code == 429 and answer.json() == {"error": "Too many requests"}
    assert answer.headers["Retry-After"] == "3" and answer.headers["X-RateLimit-Remaining"] == "0"
    assert answer.headers["X-RateLimit-Limit"] == "300"
    assert 0 < (parse_reset(answer.headers["X-RateLimit-Reset"]) or 0) <= 3


def test_standin_key_is_per_account(standin: MastodonStandIn) -> None:
    # Mastodon keys the memory by account: two tokens of one account share it, two accounts do not.
    first = standin.add_account("desk")["access_token"]
    second = standin.add_account("desk")["access_token"]
    other = standin.add_account("sports")["access_token"]

    def send(tok: str, text: str) -> str:
        answer = requests.post(f"{standin.url}/api/v1/statuses", json={"status": text}, timeout=5,
                               headers={"Authorization": f"Bearer {tok}", "Idempotency-Key": "k1"})
        return answer.json()["id"]

    assert send(first, "one") == send(second, "two, ignored: the key wins") != send(other, "three")
    assert [p.data["text"] for p in standin.posts("status")] == ["one", "three"]


def test_standin_lists_newest_first_and_pages(standin: MastodonStandIn, adapter: MastodonAdapter,
                                               account: AccountRef) -> None:
    ids = [adapter.publish(account, Post(text=f"story {n}", created_at=WHEN), f"d14-{n}").remote_id
           for n in range(5)]
    me = requests.get(f"{standin.url}/api/v1/accounts/verify_credentials", timeout=5,
                      headers={"Authorization": f"Bearer {token(account)}"}).json()
    assert me["statuses_count"] == 5
    url = f"{standin.url}/api/v1/accounts/{me['id']}/statuses"
    page = requests.get(url, params={"limit": 2, "max_id": ids[3]}, timeout=5).json()
    assert [s["id"] for s in page] == [ids[2], ids[1]]
    assert ids == sorted(ids, key=int)


# -- the stand-in's media endpoints ----------------------------------------------------------------
def upload(standin: MastodonStandIn, tok: str, data: bytes | None, mime: str = "image/png",
           **fields: str) -> requests.Response:
    files = {"file": ("f.bin", data, mime)} if data is not None else {"other": ("x", b"x", "text/plain")}
    return requests.post(f"{standin.url}/api/v2/media", files=files, data=fields, timeout=5,
                         headers={"Authorization": f"Bearer {tok}"})


def png_bytes(size: tuple[int, int] = (20, 10)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size).save(out, "PNG")
    return out.getvalue()


MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 100

# (case, setup, file bytes, declared type, fields, status, words)
UPLOADS: list[tuple[str, Callable[[MastodonStandIn], None], bytes | None, str, dict[str, str], int, str]] = [
    ("an image is ready at once", lambda s: None, png_bytes(), "image/png", {"description": "alt"}, 200,
     '"url": "http'),
    ("a video is processing", lambda s: None, MP4, "video/mp4", {}, 202, '"url": null'),
    ("no file", lambda s: None, None, "", {}, 422, "File can't be blank"),
    ("empty file", lambda s: None, b"", "image/png", {}, 422, "File can't be blank"),
    ("description too long", lambda s: None, png_bytes(), "image/png", {"description": "d" * 1501}, 422,
     "Description is too long (maximum is 1500 characters)"),
    ("content not what it claims", lambda s: None, png_bytes(), "video/mp4", {}, 422,
     "not what they are reported to be"),
    ("unknown content", lambda s: None, b"hello world", "image/png", {}, 422, "could not be verified"),
    ("PNG header, broken body", lambda s: None, b"\x89PNG\r\n\x1a\nnope", "image/png", {}, 422,
     "could not be verified"),
    ("image over the size limit", lambda s: setattr(s, "image_size_limit", 50), png_bytes(), "image/png", {},
     422, "File file size must be less than"),
    ("image over the pixel limit", lambda s: setattr(s, "image_matrix_limit", 199), png_bytes(), "image/png",
     {}, 422, "20x10 images are not supported"),
]


@pytest.mark.parametrize(("case", "setup", "data", "mime", "fields", "status", "words"), UPLOADS,
                         ids=[u[0] for u in UPLOADS])
def test_standin_media_upload_checks(standin: MastodonStandIn, account: AccountRef, case: str,
                                     setup: Callable[[MastodonStandIn], None], data: bytes | None, mime: str,
                                     fields: dict[str, str], status: int, words: str) -> None:
    setup(standin)
    answer = upload(standin, token(account), data, mime, **fields)
    assert answer.status_code == status, answer.text
    assert words in answer.text
    assert standin.uploads == (1 if status < 300 else 0)


def test_standin_media_needs_write_media_scope(standin: MastodonStandIn) -> None:
    reader = make_account(standin, scopes=("read",))
    answer = upload(standin, token(reader), png_bytes())
    assert answer.status_code == 403 and "outside the authorized scopes" in answer.text


def test_standin_media_belongs_to_its_account_and_to_one_status(standin: MastodonStandIn) -> None:
    mine, theirs = token(make_account(standin)), token(make_account(standin))
    image = upload(standin, mine, png_bytes()).json()["id"]

    def status(tok: str, **body: Any) -> requests.Response:
        return requests.post(f"{standin.url}/api/v1/statuses", json=body, timeout=5,
                             headers={"Authorization": f"Bearer {tok}"})

    shown = requests.get(f"{standin.url}/api/v1/media/{image}", timeout=5,
                         headers={"Authorization": f"Bearer {theirs}"})
    assert shown.status_code == 404
    assert status(theirs, status="x", media_ids=[image]).json() == {"error": f"Media {image} not found"}
    # Media alone is a status; text is optional then.
    first = status(mine, media_ids=[image])
    assert first.status_code == 200 and first.json()["media_attachments"][0]["id"] == image
    assert status(mine, status="again", media_ids=[image]).json() == {"error": f"Media {image} not found"}


def test_standin_status_media_rules(standin: MastodonStandIn) -> None:
    tok = token(make_account(standin))
    auth = {"Authorization": f"Bearer {tok}"}
    video = upload(standin, tok, MP4, "video/mp4").json()["id"]
    image = upload(standin, tok, png_bytes()).json()["id"]

    def status(*ids: str) -> requests.Response:
        return requests.post(f"{standin.url}/api/v1/statuses", json={"status": "x", "media_ids": list(ids)},
                             headers=auth, timeout=5)

    mixed = status(image, video)
    assert mixed.status_code == 422
    assert mixed.json() == {"error": "Cannot attach a video to a post that already contains images"}
    assert status(video).json() == {"error": "Cannot attach files that have not finished processing. "
                                              "Try again in a moment!"}
    polls = [requests.get(f"{standin.url}/api/v1/media/{video}", headers=auth, timeout=5) for _ in range(2)]
    assert [p.status_code for p in polls] == [206, 200]
    assert polls[0].json()["url"] is None and polls[1].json()["url"]
    assert status(video).status_code == 200


def test_standin_reply_must_exist(standin: MastodonStandIn) -> None:
    tok = token(make_account(standin))
    answer = requests.post(f"{standin.url}/api/v1/statuses", json={"status": "x", "in_reply_to_id": "1"},
                           headers={"Authorization": f"Bearer {tok}"}, timeout=5)
    assert answer.status_code == 404
    assert answer.json() == {"error": "The post you are trying to reply to does not appear to exist."}


# -- identity: credentials model, whoami, handles ---------------------------------------------------
@pytest.mark.parametrize(("data", "lines"), [
    ({"access_token": "tok-12345678"}, []),
    ({}, ["mastodon: credentials: access_token: is required"]),
    ({"acces_token": "tok-12345678"}, ["mastodon: credentials: access_token: is required",
                                       "mastodon: credentials: acces_token: is not a field of these "
                                       "credentials (expected: access_token)"]),
    ({"access_token": "has a space in it"}, ["mastodon: credentials: access_token: is not a token (at least "
                                             "8 visible characters, no spaces)"]),
    (["tok-12345678"], ["mastodon: credentials: must be an object of names to values"]),
])
def test_credentials_model(data: Any, lines: list[str]) -> None:
    from adapters import validate_credentials

    if not lines:
        creds = validate_credentials("mastodon", data)
        assert creds.reveal() == data and creds.secrets() == ["tok-12345678"]
        return
    with pytest.raises(ValueError) as err:
        validate_credentials("mastodon", data)
    assert str(err.value).splitlines() == lines
    assert "has a space" not in str(err.value)


def test_caps_require_a_base_url(adapter: MastodonAdapter) -> None:
    assert adapter.caps.requires_base_url is True


def test_whoami_names_the_token_owner(standin: MastodonStandIn, adapter: MastodonAdapter,
                                      account: AccountRef) -> None:
    me = adapter.whoami(account)
    assert me.handle == account.handle and me.remote_id == standin.accounts[account.handle].id
    assert adapter.same_account(f"@{account.handle.upper()}", me)
    other = make_account(standin)
    assert adapter.whoami(other).handle == other.handle
    assert not adapter.same_account(account.handle, adapter.whoami(other))


def test_whoami_with_revoked_token_is_auth_expired(standin: MastodonStandIn, adapter: MastodonAdapter,
                                                    account: AccountRef) -> None:
    standin.revoke(token(account))
    with pytest.raises(AuthExpired):
        adapter.whoami(account)
