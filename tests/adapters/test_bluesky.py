"""Bluesky adapter against the Bluesky stand-in (a strict local PDS), plus its pure text rules.

The same adapter against Bluesky's own servers, driven through crosspost's CLI and workers, is in
tests/peer/test_bluesky_peer.py.
"""

from __future__ import annotations

import hashlib
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from PIL import Image

from adapters import http
from adapters.base import AccountRef, Credentials, Media, Post, Progress
from adapters.bluesky import (
    TID_ALPHABET,
    BlueskyAdapter,
    bluesky_length,
    created_at_iso,
    facets,
    mention_spans,
    part_tid,
    tag_spans,
    tid,
)
from adapters.errors import AuthExpired, RateLimited, Rejected, Transient
from adapters.standins.base import Fault
from adapters.standins.bluesky import BlueskyStandIn, blob_cid
from adapters.text import graphemes, utf8_bytes

WHEN = datetime(2026, 11, 28, 12, tzinfo=UTC)
HANDLE = "newsroom.test"
TID_RE = r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$"


# The stand-in, its reset before every test and the adapter come from conftest.py.
PLATFORM = "bluesky"
FOLLOWERS = 10


def post(text: str = "Budget passes", link: str | None = "https://news.example/budget",
         at: datetime = WHEN, media: tuple[Media, ...] = (), thread: bool = False) -> Post:
    return Post(text=text, link=link, created_at=at, media=media, thread=thread)


def image(tmp_path: Path, name: str = "a", size: tuple[int, int] = (40, 20), alt: str = "",
          dims: bool = True, fmt: str = "PNG") -> Media:
    path = tmp_path / f"{name}.{fmt.lower()}"
    Image.new("RGB", size, (hash(name) % 255, 90, 160)).save(path, fmt)
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}[fmt]
    return Media(kind="image", path=str(path), mime=mime, size=path.stat().st_size, alt=alt,
                 width=size[0] if dims else None, height=size[1] if dims else None)


def video(tmp_path: Path, alt: str = "") -> Media:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 4000)
    return Media(kind="video", path=str(path), mime="video/mp4", size=path.stat().st_size, alt=alt,
                 width=1280, height=720)


# A story long enough for three posts, with sentences, CJK, emoji, a mention, a tag and a link.
LONG = " ".join(f"第{i}段 Sentence {i} of the long story, with 👩🏽‍💻 and #tag{i} for context."
                for i in range(12))


def decode(text: str, facet: dict) -> str:
    index = facet["index"]
    return text.encode("utf-8")[index["byteStart"]:index["byteEnd"]].decode("utf-8")


def seen(standin: BlueskyStandIn, name: str) -> list[dict]:
    return [r for r in standin.requests if r["path"].endswith(name)]


