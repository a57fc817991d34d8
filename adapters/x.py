"""X (Twitter) API v2: posts, reply-chain threads, images and video through the v2 media upload.

Reference: platforms.md section 1. X has no idempotency key, so a post whose answer was lost is
looked up among the account's recent posts (``find_published``), and X's "duplicate content" refusal
is read as "it probably went out already" and checked the same way. Every remote step (an uploaded
media id, each thread part) is saved in the delivery's progress, so a retry continues from there.
"""

from __future__ import annotations

import html
import os
import time
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, ClassVar

import requests
from PIL import Image
from pydantic import model_validator
from twitter_text import extract_urls, parse_tweet
from twitter_text.config import config as _twitter_text_config
from twitter_text.has_invalid_characters import has_invalid_characters

from adapters import http
from adapters.base import (
    AccountRef,
    Adapter,
    Capabilities,
    CredentialsModel,
    Handles,
    Identity,
    Media,
    NumericId,
    OAuthCredentials,
    Post,
    Problem,
    Progress,
    Published,
    Token,
    TokenRefresh,
    Word,
    parse_time,
    part_step,
)
from adapters.errors import AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.text import split_thread

TEXT_LIMIT = 280
IMAGE_BYTES = 5 * 1024 * 1024
GIF_BYTES = 15 * 1024 * 1024
ALT_TEXT_LIMIT = 1000
# A media id is re-uploaded when it would expire within this margin: the post may go out later.
EXPIRY_MARGIN = 300.0
# X normally ends processing with "failed"; this only stops a delivery waiting forever.
MAX_PROCESSING = 3600.0
# The usage cap is per billing period and X sends no reset for it: look again a day later.
USAGE_CAP_WAIT = 86400.0
_V3 = _twitter_text_config["version3"]
_CLOCK_SKEW = timedelta(minutes=1)
_PAGE_SIZE = 100
_MAX_PAGES = 3
_TWEPOCH_MS = 1288834974657
_Save = Callable[[dict[str, Any] | None], None]
_WINDOWS = (("x-rate-limit", "account"), ("x-user-limit-24hour", "account"), ("x-app-limit-24hour", "app"))


@lru_cache(maxsize=4096)
def x_weighted_length(text: str) -> int:
    """X's weighted length (twitter-text v3, via twitter-text-parser): after NFC, code points weigh 1
    or 2, every URL (bare domains too) 23 and every emoji sequence 2."""
    return parse_tweet(unicodedata.normalize("NFC", text), _V3).weightedLength




class XCredentials(OAuthCredentials):
    """An OAuth 2.0 user token; a refresh token (``offline.access``) needs the app's client id, and a
    confidential app's secret. X rotates the refresh token: refresh writes the new one back."""

    client_id: Word | None = None
    client_secret: Token | None = None
    user_id: NumericId | None = None

    @model_validator(mode="after")
    def refreshable(self) -> XCredentials:
        if self.refresh_token is not None and not self.client_id:
            raise ValueError("client_id: is required with a refresh_token (the token endpoint names the app)")
        return self


