"""Telegram Bot API, posting to channels (platforms.md section 10).

The account handle is the channel (``@name`` or a numeric ``-100...`` id) and the credentials hold
one bot token, which is an administrator of that channel. The token travels in the URL path
(``/bot<token>/<method>``), so every error text built here keeps the URL out of it.

A story is one request: ``sendMessage`` for text, ``sendPhoto`` or ``sendVideo`` for one file,
``sendMediaGroup`` for an album of 2-10, the story's text as the (first) caption; files are uploaded
as multipart parts. Telegram has no idempotency key and a bot cannot read channel history, so a
publish whose answer was lost cannot be repeated safely or looked up: the scheduler leaves such a
delivery to an operator. The message that did go out is saved in the delivery's progress, so a retry
after it (a worker that died before recording success) sends nothing again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import requests

from adapters import http
from adapters.base import (
    AccountRef,
    Adapter,
    Capabilities,
    CredentialsModel,
    Handles,
    Identity,
    Media,
    Post,
    Problem,
    Progress,
    Published,
    secret_like,
)
from adapters.errors import AdapterError, AuthExpired, RateLimited, Rejected, Transient
from adapters.text import utf16_units

CAPTION_LIMIT = 1024
ALBUM_LIMIT = 10
# Upload limits as python-telegram-bot reads "10 MB" and "50 MB"; TDLib's are 10 MiB and 50 MiB, so
# these decimal ones are the safe side.
PHOTO_BYTES = 10_000_000
UPLOAD_BYTES = 50_000_000
# sendPhoto: width + height at most 10000, and no side more than 20 times the other.
PHOTO_SIDES = 10_000
PHOTO_RATIO = 20
# BotFather issues "<bot id>:<secret>"; anything else could change the path the URL points at.
_TOKEN_RE = re.compile(r"\d+:[A-Za-z0-9_-]+")
_NUMERIC_RE = re.compile(r"-?\d+")
_TOKEN_IN_PATH_RE = re.compile(r"/bot([^/]+)/[^/]*$")
# Raised by requests before anything is sent; their messages quote the full URL, token included.
_BAD_URL = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema, requests.exceptions.URLRequired)


BotToken = secret_like(_TOKEN_RE.pattern, "a bot token of the form <bot id>:<secret>")


class TelegramCredentials(CredentialsModel):
    """The channel's bot token from @BotFather (``<bot id>:<secret>``); it never expires."""

    bot_token: BotToken


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
    # offsets in UTF-16 units and the same unit is the safe reading of the 4096 limit. Photos and
    # videos mix in an album of up to 10 (check_platform counts them together). A GIF sent as a photo
    # would lose its animation, and only MPEG-4 plays as a video: neither is offered.
    caps: ClassVar[Capabilities] = Capabilities(
        text_limit=4096, count=utf16_units, unit="UTF-16 code units", idempotent=False, can_find=False,
        max_images=ALBUM_LIMIT, image_types=frozenset({"image/jpeg", "image/png", "image/webp"}),
        max_image_bytes=PHOTO_BYTES, max_videos=ALBUM_LIMIT, video_types=frozenset({"video/mp4"}),
        max_video_bytes=UPLOAD_BYTES, images_with_video=True,
    )
    credentials_model: ClassVar[type[CredentialsModel]] = TelegramCredentials
    # ``@Newsroom``, ``newsroom`` -> ``@newsroom`` (usernames ignore case); a private channel's
    # numeric id as given.
    handles: ClassVar[Handles] = Handles(name=r"[A-Za-z][A-Za-z0-9_]{3,31}", prefix="@", ids=r"-?\d+",
                                          what="@channelname (5-32 letters, digits, underscores) "
                                               "nor a numeric chat id")

    # -- check_platform ---------------------------------------------------------------------------
    def check_platform(self, post: Post) -> list[Problem]:
        """With media the text travels as a caption (1024 units, not 4096); an album holds 10 items;
        a photo's sides are bounded. Without parse_mode there is nothing to escape."""
        problems = []
        if post.media:
            length = utf16_units(post.body)
            if length > CAPTION_LIMIT:
                problems.append(Problem(self.platform, "text", f"is {length} UTF-16 code units long; with "
                                        f"media it goes as a caption, whose limit is {CAPTION_LIMIT}"))
            if len(post.media) > ALBUM_LIMIT:
                problems.append(Problem(self.platform, "media", f"{len(post.media)} images and videos; an "
                                        f"album holds at most {ALBUM_LIMIT}"))
        for n, m in enumerate(post.media, 1):
            if m.kind != "image" or not (m.width and m.height):
                continue
            long, short = max(m.width, m.height), min(m.width, m.height)
            if m.width + m.height > PHOTO_SIDES or long > PHOTO_RATIO * short:
                problems.append(Problem(self.platform, "media", f"photo {n} is {m.width}x{m.height}; "
                                        f"Telegram wants width + height <= {PHOTO_SIDES} and a ratio of at "
                                        f"most {PHOTO_RATIO}:1"))
        return problems

    # -- publish ----------------------------------------------------------------------------------
    def publish(self, account: AccountRef, post: Post, key: str,
                progress: Progress | None = None) -> Published:
        # ``key`` cannot be sent anywhere: Telegram has no idempotency key.
        progress = progress if progress is not None else Progress()
        chat = chat_id(account.handle)
        sent = progress.get("message")
        if isinstance(sent, dict):
            return _published(chat, sent)  # it went out on an earlier attempt
        if not post.media:
            method = "sendMessage"
            payload: dict[str, Any] = {"chat_id": chat, "text": post.body}
            if post.link:
                # The body may carry other URLs too; the preview should be the story's.
                payload["link_preview_options"] = {"url": post.link}
            with progress.sending(method):
                message = self._call(account, method, payload)
        elif len(post.media) == 1:
            media = post.media[0]
            field, method = ("photo", "sendPhoto") if media.kind == "image" else ("video", "sendVideo")
            fields = {"chat_id": chat, "caption": post.body, **_video_fields(media)}
            with progress.sending(method):
                message = self._call(account, method, fields, files={field: media})
        else:
            # Every file is its own part, named in the album by attach://; the caption on the first
            # item is the album's.
            method = "sendMediaGroup"
            items = [{"type": "photo" if m.kind == "image" else "video", "media": f"attach://f{i}",
                      **({"caption": post.body} if i == 0 else {}), **_video_fields(m)}
                     for i, m in enumerate(post.media)]
            with progress.sending(method):
                messages = self._call(account, method, {"chat_id": chat, "media": items},
                                      files={f"f{i}": m for i, m in enumerate(post.media)})
            message = messages[0] if isinstance(messages, list) and messages else None
        if not isinstance(message, dict) or not isinstance(message.get("message_id"), int):
            raise Transient(f"telegram: {method} succeeded without a message_id", maybe_sent=True)
        sent_chat = message.get("chat") if isinstance(message.get("chat"), dict) else {}
        sent = {"message_id": message["message_id"], "date": message.get("date"),
                "username": sent_chat.get("username")}
        progress.save(message=sent)
        return _published(chat, sent)

    @classmethod
    def resumable(cls, state: Mapping[str, Any]) -> bool:
        # A saved message went out: the retry returns it and sends nothing.
        return isinstance(state.get("message"), dict)

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
    def find_published(self, account: AccountRef, post: Post, key: str,
                       progress: Progress | None = None) -> Published | None:
        """A bot cannot read a channel's history (hence ``can_find=False``): a send behind a fence
        cannot be looked up, so it is Rejected (an operator decides); without one nothing went out."""
        fenced = progress.fenced if progress is not None else None
        if fenced:
            raise Rejected(f"telegram: {fenced.get('step')} may have gone out and a bot cannot read the "
                           "channel to check")
        return None

    # -- identity ---------------------------------------------------------------------------------
    def whoami(self, account: AccountRef) -> Identity:
        """The channel as this bot sees it: its @username, else its numeric id, and its numeric id
        as the stable one. getMe proves the token; getChatMember that this bot may post there (any
        bot can read a public channel, so getChat alone would accept another channel's bot)."""
        bot = self._call(account, "getMe", {})
        if not isinstance(bot, dict) or not bot.get("is_bot") or not isinstance(bot.get("id"), int):
            raise Transient("telegram: getMe did not describe a bot")
        chat = self._call(account, "getChat", {"chat_id": chat_id(account.handle)})
        if not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
            raise Transient("telegram: getChat did not describe a chat")
        member = self._call(account, "getChatMember", {"chat_id": chat["id"], "user_id": bot["id"]})
        status = member.get("status") if isinstance(member, dict) else None
        if status != "creator" and not (status == "administrator" and member.get("can_post_messages")):
            raise Rejected(f"telegram: bot @{bot.get('username')} is not an administrator of "
                           f"{account.handle.strip()} with the right to post messages")
        username = chat.get("username")
        handle = self.normalize_handle(f"@{username}" if isinstance(username, str) and username
                                       else str(chat["id"]))
        return Identity(handle=handle, remote_id=str(chat["id"]), name=chat.get("title") or None)

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
            return Transient(f"telegram: {description} ({status})", status=status)  # maybe sent: http.py
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
    def _call(self, account: AccountRef, method: str, payload: dict[str, Any],
              files: dict[str, Media] | None = None) -> Any:
        """POST one Bot API method and return its ``result``; with ``files``, as multipart form data
        (object parameters as JSON text, each file its own part)."""
        token = account.credentials.require("bot_token", self.platform)
        if not _TOKEN_RE.fullmatch(token):
            raise AuthExpired("telegram: the stored bot token is not of the form <bot id>:<secret>")
        url = f"{self.base_url(account)}/bot{token}/{method}"
        with contextlib.ExitStack() as stack:
            if files:
                parts = {name: (os.path.basename(m.path), stack.enter_context(_open(m, n)), m.mime)
                         for n, (name, m) in enumerate(files.items(), 1)}
                fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in payload.items()}
                response = self._post(account, method, url, data=fields, files=parts)
            else:
                response = self._post(account, method, url, json=payload)
        data = http.body_of(response)
        code = data.get("error_code") if isinstance(data, dict) and data.get("ok") is False else None
        if isinstance(code, int) and 400 <= code < 600:
            # Telegram's own refusal behind a 2xx (a proxy rewrote the status): its error_code decides.
            response.status_code = code
            error = self.classify(response) or http.default_error(response, self.platform, "")
            if isinstance(error, Transient):
                error.maybe_sent = http.maybe_sent("POST", code, self.rules, data)
            raise error
        if not isinstance(data, dict) or data.get("ok") is not True or "result" not in data:
            raise Transient(f"telegram: {method} answered {response.status_code} without a result",
                            status=response.status_code, maybe_sent=True)
        return data["result"]

    def _post(self, account: AccountRef, method: str, url: str, **body: Any) -> requests.Response:
        try:
            return self.request(account, "POST", url, **body)
        except Transient as exc:
            # Every Bot API call is a POST; the getters still change nothing, so never "maybe sent".
            exc.maybe_sent = exc.maybe_sent and not method.startswith("get")
            raise
        except AdapterError:
            raise
        except _BAD_URL:
            raise Rejected(f"telegram: invalid API URL for {method}; check the account's base URL") from None
        except requests.RequestException as exc:
            # Transport faults other than timeouts and dropped connections (http.send maps those).
            raise Transient(f"telegram: {method} failed ({type(exc).__name__})", maybe_sent=True) from None