# -- pure rules -----------------------------------------------------------------------------------
def test_tid_is_a_valid_deterministic_record_key() -> None:
    key = tid(WHEN, "d42-6f1c")
    assert key == tid(WHEN, "d42-6f1c")
    assert len(key) == 13 and set(key) <= set(TID_ALPHABET)
    assert re.match(TID_RE, key)
    value = 0
    for char in key:
        value = value * 32 + TID_ALPHABET.index(char)
    assert value >> 63 == 0
    assert value >> 10 == int((WHEN - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000
    assert value & 1023 == int.from_bytes(hashlib.sha256(b"d42-6f1c").digest(), "big") % 1024


def test_tid_sorts_by_time_and_separates_deliveries() -> None:
    assert tid(WHEN, "a") < tid(WHEN + timedelta(milliseconds=1), "a") < tid(WHEN + timedelta(days=1), "a")
    # Microseconds lost in storage between attempts change neither the key nor createdAt.
    assert tid(WHEN + timedelta(microseconds=999), "a") == tid(WHEN, "a")
    assert created_at_iso(WHEN + timedelta(microseconds=999)) == created_at_iso(WHEN)
    keys = {tid(WHEN, f"d{i}") for i in range(50)}
    assert len(keys) > 45  # clock ids differ (10 bits: a rare collision is allowed)
    # Same instant in another zone: same key.
    assert tid(WHEN.astimezone(ZoneInfo("Asia/Tokyo")), "a") == tid(WHEN, "a")


def test_tid_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError):
        tid(datetime(2026, 11, 28, 12), "a")


def test_created_at_has_milliseconds_and_z() -> None:
    assert created_at_iso(WHEN) == "2026-11-28T12:00:00.000Z"
    assert created_at_iso(datetime(2026, 11, 28, 13, 0, 0, 123456, tzinfo=UTC)) == "2026-11-28T13:00:00.123Z"


@pytest.mark.parametrize(("text", "tags"), [
    ("#news today", ["news"]),
    ("today #news, #sport!", ["news", "sport"]),
    ("#123 is not a tag, #a1 is", ["a1"]),
    ("mail@x.com#frag and x#y are not tags", []),
    ("\uff03日本語 fullwidth", ["日本語"]),
    ("#\ufe0f\u20e3 keycap is not a tag", []),
    ("#" + "a" * 65 + " too long", []),
    ("# lonely hash", []),
    ("line\n#second line", ["second"]),
    ("#café #naïve", ["café", "naïve"]),
])
def test_tag_spans(text: str, tags: list[str]) -> None:
    spans = tag_spans(text)
    assert [s.value for s in spans] == tags
    for span in spans:
        assert text.encode()[span.byte_start:span.byte_end].decode()[1:] == span.value


# Text mixing CJK, emoji ZWJ sequences, flags, skin tones and combining marks before the facets.
MIXED = ("東京で速報 👨‍👩‍👧‍👦 🇯🇵🇪🇸 👍🏽 e\u0301 a\u0308\u0304 #選挙 https://news.example/a?b=ü "
         "👩🏿‍🚀 #vote2026 ok\n\nhttps://news.example/x")


def test_facets_decode_to_exactly_the_link_or_tag() -> None:
    found = facets(MIXED)
    kinds = [(f["features"][0]["$type"].rsplit("#", 1)[1], decode(MIXED, f)) for f in found]
    assert kinds == [("tag", "#選挙"), ("link", "https://news.example/a?b=ü"), ("tag", "#vote2026"),
                     ("link", "https://news.example/x")]
    assert found[0]["features"][0]["tag"] == "選挙"
    assert found[1]["features"][0]["uri"] == "https://news.example/a?b=ü"
    assert [f["index"]["byteStart"] for f in found] == sorted(f["index"]["byteStart"] for f in found)


def test_a_hash_inside_a_link_is_not_a_tag() -> None:
    text = "see https://news.example/page #live\nhttps://news.example/#anchor"
    assert [decode(text, f) for f in facets(text)] == [
        "https://news.example/page", "#live", "https://news.example/#anchor"]


def test_no_facets_for_plain_text() -> None:
    assert facets("nothing to link here") == []


@pytest.mark.parametrize(("text", "mentions"), [
    ("@alice.test hi", ["alice.test"]),
    ("hi (@Bob.Example.com) and @carol.bsky.social!", ["bob.example.com", "carol.bsky.social"]),
    ("mail@alice.test is an address, @alice is no handle, @3.5 neither", []),
    ("end of a sentence @alice.test. Next", ["alice.test"]),
    ("東京 @alice.test\n@dave.test", ["alice.test", "dave.test"]),
])
def test_mention_spans(text: str, mentions: list[str]) -> None:
    spans = mention_spans(text)
    assert [s.value for s in spans] == mentions
    for span in spans:
        assert text.encode()[span.byte_start:span.byte_end].decode().lower() == "@" + span.value


def test_mention_facets_only_for_resolved_handles() -> None:
    text = "👍🏽 @alice.test met @nobody.test, see https://x.example/@alice.test"
    found = facets(text, {"alice.test": "did:plc:alice", "nobody.test": None})
    assert [(f["features"][0]["$type"].rsplit("#")[1], decode(text, f)) for f in found] == [
        ("mention", "@alice.test"), ("link", "https://x.example/@alice.test")]
    assert found[0]["features"][0]["did"] == "did:plc:alice"
    assert facets(text) == found[1:]  # nothing resolved: no mention facet


def test_bluesky_length_counts_both_limits() -> None:
    assert bluesky_length("a" * 300) == 300 and bluesky_length("a" * 301) == 301
    assert bluesky_length("€" * 1000) == 1000  # 1000 graphemes, 3000 bytes
    family = "👨‍👩‍👧‍👦"  # 25 bytes
    assert bluesky_length(family * 120) == 300 and bluesky_length(family * 121) == 303


def test_part_keys_are_distinct_sorted_and_part_0_is_the_single_post_key() -> None:
    keys = [part_tid(WHEN, "d1", i) for i in range(12)]
    assert keys[0] == tid(WHEN, "d1") and keys == sorted(keys) and len(set(keys)) == 12
    assert all(re.match(TID_RE, k) for k in keys)
    assert keys == [part_tid(WHEN, "d1", i) for i in range(12)]
    assert part_tid(WHEN, "d2", 1) != keys[1]


def test_check(adapter: BlueskyAdapter, tmp_path: Path) -> None:
    family = "👨‍👩‍👧‍👦"  # 25 bytes, one grapheme
    cases: list[tuple[Post, list[str]]] = [
        (Post(text="fine"), []),
        (Post(text=""), ["bluesky: text: is empty"]),
        (Post(text="a" * 301), ["bluesky: text: is 301 graphemes long; the limit is 300; use --thread for "
                                "a reply chain"]),
        (Post(text="a" * 301, thread=True), []),
        # 300 graphemes of a 25-byte family emoji: within the grapheme limit, over the byte limit.
        (Post(text=family * 300), ["bluesky: text: is 7500 UTF-8 bytes long; the limit is 3000; use --thread "
                                   "for a reply chain"]),
        (Post(text=family * 300, thread=True), []),
        (Post(text=family * 120), []),
        (Post(text="x", media=tuple(image(tmp_path, str(i)) for i in range(5))),
         ["bluesky: media: 5 images; the limit is 4"]),
        (Post(text="x", media=(Media("image", "/x.bmp", "image/bmp", 10),)),
         ["bluesky: media: image type image/bmp is not one of image/gif, image/jpeg, image/png, image/webp"]),
        (Post(text="x", media=(Media("image", "/x.jpg", "image/jpeg", 1_000_001),)),
         ["bluesky: media: image is 1000001 bytes; the limit is 1000000"]),
        (Post(text="x", media=(image(tmp_path), video(tmp_path))),
         ["bluesky: media: images and a video cannot go in one post"]),
        (Post(text="x", media=(video(tmp_path, alt="é" * 1001),)),
         ["bluesky: media: video alt text is 1001 graphemes; the limit is 1000"]),
        (Post(text="x", media=(Media("video", "/x.mp4", "video/mp4", 50_000_001),)),
         ["bluesky: media: video is 50000001 bytes; the limit is 50000000"]),
    ]
    for story, problems in cases:
        assert [str(p) for p in adapter.check(story)] == problems, story.text[:20]


# -- publish --------------------------------------------------------------------------------------
def test_publish_writes_a_post_record_under_the_delivery_tid(
        adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn, creds: dict[str, str]) -> None:
    story = post("Budget passes #politics")
    published = adapter.publish(account, story, "d42-6f1c")
    rkey = tid(WHEN, "d42-6f1c")
    assert published.remote_id == f"at://{creds['did']}/app.bsky.feed.post/{rkey}"
    assert published.url == f"https://bsky.app/profile/{HANDLE}/post/{rkey}"
    [created] = standin.posts("post")
    assert created.key == rkey and created.id == published.remote_id
    record = created.data["record"]
    assert record["$type"] == "app.bsky.feed.post"
    assert record["text"] == "Budget passes #politics\n\nhttps://news.example/budget"
    assert record["createdAt"] == "2026-11-28T12:00:00.000Z"
    assert [decode(record["text"], f) for f in record["facets"]] == ["#politics", "https://news.example/budget"]
    [put] = seen(standin, "com.atproto.repo.putRecord")
    assert put["method"] == "POST" and put["scope"] == creds["did"]  # the access token of this account


def test_publish_without_facets_omits_them(adapter: BlueskyAdapter, account: AccountRef,
                                           standin: BlueskyStandIn) -> None:
    adapter.publish(account, post("Plain words", link=None), "d1")
    assert "facets" not in standin.posts("post")[0].data["record"]


def test_retry_after_a_dropped_answer_leaves_one_post(adapter: BlueskyAdapter, account: AccountRef,
                                                      standin: BlueskyStandIn) -> None:
    story = post("Dropped answer story")
    standin.inject(Fault(commit=True, drop=True, path="putRecord"))
    with pytest.raises(Transient) as err:
        adapter.publish(account, story, "d7")
    assert err.value.maybe_sent is True
    assert len(standin.posts("post")) == 1  # it went out
    again = adapter.publish(account, story, "d7")  # the scheduler's retry: same key, same created_at
    assert again.remote_id == standin.posts("post")[0].id
    assert len(standin.posts()) == 1 and standin.duplicates() == 0
    assert adapter.find_published(account, story, "d7") == again


def test_same_key_with_a_changed_record_is_an_edit_not_a_post(adapter: BlueskyAdapter, account: AccountRef,
                                                              standin: BlueskyStandIn) -> None:
    adapter.publish(account, post("First wording"), "d8")
    adapter.publish(account, post("Second wording"), "d8")
    assert [c.kind for c in standin.posts()] == ["post", "edit"]
    assert standin.duplicates() == 0


def test_publish_needs_a_fixed_created_at(adapter: BlueskyAdapter, account: AccountRef) -> None:
    with pytest.raises(ValueError):
        adapter.publish(account, Post(text="no time"), "d9")


# -- images, video ----------------------------------------------------------------------------------
def test_images_are_uploaded_as_blobs_and_embedded_with_alt_and_aspect_ratio(
        adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn, tmp_path: Path) -> None:
    media = (image(tmp_path, "a", (40, 20), alt="A red square 日本"),
             image(tmp_path, "b", (30, 60), fmt="JPEG"), image(tmp_path, "c", dims=False, fmt="WEBP"))
    progress = Progress()
    adapter.publish(account, post("Pictures", media=media), "d40", progress)
    uploads = seen(standin, "com.atproto.repo.uploadBlob")
    assert len(uploads) == 3 and standin.uploads == 3
    [created] = standin.posts("post")
    embed = created.data["record"]["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    assert [i["alt"] for i in embed["images"]] == ["A red square 日本", "", ""]
    assert [i.get("aspectRatio") for i in embed["images"]] == [
        {"width": 40, "height": 20}, {"width": 30, "height": 60}, None]
    assert [i["image"]["mimeType"] for i in embed["images"]] == ["image/png", "image/jpeg", "image/webp"]
    for m, i in zip(media, embed["images"], strict=True):
        assert i["image"]["ref"]["$link"] == blob_cid(Path(m.path).read_bytes())
        assert i["image"]["size"] == m.size
    assert progress.get("blobs") == [i["image"] for i in embed["images"]]


def test_a_video_is_one_blob_in_a_video_embed(adapter: BlueskyAdapter, account: AccountRef,
                                              standin: BlueskyStandIn, tmp_path: Path) -> None:
    adapter.publish(account, post("Watch", media=(video(tmp_path, alt="Clip"),)), "d41")
    embed = standin.posts("post")[0].data["record"]["embed"]
    assert embed["$type"] == "app.bsky.embed.video" and embed["alt"] == "Clip"
    assert embed["aspectRatio"] == {"width": 1280, "height": 720}
    assert embed["video"]["mimeType"] == "video/mp4"


def test_retry_reuses_the_uploaded_blobs_and_writes_the_same_record(
        adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn, tmp_path: Path) -> None:
    story = post("Dropped with pictures", media=(image(tmp_path, "a", alt="one"), image(tmp_path, "b")))
    progress = Progress()
    standin.inject(Fault(commit=True, drop=True, path="putRecord"))
    with pytest.raises(Transient) as err:
        adapter.publish(account, story, "d42", progress)
    assert err.value.maybe_sent and standin.uploads == 2
    first = standin.posts("post")[0].data["record"]
    again = adapter.publish(account, Post(**{**story.__dict__}), "d42", Progress(progress.state))
    assert standin.uploads == 2  # nothing uploaded twice
    assert [c.kind for c in standin.posts()] == ["post"]  # the same record: not even an edit
    assert again.remote_id == standin.posts("post")[0].id and first == standin.posts("post")[0].data["record"]


def test_blobs_the_pds_forgot_are_uploaded_again_on_the_next_attempt(
        adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn, tmp_path: Path) -> None:
    story = post("Blobs forgotten", media=(image(tmp_path, "a"),))
    progress = Progress()
    standin.inject(Fault(status=503, path="putRecord"))
    with pytest.raises(Transient):
        adapter.publish(account, story, "d43", progress)
    standin.forget_unused_blobs()  # e.g. the scheduler came back after an hour's rate limit
    with pytest.raises(Transient, match="BlobNotFound") as err:
        adapter.publish(account, story, "d43", progress)
    assert err.value.maybe_sent is False and progress.get("blobs") == []
    adapter.publish(account, story, "d43", progress)
    assert standin.uploads == 2 and len(standin.posts("post")) == 1


# -- threads ----------------------------------------------------------------------------------------
def test_a_long_story_goes_out_as_a_reply_chain(adapter: BlueskyAdapter, account: AccountRef,
                                                standin: BlueskyStandIn, tmp_path: Path) -> None:
    story = post(LONG, link="https://news.example/long", thread=True, media=(image(tmp_path, alt="Lead"),))
    progress = Progress()
    published = adapter.publish(account, story, "d50", progress)
    records = [c.data for c in standin.posts("post")]
    n = len(records)
    assert n >= 3 and len(progress.get("thread")) == n
    assert [r["record"]["text"].rsplit(" ", 1)[1] for r in records] == [f"{i}/{n}" for i in range(1, n + 1)]
    assert published.remote_id == records[0]["uri"] == progress.get("parts")[0]["uri"]
    assert [r["uri"].rsplit("/", 1)[1] for r in records] == [part_tid(WHEN, "d50", i) for i in range(n)]
    root = {"uri": records[0]["uri"], "cid": progress.get("parts")[0]["cid"]}
    assert "reply" not in records[0]["record"] and "embed" in records[0]["record"]
    for i, r in enumerate(records[1:], 1):
        assert r["record"]["reply"] == {"root": root, "parent": progress.get("parts")[i - 1]}
        assert "embed" not in r["record"]
    for r in records:
        text = r["record"]["text"]
        assert graphemes(text) <= 300 and utf8_bytes(text) <= 3000
        for f in r["record"]["facets"]:
            feature = f["features"][0]
            assert decode(text, f) == ("#" + feature["tag"] if "tag" in feature else feature["uri"])
    assert [r["record"]["createdAt"] for r in records] == sorted({r["record"]["createdAt"] for r in records})
    assert decode(records[-1]["record"]["text"], records[-1]["record"]["facets"][-1]) == "https://news.example/long"


def test_a_thread_resumes_after_the_last_part_that_went_out(adapter: BlueskyAdapter, account: AccountRef,
                                                            standin: BlueskyStandIn) -> None:
    def fail_second(state: dict[str, Any]) -> None:
        if len(state.get("parts", [])) == 1:
            standin.inject(Fault(status=502, path="putRecord"))

    story = post(LONG, link=None, thread=True)
    progress = Progress(saver=fail_second)
    with pytest.raises(Transient):
        adapter.publish(account, story, "d51", progress)
    assert len(standin.posts()) == 1 and len(progress.get("parts")) == 1
    published = adapter.publish(account, story, "d51", progress)
    n = len(progress.get("thread"))
    assert [c.kind for c in standin.posts()] == ["post"] * n and standin.duplicates() == 0
    assert len(seen(standin, "putRecord")) == n + 1  # part 1 once, the refused part 2 twice, the rest once
    assert adapter.find_published(account, story, "d51") == published


def test_a_dropped_answer_mid_thread_rewrites_that_part_harmlessly(
        adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn) -> None:
    def drop_second(state: dict[str, Any]) -> None:
        if len(state.get("parts", [])) == 1:
            standin.inject(Fault(commit=True, drop=True, path="putRecord"))

    story = post(LONG, link=None, thread=True)
    progress = Progress(saver=drop_second)
    with pytest.raises(Transient) as err:
        adapter.publish(account, story, "d52", progress)
    assert err.value.maybe_sent and len(standin.posts()) == 2 and len(progress.get("parts")) == 1
    assert adapter.find_published(account, story, "d52") is None  # the chain is not complete
    adapter.publish(account, story, "d52", progress)
    # Part 2 was written again, identical: no edit, no second post.
    assert [c.kind for c in standin.posts()] == ["post"] * len(progress.get("thread"))


# -- mentions ---------------------------------------------------------------------------------------
def test_mentions_resolve_once_and_unknown_handles_stay_plain_text(
        adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn) -> None:
    alice = standin.add_account("alice.test")
    text = "Thanks @Alice.test and @nobody.test and @someone.example.com, again @alice.test"
    progress = Progress()
    standin.inject(Fault(status=503, path="putRecord"))
    with pytest.raises(Transient):
        adapter.publish(account, post(text, link=None), "d60", progress)
    assert standin.resolves == 3
    assert progress.get("mentions") == {"alice.test": alice["did"], "nobody.test": None,
                                        "someone.example.com": None}
    adapter.publish(account, post(text, link=None), "d60", progress)
    assert standin.resolves == 3  # kept in progress: the retry writes the same facets
    record = standin.posts("post")[0].data["record"]
    assert [(decode(text, f), f["features"][0]["did"]) for f in record["facets"]] == [
        ("@Alice.test", alice["did"]), ("@alice.test", alice["did"])]


# -- sessions -------------------------------------------------------------------------------------
def test_expired_access_token_is_refreshed_not_relogged(
        adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn, creds: dict[str, str]) -> None:
    standin.expire_access_tokens()
    with pytest.raises(AuthExpired) as err:
        adapter.publish(account, post("After expiry"), "d10")
    assert "ExpiredToken" in str(err.value)
    fresh = adapter.refresh(account)
    assert standin.refresh_calls == 1 and standin.login_calls == 0
    # The access token's own exp claim (2 h here), so the scheduler can refresh before it runs out.
    expires = datetime.fromisoformat(fresh.get("expires_at") or "")
    assert abs((expires - datetime.now(UTC)).total_seconds() - standin.access_ttl) < 60
    values = fresh.reveal()
    assert values["accessJwt"] != creds["accessJwt"] and values["refreshJwt"] != creds["refreshJwt"]
    assert {k: values[k] for k in ("identifier", "password", "did")} == {
        k: creds[k] for k in ("identifier", "password", "did")}
    account.credentials = fresh
    adapter.publish(account, post("After expiry"), "d10")
    assert len(standin.posts("post")) == 1
    [call] = seen(standin, "refreshSession")
    assert call["scope"] == creds["did"]


def test_no_session_yet_logs_in_with_the_app_password(adapter: BlueskyAdapter, account: AccountRef,
                                                      standin: BlueskyStandIn, creds: dict[str, str]) -> None:
    account.credentials = Credentials({"identifier": creds["identifier"], "password": creds["password"]})
    with pytest.raises(AuthExpired, match="no session yet"):
        adapter.publish(account, post("First login"), "d11")
    with pytest.raises(AuthExpired, match="no session yet"):
        adapter.followers(account)
    account.credentials = adapter.refresh(account)
    assert standin.login_calls == 1 and standin.refresh_calls == 0
    assert account.credentials.get("did") == creds["did"]
    assert adapter.publish(account, post("First login"), "d11").remote_id.startswith(f"at://{creds['did']}/")


def test_a_revoked_refresh_token_falls_back_to_login(adapter: BlueskyAdapter, account: AccountRef,
                                                     standin: BlueskyStandIn) -> None:
    adapter.refresh(account)  # rotates: the stored (old) refresh token is now revoked
    fresh = adapter.refresh(account)
    assert standin.refresh_calls == 2 and standin.login_calls == 1
    account.credentials = fresh
    adapter.publish(account, post("After relogin"), "d12")


def test_refresh_fails_when_both_token_and_password_are_refused(adapter: BlueskyAdapter, account: AccountRef,
                                                                standin: BlueskyStandIn,
                                                                creds: dict[str, str]) -> None:
    standin.expire_refresh_tokens()
    account.credentials = account.credentials.merged(password="wrong-password")
    with pytest.raises(AuthExpired, match="re-authorise") as err:
        adapter.refresh(account)
    assert "wrong-password" not in str(err.value)
    account.credentials = Credentials({"accessJwt": creds["accessJwt"], "did": creds["did"]})
    with pytest.raises(AuthExpired, match="no app password"):
        adapter.refresh(account)


def test_refresh_on_a_server_fault_does_not_log_in(adapter: BlueskyAdapter, account: AccountRef,
                                                   standin: BlueskyStandIn) -> None:
    standin.inject(Fault(status=502, path="refreshSession"))
    with pytest.raises(Transient):
        adapter.refresh(account)
    assert standin.login_calls == 0


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fault", "error", "check"), [
    (Fault(status=429, retry_after=30, path="putRecord"), RateLimited, lambda e: 25 < e.retry_after <= 31),
    (Fault(status=500, body={"error": "InternalServerError", "message": "Internal Server Error"},
           path="putRecord"), Transient, lambda e: e.maybe_sent and e.status == 500),
    (Fault(status=503, path="putRecord"), Transient, lambda e: e.maybe_sent),
    (Fault(status=413, body={"error": "PayloadTooLarge", "message": "request entity too large"},
           path="putRecord"), Rejected, lambda e: e.status == 413),
    (Fault(drop=True, path="putRecord"), Transient, lambda e: e.maybe_sent),
    (Fault(status=401, body={"error": "AuthenticationRequired", "message": "Authentication Required"},
           path="putRecord"), AuthExpired, lambda e: e.status == 401),
    (Fault(status=400, body={"error": "AccountTakedown", "message": "Account has been taken down"},
           path="putRecord"), Rejected, lambda e: "AccountTakedown" in e.reason),
])
def test_faults_map_to_typed_errors(adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn,
                                    fault: Fault, error: type, check) -> None:
    standin.inject(fault)
    with pytest.raises(error) as err:
        adapter.publish(account, post("Fault story"), "d20")
    assert check(err.value), err.value
    assert err.value.reason.startswith("bluesky: ")