class XAdapter(Adapter):
    platform: ClassVar[str] = "x"
    default_base_url: ClassVar[str] = "https://api.x.com"
    # Bytes per APPEND: X's own samples use 1-4 MB and the limit is 5 MB.
    chunk_size: int = 4 * 1024 * 1024

    # -- caps ---------------------------------------------------------------------------------
    # 4 photos or 1 GIF or 1 video; a GIF may weigh 15 MB, other images 5 MB (check_platform).
    caps: ClassVar[Capabilities] = Capabilities(
        text_limit=TEXT_LIMIT, count=x_weighted_length, unit="weighted characters",
        idempotent=False, can_find=True, max_images=4, max_image_bytes=GIF_BYTES, max_videos=1,
        video_types=frozenset({"video/mp4", "video/quicktime"}), max_video_bytes=512 * 1024 * 1024,
        threads=True,
    )
    credentials_model: ClassVar[type[CredentialsModel]] = XCredentials
    # OAuth 2.0 with offline.access; a confidential app uses HTTP Basic, a public one names itself.
    # X rotates the refresh token.
    token_refresh: ClassVar[TokenRefresh] = TokenRefresh(path="/2/oauth2/token", basic_auth=True, life=7200)
    # ``@NewsRoom`` -> ``newsroom``: X matches usernames regardless of case.
    handles: ClassVar[Handles] = Handles(name=r"[A-Za-z0-9_]{1,15}",
                                          what="a username (1-15 letters, digits, underscores)")
    # X's words are in a v2 problem, an ``errors`` list or an OAuth error (``_problem``, defined below).
    rules: ClassVar[http.Rules] = http.Rules(
        words=lambda body: _problem(body) if isinstance(body, dict) else None,
        reset_headers=("x-rate-limit-reset",))

    # -- check_platform -----------------------------------------------------------------------
    def check_platform(self, post: Post) -> list[Problem]:
        problems: list[Problem] = []

        def add(name: str, message: str) -> None:
            problems.append(Problem(self.platform, name, message))

        if has_invalid_characters(unicodedata.normalize("NFC", post.body)):
            add("text", "contains U+FFFE, U+FEFF or U+FFFF, which X refuses")
        if any(m.mime == "image/gif" for m in post.media) and len(post.media) > 1:
            # Whether a GIF is animated is in the file, unknown here: every GIF is held to the rule.
            add("media", "a GIF must be the only media of a post")
        for m in post.media:
            if m.kind == "image" and m.mime != "image/gif" and m.size > IMAGE_BYTES:
                add("media", f"image is {m.size} bytes; the limit is {IMAGE_BYTES}")
            if len(m.alt) > ALT_TEXT_LIMIT:
                add("media", f"alt text is {len(m.alt)} characters; the limit is {ALT_TEXT_LIMIT}")
            if not (m.width and m.height):
                continue
            if m.mime == "image/gif" and (m.width > 1280 or m.height > 1080):
                add("media", f"GIF is {m.width}x{m.height}; the limit is 1280x1080")
            if m.kind == "video" and not (1 / 3 <= m.width / m.height <= 3 and min(m.width, m.height) >= 32):
                add("media", f"video is {m.width}x{m.height}; X wants at least 32x32 and an aspect ratio "
                             "between 1:3 and 3:1")
        return problems

    # -- publish ------------------------------------------------------------------------------
    def publish(self, account: AccountRef, post: Post, key: str,
                progress: Progress | None = None) -> Published:
        # ``key`` goes nowhere: X has no idempotency key. Progress is what makes a retry safe.
        progress = progress if progress is not None else Progress()
        parts = progress.get("thread") or self._parts(post)
        if len(parts) > 1 and not progress.get("thread"):
            # Saved once, so a retry never splits differently (after a library upgrade, say).
            progress.save(thread=parts)
        posted: list[str] = list(progress.get("parts") or [])
        media_ids = self._upload_all(account, post, progress) if post.media and not posted else []
        for i in range(len(posted), len(parts)):
            body: dict[str, Any] = {"text": parts[i]}
            if i == 0 and media_ids:
                body["media"] = {"media_ids": media_ids}
            if posted:
                body["reply"] = {"in_reply_to_tweet_id": posted[-1]}
            with progress.sending(part_step(i, len(parts))):
                posted.append(self._create(account, body, post))
            progress.save(parts=posted)
        return self._published(account, posted[0])

    def _create(self, account: AccountRef, body: dict[str, Any], post: Post) -> str:
        try:
            response = self.request(account, "POST", f"{self.base_url(account)}/2/tweets", json=body,
                                    headers=self.auth(account))
        except _Duplicate as dup:
            # X refuses a text the account already posted: likely our own lost answer. Look for it.
            try:
                found = self._match(self._recent(account, post.created_at), body["text"])
            except Rejected as exc:
                raise Rejected(f"{dup.reason}; the account's posts cannot be read to check whether this "
                               f"delivery made it ({exc.reason})", status=dup.status) from None
            if found is None:
                raise Rejected(f"{dup.reason}; no post of the account since this delivery's first attempt "
                               "carries it", status=dup.status) from None
            return found
        tweet_id = _data(response).get("id")
        if not tweet_id:
            raise Transient("x: POST /2/tweets answered without a post id", maybe_sent=True)
        return str(tweet_id)

    def _parts(self, post: Post) -> list[str]:
        body = post.body
        if post.thread and x_weighted_length(body) > TEXT_LIMIT:
            return split_thread(body, TEXT_LIMIT, x_weighted_length)
        return [body]

    # -- media upload -------------------------------------------------------------------------
    def _upload_all(self, account: AccountRef, post: Post, progress: Progress) -> list[str]:
        uploads: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (progress.get("media") or {}).items()}
        ids = []
        for index, media in enumerate(post.media):
            slot = str(index)

            def save(entry: dict[str, Any] | None, slot: str = slot) -> None:
                if entry is None:
                    uploads.pop(slot, None)
                else:
                    uploads[slot] = entry
                progress.save(media=uploads)

            entry = uploads.get(slot)
            if entry and float(entry.get("expires_at", 0)) - EXPIRY_MARGIN < time.time():
                entry = None  # X forgets media ids: upload again rather than post a dead id
            ids.append(self._upload(account, media, index, entry, save)["id"])
        return ids

    def _upload(self, account: AccountRef, media: Media, index: int, entry: dict[str, Any] | None,
                save: _Save) -> dict[str, Any]:
        base, auth = f"{self.base_url(account)}/2/media/upload", self.auth(account)
        if entry is None:
            size, category = _size(media), _category(media)
            if category == "tweet_image" and size <= IMAGE_BYTES:
                data = _data(self.request(
                    account, "POST", base, headers=auth, data={"media_category": category},
                    files={"media": (os.path.basename(media.path), _read(media, 0, size), media.mime)},
                ))
                entry = {"id": _media_id(data), "ready": True}
            else:
                data = _data(self.request(account, "POST", f"{base}/initialize", headers=auth, json={
                    "media_type": media.mime, "total_bytes": size, "media_category": category,
                }))
                entry = {"id": _media_id(data), "sent": 0, "chunk": self.chunk_size, "size": size}
            entry["expires_at"] = time.time() + float(data.get("expires_after_secs") or 86400)
            save(entry)
        if not entry.get("ready") and not entry.get("finalized_at"):
            chunk = int(entry["chunk"])
            while entry["sent"] * chunk < entry["size"]:
                # A re-sent segment (its answer lost) replaces the first copy, so resuming is safe.
                self.request(account, "POST", f"{base}/{entry['id']}/append", headers=auth,
                             data={"segment_index": str(entry["sent"])},
                             files={"media": ("blob", _read(media, entry["sent"] * chunk, chunk),
                                              "application/octet-stream")})
                entry["sent"] += 1
                save(entry)
            data = _data(self.request(account, "POST", f"{base}/{entry['id']}/finalize", headers=auth))
            entry["finalized_at"] = time.time()
            self._processed(entry, data.get("processing_info"), index, save)
        elif not entry.get("ready"):
            data = _data(self.request(account, "GET", base, headers=auth,
                                      params={"command": "STATUS", "media_id": entry["id"]}))
            self._processed(entry, data.get("processing_info"), index, save)
        if media.alt and not entry.get("alt"):
            self.request(account, "POST", f"{self.base_url(account)}/2/media/metadata", headers=auth,
                         json={"id": entry["id"], "metadata": {"alt_text": {"text": media.alt}}})
            entry["alt"] = True
            save(entry)
        return entry

    def _processed(self, entry: dict[str, Any], info: Any, index: int, save: _Save) -> None:
        """Mark ``entry`` ready, or raise InProgress while X processes it (no sleeping here)."""
        info = info if isinstance(info, dict) else {}
        state = info.get("state")
        if state in (None, "succeeded"):  # no processing_info: ready at once
            entry["ready"] = True
            save(entry)
            return
        if state == "failed":
            save(None)  # an operator's "publish again" must upload afresh
            error = info.get("error") if isinstance(info.get("error"), dict) else {}
            raise Rejected(f"x: media {index + 1} failed processing: {error.get('name', 'unknown')}: "
                           f"{error.get('message', 'no details')}")
        if time.time() - float(entry["finalized_at"]) > MAX_PROCESSING:
            save(None)
            raise Rejected(f"x: media {index + 1} was still processing after {MAX_PROCESSING:.0f} s")
        save(entry)
        raise InProgress(f"x: media {index + 1} is processing ({state}, {info.get('progress_percent', 0)}%)",
                         after=float(info.get("check_after_secs") or 5))

    # -- followers ----------------------------------------------------------------------------
    def followers(self, account: AccountRef) -> int:
        metrics = self._me(account, "public_metrics").get("public_metrics") or {}
        count = metrics.get("followers_count") if isinstance(metrics, dict) else None
        if not isinstance(count, int) or isinstance(count, bool):
            raise Transient("x: /2/users/me answered without public_metrics.followers_count")
        return count

    # -- refresh: declared in ``token_refresh`` --------------------------------------------------

    # -- find_published -----------------------------------------------------------------------
    def find_published(self, account: AccountRef, post: Post, key: str,
                       progress: Progress | None = None) -> Published | None:
        """The account's post carrying ``post`` since the delivery's first attempt; for a thread,
        only when every part is there (else publish resumes the chain from its progress).

        A later part behind a fence that is found while the chain is incomplete is Rejected: the
        retry would post it again (its id was never saved) and no lookup here can resume a chain.

        Reading the timeline needs an API tier with reads; without it X answers 403 and this
        raises Rejected rather than guess "not posted"."""
        tweets = self._recent(account, post.created_at)
        # The split saved by publish, so a part is compared with what was really sent.
        parts = (progress.get("thread") if progress is not None else None) or self._parts(post)
        ids = [self._match(tweets, part) for part in parts]
        if ids[0] and all(ids):
            return self._published(account, ids[0])
        fenced = progress.fenced_part if progress is not None else None
        if fenced is not None and fenced < len(ids) and ids[fenced]:
            raise Rejected(f"x: part {fenced + 1} of {len(ids)} went out but its answer was lost and the "
                           "thread is incomplete; finish it by hand or mark the delivery")
        return None

    def _recent(self, account: AccountRef, since: datetime | None) -> list[dict[str, Any]]:
        user_id = account.credentials.get("user_id") or self._me(account).get("id")
        if not user_id:
            raise Transient("x: /2/users/me answered without an id")
        url = f"{self.base_url(account)}/2/users/{user_id}/tweets"
        params: dict[str, Any] = {"max_results": _PAGE_SIZE, "tweet.fields": "created_at",
                                  "exclude": "retweets"}
        if since is not None:
            params["start_time"] = _iso(since - _CLOCK_SKEW)
        tweets: list[dict[str, Any]] = []
        for _ in range(_MAX_PAGES if since is not None else 1):
            data = _json(self.request(account, "GET", url, params=params, headers=self.auth(account)))
            if "data" not in data and data.get("errors"):
                raise Rejected(f"x: the account's posts cannot be read: {_problem(data)}")
            page = data.get("data", [])
            if not isinstance(page, list):
                raise Transient("x: the account's posts were not a list")  # never guess "not found"
            tweets += [t for t in page if isinstance(t, dict)]
            token = (data.get("meta") or {}).get("next_token")
            if not token:
                break
            params["pagination_token"] = token
        return tweets

    def _match(self, tweets: list[dict[str, Any]], text: str) -> str | None:
        wanted = _comparable(text)
        for tweet in tweets:
            if _comparable(html.unescape(str(tweet.get("text") or ""))) == wanted:
                return str(tweet.get("id"))
        return None

    # -- identity -----------------------------------------------------------------------------
    def whoami(self, account: AccountRef) -> Identity:
        me = self._me(account)
        if not isinstance(me.get("username"), str) or not me.get("id"):
            raise Transient("x: /2/users/me answered without a username and id")
        return Identity(handle=self.normalize_handle(me["username"]), remote_id=str(me["id"]),
                        name=me.get("name") or None)

    # -- classify -----------------------------------------------------------------------------
    def classify(self, response: requests.Response) -> Exception | None:
        status, body = response.status_code, http.object_of(response)
        reason = f"x: {body.get('title') or response.reason or 'error'} ({status}): {_problem(body)}"
        headers = response.headers
        if "usage-capped" in str(body.get("type")) or body.get("title") == "UsageCapExceeded":
            waits = [w for w in (http.parse_reset(headers.get(f"{p}-reset")) for p, _ in _WINDOWS[1:])
                     if w is not None]
            return RateLimited(f"{reason}; the X app's usage cap is reached",
                               max(waits, default=USAGE_CAP_WAIT), status=status, scope="app")
        if status == 429:
            exhausted = [(w, scope) for prefix, scope in _WINDOWS
                         if headers.get(f"{prefix}-remaining") == "0"
                         and (w := http.parse_reset(headers.get(f"{prefix}-reset"))) is not None]
            fallback = http.parse_reset(headers.get("x-rate-limit-reset"))
            wait, scope = max(exhausted, default=(fallback if fallback is not None else 60.0, "account"))
            return RateLimited(reason, wait, status=status, scope=scope)
        if status == 403 and "duplicate content" in reason.lower():
            return _Duplicate(reason, status=status)
        if "client-forbidden" in str(body.get("type")):
            return Rejected(f"{reason}; the X app's access level does not include this endpoint",
                            status=status)
        return None  # 401, 5xx and other refusals: the defaults, with X's words from ``rules``

    # -- helpers ------------------------------------------------------------------------------
    def auth(self, account: AccountRef) -> dict[str, str]:
        token = account.credentials.require("access_token", self.platform)
        expires = parse_time(account.credentials.get("expires_at"))
        if expires is not None and expires <= datetime.now(UTC):
            # A call we know will be refused would only spend the rate limit.
            raise AuthExpired(f"x: the access token expired at {_iso(expires)}")
        return {"Authorization": f"Bearer {token}"}

    def _me(self, account: AccountRef, fields: str = "") -> dict[str, Any]:
        params = {"user.fields": fields} if fields else None
        data = _data(self.request(account, "GET", f"{self.base_url(account)}/2/users/me", params=params,
                                  headers=self.auth(account)))
        if not data:
            raise Transient("x: /2/users/me answered without a user")
        return data

    def _published(self, account: AccountRef, tweet_id: str) -> Published:
        when = None
        if tweet_id.isdigit():  # a snowflake carries its creation time
            when = datetime.fromtimestamp(((int(tweet_id) >> 22) + _TWEPOCH_MS) / 1000, UTC)
        return Published(remote_id=tweet_id, url=f"https://x.com/{account.handle.lstrip('@')}/status/{tweet_id}",
                         published_at=when)


