"""TikTok Content Posting API: direct posts of one video or up to 35 photos (platforms.md §9).

A publish asks ``creator_info`` first (the privacy levels and the longest video this creator may post),
then initialises the post. A video goes as ``FILE_UPLOAD`` from the local media store in chunks (no
domain verification needed); photos can only be pulled by TikTok from ``Media.url``. The ``publish_id``
is saved the moment init answers, so every later attempt polls ``status/fetch`` (or finishes the
upload from TikTok's ``uploaded_bytes``) and never initialises a second post.

TikTok has no idempotency key, and a post only appears in ``video/list`` after moderation (minutes to
hours), so ``find_published`` cannot prove a post is *not* out: ``can_find`` stays False and a lost
answer to init goes to an operator. Steps that cannot create a post (queries, chunk uploads, polls)
report faults as not sent, so they are simply retried.

Credentials: ``access_token``, ``refresh_token`` (rotates), ``client_key``, ``client_secret``,
``open_id``, ``expires_at``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests

from adapters import http
from adapters.base import (
    FENCE,
    AccountRef,
    Adapter,
    Capabilities,
    CredentialsModel,
    Handles,
    Identity,
    Media,
    OAuthCredentials,
    Post,
    Problem,
    Progress,
    Published,
    Token,
    TokenRefresh,
    Word,
)
from adapters.errors import AdapterError, AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.text import title_from, utf16_units

MB = 1024 * 1024
VIDEO_CAPTION_LIMIT = 2200
PHOTO_TITLE_LIMIT = 90
PHOTO_DESCRIPTION_LIMIT = 4000
# The fence step of a FILE_UPLOAD video init (see ``resumable``); a photo init keeps "publish init".
VIDEO_INIT = "video init"
# Most public first; a creator of an unaudited app is offered SELF_ONLY alone.
PRIVACY_ORDER = ("PUBLIC_TO_EVERYONE", "FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY")
_CAPPED = {"spam_risk_too_many_posts": 6 * 3600.0, "spam_risk_too_many_pending_share": 6 * 3600.0,
           "reached_active_user_cap": 24 * 3600.0}  # daily caps of unpublished size: look again later
_CLOCK_SKEW = timedelta(minutes=2)


def chunk_plan(size: int, preferred: int = 10 * MB) -> tuple[int, int]:
    """``(chunk_size, total_chunk_count)`` by the media transfer guide: a file up to ``preferred`` goes
    whole; a larger one in chunks of ``preferred`` (5-64 MB), the last one taking the remainder."""
    if size <= preferred:
        return size, 1
    return preferred, size // preferred


def mp4_duration(path: str) -> float | None:
    """Seconds from the movie header (``moov/mvhd``) of an MP4 or MOV file; None if it has none."""
    try:
        with open(path, "rb") as f:
            pos, end = 0, os.fstat(f.fileno()).st_size
            while pos + 8 <= end:
                f.seek(pos)
                size, kind = struct.unpack(">I4s", f.read(8))
                header = 8
                if size == 1:
                    size, header = struct.unpack(">Q", f.read(8))[0], 16
                elif size == 0:
                    size = end - pos
                if size < header:
                    return None
                if kind == b"moov":
                    pos, end = pos + header, pos + size
                    continue
                if kind == b"mvhd":
                    version = f.read(4)[0]
                    f.seek(16 if version == 1 else 8, os.SEEK_CUR)
                    scale, duration = struct.unpack(">IQ" if version == 1 else ">II",
                                                    f.read(12 if version == 1 else 8))
                    return duration / scale if scale else None
                pos += size
    except (OSError, struct.error, IndexError):
        return None
    return None




class TikTokCredentials(OAuthCredentials):
    """A TikTok user token (2-24 h) and the refresh token (365 days, ``refresh_expires_at``) with
    the app's client key and secret; TikTok may rotate the refresh token, refresh writes it back."""

    refresh_token: Token
    client_key: Word
    client_secret: Token
    open_id: Word | None = None
    refresh_expires_at: datetime | None = None