def test_rate_limit_wait_falls_back_to_retry_after(adapter: BlueskyAdapter) -> None:
    # No ratelimit-* headers (another PDS operator's proxy): Retry-After decides.
    response = requests.Response()
    response.status_code, response._content = 429, b'{"error":"RateLimitExceeded","message":"slow down"}'
    response.headers["Retry-After"] = "42"
    # Bluesky's classify adds nothing to a 429: the declared rules decide, as http.send applies them.
    assert adapter.classify(response) is None
    error = http.default_error(response, "bluesky", "", adapter.rules)
    assert isinstance(error, RateLimited) and error.retry_after == 42


@pytest.mark.parametrize(("change", "error", "fragment"), [
    (lambda c, other: {**c, "accessJwt": "not-a-token"}, AuthExpired, "InvalidToken"),
    (lambda c, other: {**c, "accessJwt": c["refreshJwt"]}, AuthExpired, "InvalidToken"),
    (lambda c, other: {**c, "did": other["did"]}, AuthExpired, "AuthenticationRequired"),
    (lambda c, other: {**c, "did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"}, Rejected, "AccountNotFound"),
])
def test_credentials_the_pds_refuses(adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn,
                                     creds: dict[str, str], change, error: type, fragment: str) -> None:
    other = standin.add_account("other.test")
    account.credentials = Credentials(change(creds, other))
    with pytest.raises(error, match=fragment):
        adapter.publish(account, post("Refused"), "d21")
    assert standin.posts() == []