class _Duplicate(Rejected):
    """403 "duplicate content": in publish a hint that the post exists, elsewhere a refusal."""


def _category(media: Media) -> str:
    if media.kind == "video":
        return "tweet_video"
    if media.mime == "image/gif":
        try:
            with Image.open(media.path) as image:
                return "tweet_gif" if getattr(image, "is_animated", False) else "tweet_image"
        except OSError:
            return "tweet_gif"  # unreadable here: _read reports it
    return "tweet_image"


def _size(media: Media) -> int:
    try:
        return os.path.getsize(media.path)
    except OSError as exc:
        raise _unreadable(media, exc) from None


def _read(media: Media, offset: int, length: int) -> bytes:
    try:
        with open(media.path, "rb") as f:
            f.seek(offset)
            return f.read(length)
    except OSError as exc:
        raise _unreadable(media, exc) from None


def _unreadable(media: Media, exc: OSError) -> Rejected:
    return Rejected(f"x: media file {os.path.basename(media.path)} cannot be read: {exc.strerror}")


def _comparable(text: str) -> str:
    """A post's text as X shows it back, made comparable: X swaps every URL for a t.co link (and
    appends one for media), so URLs are dropped; white space is collapsed."""
    text = unicodedata.normalize("NFC", text)
    for url in sorted(set(extract_urls(text)), key=len, reverse=True):
        text = text.replace(url, " ")
    return " ".join(text.split())


def _problem(body: dict[str, Any]) -> str:
    """X's own words from a v2 problem, an ``errors`` list or an OAuth error."""
    words = [str(e.get("message") or e.get("detail")) for e in body.get("errors") or []
             if isinstance(e, dict) and (e.get("message") or e.get("detail"))]
    words += [str(body[k]) for k in ("detail", "error", "error_description") if body.get(k)]
    return "; ".join(dict.fromkeys(words)) or "no details"



def _data(response: requests.Response) -> dict[str, Any]:
    data = _json(response).get("data")
    return data if isinstance(data, dict) else {}


def _media_id(data: dict[str, Any]) -> str:
    if not data.get("id"):
        raise Transient("x: the media upload answered without an id")
    return str(data["id"])


def _json(response: requests.Response) -> dict[str, Any]:
    return http.json_object(response, "x")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

