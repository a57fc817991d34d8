"""YouTube adapter against the YouTube stand-in (resumable uploads, processing, quota) and its pure rules."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from adapters.base import AccountRef, Credentials, Media, Post, Progress
from adapters.errors import AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.standins.base import Fault
from adapters.standins.youtube import YouTubeStandIn, rounded
from adapters.text import utf16_units
from adapters.youtube import YouTubeAdapter, tags_of, title_from, until_quota_reset
from tests.adapters.helpers import finish

WHEN = datetime(2026, 11, 28, 12, tzinfo=UTC)
HANDLE = "newsroom"
KIB = 1024


# The stand-in, its reset before every test and the adapter come from conftest.py.
PLATFORM = "youtube"


@pytest.fixture
def creds(standin: YouTubeStandIn) -> dict[str, str]:
    standin.processing_polls, standin.insert_quota, standin.unit_quota = 2, 100, 10_000
    return standin.add_account(HANDLE, followers=123_456)


@pytest.fixture
def adapter() -> YouTubeAdapter:
    yt = YouTubeAdapter(timeout=5)
    yt.chunk_size = 256 * KIB
    return yt


def mp4(path: Path, size: int, ftyp: bool = True) -> Media:
    """A file shaped like an MP4: an ``ftyp`` box, then an ``mdat`` box of pseudo-random bytes."""
    head = (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" if ftyp else b"\x00" * 24)
    body = hashlib.sha256(path.name.encode()).digest() * (size // 32 + 1)
    data = (head + (size - 24).to_bytes(4, "big") + b"mdat" + body)[:size]
    path.write_bytes(data)
    return Media(kind="video", path=str(path), mime="video/mp4", size=size,
                 sha256=hashlib.sha256(data).hexdigest(), width=1920, height=1080)


@pytest.fixture
def video(tmp_path: Path) -> Media:
    return mp4(tmp_path / "clip.mp4", 600 * KIB)


def story(video: Media | None, text: str = "Budget passes #politics #vote\nThe council agreed.",
          title: str | None = None) -> Post:
    return Post(text=text, link="https://news.example/budget", created_at=WHEN,
                media=(video,) if video else (), title=title)


# -- pure rules -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "limit", "title"), [
    ("Short title\nbody", 100, "Short title"),
    ("\n\n  First real line  \nmore", 100, "First real line"),
    ("one two three four", 12, "one two…"),
    ("one two, three", 10, "one two…"),
    ("Supercalifragilistic", 8, "Superca…"),
    ("👨‍👩‍👧‍👦 family news today", 20, "👨‍👩‍👧‍👦 family…"),  # the family is 11 UTF-16 units
    ("👨‍👩‍👧‍👦👨‍👩‍👧‍👦", 15, "👨‍👩‍👧‍👦…"),  # never inside a grapheme
])
def test_title_from(text: str, limit: int, title: str) -> None:
    assert title_from(text, limit, utf16_units) == title
    assert utf16_units(title_from(text, limit, utf16_units)) <= limit


@pytest.mark.parametrize(("now", "seconds"), [
    (datetime(2026, 11, 28, 7, 30, tzinfo=UTC), 30 * 60),  # 23:30 PST
    (datetime(2026, 7, 1, 6, 59, tzinfo=UTC), 60),  # 23:59 PDT
    (datetime(2026, 3, 8, 9, 0, tzinfo=UTC), 22 * 3600),  # 01:00 PST on the day DST starts: 23 h day
    (datetime(2026, 11, 1, 8, 0, tzinfo=UTC), 24 * 3600),  # 01:00 PDT on the day DST ends: 25 h day
])
def test_quota_resets_at_pacific_midnight(now: datetime, seconds: int) -> None:
    assert until_quota_reset(now) == seconds + 60
    # The same instant given in Pacific time: DST must not turn it into wall-clock arithmetic.
    assert until_quota_reset(now.astimezone(ZoneInfo("America/Los_Angeles"))) == seconds + 60


def test_tags_come_from_hashtags_within_500_characters() -> None:
    assert tags_of("#news today #café, #news again and a#b") == ["news", "café"]
    many = " ".join(f"#{'t' * 20}{i:03d}" for i in range(40))
    tags = tags_of(many)
    # 20 tags of 23 characters and 19 commas: 479; a 21st would make 503.
    assert sum(map(len, tags)) + len(tags) - 1 == 479 and len(tags) == 20


def video_media(tmp: Path, name: str = "a.mp4") -> Media:
    return mp4(tmp / name, 40 * KIB)


@pytest.mark.parametrize(("make", "problems"), [
    (lambda v: story(v), []),
    (lambda v: story(None), ["youtube: media: this platform publishes only with an image or a video"]),
    (lambda v: story(v, title="x" * 101), ["youtube: title: is 101 characters long; the limit is 100"]),
    (lambda v: story(v, title="😀" * 51), ["youtube: title: is 102 characters long; the limit is 100"]),
    (lambda v: story(v, title="a <b> c"), ["youtube: title: may not contain '<' or '>'"]),
    (lambda v: story(v, title="  "), ["youtube: title: is empty"]),
    (lambda v: story(v, text="temperatures <5 degrees"), ["youtube: text: may not contain '<' or '>'"]),
    (lambda v: story(v, text="é" * 2490), ["youtube: text: is 5009 UTF-8 bytes long; the limit is 5000"]),
    (lambda v: Post(text="two", media=(v, v)), ["youtube: media: 2 videos; the limit is 1"]),
    (lambda v: Post(text="img", media=(v, Media("image", v.path, "image/png", 10))),
     ["youtube: media: 1 images; the limit is 0",
      "youtube: media: images and a video cannot go in one post"]),
])
def test_check(adapter: YouTubeAdapter, tmp_path: Path, make, problems: list[str]) -> None:
    assert [str(p) for p in adapter.check(make(video_media(tmp_path)))] == problems


# -- publish --------------------------------------------------------------------------------------
def test_publish_uploads_in_chunks_then_waits_for_processing(
        adapter: YouTubeAdapter, account: AccountRef, standin: YouTubeStandIn, video: Media) -> None:
    progress = Progress()
    with pytest.raises(InProgress) as wait:
        adapter.publish(account, story(video), "d1", progress)
    assert "processing" in wait.value.reason and 15 <= wait.value.after <= 120
    assert progress.get("yt_session") and progress.get("yt_video_id")
    published = adapter.publish(account, story(video), "d1", progress)
    assert standin.sessions_started == 1 and standin.chunks == 3  # 256 + 256 + 88 KiB, never again
    [created] = standin.posts("video")
    assert published.remote_id == created.id == progress.get("yt_video_id")
    assert published.url == f"https://www.youtube.com/watch?v={created.id}"
    assert published.published_at is not None
    assert created.data["title"] == "Budget passes #politics #vote"
    assert created.data["text"] == "Budget passes #politics #vote\nThe council agreed.\n\nhttps://news.example/budget"
    assert created.data["tags"] == ["politics", "vote"]
    assert created.data["sha256"] == video.sha256 and created.data["bytes"] == video.size
    assert created.data["privacy"] == "public"
    assert standin.videos[created.id].snippet["categoryId"] == "25"


def test_explicit_title_and_one_request_upload(adapter: YouTubeAdapter, account: AccountRef,
                                               standin: YouTubeStandIn, video: Media) -> None:
    standin.processing_polls = 1
    adapter.chunk_size = 1024 * KIB  # larger than the file: one PUT carries it all
    published = adapter.publish(account, story(video, title="Council passes the budget"), "d1")
    assert standin.chunks == 1 and standin.posts("video")[0].data["title"] == "Council passes the budget"
    assert published.remote_id == standin.posts("video")[0].id


def test_one_attempt_uploads_every_chunk_and_fences_the_last(
        adapter: YouTubeAdapter, account: AccountRef, standin: YouTubeStandIn, video: Media) -> None:
    saved: list[dict[str, Any]] = []
    progress = Progress(saver=saved.append)
    with contextlib.suppress(InProgress):  # processing, after the upload
        adapter.publish(account, story(video), "d1", progress)
    assert standin.sessions_started == 1 and standin.chunks == 3 and standin.status_queries == 0
    # The fence goes up right before the chunk that makes the video public, and only then.
    fences = [s["fence"]["step"] for s in saved if "fence" in s]
    fenced_at = next(i for i, s in enumerate(saved) if "fence" in s)
    assert fences == ["video"] and saved[fenced_at]["yt_session"]  # saved before the fence
    assert progress.get("yt_video_id") == standin.posts("video")[0].id and progress.fenced is None


def test_an_interrupted_upload_resumes_from_the_session(
        adapter: YouTubeAdapter, account: AccountRef, standin: YouTubeStandIn, video: Media) -> None:
    progress = Progress()
    standin.inject(Fault(drop=True, path="/resumable"))  # the first chunk never arrives
    with pytest.raises(Transient):
        adapter.publish(account, story(video), "d1", progress)
    session = progress.get("yt_session")
    finish(adapter, account, story(video), progress)
    assert progress.get("yt_session") == session
    assert standin.sessions_started == 1 and standin.chunks == 3 and standin.status_queries == 1
    assert len(standin.posts("video")) == 1


def test_a_lost_chunk_answer_resumes_where_youtube_is(adapter: YouTubeAdapter, account: AccountRef,
                                                      standin: YouTubeStandIn, video: Media) -> None:
    progress = Progress()
    standin.inject(Fault(commit=True, drop=True, path="/resumable"))  # chunk 1 lands, its answer is lost
    with pytest.raises(Transient) as err:
        adapter.publish(account, story(video), "d1", progress)
    assert err.value.maybe_sent
    finish(adapter, account, story(video), progress)
    assert standin.sessions_started == 1 and standin.chunks == 3 and standin.status_queries == 1


def test_a_lost_final_answer_finds_the_video_through_the_session(
        adapter: YouTubeAdapter, account: AccountRef, standin: YouTubeStandIn, video: Media) -> None:
    adapter.chunk_size = 1024 * KIB
    progress = Progress()
    standin.inject(Fault(commit=True, drop=True, path="/resumable"))
    with pytest.raises(Transient):
        adapter.publish(account, story(video), "d1", progress)
    assert len(standin.posts("video")) == 1 and progress.get("yt_video_id") is None
    published = finish(adapter, account, story(video), progress)
    assert published.remote_id == standin.posts("video")[0].id
    assert len(standin.posts("video")) == 1 and standin.sessions_started == 1 and standin.duplicates() == 0


def test_an_expired_session_starts_over(adapter: YouTubeAdapter, account: AccountRef,
                                        standin: YouTubeStandIn, video: Media) -> None:
    progress = Progress()
    standin.inject(Fault(drop=True, path="/resumable"))
    with pytest.raises(Transient):
        adapter.publish(account, story(video), "d1", progress)
    standin.expire_sessions()
    old = progress.get("yt_session")
    finish(adapter, account, story(video), progress)
    assert progress.get("yt_session") != old and standin.sessions_started == 2
    assert len(standin.posts("video")) == 1 and standin.posts("video")[0].data["sha256"] == video.sha256


@pytest.mark.parametrize(("outcome", "fragment"), [
    (("rejected", "duplicate"), "was rejected: duplicate (a copy of a video already on the channel)"),
    (("failed", "codec"), "was failed: codec"),
])
def test_processing_failures_are_rejected(adapter: YouTubeAdapter, account: AccountRef,
                                          standin: YouTubeStandIn, video: Media, outcome, fragment) -> None:
    standin.next_outcome = outcome
    with pytest.raises(Rejected, match=re.escape(fragment)):
        finish(adapter, account, story(video), Progress())


def test_a_file_that_is_not_mp4_fails_processing(adapter: YouTubeAdapter, account: AccountRef,
                                                 tmp_path: Path) -> None:
    broken = mp4(tmp_path / "broken.mp4", 10 * KIB, ftyp=False)
    with pytest.raises(Rejected, match="invalidFile"):
        finish(adapter, account, story(broken), Progress())


def test_publish_refuses_a_story_without_a_video_or_file(adapter: YouTubeAdapter, account: AccountRef,
                                                         standin: YouTubeStandIn, video: Media) -> None:
    with pytest.raises(Rejected, match="exactly one video"):
        adapter.publish(account, story(None), "d1")
    os.remove(video.path)
    with pytest.raises(Rejected, match="missing from the media store"):
        adapter.publish(account, story(video), "d1")
    assert standin.sessions_started == 0


# -- errors ---------------------------------------------------------------------------------------
def test_daily_quota_waits_until_pacific_midnight(adapter: YouTubeAdapter, account: AccountRef,
                                                  standin: YouTubeStandIn, video: Media) -> None:
    standin.insert_quota = 0
    latest = until_quota_reset()
    with pytest.raises(RateLimited) as err:
        adapter.publish(account, story(video), "d1")
    assert until_quota_reset() <= err.value.retry_after <= latest and err.value.scope == "app"
    assert "quotaExceeded" in err.value.reason and err.value.status == 403
    standin.insert_quota, standin.unit_quota = 100, standin.units_used
    with pytest.raises(RateLimited, match="quotaExceeded"):
        adapter.followers(account)


@pytest.mark.parametrize(("fault", "error", "check"), [
    (Fault(status=429, retry_after=30, path="/upload/"), RateLimited,
     lambda e: e.retry_after == 30 and e.scope == "app"),
    (Fault(status=403, path="/upload/", body={"error": {"code": 403, "message": "slow down", "errors": [
        {"domain": "youtube.quota", "reason": "userRateLimitExceeded", "message": "slow down"}]}}),
     RateLimited, lambda e: e.retry_after == 60 and e.scope == "account"),
    (Fault(status=400, path="/upload/", body={"error": {"code": 400, "message": "limit", "errors": [
        {"domain": "youtube.video", "reason": "uploadLimitExceeded", "message": "limit"}]}}),
     RateLimited, lambda e: e.retry_after > 60 and e.scope == "account"),
    (Fault(status=503, path="/upload/"), Transient, lambda e: e.maybe_sent and "backendError" in e.reason),
    (Fault(drop=True, path="/upload/"), Transient, lambda e: e.maybe_sent),
    (Fault(status=403, path="/upload/", body={"error": {"code": 403, "message": "no", "errors": [
        {"domain": "youtube.common", "reason": "insufficientPermissions", "message": "no"}]}}),
     Rejected, lambda e: "insufficientPermissions" in e.reason),
])
def test_faults_map_to_typed_errors(adapter: YouTubeAdapter, account: AccountRef, standin: YouTubeStandIn,
                                    video: Media, fault: Fault, error: type, check) -> None:
    standin.inject(fault)
    with pytest.raises(error) as err:
        adapter.publish(account, story(video), "d1")
    assert check(err.value), err.value
    assert err.value.reason.startswith("youtube: ")


def test_metadata_youtube_refuses_is_rejected(adapter: YouTubeAdapter, account: AccountRef,
                                              standin: YouTubeStandIn, video: Media) -> None:
    with pytest.raises(Rejected, match="invalidTitle"):
        adapter.publish(account, story(video, title="x" * 101), "d1")
    assert standin.posts() == []


def test_expired_token_then_refresh_keeps_the_refresh_token(
        adapter: YouTubeAdapter, account: AccountRef, standin: YouTubeStandIn, creds: dict[str, str],
        video: Media) -> None:
    standin.processing_polls = 1
    standin.expire_access_tokens()
    with pytest.raises(AuthExpired, match="authError"):
        adapter.publish(account, story(video), "d1")
    fresh = adapter.refresh(account).reveal()
    assert fresh["access_token"] != creds["access_token"]
    assert {k: fresh[k] for k in ("refresh_token", "client_id", "client_secret")} == {
        k: creds[k] for k in ("refresh_token", "client_id", "client_secret")}
    expires = datetime.fromisoformat(fresh["expires_at"])
    assert expires.tzinfo is not None
    assert timedelta(minutes=55) < expires - datetime.now(UTC) <= timedelta(hours=1)
    account.credentials = Credentials(fresh)
    adapter.publish(account, story(video), "d1")
    assert len(standin.posts("video")) == 1


def test_a_token_expiring_mid_upload_resumes_after_refresh(
        adapter: YouTubeAdapter, account: AccountRef, standin: YouTubeStandIn, video: Media) -> None:
    progress = Progress()
    standin.inject(Fault(drop=True, path="/resumable"))
    with pytest.raises(Transient):
        adapter.publish(account, story(video), "d1", progress)
    standin.expire_access_tokens()
    with pytest.raises(AuthExpired):
        adapter.publish(account, story(video), "d1", progress)
    account.credentials = adapter.refresh(account)
    finish(adapter, account, story(video), progress)
    assert standin.sessions_started == 1 and standin.chunks == 3 and len(standin.posts("video")) == 1


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda s, c: s.revoke_refresh_tokens(), "invalid_grant: Token has been expired or revoked."),
    (lambda s, c: c.update(client_secret="GOCSPX-wrong-secret-value"), "invalid_client"),
    (lambda s, c: c.pop("refresh_token"), "no refresh token is stored"),
])
def test_refresh_failures_need_reauthorisation(adapter: YouTubeAdapter, account: AccountRef,
                                               standin: YouTubeStandIn, creds: dict[str, str],
                                               change, fragment: str) -> None:
    values = dict(creds)
    change(standin, values)
    account.credentials = Credentials(values)
    with pytest.raises(AuthExpired, match=fragment):
        adapter.refresh(account)


def test_refresh_on_a_server_fault_is_transient(adapter: YouTubeAdapter, account: AccountRef,
                                                standin: YouTubeStandIn) -> None:
    standin.inject(Fault(status=500, path="/token", body={"error": "internal_failure"}))
    with pytest.raises(Transient):
        adapter.refresh(account)


# -- followers and find_published -----------------------------------------------------------------
def test_followers(adapter: YouTubeAdapter, account: AccountRef, standin: YouTubeStandIn) -> None:
    assert adapter.followers(account) == 123_000  # YouTube rounds to three significant figures
    assert rounded(999) == 999 and rounded(1_234) == 1_230 and rounded(9_876_543) == 9_870_000
    standin.channels[next(iter(standin.channels))].hidden = True
    with pytest.raises(Rejected, match="hides its subscriber count"):
        adapter.followers(account)
    standin.expire_access_tokens()
    with pytest.raises(AuthExpired):
        adapter.followers(account)


def test_find_published(adapter: YouTubeAdapter, account: AccountRef, standin: YouTubeStandIn,
                        video: Media) -> None:
    standin.processing_polls = 1
    post = story(video)
    assert adapter.find_published(account, post, "d1") is None
    published = adapter.publish(account, post, "d1")
    found = adapter.find_published(account, post, "d1")
    assert found is not None and found.remote_id == published.remote_id and found.url == published.url
    assert adapter.find_published(account, story(video, text="Another story"), "d2") is None
    later = Post(text=post.text, link=post.link, media=post.media,
                 created_at=datetime.now(UTC) + timedelta(hours=1))
    assert adapter.find_published(account, later, "d1") is None  # uploaded before that delivery began


# -- the stand-in is as strict as YouTube ---------------------------------------------------------
def _session(standin: YouTubeStandIn, creds: dict[str, str], total: int = 300 * KIB,
             **changes) -> requests.Response:
    headers = {"Authorization": f"Bearer {creds['access_token']}", "X-Upload-Content-Length": str(total),
               "X-Upload-Content-Type": "video/mp4", **changes.pop("headers", {})}
    params = {"uploadType": "resumable", "part": "snippet,status", **changes.pop("params", {})}
    body = {"snippet": {"title": "t", "description": "d"}, "status": {"privacyStatus": "public"},
            **changes.pop("body", {})}
    return requests.post(f"{standin.url}/upload/youtube/v3/videos", params=params, headers=headers,
                         json=body, timeout=5)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"params": {"uploadType": "media"}}, "invalidUploadType"),
    ({"headers": {"X-Upload-Content-Length": "0"}}, "badContent"),
    ({"headers": {"X-Upload-Content-Type": "image/png"}}, "badContent"),
    ({"headers": {"Authorization": "Bearer ya29.nope"}}, "authError"),
    ({"body": {"snippet": {"title": "a > b", "description": ""}}}, "invalidTitle"),
    ({"body": {"snippet": {"title": "t", "description": "é" * 2501}}}, "invalidDescription"),
    ({"body": {"snippet": {"title": "t", "tags": ["x" * 250, "y" * 250]}}}, "invalidTags"),
    ({"body": {"snippet": {"title": "t", "categoryId": "99"}}}, "invalidCategoryId"),
    ({"body": {"status": {"privacyStatus": "everyone"}}}, "invalidVideoMetadata"),
    ({"body": {"status": {"privacyStatus": "public", "publishAt": "2026-12-01T10:00:00Z"}}},
     "invalidPublishAt"),
])
def test_standin_checks_the_insert_metadata(standin: YouTubeStandIn, creds: dict[str, str], changes: dict,
                                            reason: str) -> None:
    answer = _session(standin, creds, **changes)
    assert answer.status_code in (400, 401), answer.text
    assert answer.json()["error"]["errors"][0]["reason"] == reason
    assert standin.sessions == {}


def test_standin_resumable_protocol(standin: YouTubeStandIn, creds: dict[str, str]) -> None:
    total = 300 * KIB
    location = _session(standin, creds, total).headers["Location"]
    data = b"\x00\x00\x00\x18ftyp" + b"x" * (total - 8)

    def put(body: bytes, content_range: str) -> requests.Response:
        return requests.put(location, data=body, headers={"Content-Range": content_range}, timeout=5)

    query = put(b"", f"bytes */{total}")
    assert query.status_code == 308 and "Range" not in query.headers  # nothing received yet
    assert put(data[:1000], f"bytes 0-999/{total}").status_code == 400  # not a multiple of 256 KiB
    assert put(data[KIB:256 * KIB + KIB], f"bytes {KIB}-{256 * KIB + KIB - 1}/{total}").status_code == 400
    assert put(data[:256 * KIB], f"bytes 0-{256 * KIB - 1}/{total + 1}").status_code == 400
    first = put(data[:256 * KIB], f"bytes 0-{256 * KIB - 1}/{total}")
    assert first.status_code == 308 and first.headers["Range"] == f"bytes=0-{256 * KIB - 1}"
    assert put(b"", f"bytes */{total}").headers["Range"] == f"bytes=0-{256 * KIB - 1}"
    done = put(data[256 * KIB:], f"bytes {256 * KIB}-{total - 1}/{total}")
    assert done.status_code == 200 and done.json()["status"]["uploadStatus"] == "uploaded"
    again = put(b"", f"bytes */{total}")
    assert again.status_code == 200 and again.json()["id"] == done.json()["id"]
    assert put(data[:256 * KIB], f"bytes 0-{256 * KIB - 1}/{total}").status_code == 400  # already complete
    standin.expire_sessions()
    gone = put(b"", f"bytes */{total}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == 404


def test_standin_token_endpoint(standin: YouTubeStandIn, creds: dict[str, str]) -> None:
    url = f"{standin.url}/token"
    form = {"grant_type": "refresh_token", "refresh_token": creds["refresh_token"],
            "client_id": creds["client_id"], "client_secret": creds["client_secret"]}
    first = requests.post(url, data=form, timeout=5)
    second = requests.post(url, data=form, timeout=5)  # Google's refresh tokens do not rotate
    assert first.status_code == second.status_code == 200
    assert set(first.json()) == {"access_token", "expires_in", "scope", "token_type"}
    for change, error in (({"grant_type": "password"}, "unsupported_grant_type"),
                          ({"refresh_token": "1//nope"}, "invalid_grant")):
        assert requests.post(url, data={**form, **change}, timeout=5).json()["error"] == error


# -- identity: credentials model, whoami, handles ---------------------------------------------------
@pytest.mark.parametrize(("data", "lines"), [
    ({"access_token": "ya29.a0-12345678", "refresh_token": "1//0abcdefgh", "client_id": "123.apps",
      "client_secret": "GOCSPX-12345678"}, []),
    ({"access_token": "ya29.a0-12345678"},
     ["youtube: credentials: refresh_token: is required", "youtube: credentials: client_id: is required",
      "youtube: credentials: client_secret: is required"]),
])
def test_credentials_model(creds: dict[str, str], data: dict[str, Any], lines: list[str]) -> None:
    from adapters import validate_credentials

    if not lines:
        assert "client_id" not in str(validate_credentials("youtube", data).secrets())
        assert set(validate_credentials("youtube", data).secrets()) == set(data.values()) - {"123.apps"}
        assert validate_credentials("youtube", creds).get("refresh_token") == creds["refresh_token"]
        return
    with pytest.raises(ValueError) as err:
        validate_credentials("youtube", data)
    assert str(err.value).splitlines() == lines and "ya29" not in str(err.value)


def test_whoami(standin: YouTubeStandIn, adapter: YouTubeAdapter, account: AccountRef) -> None:
    me = adapter.whoami(account)
    assert me.handle == f"@{HANDLE}" and me.remote_id.startswith("UC")
    assert adapter.same_account(HANDLE.upper(), me) and adapter.same_account(me.remote_id, me)
    other = Credentials(standin.add_account("another_channel"))
    theirs = adapter.whoami(AccountRef(id=2, platform="youtube", handle=HANDLE, base_url=standin.url,
                                       credentials=other))
    assert not adapter.same_account(HANDLE, theirs)