@pytest.mark.parametrize(("text", "fragment"), [
    ("a" * 301, "grapheme too big (maximum 300, got 301)"),
    ("👨‍👩‍👧‍👦" * 299, "string too big (maximum 3000"),
])
def test_content_the_pds_rejects(adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn,
                                 text: str, fragment: str) -> None:
    with pytest.raises(Rejected) as err:
        adapter.publish(account, post(text, link=None), "d22")
    assert fragment in err.value.reason and err.value.status == 400
    assert standin.posts() == []


# -- followers and find_published -----------------------------------------------------------------
def test_followers(adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn,
                   creds: dict[str, str]) -> None:
    assert adapter.followers(account) == 10
    [call] = seen(standin, "app.bsky.actor.getProfile")
    assert call["scope"] == creds["did"]
    standin.expire_access_tokens()
    with pytest.raises(AuthExpired):
        adapter.followers(account)


def test_find_published(adapter: BlueskyAdapter, account: AccountRef, standin: BlueskyStandIn) -> None:
    story = post("Was it published?")
    assert adapter.find_published(account, story, "d30") is None
    published = adapter.publish(account, story, "d30")
    standin.expire_access_tokens()  # getRecord is public: an expired session does not matter
    assert adapter.find_published(account, story, "d30") == published
    assert adapter.find_published(account, story, "d31") is None
    assert adapter.find_published(account, Post(text="never sent"), "d30") is None
    account.credentials = Credentials({"identifier": HANDLE, "password": "x-y-z-w"})
    with pytest.raises(AuthExpired):
        adapter.find_published(account, story, "d30")


