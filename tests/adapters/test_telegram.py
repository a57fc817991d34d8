"""Telegram adapter against the Telegram stand-in (a real local HTTP server)."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from adapters.base import AccountRef, Credentials, Media, Post, Problem, Progress
from adapters.errors import AdapterError, AuthExpired, RateLimited, Rejected, Transient
from adapters.standins.base import Fault
from adapters.standins.telegram import TelegramStandIn
from adapters.telegram import TelegramAdapter, chat_id, message_url

WHEN = datetime(2026, 11, 28, 12, tzinfo=UTC)
LINK = "https://news.example/stories/42"
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 2000
_names = itertools.count(1)


# The stand-in, its reset before every test and the adapter come from conftest.py.
PLATFORM = "telegram"


def account(standin: TelegramStandIn, handle: str | None = None, followers: int = 10,
            credentials: dict[str, str] | None = None) -> AccountRef:
    # Channels outlive reset(), so each test gets its own and message ids start at 1.
    handle = handle or f"@crosspost_news{next(_names)}"
    creds = standin.add_account(handle, followers=followers)
    return AccountRef(id=1, platform="telegram", handle=handle, base_url=standin.url,
                      credentials=Credentials(credentials or creds))


def post(text: str = "Council approves the new tram line", link: str | None = LINK) -> Post:
    return Post(text=text, link=link, created_at=WHEN)


def error_body(status: int, description: str, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


# -- pure helpers ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("handle", "expected"), [
    ("@channel", "@channel"),
    ("channel", "@channel"),
    (" channel ", "@channel"),
    ("-1001234567890", "-1001234567890"),
])
def test_chat_id(handle: str, expected: str) -> None:
    assert chat_id(handle) == expected


@pytest.mark.parametrize(("chat", "username", "expected"), [
    ("@channel", None, "https://t.me/channel/7"),
    ("-1001234567890", None, "https://t.me/c/1234567890/7"),
    ("-1001234567890", "public_name", "https://t.me/public_name/7"),  # numeric handle, public channel
    ("-12345", None, None),  # a basic group has no message links
])
def test_message_url(chat: str, username: str | None, expected: str | None) -> None:
    assert message_url(chat, 7, username) == expected


@pytest.mark.parametrize(("text", "link", "expected"), [
    ("Short story", LINK, []),
    ("😀" * 2048, None, []),  # 4096 UTF-16 units exactly
    ("😀" * 2049, None, [Problem("telegram", "text", "is 4098 UTF-16 code units long; the limit is 4096")]),
    ("x" * 4097, None, [Problem("telegram", "text", "is 4097 UTF-16 code units long; the limit is 4096")]),
    ("   ", None, [Problem("telegram", "text", "is empty")]),
])
def test_check(adapter: TelegramAdapter, text: str, link: str | None, expected: list[Problem]) -> None:
    problems = adapter.check(post(text, link))
    assert problems == expected
    for problem in problems:
        assert str(problem).startswith("telegram: text: ")


def test_caps_say_no_idempotency_and_no_lookup(adapter: TelegramAdapter) -> None:
    assert adapter.caps.idempotent is False
    assert adapter.caps.can_find is False
    assert adapter.caps.text_limit == 4096


def fake(kind: str = "image", mime: str = "image/jpeg", size: int = 1000, width: int | None = 800,
         height: int | None = 600) -> Media:
    return Media(kind=kind, path="/nowhere", mime=mime, size=size, width=width, height=height)


MEDIA_CHECKS: list[tuple[str, str, tuple[Media, ...], list[str]]] = [
    # (case, text, media, problems)
    ("caption at 1024 units", "😀" * 512, (fake(),), []),
    ("caption over 1024 units", "😀" * 513, (fake(),),
     ["telegram: text: is 1026 UTF-16 code units long; with media it goes as a caption, whose limit is "
      "1024"]),
    ("4000 units are fine without media", "x" * 4000, (), []),
    ("ten photos and videos", "x", (fake(),) * 6 + (fake("video", "video/mp4"),) * 4, []),
    ("eleven", "x", (fake(),) * 11, ["telegram: media: 11 images; the limit is 10",
                                     "telegram: media: 11 images and videos; an album holds at most 10"]),
    ("a GIF would lose its animation", "x", (fake(mime="image/gif"),),
     ["telegram: media: image type image/gif is not one of image/jpeg, image/png, image/webp"]),
    ("a QuickTime video", "x", (fake("video", "video/quicktime"),),
     ["telegram: media: video type video/quicktime is not one of video/mp4"]),
    ("photo over 10 MB", "x", (fake(size=10_000_001),),
     ["telegram: media: image is 10000001 bytes; the limit is 10000000"]),
    ("video over 50 MB", "x", (fake("video", "video/mp4", size=50_000_001),),
     ["telegram: media: video is 50000001 bytes; the limit is 50000000"]),
    ("photo sides over 10000", "x", (fake(width=6000, height=4001),),
     ["telegram: media: photo 1 is 6000x4001; Telegram wants width + height <= 10000 and a ratio of at most "
      "20:1"]),
    ("photo ratio over 20", "x", (fake(), fake(width=2100, height=100)),
     ["telegram: media: photo 2 is 2100x100; Telegram wants width + height <= 10000 and a ratio of at most "
      "20:1"]),
    ("a video's shape is not checked", "x", (fake("video", "video/mp4", width=4000, height=100),), []),
]


@pytest.mark.parametrize(("case", "text", "media", "problems"), MEDIA_CHECKS,
                         ids=[c[0] for c in MEDIA_CHECKS])
def test_check_media(adapter: TelegramAdapter, case: str, text: str, media: tuple[Media, ...],
                     problems: list[str]) -> None:
    assert [str(p) for p in adapter.check(Post(text=text, media=media))] == problems


# -- publish ---------------------------------------------------------------------------------------
def test_publish_public_channel(standin: TelegramStandIn, adapter: TelegramAdapter) -> None:
    acct = account(standin)
    name = acct.handle[1:]
    result = adapter.publish(acct, post(), "d1-abc")

    [message] = standin.posts("message")
    assert message.data["text"] == post().body
    assert message.data["message_id"] == 1
    assert result.remote_id == f"{acct.handle}:1"
    assert result.url == f"https://t.me/{name}/1"
    assert result.published_at is not None and result.published_at.tzinfo is UTC

    [call] = standin.calls
    assert call["method"] == "sendMessage" and call["http_method"] == "POST"
    assert call["headers"]["content-type"] == "application/json"
    assert call["headers"]["user-agent"].startswith("crosspost/")
    assert "authorization" not in call["headers"]
    # Plain text: no parse_mode, the preview pinned to the story's link.
    assert call["params"] == {"chat_id": acct.handle, "text": post().body,
                              "link_preview_options": {"url": LINK}}


def test_publish_without_link_sends_no_preview_options(standin: TelegramStandIn,
                                                       adapter: TelegramAdapter) -> None:
    acct = account(standin)
    adapter.publish(acct, post(link=None), "d2")
    [call] = standin.calls
    assert call["params"] == {"chat_id": acct.handle, "text": post(link=None).body}


def test_publish_private_channel_by_numeric_id(standin: TelegramStandIn, adapter: TelegramAdapter) -> None:
    acct = account(standin, handle="-1009876543210")
    first = adapter.publish(acct, post("first"), "d3")
    second = adapter.publish(acct, post("second"), "d4")
    assert first.remote_id == "-1009876543210:1"
    assert second.remote_id == "-1009876543210:2"
    assert second.url == "https://t.me/c/9876543210/2"
    assert [c["params"]["chat_id"] for c in standin.calls] == ["-1009876543210"] * 2


def test_publish_bare_handle_gets_at_sign(standin: TelegramStandIn, adapter: TelegramAdapter) -> None:
    acct = account(standin, handle=f"bare_channel{next(_names)}")
    result = adapter.publish(acct, post(), "d5")
    assert standin.calls[0]["params"]["chat_id"] == f"@{acct.handle}"
    assert result.url == f"https://t.me/{acct.handle}/1"


def test_message_ids_increase_per_chat(standin: TelegramStandIn, adapter: TelegramAdapter) -> None:
    a, b = account(standin), account(standin)
    ids = [adapter.publish(acct, post(f"story {i}"), f"k{i}").remote_id
           for i, acct in enumerate([a, b, a, a, b])]
    assert ids == [f"{a.handle}:1", f"{b.handle}:1", f"{a.handle}:2", f"{a.handle}:3", f"{b.handle}:2"]


def test_emoji_text_at_the_limit_is_accepted(standin: TelegramStandIn, adapter: TelegramAdapter) -> None:
    adapter.publish(account(standin), post("😀" * 2048, link=None), "d6")
    assert len(standin.posts("message")) == 1


# -- media -----------------------------------------------------------------------------------------
def image_file(tmp_path: Path, size: tuple[int, int] = (64, 48), fmt: str = "PNG") -> Media:
    path = tmp_path / f"img{next(_names)}.{fmt.lower()}"
    Image.new("RGB", size, (20, 90, 200)).save(path, fmt)
    return Media(kind="image", path=str(path), mime=f"image/{fmt.lower()}", size=path.stat().st_size,
                 width=size[0], height=size[1], alt="ignored: Telegram has no alt text")


def video_file(tmp_path: Path) -> Media:
    path = tmp_path / f"clip{next(_names)}.mp4"
    path.write_bytes(MP4)
    return Media(kind="video", path=str(path), mime="video/mp4", size=path.stat().st_size, width=640,
                 height=360)


def sha(media: Media) -> str:
    return hashlib.sha256(Path(media.path).read_bytes()).hexdigest()


def test_publish_one_photo_with_caption(standin: TelegramStandIn, adapter: TelegramAdapter,
                                        tmp_path: Path) -> None:
    acct = account(standin)
    photo = image_file(tmp_path, fmt="JPEG")
    progress = Progress()
    result = adapter.publish(acct, replace(post(), media=(photo,)), "d30", progress)

    [call] = standin.calls
    assert call["method"] == "sendPhoto" and call["headers"]["content-type"].startswith("multipart/form-data")
    assert call["params"] == {"chat_id": acct.handle, "caption": post().body}
    assert call["files"] == {"photo": (Path(photo.path).name, "image/jpeg", photo.size)}
    [message] = standin.posts("message")
    assert message.data["text"] == post().body
    shown = [(m["type"], m["sha256"], m["width"]) for m in message.data["media"]]
    assert shown == [("photo", sha(photo), 64)]
    assert result.remote_id == f"{acct.handle}:1" and result.url == f"https://t.me/{acct.handle[1:]}/1"
    assert progress.get("message")["message_id"] == 1 and standin.uploads == 1


def test_publish_one_video(standin: TelegramStandIn, adapter: TelegramAdapter, tmp_path: Path) -> None:
    acct = account(standin)
    clip = video_file(tmp_path)
    adapter.publish(acct, replace(post(link=None), media=(clip,)), "d31")
    [call] = standin.calls
    assert call["method"] == "sendVideo"
    assert call["params"] == {"chat_id": acct.handle, "caption": post(link=None).body,
                              "supports_streaming": "true", "width": "640", "height": "360"}
    assert call["files"] == {"video": (Path(clip.path).name, "video/mp4", clip.size)}
    [message] = standin.posts("message")
    assert message.data["media"][0]["type"] == "video" and message.data["media"][0]["sha256"] == sha(clip)


def test_publish_album_of_photos_and_a_video(standin: TelegramStandIn, adapter: TelegramAdapter,
                                             tmp_path: Path) -> None:
    acct = account(standin)
    items = (image_file(tmp_path), image_file(tmp_path, (30, 90)), video_file(tmp_path))
    result = adapter.publish(acct, replace(post(), media=items), "d32")

    [call] = standin.calls
    assert call["method"] == "sendMediaGroup"
    assert json.loads(call["params"]["media"]) == [
        {"type": "photo", "media": "attach://f0", "caption": post().body},
        {"type": "photo", "media": "attach://f1"},
        {"type": "video", "media": "attach://f2", "supports_streaming": True, "width": 640, "height": 360},
    ]
    assert sorted(call["files"]) == ["f0", "f1", "f2"]
    [message] = standin.posts("message")  # one story, one record
    assert message.data["message_ids"] == [1, 2, 3] and message.data["text"] == post().body
    assert [m["sha256"] for m in message.data["media"]] == [sha(m) for m in items]
    assert result.remote_id == f"{acct.handle}:1" and standin.uploads == 3


def test_saved_message_is_never_sent_again(standin: TelegramStandIn, adapter: TelegramAdapter,
                                           tmp_path: Path) -> None:
    acct = account(standin)
    saved: list[dict[str, Any]] = []
    progress = Progress(saver=saved.append)
    story = replace(post(), media=(image_file(tmp_path), image_file(tmp_path)))
    first = adapter.publish(acct, story, "d33", progress)
    assert saved and TelegramAdapter.resumable(saved[-1]) and not TelegramAdapter.resumable({})
    # The worker died before recording success: the retry answers from progress.
    assert adapter.publish(acct, story, "d33", progress) == first
    assert len(standin.calls) == 1 and standin.duplicates() == 0 and standin.uploads == 2


def test_lost_answer_for_media_leaves_nothing_to_resume(standin: TelegramStandIn, adapter: TelegramAdapter,
                                                        tmp_path: Path) -> None:
    acct = account(standin)
    standin.inject(Fault(commit=True, drop=True, path="sendPhoto"))
    progress = Progress()
    with pytest.raises(Transient) as caught:
        adapter.publish(acct, replace(post(), media=(image_file(tmp_path),)), "d34", progress)
    assert caught.value.maybe_sent is True
    assert len(standin.posts("message")) == 1 and not TelegramAdapter.resumable(progress.state)


# (case, media factory, fault, error, words)
MEDIA_FAILURES: list[tuple[str, Callable[[Path], tuple[Media, ...]], Fault | None, type[Exception], str]] = [
    ("caption too long (check bypassed)", lambda p: (image_file(p),), None, Rejected,
     "message caption is too long"),
    ("photo shape unknown to check", lambda p: (replace(image_file(p, (10, 300)), width=None),), None,
     Rejected, "PHOTO_INVALID_DIMENSIONS"),
    ("album item the servers refuse",
     lambda p: (image_file(p), replace(image_file(p, (10, 300)), width=None)), None, Rejected,
     'failed to send message #2 with the error message "PHOTO_INVALID_DIMENSIONS"'),
    ("file missing from the media store", lambda p: (fake(),), None, Rejected,
     "media 1 cannot be read from the media store"),
    ("album rate limited", lambda p: (image_file(p), image_file(p)), Fault(status=429, retry_after=9),
     RateLimited, "retry after 9"),
    ("video upload dropped", lambda p: (video_file(p),), Fault(drop=True), Transient, "connection dropped"),
]


@pytest.mark.parametrize(("case", "make", "fault", "error", "words"), MEDIA_FAILURES,
                         ids=[m[0] for m in MEDIA_FAILURES])
def test_publish_media_failures(standin: TelegramStandIn, adapter: TelegramAdapter, tmp_path: Path, case: str,
                                make: Callable[[Path], tuple[Media, ...]], fault: Fault | None,
                                error: type[Exception], words: str) -> None:
    acct = account(standin)
    text = "x" * 1025 if case.startswith("caption") else "Photos"
    if fault:
        standin.inject(fault)
    with pytest.raises(error) as caught:
        adapter.publish(acct, Post(text=text, created_at=WHEN, media=make(tmp_path)), "d35")
    assert words in str(caught.value)
    assert standin.posts("message") == [] and standin.uploads == 0


# -- failures: (fault injected or account set up wrongly) -> error ----------------------------------
RETRY_35 = error_body(429, "Too Many Requests: retry after 35", retry_after=35)
MIGRATED = error_body(400, "Bad Request: group chat was upgraded to a supergroup chat",
                      migrate_to_chat_id=-1001999888777)

FAULTS = [
    # (id, fault, error type, attributes, text in the reason, messages created)
    ("429", Fault(status=429, retry_after=7, path="sendMessage"), RateLimited,
     {"retry_after": 7.0, "status": 429, "scope": "account"}, "retry after 7", 0),
    ("429-body-wins", Fault(status=429, retry_after=3, body=RETRY_35), RateLimited,
     {"retry_after": 35.0}, "retry after 35", 0),
    ("502", Fault(status=502, body=error_body(502, "Bad Gateway")), Transient,
     {"maybe_sent": True, "status": 502}, "Bad Gateway", 0),
    ("500-html", Fault(status=500, body="<html>Internal Server Error</html>"), Transient,
     {"maybe_sent": True, "status": 500}, "server error 500", 0),
    ("401", Fault(status=401, body=error_body(401, "Unauthorized")), AuthExpired,
     {"status": 401}, "Unauthorized", 0),
    ("403-kicked", Fault(status=403, body=error_body(403, "Forbidden: bot was kicked from the channel chat")),
     Rejected, {"status": 403}, "bot was kicked", 0),
    ("400-migrated", Fault(status=400, body=MIGRATED), Rejected, {"status": 400}, "-1001999888777", 0),
    ("400-entities", Fault(status=400, body=error_body(400, "Bad Request: can't parse entities: x")),
     Rejected, {"status": 400}, "can't parse entities", 0),
    ("drop-before", Fault(drop=True), Transient, {"maybe_sent": True}, "connection dropped", 0),
    ("drop-after-commit", Fault(commit=True, drop=True), Transient, {"maybe_sent": True},
     "connection dropped", 1),
]


@pytest.mark.parametrize(("fault", "error", "attrs", "reason", "created"),
                         [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_publish_faults(standin: TelegramStandIn, adapter: TelegramAdapter, fault: Fault,
                        error: type[Exception], attrs: dict[str, Any], reason: str, created: int) -> None:
    acct = account(standin)
    standin.inject(fault)
    with pytest.raises(error) as caught:
        adapter.publish(acct, post(), "d7")
    for name, value in attrs.items():
        assert getattr(caught.value, name) == value, name
    assert reason in str(caught.value)
    assert str(caught.value).startswith("telegram: ")
    assert len(standin.posts("message")) == created


def test_dropped_answer_after_commit_must_not_be_retried_blindly(standin: TelegramStandIn,
                                                                adapter: TelegramAdapter) -> None:
    acct = account(standin)
    standin.inject(Fault(commit=True, drop=True))
    with pytest.raises(Transient) as caught:
        adapter.publish(acct, post(), "d8")
    assert caught.value.maybe_sent is True
    # The message is out, once, and nothing can tell the scheduler so.
    assert len(standin.posts("message")) == 1 and standin.duplicates() == 0
    assert adapter.find_published(acct, post(), "d8") is None
    # This is why: a retry with the same key is a second message on Telegram.
    adapter.publish(acct, post(), "d8")
    assert standin.duplicates() == 1


def test_429_from_followers(standin: TelegramStandIn, adapter: TelegramAdapter) -> None:
    acct = account(standin)
    standin.inject(Fault(status=429, retry_after=12, path="getChatMemberCount"))
    with pytest.raises(RateLimited) as caught:
        adapter.followers(acct)
    assert caught.value.retry_after == 12.0


def test_text_too_long_is_rejected_by_the_platform(standin: TelegramStandIn,
                                                   adapter: TelegramAdapter) -> None:
    # 2049 characters but 4098 UTF-16 units: Telegram's count, not len().
    with pytest.raises(Rejected, match="message is too long") as caught:
        adapter.publish(account(standin), post("😀" * 2049, link=None), "d9")
    assert caught.value.status == 400
    assert standin.posts("message") == []


def test_unknown_chat_is_rejected(standin: TelegramStandIn, adapter: TelegramAdapter) -> None:
    acct = account(standin)
    acct.handle = "@no_such_channel_here"
    with pytest.raises(Rejected, match="chat not found"):
        adapter.publish(acct, post(), "d10")


def test_bot_of_another_channel_is_forbidden(standin: TelegramStandIn, adapter: TelegramAdapter) -> None:
    mine, other = account(standin), account(standin)
    mine.handle = other.handle
    with pytest.raises(Rejected, match="not a member of the channel chat") as caught:
        adapter.publish(mine, post(), "d11")
    assert caught.value.status == 403
    assert "administrator" in str(caught.value)


def test_private_channel_is_invisible_to_other_bots(standin: TelegramStandIn,
                                                    adapter: TelegramAdapter) -> None:
    account(standin, handle="-1005550001111")
    outsider = account(standin)
    outsider.handle = "-1005550001111"
    with pytest.raises(Rejected, match="chat not found"):
        adapter.publish(outsider, post(), "d12")


def test_revoked_token_is_auth_expired_and_cannot_be_refreshed(standin: TelegramStandIn,
                                                               adapter: TelegramAdapter) -> None:
    revoked = "999999:" + "A" * 35
    acct = account(standin, credentials={"bot_token": revoked})
    with pytest.raises(AuthExpired, match="Unauthorized") as caught:
        adapter.publish(acct, post(), "d13")
    assert caught.value.status == 401
    with pytest.raises(AuthExpired, match="re-authorise"):
        adapter.refresh(acct)
    with pytest.raises(AuthExpired):
        adapter.followers(acct)


@pytest.mark.parametrize("credentials", [{}, {"bot_token": "not a token/../getMe"}])
def test_missing_or_malformed_token_makes_no_request(standin: TelegramStandIn, adapter: TelegramAdapter,
                                                     credentials: dict[str, str]) -> None:
    acct = account(standin, credentials=credentials or {"other": "value123"})
    with pytest.raises(AuthExpired):
        adapter.publish(acct, post(), "d14")
    assert standin.requests == []


# -- followers and find_published ------------------------------------------------------------------
@pytest.mark.parametrize("handle", [None, "-1004440002222"])
def test_followers(standin: TelegramStandIn, adapter: TelegramAdapter, handle: str | None) -> None:
    acct = account(standin, handle=handle, followers=1234)
    assert adapter.followers(acct) == 1234
    [call] = standin.calls
    assert call["method"] == "getChatMemberCount"
    assert call["params"] == {"chat_id": acct.handle}


def test_find_published_is_never_possible(standin: TelegramStandIn, adapter: TelegramAdapter) -> None:
    acct = account(standin)
    adapter.publish(acct, post(), "d16")
    assert adapter.find_published(acct, post(), "d16") is None
    assert len(standin.calls) == 1  # and asks nothing


# -- the token is in the URL: it must never reach an error text ------------------------------------
def token_of(acct: AccountRef) -> str:
    token = acct.credentials.get("bot_token")
    assert token
    return token


@pytest.mark.parametrize("echo", ["full", "secret-half"])
@pytest.mark.parametrize("status", [400, 403, 429, 502])
def test_platform_error_echoing_the_token_is_scrubbed(standin: TelegramStandIn, adapter: TelegramAdapter,
                                                      status: int, echo: str) -> None:
    acct = account(standin)
    token = token_of(acct)
    echoed = token if echo == "full" else token.partition(":")[2]
    standin.inject(Fault(status=status, retry_after=1,
                         body=error_body(status, f"Bad Request: wrong bot{echoed}/sendMessage",
                                         retry_after=1)))
    with pytest.raises((Rejected, RateLimited, Transient)) as caught:
        adapter.publish(acct, post(), "d17")
    assert token.partition(":")[2] not in str(caught.value)
    assert "***" in str(caught.value)


def test_non_json_error_echoing_the_token_is_scrubbed(standin: TelegramStandIn,
                                                      adapter: TelegramAdapter) -> None:
    acct = account(standin)
    token = token_of(acct)
    standin.inject(Fault(status=503, body=f"<html>upstream /bot{token}/sendMessage timed out</html>"))
    with pytest.raises(Transient) as caught:
        adapter.publish(acct, post(), "d18")
    assert token not in str(caught.value)


@pytest.mark.parametrize("base_url", ["localhost:1", "ftp://127.0.0.1", "http://[::1"])
def test_bad_base_url_does_not_leak_the_token(standin: TelegramStandIn, adapter: TelegramAdapter,
                                              base_url: str) -> None:
    acct = account(standin)
    token = token_of(acct)
    acct.base_url = base_url
    with pytest.raises((Rejected, Transient)) as caught:
        adapter.publish(acct, post(), "d19")
    assert token.partition(":")[2] not in str(caught.value)
    assert token.partition(":")[2] not in repr(acct)


@pytest.mark.parametrize("fault", [Fault(drop=True), Fault(status=429, retry_after=2)])
def test_transport_errors_do_not_leak_the_token(standin: TelegramStandIn, adapter: TelegramAdapter,
                                                fault: Fault) -> None:
    acct = account(standin)
    standin.inject(fault)
    with pytest.raises((Transient, RateLimited)) as caught:
        adapter.followers(acct)
    assert token_of(acct).partition(":")[2] not in str(caught.value)


# -- the stand-in itself is as strict as Telegram --------------------------------------------------
def call(standin: TelegramStandIn, token: str, method: str, http_method: str = "POST",
         **kwargs: Any) -> requests.Response:
    return requests.request(http_method, f"{standin.url}/bot{token}/{method}", timeout=5, **kwargs)


def test_standin_token_shape(standin: TelegramStandIn) -> None:
    token = token_of(account(standin))
    bot_id, _, secret = token.partition(":")
    assert bot_id.isdigit() and len(secret) == 35


@pytest.mark.parametrize(("path", "status", "description"), [
    ("/bot{token}/sendTelegram", 404, "Not Found"),
    ("/bot999999:" + "B" * 35 + "/getMe", 401, "Unauthorized"),
    ("/botnocolon/getMe", 404, "Not Found"),
    ("/v1/whatever", 404, "Not Found"),
])
def test_standin_unknown_method_or_token(standin: TelegramStandIn, path: str, status: int,
                                         description: str) -> None:
    token = token_of(account(standin))
    response = requests.post(standin.url + path.format(token=token), json={}, timeout=5)
    assert response.status_code == status
    assert response.json() == {"ok": False, "error_code": status, "description": description}


def test_standin_accepts_every_body_encoding_and_any_method_case(standin: TelegramStandIn) -> None:
    acct = account(standin)
    token, chat = token_of(acct), acct.handle
    preview = json.dumps({"url": LINK})
    answers = [
        call(standin, token, "sendMessage", json={"chat_id": chat, "text": "json"}),
        call(standin, token, "sendmessage", data={"chat_id": chat, "text": "form",
                                                  "link_preview_options": preview}),
        call(standin, token, "SENDMESSAGE", "GET", params={"chat_id": chat, "text": "query"}),
        call(standin, token, "sendMessage", files={"chat_id": (None, chat), "text": (None, "multipart")}),
    ]
    assert [a.status_code for a in answers] == [200] * 4
    assert [a.json()["result"]["message_id"] for a in answers] == [1, 2, 3, 4]
    assert [m.data["text"] for m in standin.posts("message")] == ["json", "form", "query", "multipart"]
    assert standin.posts("message")[1].data["link_preview_options"] == {"url": LINK}


@pytest.mark.parametrize(("params", "status", "description"), [
    ({"text": "hi"}, 400, "Bad Request: chat_id is empty"),
    ({"chat_id": "@nobody_at_all", "text": "hi"}, 400, "Bad Request: chat not found"),
    ({"chat_id": "{chat}"}, 400, "Bad Request: message text is empty"),
    ({"chat_id": "{chat}", "text": "  \n "}, 400, "Bad Request: message text is empty"),
    ({"chat_id": "{chat}", "text": "x" * 4097}, 400, "Bad Request: message is too long"),
    ({"chat_id": "{chat}", "text": "hi", "parse_mode": "BBCode"}, 400, "Bad Request: unsupported parse_mode"),
    ({"chat_id": "{chat}", "text": "hi", "link_preview_options": "yes"}, 400,
     "Bad Request: can't parse link preview options JSON object"),
    ({"chat_id": "{chat}", "text": "hi", "link_preview_options": {"uri": LINK}}, 400,
     "Bad Request: can't parse link preview options JSON object"),
    ({"chat_id": "{chat}", "text": "hi", "link_preview_options": {"is_disabled": "no"}}, 400,
     'Bad Request: field "is_disabled" must be of type Boolean'),
    ({"chat_id": "{chat}", "text": "hi", "link_preview_options": {"url": 5}}, 400,
     'Bad Request: field "url" must be of type String'),
    ({"chat_id": "{chat}", "text": "hi", "disable_notification": "maybe"}, 400,
     'Bad Request: field "disable_notification" must be of type Boolean'),
    ({"chat_id": "{other}", "text": "hi"}, 403, "Forbidden: bot is not a member of the channel chat"),
])
def test_standin_send_message_checks(standin: TelegramStandIn, params: dict[str, Any], status: int,
                                     description: str) -> None:
    acct, other = account(standin), account(standin)
    body = {k: v.format(chat=acct.handle, other=other.handle) if isinstance(v, str) and "{" in v else v
            for k, v in params.items()}
    response = call(standin, token_of(acct), "sendMessage", json=body)
    assert response.status_code == status
    assert response.json() == {"ok": False, "error_code": status, "description": description}
    assert standin.posts("message") == []


def test_standin_429_shape(standin: TelegramStandIn) -> None:
    acct = account(standin)
    standin.inject(Fault(status=429, retry_after=35))
    response = call(standin, token_of(acct), "sendMessage", json={"chat_id": acct.handle, "text": "hi"})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "35"
    assert response.json() == RETRY_35


def test_standin_getters(standin: TelegramStandIn) -> None:
    acct = account(standin, followers=77)
    token = token_of(acct)
    me = call(standin, token, "getMe").json()["result"]
    assert me["is_bot"] is True and me["id"] == int(token.partition(":")[0])
    chat = call(standin, token, "getChat", json={"chat_id": acct.handle}).json()["result"]
    assert chat["type"] == "channel" and chat["username"] == acct.handle[1:]
    by_id = call(standin, token, "getChatMemberCount", params={"chat_id": str(chat["id"])}).json()
    assert by_id == {"ok": True, "result": 77}


# -- the stand-in's media methods ------------------------------------------------------------------
def png_bytes(size: tuple[int, int] = (20, 10)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size).save(out, "PNG")
    return out.getvalue()


def small(standin: TelegramStandIn) -> None:
    standin.photo_limit, standin.upload_limit = 30, 200


MEDIA_STRICT: list[tuple[str, str, dict[str, Any], dict[str, bytes], Callable[[TelegramStandIn], None] | None,
                         int, str]] = [
    # (case, method, fields, files, setup, status, description)
    ("no photo", "sendPhoto", {}, {}, None, 400, "Bad Request: there is no photo in the request"),
    ("empty photo", "sendPhoto", {}, {"photo": b""}, None, 400, "Bad Request: file must be non-empty"),
    ("photo too big", "sendPhoto", {}, {"photo": png_bytes()}, small, 400,
     "Bad Request: file of size {size} bytes is too big for a photo; the maximum size is 30 bytes"),
    ("upload too big", "sendVideo", {}, {"video": MP4}, small, 413, "Request Entity Too Large"),
    ("not an image", "sendPhoto", {}, {"photo": b"GIF89a but not really"}, None, 400,
     "Bad Request: IMAGE_PROCESS_FAILED"),
    ("photo ratio over 20", "sendPhoto", {}, {"photo": png_bytes((10, 300))}, None, 400,
     "Bad Request: PHOTO_INVALID_DIMENSIONS"),
    ("caption too long", "sendPhoto", {"caption": "😀" * 513}, {"photo": png_bytes()}, None, 400,
     "Bad Request: message caption is too long"),
    ("photo by URL", "sendPhoto", {"photo": "https://example.com/a.jpg"}, {}, None, 400,
     "Bad Request: failed to get HTTP URL content"),
    ("unknown file_id", "sendPhoto", {"photo": "AgACAgIAAxkBAAI"}, {}, None, 400,
     "Bad Request: wrong file identifier/HTTP URL specified"),
    ("attach:// without its part", "sendPhoto", {"photo": "attach://x"}, {}, None, 400,
     "Bad Request: can't parse InputMedia: media not found"),
    ("bad video width", "sendVideo", {"width": "wide"}, {"video": MP4}, None, 400,
     'Bad Request: field "width" must be of type Integer'),
    ("album without media", "sendMediaGroup", {}, {}, None, 400,
     'Bad Request: parameter "media" is required'),
    ("album not JSON", "sendMediaGroup", {"media": "[{"}, {}, None, 400,
     "Bad Request: can't parse media JSON object"),
    ("album not an array", "sendMediaGroup", {"media": "{}"}, {}, None, 400,
     "Bad Request: expected an Array of InputMedia"),
    ("album empty", "sendMediaGroup", {"media": "[]"}, {}, None, 400,
     "Bad Request: there are no messages to send"),
    ("album of one", "sendMediaGroup", {"media": json.dumps([{"type": "photo", "media": "attach://a"}])},
     {"a": png_bytes()}, None, 400, "Bad Request: an album needs 2-10 items"),
    ("album of eleven", "sendMediaGroup",
     {"media": json.dumps([{"type": "photo", "media": "attach://a"}] * 11)}, {"a": png_bytes()}, None, 400,
     "Bad Request: too many messages to send as an album"),
    ("album reference without a part", "sendMediaGroup",
     {"media": json.dumps([{"type": "photo", "media": "attach://a"}, {"type": "photo", "media": "attach://b"}])},
     {"a": png_bytes()}, None, 400, "Bad Request: can't parse InputMedia: media not found"),
    ("album of documents", "sendMediaGroup",
     {"media": json.dumps([{"type": "document", "media": "attach://a"}] * 2)}, {"a": png_bytes()}, None, 400,
     'Bad Request: can\'t parse InputMedia: type "document" is unsupported'),
    ("album caption too long", "sendMediaGroup",
     {"media": json.dumps([{"type": "photo", "media": "attach://a", "caption": "x" * 1025},
                           {"type": "photo", "media": "attach://a"}])}, {"a": png_bytes()}, None, 400,
     "Bad Request: message caption is too long"),
]


@pytest.mark.parametrize(("case", "method", "fields", "files", "setup", "status", "description"),
                         MEDIA_STRICT, ids=[m[0] for m in MEDIA_STRICT])
def test_standin_media_checks(standin: TelegramStandIn, case: str, method: str, fields: dict[str, Any],
                              files: dict[str, bytes], setup: Callable[[TelegramStandIn], None] | None,
                              status: int, description: str) -> None:
    acct = account(standin)
    if setup:
        setup(standin)
    parts = {name: (f"{name}.bin", data, "application/octet-stream") for name, data in files.items()}
    response = call(standin, token_of(acct), method, data={"chat_id": acct.handle, **fields},
                    files=parts or {"chat_id": (None, acct.handle)})
    size = len(next(iter(files.values()), b""))
    assert response.status_code == status
    assert response.json() == {"ok": False, "error_code": status,
                               "description": description.format(size=size)}
    assert standin.posts("message") == [] and standin.uploads == 0


def test_standin_reuses_file_ids_of_the_same_kind(standin: TelegramStandIn) -> None:
    acct = account(standin)
    token = token_of(acct)
    sent = call(standin, token, "sendVideo", data={"chat_id": acct.handle}, files={"video": ("v.mp4", MP4)})
    file_id = sent.json()["result"]["video"]["file_id"]
    again = call(standin, token, "sendVideo", json={"chat_id": acct.handle, "video": file_id, "caption": "2"})
    assert again.status_code == 200 and again.json()["result"]["video"]["file_id"] == file_id
    wrong = call(standin, token, "sendPhoto", json={"chat_id": acct.handle, "photo": file_id})
    assert wrong.json()["description"] == "Bad Request: can't use file of type Video as Photo"
    other_bot = account(standin)
    theirs = call(standin, token_of(other_bot), "sendVideo",
                  json={"chat_id": other_bot.handle, "video": file_id})
    assert theirs.json()["description"] == "Bad Request: wrong file identifier/HTTP URL specified"
    assert standin.uploads == 1 and len(standin.posts("message")) == 2


def test_standin_album_messages_share_a_group(standin: TelegramStandIn) -> None:
    acct = account(standin)
    media = [{"type": "photo", "media": "attach://a", "caption": "first"},
             {"type": "video", "media": "attach://b"}]
    answer = call(standin, token_of(acct), "sendMediaGroup",
                  data={"chat_id": acct.handle, "media": json.dumps(media)},
                  files={"a": ("a.png", png_bytes(), "image/png"), "b": ("b.mp4", MP4, "video/mp4")})
    result = answer.json()["result"]
    assert [m["message_id"] for m in result] == [1, 2]
    assert result[0]["media_group_id"] == result[1]["media_group_id"]
    assert result[0]["caption"] == "first" and "caption" not in result[1]
    assert result[0]["photo"][0]["width"] == 20 and result[1]["video"]["mime_type"] == "video/mp4"


# -- identity: credentials model, whoami, handles ---------------------------------------------------
@pytest.mark.parametrize(("data", "lines"), [
    ({"bot_token": "7000000001:AAbb-cc_dd"}, []),
    ({}, ["telegram: credentials: bot_token: is required"]),
    ({"bot_token": "not-a-token"}, ["telegram: credentials: bot_token: is not a bot token of the form "
                                    "<bot id>:<secret>"]),
    ({"bot_token": "7000000001:AAbb", "chat_id": "@x"},
     ["telegram: credentials: chat_id: is not a field of these credentials (expected: bot_token)"]),
    ("7000000001:AAbb", ["telegram: credentials: must be an object of names to values"]),
])
def test_credentials_model(data: Any, lines: list[str]) -> None:
    from adapters import validate_credentials

    if not lines:
        assert validate_credentials("telegram", data).reveal() == data
        return
    with pytest.raises(ValueError) as err:
        validate_credentials("telegram", data)
    assert str(err.value).splitlines() == lines
    assert "not-a-token" not in str(err.value)


def test_whoami_names_the_channel(standin: TelegramStandIn, adapter: TelegramAdapter) -> None:
    acct = account(standin, handle="@Crosspost_Who")
    me = adapter.whoami(acct)
    assert me.handle == "@crosspost_who" and me.remote_id == str(standin._find_channel("@Crosspost_Who").id)
    assert adapter.same_account("crosspost_who", me) and adapter.same_account(me.remote_id, me)
    private = account(standin, handle="-1009876543210")
    assert adapter.whoami(private).handle == "-1009876543210"


def test_whoami_refuses_a_bot_that_cannot_post_in_the_channel(standin: TelegramStandIn,
                                                               adapter: TelegramAdapter) -> None:
    ours, theirs = account(standin), account(standin)
    # Another channel's bot can read our public channel, but may not post in it.
    borrowed = replace(ours, credentials=theirs.credentials)
    with pytest.raises(Rejected, match="is not an administrator"):
        adapter.whoami(borrowed)
    # A private channel is invisible to it altogether.
    private = account(standin, handle="-1001112223334")
    with pytest.raises(Rejected, match="chat not found"):
        adapter.whoami(replace(private, credentials=theirs.credentials))


def test_whoami_with_revoked_token_is_auth_expired(standin: TelegramStandIn,
                                                    adapter: TelegramAdapter) -> None:
    unknown = Credentials({"bot_token": "7000000999:AAAAAAAAAAAAAAAAAAAAAA"})
    with pytest.raises(AuthExpired):
        adapter.whoami(replace(account(standin), credentials=unknown))


def test_publish_fences_the_send_and_find_published_refuses_a_fenced_send(
        standin: TelegramStandIn, adapter: TelegramAdapter) -> None:
    acct = account(standin)
    saved: list[dict[str, Any]] = []
    progress = Progress(saver=saved.append)
    adapter.publish(acct, post(), "d-fence", progress)
    assert saved[0]["fence"]["step"] == "sendMessage" and "fence" not in saved[-1]
    assert adapter.find_published(acct, post(), "d-fence", Progress()) is None
    with pytest.raises(Rejected, match="sendMessage may have gone out"):
        adapter.find_published(acct, post(), "d-fence", Progress(saved[0]))


@pytest.mark.parametrize(("fault", "fence_stays"), [
    (Fault(status=400, body=error_body(400, "Bad Request: message is too long")), False),
    (Fault(status=429, body=error_body(429, "Too Many Requests: retry after 3", retry_after=3)), False),
    (Fault(status=502, body="bad gateway"), True),
    (Fault(drop=True, commit=True), True),
])
def test_a_refused_send_takes_its_fence_down(standin: TelegramStandIn, adapter: TelegramAdapter, fault: Fault,
                                             fence_stays: bool) -> None:
    acct = account(standin)
    standin.inject(replace(fault, path="sendMessage"))
    progress = Progress(saver=lambda state: None)
    with pytest.raises(AdapterError):
        adapter.publish(acct, post(), "d-refused", progress)
    # A refusal is an answer: the next attempt must not be taken for one whose send may have landed.
    assert (progress.fenced is not None) is fence_stays
