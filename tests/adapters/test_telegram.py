"""Telegram adapter against the Telegram stand-in (a real local HTTP server)."""

from __future__ import annotations

import itertools
import json
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from adapters.base import AccountRef, Credentials, Post, Problem
from adapters.errors import AuthExpired, RateLimited, Rejected, Transient
from adapters.standins.base import Fault
from adapters.standins.telegram import TelegramStandIn
from adapters.telegram import TelegramAdapter, chat_id, message_url

WHEN = datetime(2026, 11, 28, 12, tzinfo=UTC)
LINK = "https://news.example/stories/42"
_names = itertools.count(1)


@pytest.fixture(scope="module")
def standin() -> Any:
    server = TelegramStandIn().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def clean(standin: TelegramStandIn) -> None:
    standin.reset()


@pytest.fixture
def adapter() -> TelegramAdapter:
    return TelegramAdapter(timeout=5)


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def test_connection_refused_was_not_sent(standin: TelegramStandIn, adapter: TelegramAdapter) -> None:
    acct = account(standin)
    acct.base_url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Transient) as caught:
        adapter.publish(acct, post(), "d15")
    assert caught.value.maybe_sent is False


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
