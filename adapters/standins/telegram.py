"""Stand-in for the Telegram Bot API, as far as channel posting goes (platforms.md section 10).

Every account is one channel with one bot that is its administrator. Requests go to
``/bot<token>/<method>`` (method names are case-insensitive, as on Telegram) with parameters in the
query string, a JSON body, a form-encoded body or multipart form data; object parameters sent as
form fields are JSON text. Answers have Telegram's shape: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}``.

Media: ``sendPhoto``, ``sendVideo`` and ``sendMediaGroup`` take uploads (the part named for the
parameter, or one named by ``attach://<part>``) or a ``file_id`` the bot received before; photos are
read with Pillow (width + height <= 10000, ratio <= 20), photos may weigh 10 MiB and other uploads
50 MiB (``photo_limit``/``upload_limit``, settable), captions 1024 UTF-16 units, albums hold photos and
videos. ``uploads`` counts the files stored.

Limitations: ``parse_mode`` values are checked but markup is not parsed, so the 4096 and 1024 limits
apply to the raw text (stricter than Telegram, never more lenient). Files sent by URL fail as an
unreachable URL does (the stand-in has no web). An album of one is refused as the Bot API documents
("2-10 items"; the wording is the stand-in's), and albums of documents or audio are not offered.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import io
import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from PIL import Image

from adapters.standins.base import Fault, HttpError, Request, Response, StandIn
from adapters.standins.text import utf16_units

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
ALBUM_MAX = 10
# TDLib's binary megabytes.
PHOTO_LIMIT = 10 * 1024 * 1024
UPLOAD_LIMIT = 50 * 1024 * 1024
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


@dataclass
class StoredFile:
    file_id: str
    kind: str  # "photo" | "video"
    bot: int
    filename: str
    mime: str
    size: int
    sha256: str
    width: int = 0
    height: int = 0

    def as_result(self) -> Any:
        unique = self.file_id[-16:]
        if self.kind == "photo":
            return [{"file_id": self.file_id, "file_unique_id": unique, "width": self.width,
                     "height": self.height, "file_size": self.size}]
        return {"file_id": self.file_id, "file_unique_id": unique, "width": self.width, "height": self.height,
                "duration": 0, "file_name": self.filename, "mime_type": self.mime, "file_size": self.size}


class _Refused(Exception):
    """Telegram's servers (not the Bot API) refused a file; albums name the item it was."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


