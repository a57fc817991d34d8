"""The X adapter against the X stand-in (a real local HTTP server), and the stand-in's own strictness.
Each table row: what the stand-in is told or sent, what we expect back."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from adapters.base import AccountRef, Credentials, Media, Post, Progress
from adapters.errors import AdapterError, AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.standins.base import Fault
from adapters.standins.x import XStandIn
from adapters.x import XAdapter, x_weighted_length

LINK = "https://news.example.com/2026/11/28/a-rather-long-story-slug-for-the-front-page?utm_source=x"
_handles = itertools.count(1)
MB = 1024 * 1024


# The stand-in, its reset before every test and the adapter come from conftest.py.
PLATFORM = "x"


def make_account(standin: XStandIn, followers: int = 10, drop: tuple[str, ...] = (),
                 **kwargs: Any) -> AccountRef:
    handle = f"newsdesk{next(_handles)}"
    given = standin.add_account(handle, followers=followers, **kwargs)
    creds = {k: v for k, v in given.items() if k not in drop}
    return AccountRef(id=1, platform="x", handle=handle, base_url=standin.url, credentials=Credentials(creds))


def token(account: AccountRef) -> str:
    return account.credentials.require("access_token", "x")


def now() -> datetime:
    return datetime.now(UTC)


def unique_post(text: str = "Council approves the new tram line", link: str | None = LINK,
                **kwargs: Any) -> Post:
    kwargs.setdefault("created_at", now())
    return Post(text=f"{text} ({next(_handles)})", link=link, **kwargs)


def long_text(sentences: int = 9) -> str:
    return " ".join(f"Sentence {next(_handles)} of the council's budget story, with more detail." for _ in
                    range(sentences))


# -- media files -------------------------------------------------------------------------------------
def image(tmp_path: Path, name: str = "photo.png", size: tuple[int, int] = (64, 48), alt: str = "",
          frames: int = 1) -> Media:
    path = tmp_path / name
    fmt = {"png": "PNG", "jpg": "JPEG", "gif": "GIF"}[name.rsplit(".", 1)[1]]
    pictures = [Image.new("RGB", size, (40 * i % 255, 90, 160)) for i in range(frames)]
    pictures[0].save(path, fmt, **({"save_all": True, "append_images": pictures[1:]} if frames > 1 else {}))
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif"}[fmt]
    return Media("image", str(path), mime, path.stat().st_size, size[0], size[1], alt=alt)


def video(tmp_path: Path, size: int = 3500, dims: tuple[int, int] = (1280, 720)) -> Media:
    path = tmp_path / "clip.mp4"
    box = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    path.write_bytes(box + bytes(i % 251 for i in range(size - len(box))))
    return Media("video", str(path), "video/mp4", size, *dims)


def fake(kind: str, mime: str, size: int, dims: tuple[int, int] | None = None, alt: str = "") -> Media:
    return Media(kind, "/nonexistent", mime, size, *(dims or (None, None)), alt=alt)


# -- check -------------------------------------------------------------------------------------------
JPEG = fake("image", "image/jpeg", 100_000)
CHECKS: list[tuple[str, Post, list[str]]] = [
    ("fits: a link counts 23 whatever its length", Post(text="a" * 255, link=LINK), []),
    ("one over the limit", Post(text="a" * 256, link=LINK),
     ["x: text: is 281 weighted characters long; the limit is 280; use --thread for a reply chain"]),
    ("CJK counts 2", Post(text="日" * 141), ["x: text: is 282 weighted characters long; the limit is 280; "
                                            "use --thread for a reply chain"]),
    ("an emoji family counts 2", Post(text="👨‍👩‍👧" * 140), []),
    ("a thread may be longer", Post(text="a " * 400, thread=True), []),
    ("a character X refuses", Post(text="bad \ufffe char"),
     ["x: text: contains U+FFFE, U+FEFF or U+FFFF, which X refuses"]),
    ("four photos", Post(text="t", media=(JPEG,) * 4), []),
    ("five photos", Post(text="t", media=(JPEG,) * 5), ["x: media: 5 images; the limit is 4"]),
    ("photo over 5 MB", Post(text="t", media=(fake("image", "image/png", 6 * MB),)),
     [f"x: media: image is {6 * MB} bytes; the limit is {5 * MB}"]),
    ("GIF of 10 MB alone", Post(text="t", media=(fake("image", "image/gif", 10 * MB, (480, 270)),)), []),
    ("GIF with a photo", Post(text="t", media=(fake("image", "image/gif", MB), JPEG)),
     ["x: media: a GIF must be the only media of a post"]),
    ("GIF too large", Post(text="t", media=(fake("image", "image/gif", MB, (1920, 1080)),)),
     ["x: media: GIF is 1920x1080; the limit is 1280x1080"]),
    ("a video", Post(text="t", media=(fake("video", "video/mp4", 50 * MB, (1280, 720)),)), []),
    ("a video and a photo", Post(text="t", media=(fake("video", "video/mp4", MB), JPEG)),
     ["x: media: images and a video cannot go in one post"]),
    ("two videos", Post(text="t", media=(fake("video", "video/mp4", MB),) * 2),
     ["x: media: 2 videos; the limit is 1"]),
    ("video aspect 4:1", Post(text="t", media=(fake("video", "video/mp4", MB, (1280, 320)),)),
     ["x: media: video is 1280x320; X wants at least 32x32 and an aspect ratio between 1:3 and 3:1"]),
    ("alt text over 1000", Post(text="t", media=(fake("image", "image/jpeg", 10, alt="a" * 1001),)),
     ["x: media: alt text is 1001 characters; the limit is 1000"]),
    ("empty story", Post(text="  "), ["x: text: is empty"]),
]


@pytest.mark.parametrize(("case", "post", "problems"), CHECKS, ids=[c[0] for c in CHECKS])
def test_check(adapter: XAdapter, case: str, post: Post, problems: list[str]) -> None:
    assert [str(p) for p in adapter.check(post)] == problems


def test_caps(adapter: XAdapter) -> None:
    caps = adapter.caps
    assert (caps.text_limit, caps.unit, caps.count) == (280, "weighted characters", x_weighted_length)
    assert not caps.idempotent and caps.can_find and caps.threads
    assert (caps.max_images, caps.max_videos, caps.images_with_video) == (4, 1, False)


@pytest.mark.parametrize(("text", "length"), [
    ("hello", 5), ("日本語", 6), ("see https://example.com/very/long ok", 30), ("e\u0301", 1), ("👍🏽", 2)])
def test_weighted_length(text: str, length: int) -> None:
    assert x_weighted_length(text) == length


# -- publish: text, link, media ------------------------------------------------------------------------
@pytest.mark.parametrize("link", [None, LINK])
def test_publish_text_and_link(standin: XStandIn, adapter: XAdapter, account: AccountRef,
                               link: str | None) -> None:
    post = unique_post(link=link)
    published = adapter.publish(account, post, "d1")
    [created] = standin.posts("tweet")
    assert created.data == {"account": account.handle, "text": post.body, "media_ids": [], "media": [],
                            "reply_to": None}
    assert published.remote_id == created.id
    assert published.url == f"https://x.com/{account.handle}/status/{created.id}"
    assert published.published_at is not None and abs(published.published_at - now()) < timedelta(seconds=5)


def test_publish_photos_with_alt_text(standin: XStandIn, adapter: XAdapter, account: AccountRef,
                                      tmp_path: Path) -> None:
    media = (image(tmp_path, "a.png", alt="A tram at dusk"), image(tmp_path, "b.jpg"))
    adapter.publish(account, unique_post(media=media), "d2")
    [created] = standin.posts("tweet")
    assert created.data["media"] == [("tweet_image", "image/png", "A tram at dusk"),
                                     ("tweet_image", "image/jpeg", "")]
    assert (standin.uploads, standin.appends) == (2, 0)  # one-shot uploads


def test_video_processing_returns_control_then_completes(standin: XStandIn, adapter: XAdapter,
                                                         account: AccountRef, tmp_path: Path) -> None:
    adapter.chunk_size = 1000
    post, progress = unique_post(media=(video(tmp_path, 3500),)), Progress()
    with pytest.raises(InProgress) as first:
        adapter.publish(account, post, "d3", progress)
    assert first.value.after == 1 and "pending" in str(first.value)
    entry = progress.get("media")["0"]
    assert entry["sent"] == 4 and entry["finalized_at"] and not entry.get("ready")
    with pytest.raises(InProgress, match="in_progress"):
        adapter.publish(account, post, "d3", progress)
    published = adapter.publish(account, post, "d3", progress)
    [created] = standin.posts("tweet")
    assert created.id == published.remote_id and created.data["media_ids"] == [entry["id"]]
    assert created.data["media"] == [("tweet_video", "video/mp4", "")]
    assert (standin.uploads, standin.appends, standin.status_polls) == (1, 4, 2)
    # Done means done: another call returns the same post without touching X.
    calls = len(standin.requests)
    assert adapter.publish(account, post, "d3", progress) == published and len(standin.requests) == calls


@pytest.mark.parametrize(("frames", "category", "appends"), [(3, "tweet_gif", 1), (1, "tweet_image", 0)])
def test_gif_category_follows_animation(standin: XStandIn, adapter: XAdapter, account: AccountRef,
                                        tmp_path: Path, frames: int, category: str, appends: int) -> None:
    standin.processing_polls = 0  # ready at finalize
    adapter.publish(account, unique_post(media=(image(tmp_path, "a.gif", frames=frames),)), "d4")
    [created] = standin.posts("tweet")
    assert created.data["media"][0][:2] == (category, "image/gif") and standin.appends == appends


def test_lost_append_answer_resends_that_segment_only(standin: XStandIn, adapter: XAdapter,
                                                     account: AccountRef, tmp_path: Path) -> None:
    standin.processing_polls = 0
    adapter.chunk_size = 1000
    post, progress = unique_post(media=(video(tmp_path, 3500),)), Progress()
    standin.inject(Fault(commit=True, drop=True, path="/append"))
    with pytest.raises(Transient):
        adapter.publish(account, post, "d5", progress)
    adapter.publish(account, post, "d5", progress)
    assert (standin.uploads, standin.appends) == (1, 5)  # segment 0 twice, then 1..3
    assert len(standin.posts("tweet")) == 1


def test_failed_processing_is_rejected_and_forgotten(standin: XStandIn, adapter: XAdapter,
                                                    account: AccountRef, tmp_path: Path) -> None:
    standin.processing_polls, standin.fail_processing = 1, True
    post, progress = unique_post(media=(video(tmp_path),)), Progress()
    with pytest.raises(InProgress):
        adapter.publish(account, post, "d6", progress)
    with pytest.raises(Rejected, match="InvalidMedia: Unsupported video format"):
        adapter.publish(account, post, "d6", progress)
    assert progress.get("media") == {} and standin.posts("tweet") == []


def test_expired_media_id_is_uploaded_again(standin: XStandIn, adapter: XAdapter, account: AccountRef,
                                            tmp_path: Path) -> None:
    post, progress = unique_post(media=(video(tmp_path),)), Progress()
    with pytest.raises(InProgress):
        adapter.publish(account, post, "d7", progress)
    progress.state["media"]["0"]["expires_at"] = time.time()
    with pytest.raises(InProgress, match="pending"):
        adapter.publish(account, post, "d7", progress)
    assert standin.uploads == 2


# -- threads -------------------------------------------------------------------------------------------
def test_thread_is_a_reply_chain(standin: XStandIn, adapter: XAdapter, account: AccountRef,
                                 tmp_path: Path) -> None:
    post = Post(text=long_text(), link=LINK, created_at=now(), thread=True, media=(image(tmp_path),))
    published = adapter.publish(account, post, "d8")
    tweets = standin.posts("tweet")
    assert len(tweets) == 3 and published.remote_id == tweets[0].id
    assert [t.data["reply_to"] for t in tweets] == [None, tweets[0].id, tweets[1].id]
    assert [t.data["text"].rsplit(" ", 1)[1] for t in tweets] == ["1/3", "2/3", "3/3"]
    assert [len(t.data["media_ids"]) for t in tweets] == [1, 0, 0]
    assert all(x_weighted_length(t.data["text"]) <= 280 for t in tweets)


def test_thread_resumes_after_a_failure_mid_chain(standin: XStandIn, adapter: XAdapter,
                                                  account: AccountRef) -> None:
    def fail_next_part(state: dict[str, Any]) -> None:
        if len(state.get("parts", [])) == 1 and "fence" not in state:
            standin.inject(Fault(status=503, path="/2/tweets"))

    post, progress = Post(text=long_text(), created_at=now(), thread=True), Progress(saver=fail_next_part)
    with pytest.raises(Transient):
        adapter.publish(account, post, "d9", progress)
    assert len(standin.posts("tweet")) == 1
    published = adapter.publish(account, post, "d9", progress)
    tweets = standin.posts("tweet")
    assert len(tweets) == 3 and standin.duplicates() == 0 and published.remote_id == tweets[0].id
    assert [t.data["reply_to"] for t in tweets] == [None, tweets[0].id, tweets[1].id]


def test_lost_answer_then_duplicate_refusal_finds_the_part(standin: XStandIn, adapter: XAdapter,
                                                           account: AccountRef) -> None:
    post, progress = Post(text=long_text(), created_at=now(), thread=True), Progress()
    standin.inject(Fault(commit=True, drop=True, path="/2/tweets"))
    with pytest.raises(Transient) as err:
        adapter.publish(account, post, "d10", progress)
    assert err.value.maybe_sent
    published = adapter.publish(account, post, "d10", progress)
    tweets = standin.posts("tweet")
    assert len(tweets) == 3 and standin.duplicates() == 0 and published.remote_id == tweets[0].id
    assert progress.get("parts") == [t.id for t in tweets]


def test_duplicate_of_an_older_post_is_rejected(standin: XStandIn, adapter: XAdapter,
                                                account: AccountRef) -> None:
    post = unique_post()
    adapter.publish(account, post, "d11")
    later = replace(post, created_at=now() + timedelta(minutes=10))
    with pytest.raises(Rejected, match=r"duplicate content.*no post of the account") as err:
        adapter.publish(account, later, "d12")
    assert err.value.status == 403 and len(standin.posts("tweet")) == 1


def test_duplicate_without_timeline_reads_is_rejected(standin: XStandIn, adapter: XAdapter,
                                                      account: AccountRef) -> None:
    post = unique_post()
    adapter.publish(account, post, "d13")
    standin.reads_allowed = False
    with pytest.raises(Rejected, match=r"duplicate content.*cannot be read.*access level"):
        adapter.publish(account, post, "d14")


# -- errors --------------------------------------------------------------------------------------------
USAGE_CAPPED = {"title": "UsageCapExceeded", "detail": "Usage cap exceeded: Monthly product cap",
                "type": "https://api.twitter.com/2/problems/usage-capped", "period": "Monthly",
                "scope": "Product"}
FORBIDDEN = {"title": "Client Forbidden", "type": "https://api.twitter.com/2/problems/client-forbidden",
             "detail": "not enrolled", "reason": "client-not-enrolled"}
INVALID = {"errors": [{"message": "Your media IDs are invalid."}], "title": "Invalid Request",
           "detail": "One or more parameters to your request was invalid.",
           "type": "https://api.twitter.com/2/problems/invalid-request"}
# (case, stand-in window, faults, error, attributes, words, posts created)
FAULTS: list[tuple[str, str, list[Fault], type[AdapterError], dict[str, Any], str, int]] = [
    ("429 15-minute window", "x-rate-limit", [Fault(status=429, retry_after=30)], RateLimited,
     {"scope": "account", "status": 429}, "Too Many Requests", 0),
    ("429 user 24-hour limit", "x-user-limit-24hour", [Fault(status=429, retry_after=3600)], RateLimited,
     {"scope": "account"}, "Too Many Requests", 0),
    ("429 app 24-hour limit", "x-app-limit-24hour", [Fault(status=429, retry_after=3600)], RateLimited,
     {"scope": "app"}, "Too Many Requests", 0),
    ("429 usage capped", "x-rate-limit", [Fault(status=429, retry_after=5, body=USAGE_CAPPED)], RateLimited,
     {"scope": "app", "retry_after": 86400.0}, "usage cap", 0),
    ("403 usage capped", "x-rate-limit", [Fault(status=403, body=USAGE_CAPPED)], RateLimited,
     {"scope": "app", "retry_after": 86400.0, "status": 403}, "Monthly product cap", 0),
    ("503", "x-rate-limit", [Fault(status=503)], Transient, {"maybe_sent": True, "status": 503},
     "Service Unavailable", 0),
    ("400 invalid request", "x-rate-limit", [Fault(status=400, body=INVALID)], Rejected, {"status": 400},
     "Your media IDs are invalid.", 0),
    ("403 client forbidden", "x-rate-limit", [Fault(status=403, body=FORBIDDEN)], Rejected, {"status": 403},
     "access level", 0),
    ("dropped before an answer", "x-rate-limit", [Fault(drop=True)], Transient, {"maybe_sent": True},
     "dropped", 0),
    ("dropped after the post was made", "x-rate-limit", [Fault(drop=True, commit=True)], Transient,
     {"maybe_sent": True}, "dropped", 1),
]


@pytest.mark.parametrize(("case", "window", "faults", "error", "attrs", "words", "created"), FAULTS,
                         ids=[f[0] for f in FAULTS])
def test_publish_faults(standin: XStandIn, adapter: XAdapter, account: AccountRef, case: str, window: str,
                        faults: list[Fault], error: type[AdapterError], attrs: dict[str, Any], words: str,
                        created: int) -> None:
    standin.window = window
    standin.inject(*faults)
    with pytest.raises(error) as err:
        adapter.publish(account, unique_post(), "d15")
    assert type(err.value) is error
    assert {k: getattr(err.value, k) for k in attrs} == attrs
    assert str(err.value).startswith("x: ") and words in str(err.value)
    assert len(standin.posts("tweet")) == created


@pytest.mark.parametrize("wait", [30, 3600])
def test_rate_limit_wait_is_until_the_reset(standin: XStandIn, adapter: XAdapter, account: AccountRef,
                                            wait: int) -> None:
    standin.inject(Fault(status=429, retry_after=wait))
    with pytest.raises(RateLimited) as err:
        adapter.followers(account)
    assert wait - 2 <= err.value.retry_after <= wait + 1


@pytest.mark.parametrize(("text", "words"), [("a" * 281, "Tweet text is too long"),
                                             ("日" * 141, "Tweet text is too long")])
def test_text_over_the_limit_is_refused_by_x(standin: XStandIn, adapter: XAdapter, account: AccountRef,
                                             text: str, words: str) -> None:
    with pytest.raises(Rejected, match=words) as err:
        adapter.publish(account, Post(text=text), "d16")
    assert err.value.status == 400


def test_missing_scope_is_rejected(standin: XStandIn, adapter: XAdapter) -> None:
    reader = make_account(standin, scopes=("tweet.read", "users.read"))
    with pytest.raises(Rejected, match="not permitted"):
        adapter.publish(reader, unique_post(), "d17")



# -- auth and refresh --------------------------------------------------------------------------------------
@pytest.mark.parametrize("confidential", [False, True])
def test_expired_token_then_refresh_rotates(standin: XStandIn, adapter: XAdapter, confidential: bool) -> None:
    account = make_account(standin, confidential=confidential)
    standin.expire_access_tokens()
    with pytest.raises(AuthExpired) as err:
        adapter.publish(account, unique_post(), "d19")
    assert err.value.status == 401
    fresh = adapter.refresh(account)
    old = account.credentials
    assert fresh.get("access_token") != old.get("access_token")
    assert fresh.get("refresh_token") != old.get("refresh_token")
    assert fresh.get("client_id") == old.get("client_id") and fresh.get("user_id") == old.get("user_id")
    expires = datetime.fromisoformat(fresh.require("expires_at", "x").replace("Z", "+00:00"))
    assert abs(expires - (now() + timedelta(hours=2))) < timedelta(seconds=10)
    adapter.publish(replace(account, credentials=fresh), unique_post(), "d19")
    with pytest.raises(AuthExpired, match=r"Value passed for the token was invalid.*re-authorise"):
        adapter.refresh(account)  # the used refresh token is gone


def test_known_expiry_skips_the_doomed_call(standin: XStandIn, adapter: XAdapter,
                                            account: AccountRef) -> None:
    stale = replace(account, credentials=account.credentials.merged(expires_at="2020-01-01T00:00:00Z"))
    with pytest.raises(AuthExpired, match="expired at 2020-01-01T00:00:00Z"):
        adapter.publish(stale, unique_post(), "d20")
    assert standin.requests == []
    assert adapter.refresh(stale).require("expires_at", "x") > "2026"


@pytest.mark.parametrize(("case", "change", "words"), [
    ("no refresh token", {"drop": ("refresh_token",)}, "no refresh token"),
    ("token without offline.access", {"scopes": ("tweet.read", "tweet.write", "users.read")},
     "no refresh token"),
    ("wrong client secret", {"confidential": True, "secret": "not-the-secret"}, "unauthorized_client"),
    ("public client id of another app", {"client": "standin-confidential"}, "unauthorized_client"),
])
def test_refresh_refused(standin: XStandIn, adapter: XAdapter, case: str, change: dict[str, Any],
                         words: str) -> None:
    secret, client = change.pop("secret", None), change.pop("client", None)
    account = make_account(standin, **change)
    if secret or client:
        values = account.credentials.reveal()
        values.update({k: v for k, v in (("client_secret", secret), ("client_id", client)) if v})
        account = replace(account, credentials=Credentials(values))
    with pytest.raises(AuthExpired, match=words):
        adapter.refresh(account)


# -- followers -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [0, 10, 123_456])
def test_followers(standin: XStandIn, adapter: XAdapter, count: int) -> None:
    assert adapter.followers(make_account(standin, followers=count)) == count
    assert standin.requests[-1]["path"] == "/2/users/me"


# -- find_published ------------------------------------------------------------------------------------------
FINDS = [
    # (case, published text, link, looked-for text, first attempt offset, found)
    ("text and link (t.co in the answer)", "Markets close higher", LINK, "Markets close higher", 0, True),
    ("escaped HTML and a bare domain", "Q&A: <why> it's late, see example.com", None,
     "Q&A: <why> it's late, see example.com", 0, True),
    ("clock skew under a minute", "Storm warning lifted", None, "Storm warning lifted", 50, True),
    ("posted before the first attempt", "Old news", None, "Old news", 300, False),
    ("other text", "Rates unchanged", None, "Rates raised", 0, False),
]


@pytest.mark.parametrize(("case", "sent", "link", "wanted", "offset", "found"), FINDS,
                         ids=[f[0] for f in FINDS])
def test_find_published(standin: XStandIn, adapter: XAdapter, account: AccountRef, case: str, sent: str,
                        link: str | None, wanted: str, offset: int, found: bool) -> None:
    published = adapter.publish(account, Post(text=sent, link=link, created_at=now()), "d21")
    looked = Post(text=wanted, link=link, created_at=now() + timedelta(seconds=offset))
    assert adapter.find_published(account, looked, "d21") == (published if found else None)


def test_find_published_with_media_and_without_stored_user_id(standin: XStandIn, adapter: XAdapter,
                                                              tmp_path: Path) -> None:
    account = make_account(standin, drop=("user_id",))
    post = unique_post(media=(image(tmp_path),))
    published = adapter.publish(account, post, "d22")
    assert adapter.find_published(account, post, "d22") == published
    [user_id] = [u.id for u in standin.users.values() if u.username == account.handle]
    assert [r["path"] for r in standin.requests[-2:]] == ["/2/users/me", f"/2/users/{user_id}/tweets"]


def test_find_published_thread_needs_every_part(standin: XStandIn, adapter: XAdapter,
                                                account: AccountRef) -> None:
    post = Post(text=long_text(), created_at=now(), thread=True)
    progress = Progress(saver=lambda s: standin.inject(Fault(status=503, path="/2/tweets"))
                        if len(s.get("parts", [])) == 2 and "fence" not in s else None)
    with pytest.raises(Transient):
        adapter.publish(account, post, "d23", progress)
    assert adapter.find_published(account, post, "d23") is None
    published = adapter.publish(account, post, "d23", progress)
    assert adapter.find_published(account, post, "d23") == published


def test_find_published_without_read_access_is_rejected(standin: XStandIn, adapter: XAdapter,
                                                        account: AccountRef) -> None:
    standin.reads_allowed = False
    with pytest.raises(Rejected, match=r"Client Forbidden.*access level"):
        adapter.find_published(account, unique_post(), "d24")


def test_find_published_pages(standin: XStandIn, adapter: XAdapter, account: AccountRef) -> None:
    post = unique_post(created_at=now())
    published = adapter.publish(account, post, "d25")
    for n in range(105):
        adapter.publish(account, Post(text=f"later story {n} {next(_handles)}"), f"d25-{n}")
    standin.requests.clear()
    assert adapter.find_published(account, post, "d25") == published
    assert [r["path"].rsplit("/", 1)[-1] for r in standin.requests] == ["tweets", "tweets"]


# -- credentials never leak --------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "call"), [(429, "publish"), (401, "publish"), (400, "publish"),
                                              (503, "followers"), (403, "followers"), (400, "refresh")])
def test_error_texts_scrub_secrets(standin: XStandIn, adapter: XAdapter, status: int, call: str) -> None:
    account = make_account(standin, confidential=True)
    secrets = [account.credentials.require(k, "x")
               for k in ("access_token", "refresh_token", "client_secret")]
    standin.inject(Fault(status=status, retry_after=1, body={"title": "Oops", "detail": " ".join(secrets),
                                                             "error": secrets[1]}))
    with pytest.raises(AdapterError) as err:
        {"publish": lambda: adapter.publish(account, unique_post(), "d26"),
         "followers": lambda: adapter.followers(account), "refresh": lambda: adapter.refresh(account)}[call]()
    assert not any(s in str(err.value) or s in repr(err.value) for s in secrets) and "***" in str(err.value)
    assert not any(s in repr(account) or s in str(account.credentials) for s in secrets)


# -- the stand-in is as strict as X ----------------------------------------------------------------------
def call(standin: XStandIn, method: str, path: str, auth: str | None, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {auth}"} if auth else {}
    return requests.request(method, standin.url + path, headers=headers, timeout=5, **kwargs)


# (case, method, path, request kwargs, status, words)
STRICT: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    ("no token", "POST", "/2/tweets", {"json": {"text": "hi"}, "auth": None}, 401, '"title": "Unauthorized"'),
    ("unknown field", "POST", "/2/tweets", {"json": {"text": "hi", "status": "x"}}, 400,
     "$.status: is not defined in the schema"),
    ("form body", "POST", "/2/tweets", {"data": {"text": "hi"}}, 400, "application/json"),
    ("no text nor media", "POST", "/2/tweets", {"json": {}}, 400, "text or media.media_ids is required"),
    ("141 CJK characters", "POST", "/2/tweets", {"json": {"text": "日" * 141}}, 400,
     "Tweet text is too long"),
    ("a long URL counts 23", "POST", "/2/tweets",
     {"json": {"text": "a" * 256 + " https://e.com/" + "x" * 300}}, 201, '"edit_history_tweet_ids"'),
    ("five media ids", "POST", "/2/tweets", {"json": {"text": "x", "media": {"media_ids": list("12345")}}},
     400, "must have at most 4 items"),
    ("unknown media id", "POST", "/2/tweets", {"json": {"text": "x", "media": {"media_ids": ["12"]}}}, 400,
     "Your media IDs are invalid."),
    ("reply to nothing", "POST", "/2/tweets", {"json": {"text": "x", "reply": {"in_reply_to_tweet_id": "9"}}},
     403, "deleted or not visible"),
    ("me without fields", "GET", "/2/users/me", {}, 200, '"username"'),
    ("me with an unknown field", "GET", "/2/users/me", {"params": {"user.fields": "followers"}}, 400,
     "is not one of"),
    ("timeline page of 3", "GET", "/2/users/{id}/tweets", {"params": {"max_results": 3}}, 400,
     "is not between 5 and 100"),
    ("timeline bad start_time", "GET", "/2/users/{id}/tweets", {"params": {"start_time": "yesterday"}}, 400,
     "RFC 3339"),
    ("timeline of an unknown user", "GET", "/2/users/42/tweets", {}, 200,
     "Could not find user with id: [42]."),
    ("initialize without category", "POST", "/2/media/upload/initialize",
     {"json": {"media_type": "video/mp4", "total_bytes": 10}}, 400, "$.media_category: is missing"),
    ("initialize a video as an image", "POST", "/2/media/upload/initialize",
     {"json": {"media_type": "video/mp4", "total_bytes": 10, "media_category": "tweet_image"}}, 400,
     "not allowed for media_category"),
    ("initialize a 16 MB GIF", "POST", "/2/media/upload/initialize",
     {"json": {"media_type": "image/gif", "total_bytes": 16 * MB, "media_category": "tweet_gif"}}, 400,
     "is not between 1 and"),
    ("initialize total_bytes as text", "POST", "/2/media/upload/initialize",
     {"json": {"media_type": "video/mp4", "total_bytes": "10", "media_category": "tweet_video"}}, 400,
     "str found, int expected"),
    ("one-shot video", "POST", "/2/media/upload", {"files": {"media": ("v", b"x" * 10)},
                                                   "data": {"media_category": "tweet_video"}}, 400,
     "use the chunked upload"),
    ("one-shot bytes that are no image", "POST", "/2/media/upload",
     {"files": {"media": ("v", b"x" * 10)}, "data": {"media_category": "tweet_image"}}, 400,
     "media type unrecognized"),
    ("append to an unknown id", "POST", "/2/media/upload/77/append",
     {"files": {"media": ("b", b"x")}, "data": {"segment_index": "0"}}, 400, "Media id 77 not found"),
    ("status without media_id", "GET", "/2/media/upload", {"params": {"command": "STATUS"}}, 400,
     "media_id are required"),
    ("refresh with an unknown token", "POST", "/2/oauth2/token",
     {"data": {"grant_type": "refresh_token", "refresh_token": "nope", "client_id": "standin-public"},
      "auth": None}, 400, '"error": "invalid_request"'),
    ("confidential client without Basic auth", "POST", "/2/oauth2/token",
     {"data": {"grant_type": "refresh_token", "refresh_token": "nope", "client_id": "standin-confidential"},
      "auth": None}, 401, '"error": "unauthorized_client"'),
]


@pytest.mark.parametrize(("case", "method", "path", "kwargs", "status", "words"), STRICT,
                         ids=[s[0] for s in STRICT])
def test_standin_checks_like_x(standin: XStandIn, account: AccountRef, case: str, method: str, path: str,
                               kwargs: dict[str, Any], status: int, words: str) -> None:
    kwargs = dict(kwargs)
    auth = kwargs.pop("auth", token(account))
    path = path.replace("{id}", account.credentials.require("user_id", "x"))
    answer = call(standin, method, path, auth, **kwargs)
    assert answer.status_code == status, answer.text
    assert words in answer.text


def test_standin_chunked_protocol_in_order(standin: XStandIn, account: AccountRef) -> None:
    auth, other = token(account), token(make_account(standin))
    init = call(standin, "POST", "/2/media/upload/initialize", auth,
                json={"media_type": "video/mp4", "total_bytes": 6, "media_category": "tweet_video"})
    media_id = init.json()["data"]["id"]

    def append(index: int, data: bytes, who: str = auth) -> requests.Response:
        return call(standin, "POST", f"/2/media/upload/{media_id}/append", who,
                    files={"media": ("b", data)}, data={"segment_index": str(index)})

    def tweet(who: str = auth) -> requests.Response:
        return call(standin, "POST", "/2/tweets", who, json={"text": f"v {time.time()}",
                                                             "media": {"media_ids": [media_id]}})

    status = {"params": {"command": "STATUS", "media_id": media_id}}
    assert "Segment 1 is out of order" in append(1, b"abc").text
    assert "Media is not finalized" in call(standin, "GET", "/2/media/upload", auth, **status).text
    assert append(0, b"abc").status_code == 200 and append(0, b"abc").status_code == 200  # re-send replaces
    assert "not found" in append(1, b"def", who=other).text  # another account's media
    assert "do not add up" in call(standin, "POST", f"/2/media/upload/{media_id}/finalize", auth).text
    assert append(1, b"def").status_code == 200
    final = call(standin, "POST", f"/2/media/upload/{media_id}/finalize", auth).json()["data"]
    assert final["processing_info"] == {"state": "pending", "check_after_secs": 1, "progress_percent": 0}
    assert "already finalized" in call(standin, "POST", f"/2/media/upload/{media_id}/finalize", auth).text
    assert "already finalized" in append(2, b"g").text
    assert "media IDs are invalid" in tweet().text  # still processing
    states = [call(standin, "GET", "/2/media/upload", auth, **status).json()["data"]["processing_info"]
              ["state"] for _ in range(2)]
    assert states == ["in_progress", "succeeded"]
    assert "media IDs are invalid" in tweet(other).text
    assert tweet().status_code == 201


def test_standin_rate_limit_answer(standin: XStandIn) -> None:
    standin.inject(Fault(status=429, retry_after=3))
    answer = requests.get(f"{standin.url}/2/users/me", timeout=5)
    assert answer.status_code == 429 and "Retry-After" not in answer.headers
    assert answer.json() == {"title": "Too Many Requests", "detail": "Too Many Requests",
                             "type": "about:blank", "status": 429}
    assert answer.headers["x-rate-limit-remaining"] == "0"
    assert 0 < int(answer.headers["x-rate-limit-reset"]) - time.time() <= 4


def test_standin_counts_early_requests_against_the_reset(standin: XStandIn, account: AccountRef) -> None:
    standin.inject(Fault(status=429, retry_after=30))
    for _ in range(2):
        call(standin, "GET", "/2/users/me", token(account))
    assert standin.early_requests == 1


def test_standin_timeline_renders_like_x(standin: XStandIn, adapter: XAdapter, account: AccountRef,
                                         tmp_path: Path) -> None:
    adapter.publish(account, Post(text="A & B <c> https://example.com/x", media=(image(tmp_path),)), "d27")
    user_id = account.credentials.require("user_id", "x")
    answer = call(standin, "GET", f"/2/users/{user_id}/tweets", token(account),
                  params={"tweet.fields": "created_at"}).json()
    [tweet] = answer["data"]
    text = tweet["text"]
    assert text.startswith("A &amp; B &lt;c&gt; https://t.co/") and text.count("https://t.co/") == 2
    assert tweet["created_at"].endswith(".000Z") and answer["meta"]["result_count"] == 1



# -- identity: credentials model, whoami, handles ---------------------------------------------------
@pytest.mark.parametrize(("data", "lines"), [
    ({"access_token": "tok-12345678"}, []),
    ({"access_token": "tok-12345678", "refresh_token": "ref-12345678", "client_id": "app",
      "user_id": 1234, "expires_at": "2026-12-01T10:00:00Z"}, []),
    ({"access_token": "tok-12345678", "refresh_token": "ref-12345678"},
     ["x: credentials: client_id: is required with a refresh_token (the token endpoint names the app)"]),
    ({"access_token": "tok-12345678", "user_id": "@newsroom", "expires_at": "soon"},
     ["x: credentials: expires_at: is not an ISO-8601 time such as 2026-12-01T10:00:00Z",
      "x: credentials: user_id: is not in the expected format"]),
    ({"token": "tok-12345678"},
     ["x: credentials: access_token: is required",
      "x: credentials: token: is not a field of these credentials (expected: access_token, refresh_token, "
      "expires_at, client_id, client_secret, user_id)"]),
])
def test_credentials_model(data: dict[str, Any], lines: list[str]) -> None:
    from adapters import validate_credentials

    if not lines:
        creds = validate_credentials("x", data)
        assert set(creds.secrets()) == {v for k, v in data.items() if k.endswith("token")}
        return
    with pytest.raises(ValueError) as err:
        validate_credentials("x", data)
    assert str(err.value).splitlines() == lines and "tok-12345678" not in str(err.value)


def test_standin_credentials_pass_the_model(standin: XStandIn) -> None:
    from adapters import validate_credentials

    for confidential in (False, True):
        given = standin.add_account(f"model{int(confidential)}", confidential=confidential)
        assert validate_credentials("x", given).get("access_token") == given["access_token"]


def test_whoami(standin: XStandIn, adapter: XAdapter, account: AccountRef) -> None:
    me = adapter.whoami(account)
    assert me.handle == account.handle and me.remote_id == account.credentials.get("user_id")
    assert adapter.same_account(f"@{account.handle.upper()}", me)
    assert not adapter.same_account(account.handle, adapter.whoami(make_account(standin)))