# -- the stand-in is as strict as the PDS ---------------------------------------------------------
def _record(**changes: object) -> dict:
    return {"$type": "app.bsky.feed.post", "text": "日本 #tag", "createdAt": "2026-11-28T12:00:00.000Z",
            **changes}


def _facet(start: int, end: int, feature: dict | None = None) -> dict:
    return {"index": {"byteStart": start, "byteEnd": end},
            "features": [feature or {"$type": "app.bsky.richtext.facet#tag", "tag": "tag"}]}


@pytest.mark.parametrize(("change", "status", "name", "fragment"), [
    ({}, 200, None, None),
    ({"rkey": "hello"}, 400, "InvalidRequest", "Invalid TID string"),
    ({"rkey": "z" * 13}, 400, "InvalidRequest", "Invalid TID string"),
    ({"auth": None}, 401, "AuthMissing", "Authentication Required"),
    ({"auth": "Basic eDp5"}, 400, "InvalidToken", "Unexpected authorization type"),
    ({"auth": "refresh"}, 400, "InvalidToken", "Token could not be verified"),
    ({"repo": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"}, 403, "AccountNotFound", "Account not found"),
    ({"repo": "other"}, 401, "AuthenticationRequired", "Authentication Required"),
    ({"collection": "app.bsky.feed.like"}, 400, "InvalidRequest", "Invalid $type"),
    ({"record": _record(text="x" * 301)}, 400, "InvalidRequest", "grapheme too big (maximum 300, got 301)"),
    ({"record": _record(text="€" * 1001)}, 400, "InvalidRequest", "string too big (maximum 3000, got 3003)"),
    ({"record": _record(createdAt="2026-11-28T12:00:00")}, 400, "InvalidRequest", "Invalid datetime"),
    ({"record": {"$type": "app.bsky.feed.post", "text": "x"}}, 400, "InvalidRequest",
     'Missing required key "createdAt"'),
    ({"record": _record(facets=[_facet(7, 11)])}, 200, None, None),
    ({"record": _record(facets=[_facet(1, 11)])}, 400, "InvalidRequest", "inside a UTF-8 character"),
    ({"record": _record(facets=[_facet(7, 12)])}, 400, "InvalidRequest", "past the end of the text"),
    ({"record": _record(facets=[_facet(7, 7)])}, 400, "InvalidRequest", "byteStart must be before byteEnd"),
    ({"record": _record(facets=[_facet(-1, 7)])}, 400, "InvalidRequest", "integer too small"),
    ({"record": _record(facets=[_facet(7, 11, {"$type": "app.bsky.richtext.facet#bogus"})])}, 400,
     "InvalidRequest", "Unknown facet feature type"),
    ({"record": _record(facets=[_facet(7, 11, {"$type": "app.bsky.richtext.facet#link", "uri": "no"})])},
     400, "InvalidRequest", "Invalid uri"),
    ({"json": False}, 400, "InvalidRequest", "Wrong request encoding"),
    ({"method": "GET"}, 400, "InvalidRequest", "Incorrect HTTP method (GET) expected POST"),
])
def test_standin_checks_put_record_like_the_pds(standin: BlueskyStandIn, creds: dict[str, str],
                                                change: dict, status: int, name: str | None,
                                                fragment: str | None) -> None:
    other = standin.add_account("other.test")
    body = {"repo": creds["did"], "collection": "app.bsky.feed.post", "rkey": tid(WHEN, "s1"),
            "record": _record()}
    body.update({k: v for k, v in change.items() if k in body})
    if body["repo"] == "other":
        body["repo"] = other["did"]
    auth = change.get("auth", "access")
    tokens = {"access": f"Bearer {creds['accessJwt']}", "refresh": f"Bearer {creds['refreshJwt']}"}
    headers = {} if auth is None else {"Authorization": tokens.get(auth, auth)}
    url = f"{standin.url}/xrpc/com.atproto.repo.putRecord"
    if change.get("json", True):
        answer = requests.request(change.get("method", "POST"), url, json=body, headers=headers, timeout=5)
    else:
        answer = requests.post(url, data={"repo": creds["did"]}, headers=headers, timeout=5)
    assert answer.status_code == status, answer.text
    if name:
        assert answer.json()["error"] == name and fragment in answer.json()["message"]
        assert standin.posts() == []


def _upload(standin: BlueskyStandIn, creds: dict[str, str], data: bytes, ctype: str | None = "image/png"):
    headers = {"Authorization": f"Bearer {creds['accessJwt']}"}
    if ctype:
        headers["Content-Type"] = ctype
    return requests.post(f"{standin.url}/xrpc/com.atproto.repo.uploadBlob", data=data, headers=headers,
                         timeout=5)


def _png(size: tuple[int, int] = (40, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "red").save(out, "PNG")
    return out.getvalue()


def test_standin_upload_blob_like_the_pds(standin: BlueskyStandIn, creds: dict[str, str]) -> None:
    png = _png()
    answer = _upload(standin, creds, png)
    # Measured on the reference PDS: this exact PNG gets this CID.
    assert answer.json() == {"blob": {"$type": "blob", "ref": {
        "$link": "bafkreiedu7by2536thp57lyzhmysd3bp5oa55d5bex6q36c6sc67ux4vne"}, "mimeType": "image/png",
        "size": 93}}
    assert _upload(standin, creds, png, "image/jpeg").json()["blob"]["mimeType"] == "image/png"  # sniffed
    assert _upload(standin, creds, b"hello", "text/plain").json()["blob"]["mimeType"] == "text/plain"
    missing = _upload(standin, creds, png, None)
    assert (missing.status_code, missing.json()["message"]) == (
        400, "Request encoding (Content-Type) required but not provided")
    big = _upload(standin, creds, b"\xff\xd8\xff" + bytes(standin.blob_limit))
    assert (big.status_code, big.json()) == (
        413, {"error": "PayloadTooLarge", "message": "request entity too large"})
    anonymous = requests.post(f"{standin.url}/xrpc/com.atproto.repo.uploadBlob", data=png,
                              headers={"Content-Type": "image/png"}, timeout=5)
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "AuthMissing")


def _blob(**changes: object) -> dict:
    return {"$type": "blob", "ref": {"$link": blob_cid(_png())}, "mimeType": "image/png", "size": 93,
            **changes}


def _images(*images: dict) -> dict:
    return {"$type": "app.bsky.embed.images", "images": list(images)}


def _img(**changes: object) -> dict:
    return {"image": _blob(), "alt": "x", "aspectRatio": {"width": 40, "height": 20}, **changes}


ROOT_RKEY = "3n3fragefrh22"


@pytest.mark.parametrize(("change", "name", "fragment"), [
    ({"embed": _images(_img())}, None, None),
    ({"embed": _images(_img(alt=""), {"image": _blob(), "alt": ""})}, None, None),
    ({"embed": _images(*[_img()] * 5)}, "InvalidRequest",
     "array too big (maximum 4, got 5) at $.record.embed.images"),
    ({"embed": _images({"image": _blob()})}, "InvalidRequest",
     'Missing required key "alt" at $.record.embed.images[0]'),
    ({"embed": _images(_img(alt=5))}, "InvalidRequest", "Expected string value type (got 5)"),
    ({"embed": _images(_img(aspectRatio={"width": 0, "height": 20}))}, "InvalidRequest",
     "integer too small (minimum 1, got 0) at $.record.embed.images[0].aspectRatio.width"),
    ({"embed": _images(_img(aspectRatio={"width": 1.5, "height": 20}))}, "InvalidRequest", "(got 1.5)"),
    ({"embed": _images(_img(aspectRatio={"width": 40}))}, "InvalidRequest", 'Missing required key "height"'),
    ({"embed": _images(_img(image={"cid": "bafkrei", "mimeType": "image/png"}))}, "InvalidRequest",
     "Expected blob value type"),
    ({"embed": _images(_img(image=_blob(mimeType="text/plain")))}, "InvalidRequest",
     'Expected "image/*" (got "text/plain")'),
    ({"embed": _images(_img(image=_blob(size=2_000_001)))}, "InvalidRequest",
     "blob too big (maximum 2000000, got 2000001)"),
    ({"embed": _images(_img(image=_blob(mimeType="image/jpeg")))}, "InvalidMimeType",
     "Referenced Mimetype does not match stored blob. Expected: image/png, Got: image/jpeg"),
    ({"embed": _images(_img(image=_blob(size=94)))}, "InvalidSize", "Expected: 93, Got: 94"),
    ({"embed": _images(_img(image=_blob(ref={"$link": blob_cid(b"never uploaded")})))}, "BlobNotFound",
     f"Could not find blob: {blob_cid(b'never uploaded')}"),
    ({"embed": {"$type": "app.bsky.embed.imagez", "images": []}}, "InvalidRequest", "Unknown embed type"),
    ({"reply": {"root": "root", "parent": "root"}}, None, None),
    ({"reply": {"parent": "root"}}, "InvalidRequest", 'Missing required key "root" at $.record.reply'),
    ({"reply": {"root": {"uri": "notauri", "cid": "x"}, "parent": "root"}}, "InvalidRequest",
     'Invalid at-uri (got "notauri")'),
    ({"reply": {"root": {"uri": "at://did:plc:x/app.bsky.feed.post/x"}, "parent": "root"}}, "InvalidRequest",
     'Missing required key "cid" at $.record.reply.root'),
    ({"reply": {"root": "missing", "parent": "root"}}, "InvalidRequest", "does not exist"),
    ({"reply": {"root": "root", "parent": "stale"}}, "InvalidRequest", "has CID"),
])
def test_standin_checks_embeds_and_replies_like_the_pds(standin: BlueskyStandIn, creds: dict[str, str],
                                                        change: dict, name: str | None,
                                                        fragment: str | None) -> None:
    headers = {"Authorization": f"Bearer {creds['accessJwt']}"}
    url = f"{standin.url}/xrpc/com.atproto.repo.putRecord"
    assert _upload(standin, creds, _png()).status_code == 200
    root = requests.post(url, headers=headers, timeout=5, json={
        "repo": creds["did"], "collection": "app.bsky.feed.post", "rkey": ROOT_RKEY,
        "record": _record()}).json()
    refs = {"root": {"uri": root["uri"], "cid": root["cid"]},
            "stale": {"uri": root["uri"], "cid": blob_cid(b"x").replace("bafkrei", "bafyrei")},
            "missing": {"uri": root["uri"].replace(ROOT_RKEY, tid(WHEN, "none")), "cid": root["cid"]}}
    if "reply" in change:
        change = {"reply": {k: refs.get(v, v) if isinstance(v, str) else v
                            for k, v in change["reply"].items()}}
    answer = requests.post(url, headers=headers, timeout=5, json={
        "repo": creds["did"], "collection": "app.bsky.feed.post", "rkey": tid(WHEN, "s3"),
        "record": _record(**change)})
    if name is None:
        assert answer.status_code == 200, answer.text
    else:
        assert (answer.status_code, answer.json()["error"]) == (400, name), answer.text
        assert fragment in answer.json()["message"]
        assert len(standin.posts()) == 1


def test_standin_blobs_belong_to_one_account(standin: BlueskyStandIn, creds: dict[str, str]) -> None:
    other = standin.add_account("other.test")
    assert _upload(standin, other, _png()).status_code == 200
    body = {"repo": creds["did"], "collection": "app.bsky.feed.post", "rkey": tid(WHEN, "s4"),
            "record": _record(embed=_images(_img()))}
    answer = requests.post(f"{standin.url}/xrpc/com.atproto.repo.putRecord", json=body, timeout=5,
                           headers={"Authorization": f"Bearer {creds['accessJwt']}"})
    assert (answer.status_code, answer.json()["error"]) == (400, "BlobNotFound")


@pytest.mark.parametrize(("handle", "status", "body"), [
    ("newsroom.test", 200, {"did": "own"}),
    ("NewsRoom.TEST", 200, {"did": "own"}),
    ("nobody.test", 400, {"error": "HandleNotFound", "message": "Unable to resolve handle"}),
    ("someone.example.com", 400, {"error": "InvalidRequest", "message": "Unable to resolve handle"}),
    ("bad handle", 400, {"error": "InvalidRequest", "message": 'Invalid com.atproto.identity.resolveHandle '
                                                               'params: Invalid handle (got "bad handle")'}),
    (None, 400, {"error": "InvalidRequest", "message":
                 'Invalid com.atproto.identity.resolveHandle params: Missing required key "handle"'}),
])
def test_standin_resolves_handles_like_the_pds(standin: BlueskyStandIn, creds: dict[str, str],
                                               handle: str | None, status: int, body: dict) -> None:
    answer = requests.get(f"{standin.url}/xrpc/com.atproto.identity.resolveHandle", timeout=5,
                          params={} if handle is None else {"handle": handle})
    assert answer.status_code == status
    assert answer.json() == ({"did": creds["did"]} if body == {"did": "own"} else body)


def test_standin_create_record_on_an_existing_key_is_a_500(standin: BlueskyStandIn,
                                                           creds: dict[str, str]) -> None:
    body = {"repo": creds["did"], "collection": "app.bsky.feed.post", "rkey": tid(WHEN, "s2"),
            "record": _record()}
    headers = {"Authorization": f"Bearer {creds['accessJwt']}"}
    url = f"{standin.url}/xrpc/com.atproto.repo."
    first = requests.post(url + "createRecord", json=body, headers=headers, timeout=5)
    again = requests.post(url + "createRecord", json=body, headers=headers, timeout=5)
    put = requests.post(url + "putRecord", json=body, headers=headers, timeout=5)
    assert first.status_code == 200 and "commit" in first.json()
    assert again.status_code == 500 and again.json()["error"] == "InternalServerError"
    assert put.status_code == 200 and put.json()["cid"] == first.json()["cid"] and "commit" not in put.json()
    assert len(standin.posts()) == 1
    listed = requests.get(f"{url}listRecords", params={"repo": HANDLE, "collection": "app.bsky.feed.post"},
                          timeout=5).json()
    assert [r["uri"] for r in listed["records"]] == [first.json()["uri"]]


def test_standin_refresh_rotation_and_rate_limit_shape(standin: BlueskyStandIn,
                                                       creds: dict[str, str]) -> None:
    url = f"{standin.url}/xrpc/com.atproto.server.refreshSession"
    old = {"Authorization": f"Bearer {creds['refreshJwt']}"}
    first = requests.post(url, headers=old, timeout=5)
    reuse = requests.post(url, headers=old, timeout=5)
    assert first.status_code == 200 and set(first.json()) >= {"accessJwt", "refreshJwt", "did", "handle"}
    assert (reuse.status_code, reuse.json()["error"]) == (400, "ExpiredToken")
    standin.inject(Fault(status=429, retry_after=5, path="getProfile"))
    limited = requests.get(f"{standin.url}/xrpc/app.bsky.actor.getProfile", params={"actor": creds["did"]},
                           headers={"Authorization": f"Bearer {creds['accessJwt']}"}, timeout=5)
    assert limited.status_code == 429 and limited.json()["error"] == "RateLimitExceeded"
    assert limited.headers["ratelimit-remaining"] == "0" and limited.headers["Retry-After"] == "5"
    assert {"ratelimit-limit", "ratelimit-reset", "ratelimit-policy"} <= set(limited.headers)


# -- identity: credentials model, whoami, handles ---------------------------------------------------
@pytest.mark.parametrize(("data", "lines"), [
    ({"identifier": "news.bsky.social", "password": "abcd-efgh-ijkl-mnop"}, []),
    ({"refreshJwt": "eyJhbGciOi.x.y", "did": "did:plc:abc123"}, []),
    ({"identifier": "news.bsky.social"},
     ["bluesky: credentials: need identifier and password (an app password), or a session's refreshJwt"]),
    ({"identifier": "news.bsky.social", "password": "my-main-password"},
     ["bluesky: credentials: password: is not an app password (xxxx-xxxx-xxxx-xxxx, from Settings > "
      "Privacy > App passwords)"]),
    ({"refreshJwt": "eyJhbGciOi.x.y", "did": "plc:abc"},
     ["bluesky: credentials: did: is not in the expected format"]),
    ({"identifier": "n.b", "password": "abcd-efgh-ijkl-mnop", "handle": "n.b"},
     ["bluesky: credentials: handle: is not a field of these credentials (expected: identifier, password, "
      "accessJwt, refreshJwt, did, expires_at)"]),
])
def test_credentials_model(data: dict[str, str], lines: list[str]) -> None:
    from adapters import validate_credentials

    if not lines:
        creds = validate_credentials("bluesky", data)
        assert creds.reveal() == data
        # The DID and the login name are not secrets; the password and the JWTs are.
        assert set(creds.secrets()) == {v for k, v in data.items() if k in ("password", "refreshJwt")}
        return
    with pytest.raises(ValueError) as err:
        validate_credentials("bluesky", data)
    assert str(err.value).splitlines() == lines
    assert "my-main-password" not in str(err.value)


def test_whoami_from_the_session_and_from_the_login(standin: BlueskyStandIn, adapter: BlueskyAdapter,
                                                    account: AccountRef, creds: dict[str, str]) -> None:
    me = adapter.whoami(account)
    assert (me.handle, me.remote_id) == (HANDLE, creds["did"])
    login = Credentials({k: creds[k] for k in ("identifier", "password")})
    again = adapter.whoami(AccountRef(id=2, platform="bluesky", handle=HANDLE, base_url=standin.url,
                                      credentials=login))
    assert again == me and adapter.same_account(f"@{HANDLE.upper()}", me)
    other = standin.add_account("someone.else.test")
    theirs = adapter.whoami(AccountRef(id=3, platform="bluesky", handle=HANDLE, base_url=standin.url,
                                       credentials=Credentials(other)))
    assert not adapter.same_account(HANDLE, theirs)