Upload = tuple[str, str, bytes]  # file name, declared type, bytes


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
        self.files: dict[str, StoredFile] = {}
        self.uploads = 0
        self.photo_limit = PHOTO_LIMIT
        self.upload_limit = UPLOAD_LIMIT
        self.methods = {
            "sendmessage": self.send_message,
            "sendphoto": self.send_photo,
            "sendvideo": self.send_video,
            "sendmediagroup": self.send_media_group,
            "getchatmembercount": self.get_chat_member_count,
            "getme": self.get_me,
            "getchat": self.get_chat,
            "getchatmember": self.get_chat_member,
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
            self.uploads = 0
            self.photo_limit, self.upload_limit = PHOTO_LIMIT, UPLOAD_LIMIT

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"channels": len(self.channels), "messages": len(self.posts("message")),
                    "uploads": self.uploads}

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
        params, files = self.params(req)
        with self.lock:
            self.calls.append({"method": req.match["method"], "http_method": req.method, "bot": bot.id,
                               "headers": req.headers, "params": params,
                               "files": {k: (f[0], f[1], len(f[2])) for k, f in files.items()}})
        return method(bot, params, files)

    def params(self, req: Request) -> tuple[dict[str, Any], dict[str, Upload]]:
        """Parameters from the query string and the body, whichever encoding the client chose, and
        the files uploaded as multipart parts (by part name)."""
        params: dict[str, Any] = dict(req.query)
        files: dict[str, Upload] = {}
        if not req.body:
            return params, files
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
                if not name:
                    continue
                if part.get_filename() is None:
                    params[str(name)] = part.get_content()
                else:
                    data = part.get_payload(decode=True)
                    files[str(name)] = (str(part.get_filename()), part.get_content_type(),
                                        data if isinstance(data, bytes) else b"")
        elif kind in ("", "application/x-www-form-urlencoded"):
            params.update({k: v[-1] for k, v in
                           parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True).items()})
        else:
            raise fail(400, f"Bad Request: unsupported content type {kind}")
        return params, files

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
    def send_message(self, bot: Bot, params: dict[str, Any], files: dict[str, Upload]) -> Response:
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

    # -- media ------------------------------------------------------------------------------------
    def caption(self, params: dict[str, Any]) -> str:
        raw = params.get("caption")
        if raw is None:
            return ""
        if not isinstance(raw, str):
            raise fail(400, 'Bad Request: field "caption" must be of type String')
        if params.get("parse_mode", "") not in PARSE_MODES:
            raise fail(400, "Bad Request: unsupported parse_mode")
        if utf16_units(raw.strip()) > CAPTION_LIMIT:
            raise fail(400, "Bad Request: message caption is too long")
        return raw.strip()

    def input_file(self, bot: Bot, kind: str, value: Any, files: dict[str, Upload], part: str | None,
                   album: bool = False) -> StoredFile:
        """A file parameter as Telegram reads it: the upload in ``part`` or named by attach://, or a
        file_id this bot received before. Checked, not yet stored."""
        if isinstance(value, str) and value.startswith("attach://"):
            if value[len("attach://"):] not in files:
                raise fail(400, "Bad Request: can't parse InputMedia: media not found")
            return self.check_upload(bot, kind, files[value[len("attach://"):]])
        if value is None and part in files:
            return self.check_upload(bot, kind, files[part])
        if not isinstance(value, str) or not value:
            if album:
                raise fail(400, "Bad Request: can't parse InputMedia: media not found")
            raise fail(400, f"Bad Request: there is no {kind} in the request")
        known = self.files.get(value)
        if known is not None and known.bot == bot.id:
            if known.kind != kind:
                raise fail(400, f"Bad Request: can't use file of type {known.kind.title()} as {kind.title()}")
            return known
        if "." in value:
            raise fail(400, "Bad Request: failed to get HTTP URL content")
        raise fail(400, "Bad Request: wrong file identifier/HTTP URL specified")

    def check_upload(self, bot: Bot, kind: str, upload: Upload) -> StoredFile:
        filename, mime, data = upload
        if not data:
            raise fail(400, "Bad Request: file must be non-empty")
        if len(data) > self.upload_limit:
            # api.telegram.org refuses the request before reading it, in nginx's words.
            raise HttpError(413, {"ok": False, "error_code": 413, "description": "Request Entity Too Large"})
        width = height = 0
        if kind == "photo":
            if len(data) > self.photo_limit:
                raise fail(400, f"Bad Request: file of size {len(data)} bytes is too big for a photo; the "
                                f"maximum size is {self.photo_limit} bytes")
            try:
                with Image.open(io.BytesIO(data)) as picture:
                    width, height = picture.size
            except Exception:  # Pillow raises many kinds for what is not an image
                raise _Refused("IMAGE_PROCESS_FAILED") from None
            if width + height > 10_000 or max(width, height) > 20 * min(width, height):
                raise _Refused("PHOTO_INVALID_DIMENSIONS")
        return StoredFile(f"{kind[:2].upper()}{secrets.token_urlsafe(24)}", kind, bot.id, filename, mime,
                          len(data), hashlib.sha256(data).hexdigest(), width, height)

    def send_photo(self, bot: Bot, params: dict[str, Any], files: dict[str, Upload]) -> Response:
        return self._send_one(bot, params, files, "photo")

    def send_video(self, bot: Bot, params: dict[str, Any], files: dict[str, Upload]) -> Response:
        return self._send_one(bot, params, files, "video")

    def _send_one(self, bot: Bot, params: dict[str, Any], files: dict[str, Upload], kind: str) -> Response:
        with self.lock:
            channel = self.chat(params, bot, post=True)
            caption = self.caption(params)
            self._video_params(params, kind)
            try:
                stored = self.input_file(bot, kind, params.get(kind), files, kind)
            except _Refused as refused:
                raise fail(400, f"Bad Request: {refused.code}") from None
            return ok(self._deliver(channel, [(stored, caption)], album=False)[0])

    def send_media_group(self, bot: Bot, params: dict[str, Any], files: dict[str, Upload]) -> Response:
        with self.lock:
            channel = self.chat(params, bot, post=True)
            raw = params.get("media")
            if raw is None:
                raise fail(400, 'Bad Request: parameter "media" is required')
            if isinstance(raw, str):
                try:
                    raw = json.loads(raw)
                except ValueError:
                    raise fail(400, "Bad Request: can't parse media JSON object") from None
            if not isinstance(raw, list):
                raise fail(400, "Bad Request: expected an Array of InputMedia")
            if not raw:
                raise fail(400, "Bad Request: there are no messages to send")
            if len(raw) > ALBUM_MAX:
                raise fail(400, "Bad Request: too many messages to send as an album")
            if len(raw) < 2:
                raise fail(400, "Bad Request: an album needs 2-10 items")
            items = []
            for position, item in enumerate(raw, 1):
                if not isinstance(item, dict):
                    raise fail(400, "Bad Request: can't parse InputMedia JSON object")
                kind = item.get("type")
                if kind not in ("photo", "video"):
                    raise fail(400, f'Bad Request: can\'t parse InputMedia: type "{kind}" is unsupported')
                caption = self.caption(item)
                self._video_params(item, kind)
                try:
                    stored = self.input_file(bot, kind, item.get("media"), files, None, album=True)
                except _Refused as refused:
                    raise fail(400, f"Bad Request: failed to send message #{position} with the error message "
                                    f'"{refused.code}"') from None
                items.append((stored, caption))
            return ok(self._deliver(channel, items, album=True))

    def _video_params(self, params: dict[str, Any], kind: str) -> None:
        for name in ("supports_streaming", "has_spoiler", "show_caption_above_media"):
            if name in params:
                self.flag(params[name], name)
        for name in ("width", "height", "duration"):
            value = params.get(name)
            if kind == "video" and value is not None and not str(value).isdigit():
                raise fail(400, f'Bad Request: field "{name}" must be of type Integer')

    def _deliver(self, channel: Channel, items: list[tuple[StoredFile, str]],
                 album: bool) -> list[dict[str, Any]]:
        """Store the files and send one message per item (an album's share a media_group_id)."""
        group = str(secrets.randbelow(2**62)) if album else None
        messages = []
        for stored, caption in items:
            if stored.file_id not in self.files:
                self.files[stored.file_id] = stored
                self.uploads += 1
            channel.last_message_id += 1
            message: dict[str, Any] = {"message_id": channel.last_message_id,
                                       "sender_chat": channel.as_chat(), "chat": channel.as_chat(),
                                       "date": int(time.time()), stored.kind: stored.as_result()}
            if caption:
                message["caption"] = caption
            if group:
                message["media_group_id"] = group
            messages.append(message)
        ids = [m["message_id"] for m in messages]
        self.record("message", {
            "account": channel.handle, "text": "\n".join(c for _, c in items if c), "chat_id": channel.id,
            "message_id": ids[0], "message_ids": ids, "link_preview_options": None,
            "media": [{"type": f.kind, "file_id": f.file_id, "filename": f.filename, "mime": f.mime,
                       "size": f.size, "sha256": f.sha256, "width": f.width, "height": f.height}
                      for f, _ in items],
        }, id=f"{channel.id}:{ids[0]}")
        return messages

    def get_chat_member_count(self, bot: Bot, params: dict[str, Any], files: dict[str, Upload]) -> Response:
        with self.lock:
            return ok(self.chat(params, bot, post=False).followers)

    def get_me(self, bot: Bot, params: dict[str, Any], files: dict[str, Upload]) -> Response:
        return ok({"id": bot.id, "is_bot": True, "first_name": "crosspost", "username": bot.username,
                   "can_join_groups": False, "can_read_all_group_messages": False,
                   "supports_inline_queries": False})

    def get_chat(self, bot: Bot, params: dict[str, Any], files: dict[str, Upload]) -> Response:
        with self.lock:
            return ok(self.chat(params, bot, post=False).as_chat())

    def get_chat_member(self, bot: Bot, params: dict[str, Any], files: dict[str, Upload]) -> Response:
        """ChatMember of ``user_id``: the channel's own bot is an administrator that may post; in a
        channel anyone else a bot can ask about is reported as ``left``."""
        raw = params.get("user_id")
        if isinstance(raw, str) and _NUMERIC_RE.fullmatch(raw.strip()):
            raw = int(raw)
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise fail(400, "Bad Request: invalid user_id specified")
        with self.lock:
            channel = self.chat(params, bot, post=False)
            if raw == channel.bot.id:
                return ok({"status": "administrator", "can_post_messages": True, "can_be_edited": False,
                           "user": {"id": channel.bot.id, "is_bot": True, "first_name": "crosspost",
                                    "username": channel.bot.username}})
            return ok({"status": "left", "user": {"id": raw, "is_bot": raw >= 7_000_000_000,
                                                  "first_name": "someone"}})
