"""Mastodon (and API-compatible servers): statuses with images or a video, and reply-chain threads,
on the account's own instance.

Reference: platforms.md section 3. A status is safe to repeat for an hour thanks to the
``Idempotency-Key`` header (one key per part of a thread); after that, ``find_published`` looks the
status up on the account's timeline. Media go up first (``POST /api/v2/media``); a video is processed
asynchronously, so its id is saved in the delivery's progress and the adapter returns InProgress until
``GET /api/v1/media/:id`` says it is ready. Tokens never expire and cannot be refreshed.
"""

from __future__ import annotations

import html
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

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
    Token,
    parse_time,
)
from adapters.errors import InProgress, Rejected, Transient
from adapters.text import mastodon_length, split_thread

# Mastodon answers at most 40 statuses a page; a few pages cover any plausible burst of posts
# since a delivery's first attempt without walking an account's whole history.
_PAGE_SIZE = 40
_MAX_PAGES = 5
# Our clock and the instance's may disagree a little.
_CLOCK_SKEW = timedelta(minutes=1)
# Instance defaults (platforms.md 3.3-3.4); MediaAttachment's own description limit.
TEXT_LIMIT = 500
ALT_TEXT_LIMIT = 1500
IMAGE_PIXELS = 33_177_600
VIDEO_PIXELS = 8_294_400
# An instance's configuration changes rarely; one read an hour per base URL is plenty.
INSTANCE_TTL = 3600.0
POLL_AFTER = 5.0
# Processing that failed answers 206 for ever: stop waiting after an hour.
MAX_PROCESSING = 3600.0
# The instance deletes unattached media after a day; an older saved id is uploaded again.
MEDIA_REUSE = 20 * 3600.0

_BREAK_RE = re.compile(r"<br\s*/?>|</p>", re.IGNORECASE)
_TAG_RE = re.compile(r"<[^>]*>")
# Rendered HTML shows a remote mention ``@user@domain`` as ``@user``.
_REMOTE_MENTION_RE = re.compile(r"(@[\w.]+)@[\w.-]+\w")
# A local username (Mastodon's Account::USERNAME_RE), optionally with its instance's domain.
_HANDLE_RE = r"[a-z0-9_]+([a-z0-9_.-]+[a-z0-9_]+)?(@[a-z0-9.-]+\.[a-z0-9-]+)?"


class MastodonCredentials(CredentialsModel):
    """A user access token from the instance's OAuth flow; it never expires and has no refresh."""

    access_token: Token


@dataclass(frozen=True)
class InstanceLimits:
    """What one instance allows (``GET /api/v2/instance``), with the documented defaults."""

    max_characters: int = TEXT_LIMIT
    url_length: int = 23

    def count(self, text: str) -> int:
        return mastodon_length(text, self.url_length)


_instances: dict[str, tuple[float, InstanceLimits]] = {}
_instances_lock = threading.Lock()


def forget_instances() -> None:
    """Drop every cached instance configuration, so the next publish reads it again."""
    with _instances_lock:
        _instances.clear()