def _unknown_outcome(body: Any) -> bool:
    # platforms.md 9.8: internal_error -> check the publish_id before retrying; the outcome is open.
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and error.get("code") == "internal_error"


class TikTokAdapter(Adapter):
    platform: ClassVar[str] = "tiktok"
    default_base_url: ClassVar[str] = "https://open.tiktokapis.com"
    # An attempt uploads every chunk: the scheduler's lease heartbeat keeps a long upload alive.
    chunk_size: int = 10 * MB

    # -- caps -----------------------------------------------------------------------------------
    # The text limit is the photo description's 4000; a video caption's 2200 is in check_platform.
    caps: ClassVar[Capabilities] = Capabilities(
        text_limit=PHOTO_DESCRIPTION_LIMIT, count=utf16_units, unit="UTF-16 code units", requires_media=True,
        max_images=35, image_types=frozenset({"image/jpeg", "image/webp"}), max_image_bytes=20 * MB,
        max_videos=1, video_types=frozenset({"video/mp4", "video/quicktime", "video/webm"}),
        max_video_bytes=4 * 1024 * MB,
        # A post is listed only after moderation, "minutes to hours" (platforms.md 9.2).
        visible_after=timedelta(hours=2),
    )
    credentials_model: ClassVar[type[CredentialsModel]] = TikTokCredentials
    # The refresh token rotates; lifetimes come from the answer (24 h or 2 h, the docs disagree).
    token_refresh: ClassVar[TokenRefresh] = TokenRefresh(
        path="/v2/oauth/token/", client=("client_key", "client_secret"), life=7200, keep=("open_id",),
        lifetimes=(("refresh_expires_in", "refresh_expires_at"),))
    # ``@NewsRoom`` -> ``newsroom``: usernames ignore case.
    handles: ClassVar[Handles] = Handles(name=r"[A-Za-z0-9_.]{2,24}",
                                          what="a username (2-24 letters, digits, underscores, periods)")
    rules: ClassVar[http.Rules] = http.Rules(unknown_outcome=_unknown_outcome)

    # -- check_platform -------------------------------------------------------------------------
    def check_platform(self, post: Post) -> list[Problem]:
        problems, p = [], self.platform
        if post.videos and (n := utf16_units(post.body)) > VIDEO_CAPTION_LIMIT:
            problems.append(Problem(p, "text", f"is {n} UTF-16 code units long; the video caption limit "
                                               f"is {VIDEO_CAPTION_LIMIT}"))
        if post.images and post.title and (n := utf16_units(post.title)) > PHOTO_TITLE_LIMIT:
            problems.append(Problem(p, "title", f"is {n} characters long; the photo title limit is "
                                                f"{PHOTO_TITLE_LIMIT}"))
        if any(m.url is None for m in post.images):
            problems.append(Problem(p, "media", "TikTok fetches photos by URL: set "
                                                "CROSSPOST_MEDIA_PUBLIC_URL (where the media is served)"))
        for m in post.videos:
            sides = (m.width or 0, m.height or 0)
            if all(sides) and not (min(sides) >= 360 and max(sides) <= 4096):
                problems.append(Problem(p, "media", f"video is {m.width}x{m.height}; each side must be "
                                                    "360 to 4096 pixels"))
        return problems

    # -- publish --------------------------------------------------------------------------------
    def publish(self, account: AccountRef, post: Post, key: str,
                progress: Progress | None = None) -> Published:
        progress = progress if progress is not None else Progress()
        publish_id = progress.get("tt_publish_id")
        if publish_id and post.videos and not progress.get("tt_uploaded"):
            status = self._status(account, publish_id)
            if status.get("status") == "FAILED":
                publish_id = None  # the upload never completed: no post can come of it
            else:
                self._send_chunks(account, post.videos[0], progress, int(status.get("uploaded_bytes") or 0))
        if not publish_id:
            publish_id = self._init(account, post, progress)
        return self._outcome(account, publish_id, progress)

    def _init(self, account: AccountRef, post: Post, progress: Progress) -> str:
        creator = self._call(account, "post/publish/creator_info/query/", {})
        offered = creator.get("privacy_level_options") or []
        privacy = next((level for level in PRIVACY_ORDER if level in offered), None)
        if privacy is None:
            raise Rejected(f"tiktok: the creator offers no privacy level crosspost knows: {offered}")
        info: dict[str, Any] = {"privacy_level": privacy,
                                "disable_comment": bool(creator.get("comment_disabled"))}
        chunk = None
        if post.videos:
            video = post.videos[0]
            limit, length = creator.get("max_video_post_duration_sec"), mp4_duration(video.path)
            if isinstance(limit, int) and length and length > limit:
                raise Rejected(f"tiktok: the video lasts {length:.0f} s; this creator may post at most "
                               f"{limit} s")
            size = _size(video)
            chunk, count = chunk_plan(size, self.chunk_size)
            # DIRECT_POST: the post exists from init on, under a publish_id we only learn from its answer.
            with progress.sending(VIDEO_INIT):
                data = self._call(account, "post/publish/video/init/", {
                    "post_info": {**info, "title": post.body,
                                  "disable_duet": bool(creator.get("duet_disabled")),
                                  "disable_stitch": bool(creator.get("stitch_disabled"))},
                    "source_info": {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk,
                                    "total_chunk_count": count}}, creates=True)
        else:
            urls = [m.url for m in post.images]
            if not post.images or None in urls:
                raise Rejected("tiktok: photos are pulled by URL and a photo has none; set "
                               "CROSSPOST_MEDIA_PUBLIC_URL to where the media directory is served")
            title = (post.title.strip() if post.title
                     else title_from(post.body, PHOTO_TITLE_LIMIT, utf16_units))
            with progress.sending("publish init"):
                data = self._call(account, "post/publish/content/init/", {
                    "media_type": "PHOTO", "post_mode": "DIRECT_POST",
                    "post_info": {**info, "title": title, "description": post.body},
                    "source_info": {"source": "PULL_FROM_URL", "photo_cover_index": 0,
                                    "photo_images": urls}},
                    creates=True)
        publish_id = data.get("publish_id")
        if not isinstance(publish_id, str) or not publish_id:
            raise Transient("tiktok: init answered without a publish_id", maybe_sent=True)
        progress.save(tt_publish_id=publish_id, tt_upload_url=data.get("upload_url"), tt_uploaded=None,
                      tt_chunk=chunk, tt_kind="video" if post.videos else "photo",
                      tt_username=creator.get("creator_username"))
        if post.videos:
            self._send_chunks(account, post.videos[0], progress, 0)
        return publish_id

    def _send_chunks(self, account: AccountRef, video: Media, progress: Progress, done: int) -> None:
        """PUT the chunks after byte ``done`` (a chunk boundary: TikTok keeps whole chunks only)."""
        size, chunk, url = _size(video), int(progress.get("tt_chunk") or 0), progress.get("tt_upload_url")
        if not chunk or not url:
            raise Transient("tiktok: the saved upload has no chunk size or upload URL")
        if done >= size:  # the last chunk landed but its answer was lost
            progress.save(tt_uploaded=True)
            return
        count, first, end = max(size // chunk, 1), done // chunk, done
        with open(video.path, "rb") as f:
            for index in range(first, count):
                start, end = index * chunk, size if index == count - 1 else (index + 1) * chunk
                f.seek(start)
                try:
                    self.request(account, "PUT", url, data=f.read(end - start), headers={
                        "Content-Type": video.mime, "Content-Range": f"bytes {start}-{end - 1}/{size}"})
                except Transient as exc:
                    raise Transient(exc.reason, status=exc.status) from None  # a chunk is not a post
                except Rejected as exc:
                    if exc.status not in (403, 404, 410):
                        raise
                    progress.save(tt_publish_id=None)  # the upload URL expired (~1 h): start over
                    raise Transient(f"{exc.reason}; the upload URL expired, the next attempt starts "
                                    "a new upload", status=exc.status) from None
                if end == size:
                    progress.save(tt_uploaded=True)
                    return

    def _outcome(self, account: AccountRef, publish_id: str, progress: Progress) -> Published:
        status = self._status(account, publish_id)
        state = status.get("status")
        if state in ("PUBLISH_COMPLETE", "SEND_TO_USER_INBOX"):
            # The public id arrives only after moderation (minutes to hours): until then, the publish_id.
            ids = status.get("publicaly_available_post_id") or []
            post_id, user = (str(ids[0]) if ids else None), progress.get("tt_username")
            kind = "photo" if progress.get("tt_kind") == "photo" else "video"
            url = f"https://www.tiktok.com/@{user}/{kind}/{post_id}" if post_id and user else None
            return Published(post_id or publish_id, url)
        if state == "FAILED":
            # Nothing was posted: clearing lets an operator's "publish again" start afresh.
            progress.save(tt_publish_id=None, tt_uploaded=None)
            raise Rejected(f"tiktok: the post failed: {status.get('fail_reason') or 'no reason given'}")
        if state in ("PROCESSING_UPLOAD", "PROCESSING_DOWNLOAD"):
            raise InProgress(f"tiktok: {state.lower().replace('_', ' ')}", after=10)
        raise Transient(f"tiktok: status/fetch answered an unknown status {state!r}")

    def _status(self, account: AccountRef, publish_id: str) -> dict[str, Any]:
        return self._call(account, "post/publish/status/fetch/", {"publish_id": publish_id})

    # -- followers ------------------------------------------------------------------------------
    @classmethod
    def resumable(cls, state: Mapping[str, Any]) -> bool:
        # Once init answered, the post exists under publish_id: a retry only polls it. A FILE_UPLOAD
        # video init whose answer was lost can have posted nothing: its bytes go to the upload URL in
        # that very answer, so TikTok has no video to publish (chaos runs: every such delivery had none).
        fence = state.get(FENCE)
        lost_video_init = isinstance(fence, dict) and fence.get("step") == VIDEO_INIT
        return bool(state.get("tt_publish_id")) or lost_video_init

    def followers(self, account: AccountRef) -> int:
        data = self._call(account, "user/info/", None, method="GET", params={"fields": "follower_count"})
        count = (data.get("user") or {}).get("follower_count")
        if not isinstance(count, int) or isinstance(count, bool):
            raise Transient("tiktok: user/info answered without a follower_count")
        return count

    # -- refresh: declared in ``token_refresh`` --------------------------------------------------

    # -- find_published -------------------------------------------------------------------------
    def find_published(self, account: AccountRef, post: Post, key: str,
                       progress: Progress | None = None) -> Published | None:
        """A recent video whose caption is the story's (needs the ``video.list`` scope). Moderation
        delays listing, so None is not proof that nothing went out (hence ``can_find=False``): an init
        behind a fence that is not listed is Rejected, for an operator to settle."""
        found = self._listed(account, post)
        if found is None and progress is not None and progress.fenced:
            raise Rejected("tiktok: a publish init may have gone out and its post is not listed (moderation "
                           "can hold it for hours); check the TikTok profile")
        return found

    def _listed(self, account: AccountRef, post: Post) -> Published | None:
        data = self._call(account, "video/list/", {"max_count": 20},
                          params={"fields": "id,title,video_description,create_time,share_url"})
        wanted = " ".join(post.body.split())
        since = (post.created_at - _CLOCK_SKEW).timestamp() if post.created_at else None
        for video in data.get("videos") or []:
            caption = " ".join(str(video.get("video_description") or video.get("title") or "").split())
            created = video.get("create_time")
            too_old = since is not None and isinstance(created, int) and created < since
            if caption == wanted and video.get("id") and not too_old:
                return Published(str(video["id"]), video.get("share_url"),
                                 datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None)
        return None

    # -- identity -------------------------------------------------------------------------------
    def whoami(self, account: AccountRef) -> Identity:
        """The token's user (``user/info``): username and open_id (this app's stable id for them)."""
        data = self._call(account, "user/info/", None, method="GET",
                          params={"fields": "open_id,username,display_name"})
        user = data.get("user") if isinstance(data.get("user"), dict) else {}
        if not user.get("open_id") or not isinstance(user.get("username"), str):
            raise Transient("tiktok: user/info answered without open_id and username")
        return Identity(handle=self.normalize_handle(user["username"]), remote_id=str(user["open_id"]),
                        name=user.get("display_name") or None)

    # -- classify -------------------------------------------------------------------------------
    def classify(self, response: requests.Response) -> Exception | None:
        body = http.object_of(response)
        error = body.get("error")
        if isinstance(error, str):  # the OAuth endpoint's own shape
            if response.status_code >= 500 or response.status_code == 429:
                return None
            detail = f"{error}: {body.get('error_description') or ''}"
            return AuthExpired(f"tiktok: token refresh refused ({detail}); re-authorise the account",
                               status=response.status_code)
        if isinstance(error, dict) and error.get("code") not in (None, "ok"):
            return self._mapped(response, error)
        return None

    def _mapped(self, response: requests.Response, error: dict[str, Any]) -> AdapterError:
        status, code = response.status_code, str(error.get("code"))
        reason = f"tiktok: {code}: {error.get('message') or ''} (log_id {error.get('log_id') or '-'})"
        if code == "access_token_invalid":
            return AuthExpired(reason, status=status)
        if code == "rate_limit_exceeded" or status == 429:
            # Per-minute windows and, as documented, no Retry-After: a minute unless told otherwise.
            wait = http.parse_retry_after(response.headers.get("Retry-After"))
            return RateLimited(reason, wait if wait is not None else 60.0, status=status)
        if code in _CAPPED:
            return RateLimited(reason, _CAPPED[code], status=status)
        if code == "internal_error" or status >= 500:
            return Transient(reason, status=status)  # maybe sent: the one rule (http.maybe_sent)
        if code in ("scope_not_authorized", "scope_permission_missed"):
            reason += "; re-authorise the account with the video.publish and user.info.stats scopes"
        return Rejected(reason, status=status)

    # -- helpers --------------------------------------------------------------------------------
    def _call(self, account: AccountRef, path: str, payload: dict[str, Any] | None, *, method: str = "POST",
              params: dict[str, str] | None = None, creates: bool = False) -> dict[str, Any]:
        """One API call; its ``data``. TikTok may answer 200 with an error in the envelope."""
        try:
            response = self.request(account, method, f"{self.base_url(account)}/v2/{path}", params=params,
                                    json=payload, headers=self.auth(account))
        except Transient as exc:
            if creates:
                raise
            raise Transient(exc.reason, status=exc.status) from None  # repeating a read posts nothing
        body = http.object_of(response)
        error = body.get("error")
        if isinstance(error, dict) and error.get("code") not in (None, "ok"):
            # An error in TikTok's words behind a 2xx: the one rule says whether it may have posted.
            mapped = self._mapped(response, error)
            if isinstance(mapped, Transient):
                mapped.maybe_sent = creates and http.maybe_sent(method, response.status_code, self.rules,
                                                                body)
            raise mapped
        data = body.get("data")
        if not isinstance(data, dict):
            raise Transient(f"tiktok: {path} answered without data", maybe_sent=creates)
        return data


def _size(video: Media) -> int:
    try:
        return os.path.getsize(video.path)
    except OSError:
        raise Rejected(f"tiktok: the video file is missing from the media store ({video.sha256[:12]})") \
            from None

