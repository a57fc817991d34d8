"""Telegram Bot API, posting to channels (platforms.md section 10).

The account handle is the channel (``@name`` or a numeric ``-100...`` id) and the credentials hold
one bot token, which is an administrator of that channel. The token travels in the URL path
(``/bot<token>/<method>``), so every error text built here keeps the URL out of it.

Telegram has no idempotency key and a bot cannot read channel history, so a publish whose answer was
lost cannot be repeated safely or looked up: the scheduler leaves such a delivery to an operator.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import requests

from adapters import http
from adapters.base import AccountRef, Adapter, Capabilities, Post, Problem, Progress, Published
from adapters.errors import AdapterError, AuthExpired, RateLimited, Rejected, Transient
from adapters.text import utf16_units

# BotFather issues "<bot id>:<secret>"; anything else could change the path the URL points at.
_TOKEN_RE = re.compile(r"\d+:[A-Za-z0-9_-]+")
_NUMERIC_RE = re.compile(r"-?\d+")
_TOKEN_IN_PATH_RE = re.compile(r"/bot([^/]+)/[^/]*$")
# Raised by requests before anything is sent; their messages quote the full URL, token included.
_BAD_URL = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema, requests.exceptions.URLRequired)


def chat_id(handle: str) -> str:
    """The ``chat_id`` for an account handle: ``@name`` and numeric ids as given, a bare name gets ``@``."""
    handle = handle.strip()
    if handle.startswith("@") or _NUMERIC_RE.fullmatch(handle):
        return handle
    return f"@{handle}"


def message_url(chat: str, message_id: int, username: str | None = None) -> str | None:
    """Public link of a channel message: ``t.me/<name>/<id>``, or ``t.me/c/<id>/<id>`` for a private
    channel (only members can open it). Other numeric chats have no message links."""
    if not username and chat.startswith("@"):
        username = chat[1:]
    if username:
        return f"https://t.me/{username}/{message_id}"
    if chat.startswith("-100"):
        return f"https://t.me/c/{chat[4:]}/{message_id}"
    return None


class TelegramAdapter(Adapter):
    platform = "telegram"
    default_base_url = "https://api.telegram.org"

    # -- caps -------------------------------------------------------------------------------------
    # Plain text (no parse_mode), so the limit applies to the body as sent; Telegram counts entity
    # offsets in UTF-16 units and the same unit is the safe reading of the 4096 limit.
    caps: ClassVar[Capabilities] = Capabilities(
        text_limit=4096, count=utf16_units, unit="UTF-16 code units", idempotent=False, can_find=False,
    )

    # -- check_platform ---------------------------------------------------------------------------
    def check_platform(self, post: Post) -> list[Problem]:
        """Nothing beyond the shared rules: without parse_mode there is nothing to escape and nothing
        Telegram would silently drop."""
        return []

    # -- publish ----------------------------------------------------------------------------------
    def publish(self, account: AccountRef, post: Post, key: str,
                progress: Progress | None = None) -> Published:
        # ``key`` cannot be sent anywhere: Telegram has no idempotency key.
        chat = chat_id(account.handle)
        payload: dict[str, Any] = {"chat_id": chat, "text": post.body}
        if post.link:
            # The body may carry other URLs too; the preview should be the story's.
            payload["link_preview_options"] = {"url": post.link}
        message = self._call(account, "sendMessage", payload)
        message_id = message.get("message_id") if isinstance(message, dict) else None
        if not isinstance(message_id, int):
            raise Transient("telegram: sendMessage succeeded without a message_id", maybe_sent=True)
        sent_chat = message.get("chat") if isinstance(message.get("chat"), dict) else {}
        date = message.get("date")
        return Published(
            remote_id=f"{chat}:{message_id}",
            url=message_url(chat, message_id, sent_chat.get("username")),
            published_at=datetime.fromtimestamp(date, UTC) if isinstance(date, int) else None,
        )

    # -- followers --------------------------------------------------------------------------------
    def followers(self, account: AccountRef) -> int:
        count = self._call(account, "getChatMemberCount", {"chat_id": chat_id(account.handle)})
        if not isinstance(count, int) or isinstance(count, bool):
            raise Transient(f"telegram: getChatMemberCount answered {type(count).__name__}, not a count")
        return count

    # -- refresh ----------------------------------------------------------------------------------
    # Bot tokens never expire; a 401 means the token was revoked in @BotFather. The base refresh()
    # raises AuthExpired, so the scheduler marks the account auth_broken for an operator.

    # -- find_published ---------------------------------------------------------------------------
    def find_published(self, account: AccountRef, post: Post, key: str) -> Published | None:
        """Always None: a bot cannot read a channel's history (hence ``can_find=False``)."""
        return None

    # -- classify ---------------------------------------------------------------------------------
    def classify(self, response: requests.Response) -> Exception | None:
        try:
            data = response.json()
        except ValueError:
            return None  # e.g. a proxy's HTML 502: the defaults handle it
        if not isinstance(data, dict):
            return None
        status = response.status_code
        description = _without_token(str(data.get("description") or f"HTTP {status}"), response.url)
        params = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
        if status == 429:
            wait = params.get("retry_after")
            if not isinstance(wait, int | float) or isinstance(wait, bool):
                wait = http.parse_retry_after(response.headers.get("Retry-After"))
            if wait is None:
                return None
            # One bot per channel: the flood limit belongs to this account alone.
            return RateLimited(f"telegram: {description}", wait, status=status, scope="account")
        if status == 401:
            return AuthExpired(f"telegram: bot token refused ({description}); it was revoked or "
                               "regenerated in @BotFather", status=status)
        if status >= 500:
            return Transient(f"telegram: {description} ({status})", status=status, maybe_sent=True)
        migrated = params.get("migrate_to_chat_id")
        if migrated is not None:
            return Rejected(f"telegram: {description}; its new chat id is {migrated}: change the "
                            "account handle to it", status=status)
        if status == 403:
            return Rejected(f"telegram: {description} (the bot must be an administrator of the channel "
                            "with the right to post messages)", status=status)
        if status == 404:
            return Rejected(f"telegram: {description} (404: check the bot token and the base URL)",
                            status=status)
        return Rejected(f"telegram: {description} ({status})", status=status)

    # -- helpers ----------------------------------------------------------------------------------
    def _call(self, account: AccountRef, method: str, payload: dict[str, Any]) -> Any:
        """POST one Bot API method and return its ``result``."""
        token = account.credentials.require("bot_token", self.platform)
        if not _TOKEN_RE.fullmatch(token):
            raise AuthExpired("telegram: the stored bot token is not of the form <bot id>:<secret>")
        url = f"{self.base_url(account)}/bot{token}/{method}"
        try:
            response = self.request(account, "POST", url, json=payload)
        except AdapterError:
            raise
        except _BAD_URL:
            raise Rejected(f"telegram: invalid API URL for {method}; check the account's base URL") from None
        except requests.RequestException as exc:
            # Transport faults other than timeouts and dropped connections (http.send maps those).
            raise Transient(f"telegram: {method} failed ({type(exc).__name__})", maybe_sent=True) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("ok") is not True or "result" not in data:
            raise Transient(f"telegram: {method} answered {response.status_code} without a result",
                            status=response.status_code, maybe_sent=True)
        return data["result"]


def _without_token(text: str, url: str | None) -> str:
    """``text`` without the bot token, or its secret half, that the request URL carried.

    http.send scrubs the stored token too; this also covers a description quoting only the secret.
    """
    found = _TOKEN_IN_PATH_RE.search(urlsplit(url or "").path)
    token = unquote(found.group(1)) if found else ""
    secret = token.partition(":")[2]
    return http.scrub(text, [s for s in (token, secret) if len(s) >= 6])