class MastodonAdapter(Adapter):
    platform: ClassVar[str] = "mastodon"
    default_base_url: ClassVar[str] = "https://mastodon.social"

    # -- caps ---------------------------------------------------------------------------------
    # 500 is the default instance limit; check() is pure, so a story is held to it even where the
    # instance allows more. An instance that allows less is caught at publish time (_parts).
    # 4 images or 1 video, never both; sizes and types are the instance defaults.
    caps: ClassVar[Capabilities] = Capabilities(
        text_limit=TEXT_LIMIT, count=mastodon_length, unit="characters",
        idempotent=True, idempotent_for=timedelta(hours=1), can_find=True,
        max_images=4, max_image_bytes=16 * 1024 * 1024, max_videos=1,
        video_types=frozenset({"video/mp4", "video/quicktime"}), max_video_bytes=103_809_024,
        threads=True, requires_base_url=True,
    )
    credentials_model: ClassVar[type[CredentialsModel]] = MastodonCredentials
    # ``@Newsroom`` and ``newsroom`` are one account (usernames are unique regardless of case); a
    # domain, if given, is kept so two instances' ``newsroom`` stay two accounts.
    handles: ClassVar[Handles] = Handles(name=_HANDLE_RE,
                                          what="a username (letters, digits, underscores), optionally "
                                               "@instance.domain")
    rules: ClassVar[http.Rules] = http.Rules(reset_headers=("X-RateLimit-Reset",),
                                             auth_hint="tokens never expire: re-authorise the account")

    # -- check_platform -------------------------------------------------------------------------
    def check_platform(self, post: Post) -> list[Problem]:
        problems = []
        for n, m in enumerate(post.media, 1):
            if len(m.alt) > ALT_TEXT_LIMIT:
                problems.append(Problem(self.platform, "media", f"alt text of media {n} is {len(m.alt)} "
                                                                f"characters; the limit is {ALT_TEXT_LIMIT}"))
            limit = IMAGE_PIXELS if m.kind == "image" else VIDEO_PIXELS
            if m.width and m.height and m.width * m.height > limit:
                problems.append(Problem(self.platform, "media", f"{m.kind} {n} is {m.width}x{m.height} "
                                                                f"({m.width * m.height} pixels); the limit "
                                                                f"is {limit} pixels"))
        return problems

    # -- publish ------------------------------------------------------------------------------
    def publish(self, account: AccountRef, post: Post, key: str,
                progress: Progress | None = None) -> Published:
        progress = progress if progress is not None else Progress()
        parts: list[str] = list(progress.get("thread") or [])
        if not parts:
            parts = self._parts(account, post)
            if len(parts) > 1:
                # Saved once, so a retry never splits differently (the instance's limit may change).
                progress.save(thread=parts)
        posted: list[str] = list(progress.get("parts") or [])
        media_ids = self._upload_all(account, post, progress) if post.media and not posted else []
        for i in range(len(posted), len(parts)):
            body: dict[str, Any] = {"status": parts[i], "visibility": "public"}
            if i == 0 and media_ids:
                body["media_ids"] = media_ids
            if posted:
                body["in_reply_to_id"] = posted[-1]
            # Each part its own key: a retried part returns itself, never the part before it.
            status = self._create(account, body, key if len(parts) == 1 else f"{key}:{i}", progress)
            posted.append(str(status["id"]))
            first = {"url": status.get("url") or status.get("uri"), "published_at": status.get("created_at")}
            if len(parts) == 1:
                # One request: its answer is the result, and a retry gets the same status back for
                # the same Idempotency-Key, so saving it first would only cost a statement.
                return Published(remote_id=posted[0], url=first["url"],
                                 published_at=parse_time(first["published_at"]))
            if i == 0:
                progress.save(parts=posted, first=first)
            else:
                progress.save(parts=posted)
        first = progress.get("first") or {}
        return Published(remote_id=posted[0], url=first.get("url"),
                         published_at=parse_time(first.get("published_at")))

    def _create(self, account: AccountRef, body: dict[str, Any], key: str,
                progress: Progress) -> dict[str, Any]:
        try:
            response = self.request(account, "POST", f"{self.base_url(account)}/api/v1/statuses", json=body,
                                    headers={**self.auth(account), "Idempotency-Key": key})
        except Rejected as exc:
            if "media_ids" not in body or "not finished processing" not in exc.reason:
                raise
            # The instance still processes what GET /media called ready: poll again on the next try.
            progress.save(media=[{**e, "ready": False} for e in progress.get("media") or []])
            raise InProgress(f"{self.platform}: the instance is still processing the media",
                             after=POLL_AFTER) from None
        status = self._json(response)
        if not isinstance(status, dict) or not status.get("id"):
            # A 2xx without a status: it may exist; a retry with the same key returns it if so.
            raise Transient(f"{self.platform}: the instance answered {response.status_code} without a status",
                            status=response.status_code, maybe_sent=True)
        return status

    def _parts(self, account: AccountRef, post: Post) -> list[str]:
        """The statuses for ``post``: one if it fits this instance, else a thread when allowed."""
        limits = self.instance(account)
        body, length = post.body, limits.count(post.body)
        if length <= limits.max_characters:
            return [body]
        if post.thread:
            return split_thread(body, min(TEXT_LIMIT, limits.max_characters), limits.count)
        raise Rejected(f"{self.platform}: text: is {length} characters long; the instance "
                       f"{urlsplit(self.base_url(account)).netloc} allows {limits.max_characters} "
                       "(its max_characters); use --thread for a reply chain")

    def instance(self, account: AccountRef) -> InstanceLimits:
        """The account's instance limits, read once per base URL and kept for INSTANCE_TTL."""
        base, now = self.base_url(account), time.monotonic()
        with _instances_lock:
            cached = _instances.get(base)
        if cached and cached[0] > now:
            return cached[1]
        try:
            data = self._json(self.request(account, "GET", f"{base}/api/v2/instance"))
        except Rejected:
            # No /api/v2/instance (before Mastodon 4.0, some compatible servers): the defaults; the
            # instance's own 422 still guards its real limit.
            data = None
        limits = _instance_limits(data)
        with _instances_lock:
            _instances[base] = (now + INSTANCE_TTL, limits)
        return limits

    # -- media upload -------------------------------------------------------------------------
    def _upload_all(self, account: AccountRef, post: Post, progress: Progress) -> list[str]:
        """Every media's id, uploading only what no earlier attempt saved; InProgress while the
        instance processes any of them."""
        entries: list[dict[str, Any] | None] = list(progress.get("media") or [])
        entries += [None] * (len(post.media) - len(entries))
        for i, media in enumerate(post.media):
            entry = entries[i]
            if entry and time.time() - float(entry.get("at", 0)) > MEDIA_REUSE:
                entry = None
            if entry and not entry.get("ready"):
                entry = self._poll(account, entry, i, progress)
            if entry is None:
                entry = self._upload(account, media, i)
            if entry != entries[i]:
                entries[i] = entry
                progress.save(media=entries)
        waiting = [str(i + 1) for i, e in enumerate(entries) if e and not e.get("ready")]
        if waiting:
            raise InProgress(f"{self.platform}: media {', '.join(waiting)} of {len(entries)} still "
                             "processing", after=POLL_AFTER)
        return [str(e["id"]) for e in entries if e]

    def _upload(self, account: AccountRef, media: Media, index: int) -> dict[str, Any]:
        try:
            file = open(media.path, "rb")  # noqa: SIM115 - closed below, after the request
        except OSError as exc:
            raise Rejected(f"{self.platform}: media {index + 1} cannot be read from the media store "
                           f"({exc.strerror})") from None
        with file:
            response = self.request(
                account, "POST", f"{self.base_url(account)}/api/v2/media", headers=self.auth(account),
                data={"description": media.alt} if media.alt else None,
                files={"file": (os.path.basename(media.path), file, media.mime)},
            )
        data = self._json(response)
        if not isinstance(data, dict) or not data.get("id"):
            raise Transient(f"{self.platform}: media upload answered {response.status_code} without an id",
                            status=response.status_code, maybe_sent=True)
        # 200: processed; 202: accepted, still processing.
        return {"id": str(data["id"]), "ready": response.status_code == 200, "at": time.time()}

    def _poll(self, account: AccountRef, entry: dict[str, Any], index: int,
              progress: Progress) -> dict[str, Any] | None:
        """``entry`` marked ready when the instance says so (200, not 206); None when it is gone."""
        try:
            response = self.request(account, "GET", f"{self.base_url(account)}/api/v1/media/{entry['id']}",
                                    headers=self.auth(account))
        except Rejected as exc:
            if exc.status == 404:
                return None  # cleaned up by the instance: upload it again
            raise
        if response.status_code == 200:
            return {**entry, "ready": True}
        if time.time() - float(entry.get("at", 0)) > MAX_PROCESSING:
            progress.save(media=None)  # "publish again" starts with a fresh upload
            raise Rejected(f"{self.platform}: media {index + 1} was still processing after "
                           f"{MAX_PROCESSING:.0f} s; the instance probably failed to process it")
        return entry

    # -- followers ----------------------------------------------------------------------------
    def followers(self, account: AccountRef) -> int:
        count = self._me(account).get("followers_count")
        if not isinstance(count, int) or isinstance(count, bool):
            raise Transient(f"{self.platform}: verify_credentials has no followers_count")
        return count

    # -- refresh ------------------------------------------------------------------------------
    # Mastodon tokens never expire and there is no refresh flow: the base refresh() raises
    # AuthExpired, so a refused token sends the account to re-authorisation.

    # -- find_published -----------------------------------------------------------------------
    def find_published(self, account: AccountRef, post: Post, key: str,
                       progress: Progress | None = None) -> Published | None:
        """The status carrying ``post.body``, created no earlier than the delivery's first attempt.

        Without ``post.created_at`` any status with the same text counts: reporting a story as out
        is the lesser mistake next to posting it twice.
        """
        account_id = self._me(account).get("id")
        if not account_id:
            raise Transient(f"{self.platform}: verify_credentials has no account id")
        # A thread is found by its first part, the only one that is not a reply.
        wanted = _normalise(self._parts(account, post)[0] if post.thread else post.body)
        since = post.created_at - _CLOCK_SKEW if post.created_at else None
        url = f"{self.base_url(account)}/api/v1/accounts/{account_id}/statuses"
        params: dict[str, Any] = {"limit": _PAGE_SIZE, "exclude_replies": "true"}
        for _ in range(_MAX_PAGES):
            page = self._json(self.request(account, "GET", url, params=params, headers=self.auth(account)))
            if not isinstance(page, list):
                # "Not found" from an unreadable answer would let the scheduler post twice.
                raise Transient(f"{self.platform}: the account's statuses were not a list")
            if not page:
                return None
            for status in page:
                if not isinstance(status, dict) or status.get("reblog"):
                    continue
                created = parse_time(status.get("created_at"))
                if since and created and created < since:
                    # Newest first: everything after this is older still.
                    return None
                if _normalise(_html_text(str(status.get("content") or ""))) == wanted:
                    return self._published(status)
            if len(page) < _PAGE_SIZE or since is None:
                return None
            params["max_id"] = page[-1].get("id")
        return None

    # -- identity -----------------------------------------------------------------------------
    @classmethod
    def same_account(cls, handle: str, identity: Identity) -> bool:
        # verify_credentials names the local user only; the base URL already fixed the instance.
        try:
            mine = cls.normalize_handle(handle).split("@")[0]
        except ValueError:
            return False
        return mine == identity.handle or handle.strip() == identity.remote_id

    def whoami(self, account: AccountRef) -> Identity:
        me = self._me(account)
        acct, account_id = me.get("acct") or me.get("username"), me.get("id")
        if not isinstance(acct, str) or not acct or account_id is None:
            raise Transient(f"{self.platform}: verify_credentials named no account")
        return Identity(handle=self.normalize_handle(acct), remote_id=str(account_id),
                        name=me.get("display_name") or None)

    # -- classify -----------------------------------------------------------------------------
    # Declared in ``rules``: the words are ``{"error", "error_description"}`` (http.common_words); a
    # 429 waits for the later of Retry-After and X-RateLimit-Reset (ISO-8601); 401 has no refresh.

    # -- helpers ------------------------------------------------------------------------------
    def _me(self, account: AccountRef) -> dict[str, Any]:
        url = f"{self.base_url(account)}/api/v1/accounts/verify_credentials"
        me = self._json(self.request(account, "GET", url, headers=self.auth(account)))
        if not isinstance(me, dict):
            raise Transient(f"{self.platform}: verify_credentials did not answer an account")
        return me

    def _json(self, response: requests.Response) -> Any:
        # None for a body that is not JSON: each caller says what a missing answer means for it.
        return http.body_of(response)

    def _published(self, status: dict[str, Any]) -> Published:
        return Published(remote_id=str(status["id"]), url=status.get("url") or status.get("uri"),
                         published_at=parse_time(status.get("created_at")))


def _instance_limits(data: Any) -> InstanceLimits:
    """The limits in an instance's answer; a missing or odd value keeps its default."""
    config = data.get("configuration") if isinstance(data, dict) else None
    statuses = config.get("statuses") if isinstance(config, dict) else None
    statuses = statuses if isinstance(statuses, dict) else {}

    def positive(name: str, default: int) -> int:
        value = statuses.get(name)
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        return value if ok else default

    return InstanceLimits(positive("max_characters", TEXT_LIMIT), positive("characters_reserved_per_url", 23))


def _html_text(content: str) -> str:
    """A status's rendered HTML as plain text: paragraphs and line breaks become white space."""
    return html.unescape(_TAG_RE.sub("", _BREAK_RE.sub("\n", content)))


def _normalise(text: str) -> str:
    return " ".join(_REMOTE_MENTION_RE.sub(r"\1", text).split())

