"""A YouTube Data API v3 stand-in: Google OAuth refresh, resumable video uploads, processing, quota.

What it checks like the real service (platforms.md §8): bearer tokens that expire; the token endpoint's
refresh grant (the refresh token does not rotate); ``videos.insert`` metadata (title ≤ 100 and without
'<' '>', description ≤ 5000 UTF-8 bytes and without '<' '>', tags ≤ 500 characters with commas and quotes,
category, privacy); the resumable protocol step by step (``X-Upload-Content-Length``, the session URI
in ``Location``, chunks in order with ``Content-Range``, every chunk but the last a multiple of 256 KiB,
``bytes */N`` status queries answered 308 with ``Range`` or 200 with the video, sessions that expire
with 404); processing that ends after ``processing_polls`` ``videos.list`` calls (``invalidFile`` when
an MP4 has no ``ftyp`` box, or ``next_outcome``); and the project's daily quota (100 inserts, 10,000
units) answered 403 ``quotaExceeded``. Errors have Google's ``{"error": {"code", "message", "errors":
[{"domain", "reason", "message"}], "status"}}`` shape.

Connecting a channel (Google's web-server flow): the consent page ``/o/oauth2/v2/auth`` (the exact
registered ``redirect_uri``, ``state``, PKCE optional as Google has it) and the ``authorization_code``
grant at ``/token`` with the client's id and secret in the form (and the verifier when a challenge was
sent); a refresh token only when ``access_type=offline`` was asked for.

Session URIs are opaque to clients; this one puts them under ``/upload/youtube/v3/videos/resumable`` so
tests can aim a fault at the chunk PUTs alone.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from adapters.standins.base import Fault, HttpError, Request, Response, StandIn
from adapters.standins.oauth import AuthorizationCodes
from adapters.standins.text import utf16_units

QUANTUM = 256 * 1024
CATEGORIES = {str(n) for n in (1, 2, 10, 15, 17, 19, 20, 22, 23, 24, 25, 26, 27, 28, 29)}
PRIVACY = {"public", "unlisted", "private"}
VIDEO_PARTS = {"snippet", "status", "processingDetails", "contentDetails", "statistics", "id"}
SCOPE = "https://www.googleapis.com/auth/youtube.upload https://www.googleapis.com/auth/youtube.readonly"
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_QUOTA_MESSAGE = ("The request cannot be completed because you have exceeded your "
                  "<a href=\"/youtube/v3/getting-started#quota\">quota</a>.")


def google_error(status: int, reason: str, message: str, domain: str = "global") -> HttpError:
    return HttpError(status, {"error": {"code": status, "message": message, "errors": [
        {"message": message, "domain": domain, "reason": reason}], "status": _STATUS.get(status, "UNKNOWN")}})


def _oauth_error(status: int, error: str, description: str) -> HttpError:
    return HttpError(status, {"error": error, "error_description": description})


def _code_refusal(status: int, error: str, description: str) -> HttpError:
    # Google's terse words: a bad code or verifier is invalid_grant, a client redirect_uri_mismatch.
    if error == "invalid_client":
        return _oauth_error(401, "invalid_client", "Unauthorized")
    if "redirect" in description:
        return _oauth_error(400, "redirect_uri_mismatch", "Bad Request")
    return _oauth_error(400, "invalid_grant", "Bad Request" if "verifier" not in description
                        else "Invalid code verifier.")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def rounded(count: int) -> int:
    """Subscriber counts are rounded down to three significant figures."""
    digits = len(str(count))
    return count if digits <= 3 else count // 10 ** (digits - 3) * 10 ** (digits - 3)


@dataclass
class Channel:
    id: str
    handle: str
    subscribers: int
    hidden: bool = False
    uploads: list[str] = field(default_factory=list)  # video ids, oldest first


@dataclass
class Session:
    channel: str
    total: int
    mime: str
    metadata: dict[str, Any]
    created: float
    received: int = 0
    head: bytes = b""
    digest: Any = field(default_factory=hashlib.sha256)
    video: str | None = None


@dataclass
class Video:
    id: str
    channel: str
    snippet: dict[str, Any]
    status: dict[str, Any]
    outcome: tuple[str, str] | None  # ("failed", failureReason) / ("rejected", rejectionReason)
    polls: int = 0


class YouTubeStandIn(StandIn):
    platform = "youtube"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.client_id = "crosspost-standin.apps.googleusercontent.com"
        self.client_secret = f"GOCSPX-{secrets.token_urlsafe(21)}"
        self.access_ttl = 3599
        self.session_ttl = 7 * 86400.0
        self.processing_polls = 2
        self.next_outcome: tuple[str, str] | None = None
        self.insert_quota, self.unit_quota = 100, 10_000
        self.channels: dict[str, Channel] = {}
        self.access: dict[str, tuple[str, float]] = {}  # token -> channel id, expiry
        self.refresh_tokens: dict[str, str] = {}  # token -> channel id
        self.sessions: dict[str, Session] = {}
        self.videos: dict[str, Video] = {}
        self.oauth = AuthorizationCodes({self.client_id: set()}, pkce="optional", refuse=_code_refusal)
        self._zero_counters()

    def _zero_counters(self) -> None:
        self.inserts_used = self.units_used = 0
        self.sessions_started = self.chunks = self.status_queries = self.refresh_calls = 0

    def register(self) -> None:
        self.route("POST", "/token", self._token)
        self.route("GET", "/o/oauth2/v2/auth", self.authorize)
        self.route("POST", "/o/oauth2/v2/auth", self.authorize_decision)
        self.route("POST", "/upload/youtube/v3/videos", self._start)
        self.route("PUT", "/upload/youtube/v3/videos/resumable", self._put)
        self.route("GET", "/youtube/v3/videos", self._videos)
        self.route("GET", "/youtube/v3/channels", self._channels)
        self.route("GET", "/youtube/v3/playlistItems", self._playlist_items)

    # -- accounts and tokens ----------------------------------------------------------------------
    def add_account(self, handle: str, followers: int = 0) -> dict[str, str]:
        with self.lock:
            channel = next((c for c in self.channels.values() if c.handle == handle), None)
            if channel is None:
                channel = Channel("UC" + secrets.token_urlsafe(16)[:22], handle, followers)
                self.channels[channel.id] = channel
            channel.subscribers = followers
            refresh = f"1//0{secrets.token_urlsafe(40)}"
            self.refresh_tokens[refresh] = channel.id
            access, expires = self._issue(channel.id)
        return {"access_token": access, "refresh_token": refresh, "client_id": self.client_id,
                "client_secret": self.client_secret,
                "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")}

    def sign_in(self, handle: str, followers: int = 0) -> None:
        """Signed in to Google as the owner of the channel ``handle`` (made if it is new)."""
        with self.lock:
            self.oauth.signed_in = handle.lstrip("@")
            self._channel_named(handle.lstrip("@"), followers)

    def oauth_app(self, redirect_uri: str) -> dict[str, str]:
        if redirect_uri:
            self.oauth.redirect_uris[self.client_id].add(redirect_uri)
        return {"client_id": self.client_id, "client_secret": self.client_secret}

    def _channel_named(self, handle: str, followers: int = 0) -> str:
        channel = next((c for c in self.channels.values() if c.handle == handle), None)
        if channel is None:
            channel = Channel("UC" + secrets.token_urlsafe(16)[:22], handle, followers)
            self.channels[channel.id] = channel
        return channel.id

    def authorize(self, req: Request) -> Response:
        with self.lock:
            return self.oauth.consent_page(req, {self.client_id: self.client_secret}, set())

    def authorize_decision(self, req: Request) -> Response:
        with self.lock:
            return self.oauth.decide(req, {self.client_id: self.client_secret}, self._channel_named)

    def _issue(self, channel: str) -> tuple[str, float]:
        token, expires = f"ya29.{secrets.token_urlsafe(60)}", time.time() + self.access_ttl
        self.access[token] = (channel, expires)
        return token, expires

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access = {t: (c, 0.0) for t, (c, _) in self.access.items()}

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh_tokens.clear()

    def expire_sessions(self) -> None:
        with self.lock:
            for session in self.sessions.values():
                session.created = 0.0

    def _channel(self, req: Request, cost: int = 1) -> Channel:
        """The caller's channel; charges ``cost`` quota units (every authorised call costs at least 1)."""
        token = req.bearer()
        found = self.access.get(token or "")
        if found is None or found[1] <= time.time():
            raise google_error(401, "authError", "Invalid Credentials")
        if cost:
            if self.units_used + cost > self.unit_quota:
                raise google_error(403, "quotaExceeded", _QUOTA_MESSAGE, "youtube.quota")
            self.units_used += cost
        return self.channels[found[0]]

    def scope(self, request: Request) -> str:
        found = self.access.get(request.bearer() or "")
        return found[0] if found else super().scope(request)

    def _token(self, req: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        with self.lock:
            self.refresh_calls += 1
            if form.get("grant_type") == "authorization_code":
                return self._redeem(form)
            if form.get("grant_type") != "refresh_token":
                grant = form.get("grant_type")
                raise _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")
            for name in ("refresh_token", "client_id", "client_secret"):
                if not form.get(name):
                    raise _oauth_error(400, "invalid_request", f"Missing required parameter: {name}")
            if form["client_id"] != self.client_id:
                raise _oauth_error(401, "invalid_client", "The OAuth client was not found.")
            if form["client_secret"] != self.client_secret:
                raise _oauth_error(401, "invalid_client", "Unauthorized")
            channel = self.refresh_tokens.get(form["refresh_token"])
            if channel is None:
                raise _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            access, _ = self._issue(channel)
        return Response(200, {"access_token": access, "expires_in": self.access_ttl, "scope": SCOPE,
                              "token_type": "Bearer"})

    def _redeem(self, form: dict[str, str]) -> Response:
        for name in ("code", "client_id", "client_secret", "redirect_uri"):
            if not form.get(name):
                raise _oauth_error(400, "invalid_request", f"Missing required parameter: {name}")
        client = self.oauth.form_client(form, {self.client_id: self.client_secret})
        code = self.oauth.redeem(form, client)
        access, _ = self._issue(code.user)
        body: dict[str, Any] = {"access_token": access, "expires_in": self.access_ttl,
                                "scope": " ".join(sorted(code.scopes)), "token_type": "Bearer"}
        if code.params.get("access_type") == "offline":
            refresh = f"1//0{secrets.token_urlsafe(40)}"
            self.refresh_tokens[refresh] = code.user
            body["refresh_token"] = refresh
        return Response(200, body)

    # -- videos.insert, resumable -----------------------------------------------------------------
    def _start(self, req: Request) -> Response:
        with self.lock:
            channel = self._channel(req, cost=0)
            if self.inserts_used >= self.insert_quota:
                raise google_error(403, "quotaExceeded", _QUOTA_MESSAGE, "youtube.quota")
            self.inserts_used += 1
        if req.query.get("uploadType") != "resumable":
            raise google_error(400, "invalidUploadType", "This stand-in accepts only uploadType=resumable.")
        parts = set(req.query.get("part", "").split(","))
        if not parts <= VIDEO_PARTS or "snippet" not in parts:
            raise google_error(400, "unknownPart", f"'{req.query.get('part', '')}'")
        length = req.headers.get("x-upload-content-length", "")
        if not length.isdigit() or int(length) <= 0:
            raise google_error(400, "badContent", "X-Upload-Content-Length must be a positive byte count.")
        mime = req.headers.get("x-upload-content-type", "")
        if not (mime.startswith("video/") or mime == "application/octet-stream"):
            raise google_error(400, "badContent", f"Media type '{mime}' is not supported.")
        if not req.headers.get("content-type", "").startswith("application/json"):
            raise google_error(400, "parseError", "The metadata must be JSON.")
        body = req.json()
        metadata = self._validate(body if isinstance(body, dict) else {})
        upload_id = secrets.token_urlsafe(24)
        with self.lock:
            self.sessions[upload_id] = Session(channel.id, int(length), mime, metadata, time.time())
            self.sessions_started += 1
        location = f"{self.url}/upload/youtube/v3/videos/resumable?uploadType=resumable&upload_id={upload_id}"
        return Response(200, None, {"Location": location, "X-GUploader-UploadID": upload_id})

    def _validate(self, body: dict[str, Any]) -> dict[str, Any]:
        snippet, status = body.get("snippet"), body.get("status", {})
        if not isinstance(snippet, dict) or not isinstance(status, dict):
            raise google_error(400, "invalidVideoMetadata", "The request metadata is invalid.")
        title, description = snippet.get("title"), snippet.get("description", "")
        if (not isinstance(title, str) or not title.strip() or utf16_units(title) > 100
                or "<" in title or ">" in title):
            raise google_error(400, "invalidTitle",
                               "The request metadata specifies an invalid or empty video title.")
        if (not isinstance(description, str) or len(description.encode("utf-8")) > 5000
                or "<" in description or ">" in description):
            raise google_error(400, "invalidDescription", "The request metadata specifies an invalid video "
                                                          "description.")
        tags = snippet.get("tags", [])
        if (not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags)
                or sum(len(t) + (2 if " " in t else 0) for t in tags) + max(len(tags) - 1, 0) > 500):
            raise google_error(400, "invalidTags", "The request metadata specifies invalid video keywords.")
        if snippet.get("categoryId", "22") not in CATEGORIES:
            raise google_error(400, "invalidCategoryId", "The <code>snippet.categoryId</code> property "
                                                         "specifies an invalid category ID.")
        privacy = status.get("privacyStatus", "public")
        if privacy not in PRIVACY or not isinstance(status.get("selfDeclaredMadeForKids", False), bool):
            raise google_error(400, "invalidVideoMetadata", "The request metadata is invalid.")
        if "publishAt" in status and privacy != "private":
            raise google_error(400, "invalidPublishAt", "The request metadata specifies an invalid scheduled "
                                                        "publishing time.")
        return {"snippet": {"title": title, "description": description, "tags": tags,
                            "categoryId": snippet.get("categoryId", "22")},
                "status": {"privacyStatus": privacy, "license": "youtube", "embeddable": True,
                           "publicStatsViewable": True,
                           "selfDeclaredMadeForKids": status.get("selfDeclaredMadeForKids", False)}}

    def _put(self, req: Request) -> Response:
        upload_id = req.query.get("upload_id", "")
        with self.lock:
            session = self.sessions.get(upload_id)
            if session is None or time.time() - session.created > self.session_ttl:
                raise google_error(404, "notFound", "Not Found")
            if req.headers.get("authorization"):
                self._channel(req, cost=0)
            content_range = req.headers.get("content-range", "")
            if content_range == f"bytes */{session.total}":
                if req.body:
                    raise google_error(400, "badRequest", "A status query carries no bytes.")
                self.status_queries += 1
                return self._progress(session)
            if session.video is not None:
                raise google_error(400, "badRequest", "This upload is already complete.")
            first, last = self._range(content_range, session, len(req.body))
            if first != session.received:
                raise google_error(400, "badRequest", f"The chunk must start at byte {session.received}, "
                                                      f"not {first}.")
            if last + 1 < session.total and len(req.body) % QUANTUM:
                raise google_error(400, "badRequest", f"A chunk other than the last must be a multiple of "
                                                      f"{QUANTUM} bytes; got {len(req.body)}.")
            self.chunks += 1
            session.digest.update(req.body)
            session.head = (session.head + req.body)[:16]
            session.received = last + 1
            if session.received == session.total:
                self._finish(upload_id, session)
            return self._progress(session)

    def _range(self, value: str, session: Session, length: int) -> tuple[int, int]:
        if not value:  # one request with the whole file
            if length != session.total:
                raise google_error(400, "badRequest", "Without Content-Range the body is the whole file.")
            return 0, length - 1
        try:
            unit, _, rest = value.partition(" ")
            span, _, total = rest.partition("/")
            first, last = (int(x) for x in span.split("-"))
        except ValueError:
            raise google_error(400, "badRequest", f"Invalid Content-Range: {value}") from None
        if unit != "bytes" or total != str(session.total) or last < first or last >= session.total \
                or last - first + 1 != length:
            raise google_error(400, "badRequest", f"Content-Range {value} does not match the body "
                                                  f"({length} bytes) or the declared length {session.total}.")
        return first, last

    def _progress(self, session: Session) -> Response:
        if session.video is not None:
            return Response(200, self._resource(self.videos[session.video], {"snippet", "status"}))
        headers = {"Range": f"bytes=0-{session.received - 1}"} if session.received else {}
        return Response(308, None, {"X-GUploader-UploadID": "standin", **headers})

    def _finish(self, upload_id: str, session: Session) -> None:
        video_id = secrets.token_urlsafe(8)[:11]
        outcome, self.next_outcome = self.next_outcome, None
        iso_media = session.mime in ("video/mp4", "video/quicktime")
        if outcome is None and iso_media and session.head[4:8] != b"ftyp":
            outcome = ("failed", "invalidFile")
        snippet = {**session.metadata["snippet"], "publishedAt": _now_iso(), "channelId": session.channel}
        status = {**session.metadata["status"], "uploadStatus": "uploaded"}
        video = Video(video_id, session.channel, snippet, status, outcome)
        self.videos[video_id] = video
        session.video = video_id
        channel = self.channels[session.channel]
        channel.uploads.append(video_id)
        self.record("video", {"account": channel.handle, "text": snippet["description"],
                              "title": snippet["title"], "tags": snippet["tags"], "bytes": session.received,
                              "sha256": session.digest.hexdigest(), "mime": session.mime,
                              "privacy": status["privacyStatus"]}, id=video_id)

    # -- reads ------------------------------------------------------------------------------------
    def _resource(self, video: Video, parts: set[str]) -> dict[str, Any]:
        item: dict[str, Any] = {"kind": "youtube#video", "etag": hashlib.sha1(video.id.encode()).hexdigest(),
                                "id": video.id}
        done = video.status["uploadStatus"] != "uploaded"
        if "snippet" in parts:
            item["snippet"] = video.snippet
        if "status" in parts:
            item["status"] = video.status
        if "processingDetails" in parts:
            state = "processing"
            if done:
                state = "failed" if video.status["uploadStatus"] == "failed" else "succeeded"
            details: dict[str, Any] = {"processingStatus": state}
            if state == "processing":
                left = max(self.processing_polls - video.polls, 1)
                details["processingProgress"] = {"partsTotal": "1000", "partsProcessed": "0",
                                                 "timeLeftMs": str(left * 1000)}
            if state == "failed":
                details["processingFailureReason"] = "other"
            item["processingDetails"] = details
        return item

    def _videos(self, req: Request) -> Response:
        with self.lock:
            channel = self._channel(req)
            parts = self._parts(req, VIDEO_PARTS)
            ids = [i for i in req.query.get("id", "").split(",") if i]
            if not ids:
                raise google_error(400, "missingRequiredParameter", "No filter selected. Expected one of: "
                                                                    "chart, id, myRating")
            items = []
            for video_id in ids:
                video = self.videos.get(video_id)
                if video is None or video.channel != channel.id:
                    continue  # private uploads of other channels are invisible
                video.polls += 1
                if video.status["uploadStatus"] == "uploaded" and video.polls >= self.processing_polls:
                    if video.outcome is None:
                        video.status["uploadStatus"] = "processed"
                    else:
                        state, why = video.outcome
                        video.status["uploadStatus"] = state
                        video.status["failureReason" if state == "failed" else "rejectionReason"] = why
                items.append(self._resource(video, parts))
        return Response(200, {"kind": "youtube#videoListResponse", "items": items,
                              "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)}})

    def _channels(self, req: Request) -> Response:
        with self.lock:
            channel = self._channel(req)
            parts = self._parts(req, {"snippet", "statistics", "contentDetails", "id"})
            if req.query.get("mine") != "true":
                raise google_error(400, "missingRequiredParameter", "No filter selected. Expected one of: "
                                                                    "mine, id, forHandle")
            item: dict[str, Any] = {"kind": "youtube#channel", "id": channel.id}
            if "snippet" in parts:
                item["snippet"] = {"title": channel.handle, "customUrl": f"@{channel.handle}"}
            if "statistics" in parts:
                stats: dict[str, Any] = {"viewCount": "0", "hiddenSubscriberCount": channel.hidden,
                                         "videoCount": str(len(channel.uploads))}
                if not channel.hidden:
                    stats["subscriberCount"] = str(rounded(channel.subscribers))
                item["statistics"] = stats
            if "contentDetails" in parts:
                item["contentDetails"] = {"relatedPlaylists": {"likes": "", "uploads": "UU" + channel.id[2:]}}
        return Response(200, {"kind": "youtube#channelListResponse", "items": [item],
                              "pageInfo": {"totalResults": 1, "resultsPerPage": 5}})

    def _playlist_items(self, req: Request) -> Response:
        with self.lock:
            channel = self._channel(req)
            self._parts(req, {"snippet", "contentDetails", "id", "status"})
            playlist = req.query.get("playlistId", "")
            if playlist != "UU" + channel.id[2:]:
                raise google_error(404, "playlistNotFound", "The playlist identified with the request's "
                                   "<code>playlistId</code> parameter cannot be found.")
            raw = req.query.get("maxResults", "5")
            if not raw.isdigit() or int(raw) > 50:
                raise google_error(400, "invalidParameter",
                                   f"Invalid value '{raw}'. Values must be within the range: [0, 50]")
            start = int(req.query.get("pageToken", "0") or 0)
            newest = list(reversed(channel.uploads))
            page = newest[start:start + int(raw)]
            items = [{"kind": "youtube#playlistItem", "id": f"pi-{video_id}", "snippet": {
                "publishedAt": self.videos[video_id].snippet["publishedAt"], "channelId": channel.id,
                "title": self.videos[video_id].snippet["title"],
                "description": self.videos[video_id].snippet["description"], "playlistId": playlist,
                "position": start + i, "resourceId": {"kind": "youtube#video", "videoId": video_id}}}
                for i, video_id in enumerate(page)]
        answer: dict[str, Any] = {"kind": "youtube#playlistItemListResponse", "items": items,
                                  "pageInfo": {"totalResults": len(newest), "resultsPerPage": int(raw)}}
        if start + int(raw) < len(newest):
            answer["nextPageToken"] = str(start + int(raw))
        return Response(200, answer)

    def _parts(self, req: Request, allowed: set[str]) -> set[str]:
        parts = {p for p in req.query.get("part", "").split(",") if p}
        if not parts:
            raise google_error(400, "missingRequiredParameter",
                               "No value provided for required parameter: part")
        if not parts <= allowed:
            raise google_error(400, "unknownPart", f"'{','.join(sorted(parts - allowed))}'")
        return parts

    # -- control ----------------------------------------------------------------------------------
    def rate_limited(self, fault: Fault) -> Response:
        headers = {} if fault.retry_after is None else {"Retry-After": str(int(fault.retry_after))}
        body = fault.body or google_error(429, "rateLimitExceeded", "Resource has been exhausted "
                                                                    "(e.g. check quota).").body
        return Response(429, body, headers)

    def fault_response(self, fault: Fault) -> Response:
        status = fault.status or 500
        reason = "backendError" if status >= 500 else "badRequest"
        return Response(status, fault.body or google_error(status, reason, "Backend Error" if status >= 500
                                                           else "Bad Request").body)

    def reset(self) -> None:
        """Forget uploads, videos and counters; channels and their tokens stay valid."""
        with self.lock:
            super().reset()
            self.sessions.clear()
            self.videos.clear()
            for channel in self.channels.values():
                channel.uploads.clear()
            self.next_outcome = None
            self._zero_counters()

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"channels": len(self.channels), "videos": len(self.videos),
                    "sessions_started": self.sessions_started, "chunks": self.chunks,
                    "units_used": self.units_used, "inserts_used": self.inserts_used}
