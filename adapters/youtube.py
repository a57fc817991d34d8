"""YouTube Data API v3: one video per delivery, uploaded with the resumable protocol (platforms.md §8).

The story's text is the video's description; its title is ``post.title`` or, without one, the first
line of the text cut at a word boundary (:func:`title_from`). The resumable session URI is the only
idempotency handle YouTube has, so it is saved in the delivery's progress before the first byte is
sent: a later attempt asks the session how far it got and continues, and never starts a second upload
while the first session is alive. Publishing waits until YouTube has processed the video, so a
``published`` delivery has a watchable URL and a video YouTube refused (duplicate, copyright, broken
file) fails with its reason instead of looking published.

Credentials: ``access_token``, ``refresh_token``, ``client_id``, ``client_secret`` (the Google OAuth
client the refresh token was issued to) and ``expires_at``.
"""

from __future__ import annotations

import contextlib
import os
import re
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import regex
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
    OAuthCredentials,
    Post,
    Problem,
    Progress,
    Published,
    Token,
    TokenRefresh,
    Word,
    parse_time,
)
from adapters.errors import AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.text import title_from, utf8_bytes, utf16_units

GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
TITLE_LIMIT = 100
TAGS_LIMIT = 500
CATEGORY_NEWS = "25"  # "News & Politics"
PACIFIC = ZoneInfo("America/Los_Angeles")
_QUANTUM = 256 * 1024  # every chunk but the last is a multiple of this
_TAG_RE = regex.compile(r"(?:^|\s)#([\p{L}\p{N}_]+)")
_RANGE_RE = re.compile(r"bytes=0-(\d+)")
_CLOCK_SKEW = timedelta(minutes=2)
_MISSING_POLLS = 5  # videos.list may lag just after an upload; then the video was deleted
_QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
_SHORT_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


