"""TikTok adapter against the TikTok stand-in (creator info, chunked uploads, photo pulls, status polling,
rotating refresh tokens), plus its pure rules."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from adapters.base import AccountRef, Credentials, Media, Post, Progress
from adapters.errors import AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.standins.base import Fault, HttpError
from adapters.standins.tiktok import TikTokStandIn, envelope
from adapters.tiktok import TikTokAdapter, chunk_plan, mp4_duration
from tests.adapters.helpers import finish, mp4

WHEN = datetime(2026, 11, 28, 12, tzinfo=UTC)
HANDLE = "newsroom"
MB = 1024 * 1024
CDN = "https://media.news.example/"


# The stand-in, its reset before every test and the adapter come from conftest.py.
PLATFORM = "tiktok"


@pytest.fixture
def creds(standin: TikTokStandIn) -> dict[str, str]:
    standin.processing_polls, standin.moderation_polls = 2, 0
    standin.daily_post_cap, standin.init_per_minute, standin.status_per_minute = 15, 6, 30
    values = standin.add_account(HANDLE, followers=4321)
    user = standin.user(HANDLE)
    user.privacy_options = ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"]
    user.max_duration, user.comment_disabled = 600, False
    user.scopes = {"user.info.basic", "user.info.stats", "video.publish", "video.upload", "video.list"}
    return values


@pytest.fixture
def adapter() -> TikTokAdapter:
    return TikTokAdapter(timeout=10)


def photo(name: str, url: str | None = "default", mime: str = "image/jpeg") -> Media:
    return Media(kind="image", path=f"/media/{name}", mime=mime, size=50_000, width=1080, height=1350,
                 url=f"{CDN}{name}" if url == "default" else url)


@pytest.fixture
def video(tmp_path: Path) -> Media:
    return mp4(tmp_path / "clip.mp4", 200_000)


def story(*media: Media, text: str = "Budget passes #politics\nThe council agreed.", title: str | None = None,
          at: datetime = WHEN) -> Post:
    return Post(text=text, link="https://news.example/budget", created_at=at, media=media, title=title)


# -- pure rules -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("size", "plan"), [
    (1, (1, 1)),
    (3 * MB, (3 * MB, 1)),  # under 5 MB: whole
    (10 * MB, (10 * MB, 1)),
    (25 * MB + 7, (10 * MB, 2)),  # the last chunk takes the remainder: 15 MB + 7
    (4096 * MB, (10 * MB, 409)),
])
def test_chunk_plan_follows_the_media_transfer_guide(standin: TikTokStandIn, size: int, plan) -> None:
    assert chunk_plan(size) == plan
    chunk, count = plan
    assert standin._chunk_rules({"video_size": size, "chunk_size": chunk, "total_chunk_count": count}) == (
        size, chunk, count)


@pytest.mark.parametrize(("source", "fragment"), [
    ({"video_size": 3 * MB, "chunk_size": MB, "total_chunk_count": 3}, "under 5 MB is uploaded whole"),
    ({"video_size": 20 * MB, "chunk_size": 4 * MB, "total_chunk_count": 5}, "between 5 MB and 64 MB"),
    ({"video_size": 200 * MB, "chunk_size": 70 * MB, "total_chunk_count": 2}, "between 5 MB and 64 MB"),
    ({"video_size": 25 * MB, "chunk_size": 10 * MB, "total_chunk_count": 3}, "total chunk count"),
    ({"video_size": 200 * MB, "chunk_size": 64 * MB, "total_chunk_count": 3}, None),
    ({"video_size": 127 * MB, "chunk_size": 63 * MB, "total_chunk_count": 1}, "total chunk count"),
    ({"video_size": "5", "chunk_size": 5, "total_chunk_count": 1}, "positive integers"),
])
def test_standin_chunk_rules(standin: TikTokStandIn, source: dict, fragment: str | None) -> None:
    if fragment is None:
        standin._chunk_rules(source)
        return
    with pytest.raises(HttpError) as err:
        standin._chunk_rules(source)
    assert err.value.status == 400 and fragment in err.value.body["error"]["message"]


def test_mp4_duration(tmp_path: Path) -> None:
    assert mp4_duration(mp4(tmp_path / "a.mp4", 4000, seconds=42).path) == 42
    assert mp4_duration(mp4(tmp_path / "b.mp4", 4000, seconds=90, version=1).path) == 90
    (tmp_path / "c.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    assert mp4_duration(str(tmp_path / "c.mp4")) is None
    (tmp_path / "d.mp4").write_bytes(b"\x00\x00\x00\x02junk")
    assert mp4_duration(str(tmp_path / "d.mp4")) is None
    assert mp4_duration(str(tmp_path / "missing.mp4")) is None


@pytest.mark.parametrize(("make", "problems"), [
    (lambda v: story(v), []),
    (lambda v: story(photo("a.jpg"), photo("b.webp", mime="image/webp")), []),
    (lambda v: story(), ["tiktok: media: this platform publishes only with an image or a video"]),
    (lambda v: story(v, text="😀" * 1090), ["tiktok: text: is 2209 UTF-16 code units long; the video caption "
                                           "limit is 2200"]),
    (lambda v: story(photo("a.jpg"), text="x" * 3000), []),  # a photo description may have 4000
    (lambda v: story(photo("a.jpg"), text="x" * 4000),
     ["tiktok: text: is 4029 UTF-16 code units long; the limit is 4000"]),
    (lambda v: story(photo("a.png", mime="image/png")),
     ["tiktok: media: image type image/png is not one of image/jpeg, image/webp"]),
    (lambda v: story(*(photo(f"{i}.jpg") for i in range(36))), ["tiktok: media: 36 images; the limit is 35"]),
    (lambda v: story(photo("a.jpg", url=None)),
     ["tiktok: media: TikTok fetches photos by URL: set CROSSPOST_MEDIA_PUBLIC_URL "
      "(where the media is served)"]),
    (lambda v: story(photo("a.jpg"), title="t" * 91),
     ["tiktok: title: is 91 characters long; the photo title limit is 90"]),
    (lambda v: story(Media("video", v.path, "video/mp4", v.size, width=320, height=240)),
     ["tiktok: media: video is 320x240; each side must be 360 to 4096 pixels"]),
])
def test_check(adapter: TikTokAdapter, video: Media, make, problems: list[str]) -> None:
    assert [str(p) for p in adapter.check(make(video))] == problems


# -- publish a video --------------------------------------------------------------------------------
def test_publish_a_video_polls_until_complete(adapter: TikTokAdapter, account: AccountRef,
                                              standin: TikTokStandIn, video: Media) -> None:
    progress = Progress()
    with pytest.raises(InProgress, match="processing upload") as wait:
        adapter.publish(account, story(video), "d1", progress)
    assert wait.value.after == 10 and progress.get("tt_publish_id") and progress.get("tt_uploaded")
    published = adapter.publish(account, story(video), "d1", progress)
    assert standin.inits == 1 and standin.chunks == 1 and standin.creator_queries == 1
    [created] = standin.posts("video")
    assert published.remote_id == created.id
    assert published.url == f"https://www.tiktok.com/@{HANDLE}/video/{created.id}"
    assert created.key == progress.get("tt_publish_id")
    assert created.data["text"] == "Budget passes #politics\nThe council agreed.\n\nhttps://news.example/budget"
    assert created.data["privacy"] == "PUBLIC_TO_EVERYONE"
    assert created.data["sha256"] == video.sha256 and created.data["bytes"] == video.size


def test_a_large_video_goes_in_chunks_in_one_attempt(
        adapter: TikTokAdapter, account: AccountRef, standin: TikTokStandIn, tmp_path: Path) -> None:
    adapter.chunk_size = 5 * MB
    big = mp4(tmp_path / "big.mp4", 11 * MB)
    saved: list[dict[str, Any]] = []
    progress = Progress(saver=saved.append)
    with contextlib.suppress(InProgress):  # processing, after the upload
        adapter.publish(account, story(big), "d1", progress)
    assert standin.inits == 1 and standin.chunks == 2 and progress.get("tt_uploaded") is True
    # The init is what creates the post: fenced, and the fence cleared by the saved publish_id.
    assert [s["fence"]["step"] for s in saved if "fence" in s] == ["video init"]
    assert progress.fenced is None and progress.get("tt_publish_id")
    finish(adapter, account, story(big), progress)
    assert standin.posts("video")[0].data["sha256"] == big.sha256


def test_a_lost_chunk_answer_resumes_from_uploaded_bytes(
        adapter: TikTokAdapter, account: AccountRef, standin: TikTokStandIn, tmp_path: Path) -> None:
    adapter.chunk_size = 5 * MB
    big = mp4(tmp_path / "big.mp4", 11 * MB)
    progress = Progress()
    standin.inject(Fault(commit=True, drop=True, path="/upload/"))  # chunk 1 lands, its answer is lost
    with pytest.raises(Transient) as err:
        adapter.publish(account, story(big), "d1", progress)
    assert err.value.maybe_sent is False  # a chunk is not a post: retrying it is safe
    finish(adapter, account, story(big), progress)
    assert standin.inits == 1 and standin.chunks == 2 and len(standin.posts("video")) == 1


def test_an_expired_upload_url_starts_a_new_upload(adapter: TikTokAdapter, account: AccountRef,
                                                   standin: TikTokStandIn, video: Media) -> None:
    progress = Progress()
    standin.inject(Fault(drop=True, path="/upload/"))
    with pytest.raises(Transient):
        adapter.publish(account, story(video), "d1", progress)
    first = progress.get("tt_publish_id")
    standin.expire_uploads()
    with pytest.raises(Transient, match="upload URL expired"):
        adapter.publish(account, story(video), "d1", progress)
    assert progress.get("tt_publish_id") is None
    finish(adapter, account, story(video), progress)
    assert progress.get("tt_publish_id") != first and standin.inits == 2
    assert len(standin.posts("video")) == 1


def test_a_lost_init_answer_may_have_posted(adapter: TikTokAdapter, account: AccountRef,
                                            standin: TikTokStandIn, video: Media) -> None:
    progress = Progress()
    standin.inject(Fault(commit=True, drop=True, path="video/init"))
    with pytest.raises(Transient) as err:
        adapter.publish(account, story(video), "d1", progress)
    # The scheduler sends this to an operator: TikTok cannot be asked whether it posted.
    assert err.value.maybe_sent is True and not TikTokAdapter.caps.can_find
    # The fence stays up: the init may have created the post, and nothing recorded its publish_id.
    assert progress.fenced is not None and progress.fenced["step"] == "video init"
    # ...and it published nothing: the bytes go to the upload URL in the lost answer, so the retry
    # policy may simply init again.
    assert TikTokAdapter.resumable(progress.state)
    assert progress.get("tt_publish_id") is None and standin.inits == 1


@pytest.mark.parametrize("path", ["status/fetch", "creator_info"])
def test_faults_on_reads_are_not_sent(adapter: TikTokAdapter, account: AccountRef, standin: TikTokStandIn,
                                      video: Media, path: str) -> None:
    progress = Progress()
    if path == "status/fetch":
        with pytest.raises(InProgress):
            adapter.publish(account, story(video), "d1", progress)
    standin.inject(Fault(drop=True, path=path))
    with pytest.raises(Transient) as err:
        adapter.publish(account, story(video), "d1", progress)
    assert err.value.maybe_sent is False
    finish(adapter, account, story(video), progress)
    assert standin.inits == 1


def test_before_moderation_the_publish_id_stands_in(adapter: TikTokAdapter, account: AccountRef,
                                                    standin: TikTokStandIn, video: Media) -> None:
    standin.processing_polls, standin.moderation_polls = 1, 1
    progress = Progress()
    published = adapter.publish(account, story(video), "d1", progress)
    assert published.remote_id == progress.get("tt_publish_id") and published.url is None
    assert adapter.find_published(account, story(video), "d1") is None  # not listed before moderation


@pytest.mark.parametrize(("options", "chosen"), [
    (["SELF_ONLY"], "SELF_ONLY"),  # an unaudited app
    (["MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"], "FOLLOWER_OF_CREATOR"),
])
def test_privacy_is_the_most_public_offered(adapter: TikTokAdapter, account: AccountRef,
                                            standin: TikTokStandIn, video: Media, options: list[str],
                                            chosen: str) -> None:
    standin.user(HANDLE).privacy_options = options
    standin.user(HANDLE).comment_disabled = True
    finish(adapter, account, story(video), Progress())
    assert standin.posts("video")[0].data["privacy"] == chosen


def test_publish_refusals_before_init(adapter: TikTokAdapter, account: AccountRef, standin: TikTokStandIn,
                                      tmp_path: Path) -> None:
    standin.user(HANDLE).max_duration = 10
    with pytest.raises(Rejected, match="lasts 30 s; this creator may post at most 10 s"):
        adapter.publish(account, story(mp4(tmp_path / "long.mp4", 5000)), "d1")
    standin.user(HANDLE).privacy_options = ["SOMETHING_NEW"]
    with pytest.raises(Rejected, match="no privacy level"):
        adapter.publish(account, story(mp4(tmp_path / "ok.mp4", 5000)), "d1")
    assert standin.inits == 0


def test_a_file_that_is_not_mp4_fails_and_can_be_published_again(
        adapter: TikTokAdapter, account: AccountRef, standin: TikTokStandIn, tmp_path: Path) -> None:
    progress = Progress()
    with pytest.raises(Rejected, match="file_format_check_failed"):
        finish(adapter, account, story(mp4(tmp_path / "bad.mp4", 5000, ftyp=False)), progress)
    assert progress.get("tt_publish_id") is None and standin.posts() == []


# -- photos ---------------------------------------------------------------------------------------
def test_publish_photos_pulled_by_url(adapter: TikTokAdapter, account: AccountRef,
                                      standin: TikTokStandIn) -> None:
    post = story(photo("a.jpg"), photo("b.webp", mime="image/webp"))
    progress = Progress()
    with pytest.raises(InProgress, match="processing download"):
        adapter.publish(account, post, "d1", progress)
    published = adapter.publish(account, post, "d1", progress)
    [created] = standin.posts("photo")
    assert published.url == f"https://www.tiktok.com/@{HANDLE}/photo/{created.id}"
    assert created.data["title"] == "Budget passes #politics"
    assert created.data["text"] == post.body
    assert created.data["urls"] == [f"{CDN}a.jpg", f"{CDN}b.webp"]
    assert standin.chunks == 0


@pytest.mark.parametrize(("media", "error", "fragment"), [
    (photo("a.jpg", url=None), Rejected, "CROSSPOST_MEDIA_PUBLIC_URL"),
    (photo("a.jpg", url="https://elsewhere.example/a.jpg"), Rejected, "url_ownership_unverified"),
    (photo("a.png", mime="image/png"), Rejected, "file_format_check_failed"),
])
def test_photo_refusals(adapter: TikTokAdapter, account: AccountRef, standin: TikTokStandIn, media: Media,
                        error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        finish(adapter, account, story(media), Progress())
    assert standin.posts() == []


# -- errors ---------------------------------------------------------------------------------------
def _env(code: str, message: str = "m") -> dict:
    return envelope(None, code, message)


@pytest.mark.parametrize(("fault", "error", "check"), [
    (Fault(status=429, path="video/init"), RateLimited, lambda e: e.retry_after == 60),
    (Fault(status=429, retry_after=30, path="video/init"), RateLimited, lambda e: e.retry_after == 30),
    (Fault(status=403, path="video/init", body=_env("spam_risk_too_many_posts")), RateLimited,
     lambda e: e.retry_after == 6 * 3600),
    (Fault(status=403, path="video/init", body=_env("reached_active_user_cap")), RateLimited,
     lambda e: e.retry_after == 24 * 3600),
    (Fault(status=500, path="video/init"), Transient,
     lambda e: e.maybe_sent and "internal_error" in e.reason),
    (Fault(status=502, path="video/init", body="<html>bad gateway</html>"), Transient,
     lambda e: e.maybe_sent),
    (Fault(status=200, path="video/init", body=_env("spam_risk_text", "caption refused")), Rejected,
     lambda e: "spam_risk_text: caption refused (log_id" in e.reason),
    (Fault(status=403, path="video/init", body=_env("unaudited_client_can_only_post_to_private_accounts")),
     Rejected, lambda e: e.status == 403),
    (Fault(status=401, path="creator_info", body=_env("scope_not_authorized")), Rejected,
     lambda e: "re-authorise the account with the video.publish" in e.reason),
    (Fault(status=401, path="creator_info", body=_env("access_token_invalid")), AuthExpired,
     lambda e: e.status == 401),
])
def test_faults_map_to_typed_errors(adapter: TikTokAdapter, account: AccountRef, standin: TikTokStandIn,
                                    video: Media, fault: Fault, error: type, check) -> None:
    standin.inject(fault)
    with pytest.raises(error) as err:
        adapter.publish(account, story(video), "d1", Progress())
    assert check(err.value), err.value
    assert err.value.reason.startswith("tiktok: ")


def test_the_standins_own_limits(adapter: TikTokAdapter, account: AccountRef, standin: TikTokStandIn,
                                 video: Media) -> None:
    standin.init_per_minute = 1
    with pytest.raises(InProgress):
        adapter.publish(account, story(video, text="first"), "d1", Progress())
    with pytest.raises(RateLimited, match="rate_limit_exceeded") as err:
        adapter.publish(account, story(video, text="second"), "d2", Progress())
    assert err.value.retry_after == 60 and err.value.status == 429
    standin.init_per_minute, standin.daily_post_cap = 6, 1
    with pytest.raises(RateLimited, match="spam_risk_too_many_posts"):
        adapter.publish(account, story(video, text="third"), "d3", Progress())


def test_expired_token_then_refresh_rotates(adapter: TikTokAdapter, account: AccountRef,
                                            standin: TikTokStandIn, creds: dict[str, str],
                                            video: Media) -> None:
    standin.expire_access_tokens()
    with pytest.raises(AuthExpired, match="access_token_invalid"):
        adapter.publish(account, story(video), "d1")
    old = account.credentials
    fresh = adapter.refresh(account).reveal()
    assert fresh["access_token"] != creds["access_token"] and fresh["refresh_token"] != creds["refresh_token"]
    assert {k: fresh[k] for k in ("client_key", "client_secret", "open_id")} == {
        k: creds[k] for k in ("client_key", "client_secret", "open_id")}
    left = datetime.fromisoformat(fresh["expires_at"]) - datetime.now(UTC)
    assert timedelta(hours=1, minutes=55) < left <= timedelta(hours=2)  # read from expires_in
    assert datetime.fromisoformat(fresh["refresh_expires_at"]) - datetime.now(UTC) > timedelta(days=179)
    with pytest.raises(AuthExpired, match="invalid_grant"):  # the old refresh token was rotated out
        adapter.refresh(AccountRef(1, "tiktok", HANDLE, standin.url, old))
    account.credentials = Credentials(fresh)
    with pytest.raises(InProgress):
        adapter.publish(account, story(video), "d1")


def test_refresh_refusals(adapter: TikTokAdapter, account: AccountRef, standin: TikTokStandIn,
                          creds: dict[str, str]) -> None:
    # TikTok may answer an OAuth error with 200.
    standin.inject(Fault(status=200, path="/oauth/token/", body={"error": "invalid_grant",
                                                                  "error_description": "expired"}))
    with pytest.raises(AuthExpired, match="invalid_grant: expired"):
        adapter.refresh(account)
    account.credentials = account.credentials.merged(client_secret="not-the-secret")
    with pytest.raises(AuthExpired, match="invalid_client"):
        adapter.refresh(account)
    standin.inject(Fault(status=503, path="/oauth/token/"))
    with pytest.raises(Transient):
        adapter.refresh(account)


# -- followers and find_published -----------------------------------------------------------------
def test_followers(adapter: TikTokAdapter, account: AccountRef, standin: TikTokStandIn) -> None:
    assert adapter.followers(account) == 4321
    standin.user(HANDLE).scopes.discard("user.info.stats")
    with pytest.raises(Rejected, match=r"scope_not_authorized.*user\.info\.stats"):
        adapter.followers(account)
    standin.expire_access_tokens()
    with pytest.raises(AuthExpired):
        adapter.followers(account)


def test_find_published(adapter: TikTokAdapter, account: AccountRef, standin: TikTokStandIn,
                        video: Media) -> None:
    post = story(video)
    assert adapter.find_published(account, post, "d1") is None
    published = finish(adapter, account, post, Progress())
    found = adapter.find_published(account, post, "d1")
    assert found is not None and found.remote_id == published.remote_id and found.url == published.url
    assert adapter.find_published(account, story(video, text="Another story"), "d2") is None
    later = story(video, at=datetime.now(UTC) + timedelta(hours=1))
    assert adapter.find_published(account, later, "d1") is None


# -- the stand-in is as strict as TikTok ----------------------------------------------------------
def _init(standin: TikTokStandIn, creds: dict[str, str], body: dict,
          path: str = "video/init/") -> requests.Response:
    return requests.post(f"{standin.url}/v2/post/publish/{path}", json=body, timeout=5,
                         headers={"Authorization": f"Bearer {creds['access_token']}"})


@pytest.mark.parametrize(("path", "body", "status", "code"), [
    ("video/init/", {"post_info": {"privacy_level": "PUBLIC"}, "source_info": {"source": "FILE_UPLOAD"}},
     400, "privacy_level_option_mismatch"),
    ("video/init/", {"post_info": {"privacy_level": "SELF_ONLY", "title": "😀" * 1101},
                     "source_info": {"source": "FILE_UPLOAD"}}, 400, "invalid_params"),
    ("video/init/", {"post_info": {"privacy_level": "SELF_ONLY", "disable_duet": "no"},
                     "source_info": {"source": "FILE_UPLOAD"}}, 400, "invalid_params"),
    ("video/init/", {"post_info": {"privacy_level": "SELF_ONLY"},
                     "source_info": {"source": "PULL_FROM_URL", "video_url": "https://evil.example/v.mp4"}},
     403, "url_ownership_unverified"),
    ("content/init/", {"media_type": "PHOTO", "post_mode": "DIRECT_POST",
                       "post_info": {"privacy_level": "SELF_ONLY", "title": "t" * 91},
                       "source_info": {"source": "PULL_FROM_URL", "photo_images": [f"{CDN}a.jpg"]}},
     400, "invalid_params"),
    ("content/init/", {"media_type": "PHOTO", "post_mode": "DIRECT_POST",
                       "post_info": {"privacy_level": "SELF_ONLY"},
                       "source_info": {"source": "FILE_UPLOAD", "photo_images": [f"{CDN}a.jpg"]}},
     400, "invalid_params"),
    ("content/init/", {"media_type": "PHOTO", "post_mode": "DIRECT_POST",
                       "post_info": {"privacy_level": "SELF_ONLY"},
                       "source_info": {"source": "PULL_FROM_URL", "photo_images": [f"{CDN}a.jpg"],
                                       "photo_cover_index": 1}}, 400, "invalid_params"),
])
def test_standin_checks_inits(standin: TikTokStandIn, creds: dict[str, str], path: str, body: dict,
                              status: int, code: str) -> None:
    answer = _init(standin, creds, body, path)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code and answer.json()["error"]["log_id"]
    assert standin.inits == 0


def test_standin_upload_protocol(standin: TikTokStandIn, creds: dict[str, str]) -> None:
    size = 11 * MB
    answer = _init(standin, creds, {"post_info": {"privacy_level": "SELF_ONLY", "title": "t"},
                                    "source_info": {"source": "FILE_UPLOAD", "video_size": size,
                                                    "chunk_size": 5 * MB, "total_chunk_count": 2}})
    assert answer.json()["error"]["code"] == "ok"
    url, publish_id = answer.json()["data"]["upload_url"], answer.json()["data"]["publish_id"]
    data = b"\x00\x00\x00\x18ftyp" + b"x" * (size - 8)

    def put(body: bytes, content_range: str, ctype: str = "video/mp4") -> requests.Response:
        return requests.put(url, data=body, timeout=10, headers={"Content-Type": ctype,
                                                                   "Content-Range": content_range})

    def status() -> dict:
        return requests.post(f"{standin.url}/v2/post/publish/status/fetch/", json={"publish_id": publish_id},
                             headers={"Authorization": f"Bearer {creds['access_token']}"}, timeout=5).json()

    assert put(data[5 * MB:], f"bytes {5 * MB}-{size - 1}/{size}").status_code == 400  # out of order
    assert put(data[:5 * MB], f"bytes 0-{5 * MB - 1}/{size}", "image/png").status_code == 400
    assert put(data[:4 * MB], f"bytes 0-{4 * MB - 1}/{size}").status_code == 400  # not the planned chunk
    assert put(data[:5 * MB], f"bytes 0-{5 * MB - 1}/{size}").status_code == 206
    assert status()["data"] == {"status": "PROCESSING_UPLOAD", "uploaded_bytes": 5 * MB}
    assert put(data[5 * MB:], f"bytes {5 * MB}-{size - 1}/{size}").status_code == 201
    assert status()["data"]["status"] == "PROCESSING_UPLOAD"
    done = status()["data"]
    assert done["status"] == "PUBLISH_COMPLETE" and len(done["publicaly_available_post_id"]) == 1
    assert put(data[:5 * MB], f"bytes 0-{5 * MB - 1}/{size}").status_code == 400  # already complete
    standin.status_per_minute = 0
    limited = requests.post(f"{standin.url}/v2/post/publish/status/fetch/", json={"publish_id": publish_id},
                            headers={"Authorization": f"Bearer {creds['access_token']}"}, timeout=5)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert "Retry-After" not in limited.headers


# -- identity: credentials model, whoami, handles ---------------------------------------------------
@pytest.mark.parametrize(("data", "lines"), [
    ({"access_token": "act.12345678", "refresh_token": "rft.12345678", "client_key": "awkey",
      "client_secret": "sec-12345678", "open_id": "-000abc"}, []),
    ({"access_token": "act.12345678", "refresh_token": "rft.12345678", "client_key": "aw key",
      "client_secret": "sec-12345678"}, ["tiktok: credentials: client_key: is not in the expected format"]),
])
def test_credentials_model(creds: dict[str, str], data: dict[str, Any], lines: list[str]) -> None:
    from adapters import validate_credentials

    if not lines:
        assert set(validate_credentials("tiktok", data).secrets()) == {
            data["access_token"], data["refresh_token"], data["client_secret"]}
        assert validate_credentials("tiktok", creds).get("open_id") == creds["open_id"]
        return
    with pytest.raises(ValueError) as err:
        validate_credentials("tiktok", data)
    assert str(err.value).splitlines() == lines and "act." not in str(err.value)


def test_whoami(standin: TikTokStandIn, adapter: TikTokAdapter, account: AccountRef,
                creds: dict[str, str]) -> None:
    me = adapter.whoami(account)
    assert (me.handle, me.remote_id) == (HANDLE, creds["open_id"]) and adapter.same_account("@NewsRoom", me)
    other = Credentials(standin.add_account("another_creator"))
    theirs = adapter.whoami(AccountRef(id=2, platform="tiktok", handle=HANDLE, base_url=standin.url,
                                       credentials=other))
    assert theirs.handle == "another_creator" and not adapter.same_account(HANDLE, theirs)