def _open(media: Media, n: int) -> Any:
    try:
        return open(media.path, "rb")
    except OSError as exc:
        raise Rejected(f"telegram: media {n} cannot be read from the media store ({exc.strerror})") from None


def _video_fields(media: Media) -> dict[str, Any]:
    """What Telegram cannot read from an uploaded video itself: without them it shows a square."""
    if media.kind != "video":
        return {}
    fields: dict[str, Any] = {"supports_streaming": True}
    if media.width and media.height:
        fields.update(width=media.width, height=media.height)
    return fields


def _published(chat: str, sent: dict[str, Any]) -> Published:
    date = sent.get("date")
    return Published(
        remote_id=f"{chat}:{sent['message_id']}",
        url=message_url(chat, sent["message_id"], sent.get("username")),
        published_at=datetime.fromtimestamp(date, UTC) if isinstance(date, int) else None,
    )


def _without_token(text: str, url: str | None) -> str:
    """``text`` without the bot token, or its secret half, that the request URL carried.

    http.send scrubs the stored token too; this also covers a description quoting only the secret.
    """
    found = _TOKEN_IN_PATH_RE.search(urlsplit(url or "").path)
    token = unquote(found.group(1)) if found else ""
    secret = token.partition(":")[2]
    return http.scrub(text, [s for s in (token, secret) if len(s) >= 6])