def until_quota_reset(now: datetime | None = None) -> float:
    """Seconds until YouTube's daily quota resets: the next midnight in Pacific time (DST-aware),
    plus a minute for clocks that disagree."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    local = now.astimezone(PACIFIC)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=PACIFIC)
    return (midnight.astimezone(UTC) - now).total_seconds() + 60


def tags_of(text: str) -> list[str]:
    """The text's hashtags as video tags, first ones first, within the 500-character total (YouTube
    counts the commas between tags)."""
    tags: list[str] = []
    for tag in dict.fromkeys(m.group(1) for m in _TAG_RE.finditer(text)):
        if sum(map(len, tags)) + len(tags) + len(tag) > TAGS_LIMIT:
            break
        tags.append(tag)
    return tags




class YouTubeCredentials(OAuthCredentials):
    """A Google access token (1 h) with the refresh token and the OAuth client that renews it;
    Google keeps the refresh token, refresh writes the new access token and its expiry."""

    refresh_token: Token
    client_id: Word
    client_secret: Token


class YouTubeAdapter(Adapter):
    platform: ClassVar[str] = "youtube"
    default_base_url: ClassVar[str] = "https://www.googleapis.com"
    # An attempt uploads every chunk: the scheduler's lease heartbeat keeps a long upload alive.
    chunk_size: int = 8 * 1024 * 1024

    # -- caps -----------------------------------------------------------------------------------
    # The text is the description: 5000 UTF-8 bytes. No text, image or link posts in the Data API.
    caps: ClassVar[Capabilities] = Capabilities(
        text_limit=5000, count=utf8_bytes, unit="UTF-8 bytes", can_find=True, requires_media=True,
        max_images=0, max_videos=1, max_video_bytes=256 * 1024**3,
        video_types=frozenset({"video/mp4", "video/quicktime", "video/webm", "video/x-msvideo",
                               "video/x-matroska", "video/mpeg", "video/3gpp"}),
    )
    # A resumable upload answers 308 Resume Incomplete to every chunk but the last.
    rules: ClassVar[http.Rules] = http.Rules(answers_3xx=frozenset({308}), words=lambda body: _words(body))
    credentials_model: ClassVar[type[CredentialsModel]] = YouTubeCredentials
    # Google keeps the refresh token (a new one in the answer is stored all the same).
    token_refresh: ClassVar[TokenRefresh] = TokenRefresh(path="/token", url=GOOGLE_TOKEN_URL, life=3599)
    # ``NewsRoom`` and ``@newsroom`` -> ``@newsroom`` (handles ignore case); a channel id as given.
    handles: ClassVar[Handles] = Handles(name=r"[A-Za-z0-9._-]{3,30}", prefix="@", ids=r"UC[A-Za-z0-9_-]{22}",
                                          what="a channel handle (@name, 3-30 letters, digits, periods, "
                                               "underscores, hyphens) nor a channel id (UC...)")

    # -- check_platform -------------------------------------------------------------------------
    def check_platform(self, post: Post) -> list[Problem]:
        """Title (explicit: at most 100, counted in UTF-16 units, the stricter reading of
        "characters") and description may not contain '<' or '>'."""
        problems = []
        if post.title is not None:
            if not post.title.strip():
                problems.append(Problem(self.platform, "title", "is empty"))
            elif (n := utf16_units(post.title)) > TITLE_LIMIT:
                problems.append(Problem(self.platform, "title", f"is {n} characters long; the limit is "
                                                                f"{TITLE_LIMIT}"))
        # A title taken from the text has the text's brackets: one problem, on the text, is enough.
        for name, value in (("title", post.title or ""), ("text", post.body)):
            if "<" in value or ">" in value:
                problems.append(Problem(self.platform, name, "may not contain '<' or '>'"))
        return problems

    def title_of(self, post: Post) -> str:
        return post.title.strip() if post.title else title_from(post.body, TITLE_LIMIT, utf16_units)

    # -- publish --------------------------------------------------------------------------------
    def publish(self, account: AccountRef, post: Post, key: str,
                progress: Progress | None = None) -> Published:
        progress = progress if progress is not None else Progress()
        video_id = progress.get("yt_video_id") or self._upload(account, post, _the_video(post), progress)
        return self._processed(account, video_id, progress)

    def _upload(self, account: AccountRef, post: Post, video: Media, progress: Progress) -> str:
        try:
            size = os.path.getsize(video.path)
        except OSError:
            raise Rejected(f"youtube: the video file is missing from the media store ({video.sha256[:12]})") \
                from None
        session, offset = progress.get("yt_session"), 0
        if session and progress.get("yt_size") == size:
            answer = self._put(account, session, b"", f"bytes */{size}")
            if answer is None:
                session = None  # expired: nothing was created under it
            elif answer.status_code != 308:
                return self._saved_video(answer, progress)
            else:
                offset = _next_offset(answer)
        if not session or progress.get("yt_size") != size:
            session = self._start(account, post, video, size)
            # Saved before any byte goes out: from here on a retry resumes instead of uploading twice.
            progress.save(yt_session=session, yt_size=size)
        with open(video.path, "rb") as f:
            while True:
                f.seek(offset)
                chunk = f.read(self.chunk_size)
                last = offset + len(chunk) - 1
                # The last byte completes the upload, and the video goes public at once: fenced.
                with progress.sending("video") if last == size - 1 else contextlib.nullcontext():
                    answer = self._put(account, session, chunk, f"bytes {offset}-{last}/{size}")
                if answer is None:
                    progress.save(yt_session=None)
                    raise Transient("youtube: the upload session expired mid-upload; the next attempt "
                                    "starts a new one")
                if answer.status_code != 308:
                    return self._saved_video(answer, progress)
                offset = _next_offset(answer)

    def _start(self, account: AccountRef, post: Post, video: Media, size: int) -> str:
        snippet: dict[str, Any] = {"title": self.title_of(post), "description": post.body,
                                   "categoryId": CATEGORY_NEWS}
        if tags := tags_of(post.body):
            snippet["tags"] = tags
        response = self.request(
            account, "POST", f"{self.base_url(account)}/upload/youtube/v3/videos",
            params={"uploadType": "resumable", "part": "snippet,status"},
            headers={**self.auth(account), "X-Upload-Content-Length": str(size),
                     "X-Upload-Content-Type": video.mime},
            json={"snippet": snippet,
                  "status": {"privacyStatus": "public", "selfDeclaredMadeForKids": False}},
        )
        session = response.headers.get("Location")
        if not session:
            raise Transient("youtube: the upload session answer has no Location", status=response.status_code)
        return session

    def _put(self, account: AccountRef, session: str, data: bytes, content_range: str) \
            -> requests.Response | None:
        """One PUT on the session (a chunk, or an empty status query); None when the session is gone."""
        try:
            return self.request(account, "PUT", session, data=data, allow_redirects=False,
                                headers={**self.auth(account), "Content-Range": content_range})
        except _Gone:
            return None

    def _saved_video(self, response: requests.Response, progress: Progress) -> str:
        video_id = _json(response).get("id")
        if not isinstance(video_id, str) or not video_id:
            raise Transient("youtube: the finished upload answered without a video id",
                            status=response.status_code, maybe_sent=True)
        progress.save(yt_video_id=video_id)
        return video_id

    def _processed(self, account: AccountRef, video_id: str, progress: Progress) -> Published:
        items = self._api(account, "videos", part="snippet,status,processingDetails", id=video_id)
        if not items:
            missing = int(progress.get("yt_missing", 0)) + 1
            if missing >= _MISSING_POLLS:
                raise Rejected(f"youtube: video {video_id} is gone from the channel (deleted?)")
            progress.save(yt_missing=missing)
            raise InProgress(f"youtube: video {video_id} is not listed yet", after=30)
        item = items[0]
        status, details = item.get("status") or {}, item.get("processingDetails") or {}
        state = status.get("uploadStatus")
        if state == "processed":
            return Published(video_id, _watch_url(video_id),
                             parse_time((item.get("snippet") or {}).get("publishedAt")))
        why = (status.get("failureReason") or status.get("rejectionReason")
               or details.get("processingFailureReason") or "no reason given")
        ended = state if state in ("failed", "rejected", "deleted") else None
        if ended or details.get("processingStatus") in ("failed", "terminated"):
            hint = " (a copy of a video already on the channel)" if why == "duplicate" else ""
            ended = ended or details["processingStatus"]
            raise Rejected(f"youtube: video {video_id} was {ended}: {why}{hint}")
        left = (details.get("processingProgress") or {}).get("timeLeftMs")
        wait = min(max(int(left) / 1000, 15), 120) if str(left or "").isdigit() else 30
        raise InProgress(f"youtube: video {video_id} is processing", after=wait)

    # -- followers ------------------------------------------------------------------------------
    def followers(self, account: AccountRef) -> int:
        """Subscribers of the token's channel, as YouTube reports them: rounded down to three
        significant figures once above 1000."""
        channel = self._channel(account, "statistics")
        stats = channel.get("statistics") or {}
        count = stats.get("subscriberCount")
        if count is None and stats.get("hiddenSubscriberCount"):
            raise Rejected("youtube: the channel hides its subscriber count (hiddenSubscriberCount); show it "
                           "in YouTube Studio to sample followers")
        if not str(count).isdigit():
            raise Transient("youtube: channels.list answered without a subscriberCount")
        return int(count)

    # -- refresh: declared in ``token_refresh`` --------------------------------------------------

    # -- find_published -------------------------------------------------------------------------
    def find_published(self, account: AccountRef, post: Post, key: str,
                       progress: Progress | None = None) -> Published | None:
        """The newest uploads (the channel's uploads playlist, 1 quota unit a page; search.list would
        cost 100) matched by title and description, added since the delivery's first attempt."""
        playlist = ((self._channel(account, "contentDetails").get("contentDetails") or {})
                    .get("relatedPlaylists") or {}).get("uploads")
        if not playlist:
            raise Transient("youtube: the channel has no uploads playlist")
        items = self._api(account, "playlistItems", part="snippet", playlistId=playlist, maxResults=25)
        title, wanted = self.title_of(post), _normalise(post.body)
        since = post.created_at - _CLOCK_SKEW if post.created_at else None
        for item in items:
            snippet = item.get("snippet") or {}
            added = parse_time(snippet.get("publishedAt"))
            if since and added and added < since:
                continue
            video_id = (snippet.get("resourceId") or {}).get("videoId")
            description = _normalise(str(snippet.get("description") or ""))
            if video_id and snippet.get("title") == title and description == wanted:
                return Published(video_id, _watch_url(video_id), added)
        return None

    # -- identity -------------------------------------------------------------------------------
    def whoami(self, account: AccountRef) -> Identity:
        """The token's channel (``channels.list mine=true``): its @handle, else its id."""
        channel = self._channel(account, "snippet")
        snippet = channel.get("snippet") or {}
        if not channel.get("id"):
            raise Transient("youtube: channels.list answered without a channel id")
        custom = snippet.get("customUrl")
        handle = self.normalize_handle(custom if isinstance(custom, str) and custom else channel["id"])
        return Identity(handle=handle, remote_id=str(channel["id"]), name=snippet.get("title") or None)

    # -- classify -------------------------------------------------------------------------------
    def classify(self, response: requests.Response) -> Exception | None:
        status = response.status_code
        body = http.object_of(response)
        error = body.get("error")
        if isinstance(error, str):  # the OAuth token endpoint: {"error": "invalid_grant", ...}
            detail = f"{error}: {body.get('error_description') or ''}".rstrip(": ")
            if status >= 500 or status == 429:
                return None
            return AuthExpired(f"youtube: token refresh refused ({detail}); re-authorise the account",
                               status=status)
        error = error if isinstance(error, dict) else {}
        reasons = [e.get("reason") for e in error.get("errors") or [] if isinstance(e, dict)]
        reason = next((r for r in reasons if r), "")
        message = str(error.get("message") or response.text[:200]).strip()
        text = f"youtube: {status} {reason or 'error'}: {message}"
        if reason in _QUOTA_REASONS:
            # The quota belongs to the Google Cloud project: every account waits.
            return RateLimited(f"{text} (the daily quota resets at midnight Pacific time)",
                               until_quota_reset(), status=status, scope="app")
        if reason == "uploadLimitExceeded":
            return RateLimited(f"{text} (the channel's upload limit)", until_quota_reset(), status=status)
        if reason in _SHORT_LIMIT_REASONS or status == 429:
            wait = http.parse_retry_after(response.headers.get("Retry-After"))
            return RateLimited(text, wait if wait is not None else 60.0, status=status,
                               scope="app" if reason == "rateLimitExceeded" else "account")
        if status in (404, 410) and "upload_id" in response.url:
            return _Gone(text, status=status)
        return None  # 401, 5xx and other refusals: the defaults, with Google's words from ``rules``

    # -- helpers --------------------------------------------------------------------------------
    def _api(self, account: AccountRef, resource: str, **params: Any) -> list[dict[str, Any]]:
        response = self.request(account, "GET", f"{self.base_url(account)}/youtube/v3/{resource}",
                                params=params, headers=self.auth(account))
        items = _json(response).get("items")
        if not isinstance(items, list):
            raise Transient(f"youtube: {resource}.list answered without items")
        return [i for i in items if isinstance(i, dict)]

    def _channel(self, account: AccountRef, part: str) -> dict[str, Any]:
        items = self._api(account, "channels", part=part, mine="true")
        if not items:
            raise Rejected("youtube: the account has no YouTube channel yet (create one, then re-authorise)")
        return items[0]


class _Gone(Rejected):
    """The resumable session expired (404/410): nothing was created under it."""


def _the_video(post: Post) -> Media:
    if len(post.videos) != 1 or post.images:
        raise Rejected("youtube: a YouTube delivery needs exactly one video and no images")
    return post.videos[0]


def _next_offset(response: requests.Response) -> int:
    # No Range header on a 308: YouTube has received nothing yet.
    found = _RANGE_RE.fullmatch(response.headers.get("Range", "").strip())
    return int(found.group(1)) + 1 if found else 0


def _watch_url(video_id: str) -> str:
    return f"https://www.youtube.com/watch?v={video_id}"



def _json(response: requests.Response) -> dict[str, Any]:
    return http.json_object(response, "youtube")



def _words(body: Any) -> str | None:
    """Google's words: ``{"error": {"message", "errors": [{"reason"}]}}``, or an OAuth error."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return http.common_words(body)
    reasons = [e.get("reason") for e in error.get("errors") or [] if isinstance(e, dict) and e.get("reason")]
    return ": ".join(str(w) for w in (*reasons[:1], error.get("message")) if w) or None


def _normalise(text: str) -> str:
    return " ".join(text.split())
