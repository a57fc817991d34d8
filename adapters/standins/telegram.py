"""Stand-in for the Telegram Bot API, as far as channel posting goes (platforms.md section 10).

Every account is one channel with one bot that is its administrator. Requests go to
``/bot<token>/<method>`` (method names are case-insensitive, as on Telegram) with parameters in the
query string, a JSON body, a form-encoded body or multipart form data; object parameters sent as
form fields are JSON text. Answers have Telegram's shape: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}``.

Limitation: ``parse_mode`` values are checked but markup is not parsed, so the 4096 limit is applied
to the raw text (stricter than Telegram, never more lenient).
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from adapters.standins.base import Fault, HttpError, Request, Response, StandIn
from adapters.text import utf16_units

TEXT_LIMIT = 4096
PARSE_MODES = {"", "HTML", "MarkdownV2", "Markdown"}
PREVIEW_FLAGS = {"is_disabled", "prefer_small_media", "prefer_large_media", "show_above_text"}
PREVIEW_KEYS = PREVIEW_FLAGS | {"url"}
_NUMERIC_RE = re.compile(r"-?\d+")
_TOKEN_PATH_RE = re.compile(r"^/bot([^/]*)/")


@dataclass
class Bot:
    id: int
    token: str
    username: str


@dataclass
class Channel:
    id: int
    handle: str
    username: str | None
    followers: int
    bot: Bot
    last_message_id: int = 0

    def as_chat(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": self.id, "type": "channel", "title": self.handle}
        if self.username:
            chat["username"] = self.username
        return chat


def fail(status: int, description: str, **parameters: Any) -> HttpError:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return HttpError(status, body)


def ok(result: Any) -> Response:
    return Response(200, {"ok": True, "result": result})


class TelegramStandIn(StandIn):
    platform = "telegram"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.bots: dict[str, Bot] = {}
        self.channels: dict[int, Channel] = {}
        # Every Bot API call as the stand-in understood it, for tests to assert on.
        self.calls: list[dict[str, Any]] = []
        self.methods = {
            "sendmessage": self.send_message,
            "getchatmembercount": self.get_chat_member_count,
            "getme": self.get_me,
            "getchat": self.get_chat,
        }
        super().__init__(host, port)

    def register(self) -> None:
        for method in ("GET", "POST"):
            self.route(method, r"/bot(?P<token>[^/]*)/(?P<method>[^/]*)", self.bot_api)
            self.route(method, r".*", self.not_found)

    # -- accounts ---------------------------------------------------------------------------------
    def add_account(self, handle: str, followers: int = 0) -> dict[str, str]:
        """A channel for ``handle`` (``@name`` public, ``-100...`` private) with its own admin bot."""
        handle = handle.strip()
        numeric = bool(_NUMERIC_RE.fullmatch(handle))
        username = None if numeric else handle.removeprefix("@")
        with self.lock:
            existing = self._find_channel(int(handle) if numeric else f"@{username}")
            if existing:
                existing.followers = followers
                return {"bot_token": existing.bot.token}
            n = len(self.bots) + 1
            bot_id = 7_000_000_000 + n
            # BotFather's form: "<bot id>:<35 characters of [A-Za-z0-9_-]>".
            bot = Bot(bot_id, f"{bot_id}:{secrets.token_urlsafe(27)[:35]}", f"crosspost{n}_bot")
            chat_id = int(handle) if numeric else -1_001_000_000_000 - n
            self.bots[bot.token] = bot
            self.channels[chat_id] = Channel(chat_id, handle, username, followers, bot)
            return {"bot_token": bot.token}

    def _find_channel(self, chat: int | str) -> Channel | None:
        if isinstance(chat, int):
            return self.channels.get(chat)
        name = chat.removeprefix("@").lower()
        return next((c for c in self.channels.values() if (c.username or "").lower() == name), None)

    # -- shape of the platform --------------------------------------------------------------------
    def scope(self, request: Request) -> str:
        # The bot token is in the path, not in an Authorization header.
        found = _TOKEN_PATH_RE.match(request.path)
        if not found:
            return super().scope(request)
        return hashlib.sha256(unquote(found.group(1)).encode()).hexdigest()[:16]

    def rate_limited(self, fault: Fault) -> Response:
        wait = max(1, math.ceil(fault.retry_after if fault.retry_after is not None else 1))
        body = fault.body or {"ok": False, "error_code": 429,
                              "description": f"Too Many Requests: retry after {wait}",
                              "parameters": {"retry_after": wait}}
        return Response(429, body, {"Retry-After": str(wait)})

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self.calls.clear()

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"channels": len(self.channels), "messages": len(self.posts("message"))}

    # -- dispatch ---------------------------------------------------------------------------------
    def not_found(self, req: Request) -> Response:
        raise fail(404, "Not Found")

    def bot_api(self, req: Request) -> Response:
        assert req.match is not None
        token = unquote(req.match["token"])
        if ":" not in token:
            raise fail(404, "Not Found")
        with self.lock:
            bot = self.bots.get(token)
        if bot is None:
            raise fail(401, "Unauthorized")
        method = self.methods.get(req.match["method"].lower())
        if method is None:
            raise fail(404, "Not Found")
        params = self.params(req)
        with self.lock:
            self.calls.append({"method": req.match["method"], "http_method": req.method, "bot": bot.id,
                               "headers": req.headers, "params": params})
        return method(bot, params)

    def params(self, req: Request) -> dict[str, Any]:
        """Parameters from the query string and the body, whichever encoding the client chose."""
        params: dict[str, Any] = dict(req.query)
        if not req.body:
            return params
        ctype = req.headers.get("content-type", "")
        kind = ctype.split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                data = json.loads(req.body)
            except ValueError:
                raise fail(400, "Bad Request: can't parse JSON request body") from None
            if not isinstance(data, dict):
                raise fail(400, "Bad Request: JSON request body must be an object")
            params.update(data)
        elif kind == "multipart/form-data":
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + req.body)
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name and not part.get_filename():
                    params[str(name)] = part.get_content()
        elif kind in ("", "application/x-www-form-urlencoded"):
            params.update({k: v[-1] for k, v in
                           parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True).items()})
        else:
            raise fail(400, f"Bad Request: unsupported content type {kind}")
        return params

    # -- parameter checks -------------------------------------------------------------------------
    def chat(self, params: dict[str, Any], bot: Bot, post: bool) -> Channel:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise fail(400, "Bad Request: chat_id is empty")
        channel = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            channel = self._find_channel(raw)
        elif isinstance(raw, str) and _NUMERIC_RE.fullmatch(raw.strip()):
            channel = self._find_channel(int(raw))
        elif isinstance(raw, str) and raw.startswith("@"):
            channel = self._find_channel(raw)
        if channel is None or (channel.bot is not bot and channel.username is None):
            # A private channel is invisible to bots that are not in it.
            raise fail(400, "Bad Request: chat not found")
        if post and channel.bot is not bot:
            raise fail(403, "Forbidden: bot is not a member of the channel chat")
        return channel

    @staticmethod
    def flag(value: Any, name: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise fail(400, f"Bad Request: field \"{name}\" must be of type Boolean")

    def preview_options(self, raw: Any) -> dict[str, Any] | None:
        if raw is None:
            return None
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raw = None
        if not isinstance(raw, dict) or set(raw) - PREVIEW_KEYS:
            raise fail(400, "Bad Request: can't parse link preview options JSON object")
        if "url" in raw and not isinstance(raw["url"], str):
            raise fail(400, "Bad Request: field \"url\" must be of type String")
        for name in PREVIEW_FLAGS & set(raw):
            if not isinstance(raw[name], bool):
                raise fail(400, f"Bad Request: field \"{name}\" must be of type Boolean")
        return raw

    # -- methods ----------------------------------------------------------------------------------
    def send_message(self, bot: Bot, params: dict[str, Any]) -> Response:
        text = params.get("text")
        with self.lock:
            channel = self.chat(params, bot, post=True)
            # Telegram trims surrounding white space before it checks and stores the text.
            if not isinstance(text, str) or not text.strip():
                raise fail(400, "Bad Request: message text is empty")
            text = text.strip()
            if params.get("parse_mode", "") not in PARSE_MODES:
                raise fail(400, "Bad Request: unsupported parse_mode")
            if utf16_units(text) > TEXT_LIMIT:
                raise fail(400, "Bad Request: message is too long")
            preview = self.preview_options(params.get("link_preview_options"))
            for name in ("disable_notification", "protect_content"):
                if name in params:
                    self.flag(params[name], name)
            channel.last_message_id += 1
            message: dict[str, Any] = {
                "message_id": channel.last_message_id, "sender_chat": channel.as_chat(),
                "chat": channel.as_chat(), "date": int(time.time()), "text": text,
            }
            if preview:
                message["link_preview_options"] = preview
            self.record("message", {"account": channel.handle, "text": text, "chat_id": channel.id,
                                    "message_id": channel.last_message_id, "link_preview_options": preview},
                        id=f"{channel.id}:{channel.last_message_id}")
        return ok(message)

    def get_chat_member_count(self, bot: Bot, params: dict[str, Any]) -> Response:
        with self.lock:
            return ok(self.chat(params, bot, post=False).followers)

    def get_me(self, bot: Bot, params: dict[str, Any]) -> Response:
        return ok({"id": bot.id, "is_bot": True, "first_name": "crosspost", "username": bot.username,
                   "can_join_groups": False, "can_read_all_group_messages": False,
                   "supports_inline_queries": False})

    def get_chat(self, bot: Bot, params: dict[str, Any]) -> Response:
        with self.lock:
            return ok(self.chat(params, bot, post=False).as_chat())
