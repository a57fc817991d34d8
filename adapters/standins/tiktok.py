"""A TikTok Content Posting API stand-in: OAuth v2 with rotating refresh tokens, creator info, direct
video posts by chunked FILE_UPLOAD (or PULL_FROM_URL), photo posts by PULL_FROM_URL, status polling,
user info and the video list.

What it checks like the real service (platforms.md §9): bearer tokens that expire and need their scope;
the ``{"data": ..., "error": {"code", "message", "log_id"}}`` envelope; ``privacy_level`` among the
creator's options; caption ≤ 2200, photo title ≤ 90 and description ≤ 4000 UTF-16 units; the media
transfer guide's chunk rules (5-64 MB chunks, whole file under 5 MB, ``total_chunk_count =
floor(video_size / chunk_size)``, a last chunk ≤ 128 MB, 1-1000 chunks) and every chunk PUT in order
with an exact ``Content-Range`` (206, then 201 for the last); PULL_FROM_URL only from verified URL
prefixes; rate limits (6 inits and 30 status fetches a minute per token, answered 429 without
Retry-After) and a daily post cap per creator (``spam_risk_too_many_posts``); a status that turns
``PUBLISH_COMPLETE`` after ``processing_polls`` fetches once the upload is complete (``FAILED`` with
``file_format_check_failed`` for an MP4 without ``ftyp`` or a PNG photo), and a public post id that
appears ``moderation_polls`` fetches later. Sizes in MB are MiB. An upload URL expires after
``upload_ttl`` seconds (answered 404: TikTok's own answer is not documented).

Connecting (Login Kit for Web): the authorize page ``/v2/auth/authorize/`` (``client_key``, the exact
registered ``redirect_uri``, ``state``, comma-separated scopes; a PKCE challenge is optional, as only
desktop and mobile apps send one) and the ``authorization_code`` grant at ``/v2/oauth/token/`` with the
client key and secret in the form, answering ``open_id`` and both tokens with their lifetimes.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from adapters.standins.base import Fault, HttpError, Request, Response, StandIn
from adapters.standins.oauth import AuthorizationCodes
from adapters.standins.text import utf16_units

MB = 1024 * 1024
SCOPES = frozenset({"user.info.basic", "user.info.stats", "video.publish", "video.upload", "video.list"})
VIDEO_TYPES = {"video/mp4", "video/quicktime", "video/webm"}
USER_FIELDS = {"open_id", "union_id", "avatar_url", "display_name", "username", "follower_count",
               "following_count", "likes_count", "video_count"}
STATS_FIELDS = {"follower_count", "following_count", "likes_count", "video_count"}
LIST_FIELDS = {"id", "title", "video_description", "create_time", "share_url", "duration", "cover_image_url"}


def _log_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(10).upper()


def envelope(data: dict[str, Any] | None = None, code: str = "ok", message: str = "") -> dict[str, Any]:
    return {"data": data or {}, "error": {"code": code, "message": message, "log_id": _log_id()}}


def fail(status: int, code: str, message: str) -> HttpError:
    return HttpError(status, envelope(None, code, message))


def _oauth_fail(status: int, error: str, description: str) -> HttpError:
    return HttpError(status, {"error": error, "error_description": description, "log_id": _log_id()})


def _code_refusal(status: int, error: str, description: str) -> HttpError:
    # TikTok's words for a bad code, redirect_uri or verifier.
    if "verifier" in description:
        return _oauth_fail(400, "invalid_request", "Code verifier or code challenge is invalid.")
    if "redirect" in description:
        return _oauth_fail(400, "invalid_request", "Redirect URI is not matched with the authorization code.")
    return _oauth_fail(400, "invalid_grant", "Authorization code is expired.")


@dataclass
class User:
    open_id: str
    username: str
    followers: int
    privacy_options: list[str] = field(default_factory=lambda: [
        "PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"])
    max_duration: int = 600
    comment_disabled: bool = False
    scopes: set[str] = field(default_factory=lambda: set(SCOPES))
    inits: list[float] = field(default_factory=list)  # post inits, for the daily cap


@dataclass
class Publish:
    id: str
    user: str
    kind: str  # "video" | "photo"
    source: str
    info: dict[str, Any]
    size: int = 0
    chunk: int = 0
    count: int = 0
    received: int = 0
    next_chunk: int = 0
    head: bytes = b""
    digest: Any = field(default_factory=hashlib.sha256)
    mime: str = ""
    urls: list[str] = field(default_factory=list)
    upload_id: str = ""
    expires: float = 0.0
    polls: int = 0
    status: str = "PROCESSING_UPLOAD"
    fail_reason: str = ""
    post_id: str = ""
    done_at_poll: int = 0
    created: float = field(default_factory=time.time)


class TikTokStandIn(StandIn):
    platform = "tiktok"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.client_key = f"aw{secrets.token_hex(8)}"
        self.client_secret = secrets.token_urlsafe(24)
        self.access_ttl, self.refresh_ttl = 7200, 180 * 86400  # the November 2026 lifetimes
        self.upload_ttl = 3600.0
        self.processing_polls, self.moderation_polls = 2, 0
        self.daily_post_cap, self.init_per_minute, self.status_per_minute = 15, 6, 30
        self.verified_prefixes = ["https://media.news.example/"]
        self.users: dict[str, User] = {}
        self.access: dict[str, tuple[str, float]] = {}  # token -> open_id, expiry
        self.refresh_tokens: dict[str, tuple[str, float]] = {}  # live refresh token -> open_id, expiry
        self.publishes: dict[str, Publish] = {}
        self.windows: dict[tuple[str, str], list[float]] = {}
        self.oauth = AuthorizationCodes({self.client_key: set()}, pkce="optional", client_param="client_key",
                                        scope_sep=",", refuse=_code_refusal)
        self._zero_counters()

    def _zero_counters(self) -> None:
        self.inits = self.chunks = self.status_fetches = self.refresh_calls = self.creator_queries = 0

    def register(self) -> None:
        self.route("POST", "/v2/oauth/token/", self._token)
        self.route("GET", "/v2/auth/authorize/", self.authorize)
        self.route("POST", "/v2/auth/authorize/", self.authorize_decision)
        self.route("POST", "/v2/post/publish/creator_info/query/", self._creator_info)
        self.route("POST", "/v2/post/publish/video/init/", self._video_init)
        self.route("POST", "/v2/post/publish/content/init/", self._content_init)
        self.route("POST", "/v2/post/publish/status/fetch/", self._status_fetch)
        self.route("PUT", "/upload/", self._upload)
        self.route("GET", "/v2/user/info/", self._user_info)
        self.route("POST", "/v2/video/list/", self._video_list)

    # -- accounts and tokens ----------------------------------------------------------------------
    def add_account(self, handle: str, followers: int = 0) -> dict[str, str]:
        handle = handle.lstrip("@")
        with self.lock:
            user = next((u for u in self.users.values() if u.username == handle), None)
            if user is None:
                user = User(f"-000{secrets.token_hex(14)}", handle, followers)
                self.users[user.open_id] = user
            user.followers = followers
            access, refresh, expires = self._issue(user.open_id)
        return {"access_token": access, "refresh_token": refresh, "client_key": self.client_key,
                "client_secret": self.client_secret, "open_id": user.open_id,
                "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")}

    def sign_in(self, handle: str, followers: int = 0) -> None:
        """Signed in on tiktok.com as ``handle`` (made if new): the consent page acts for them."""
        with self.lock:
            self.oauth.signed_in = handle.lstrip("@")
            self._open_id_of(handle.lstrip("@"), followers)

    def oauth_app(self, redirect_uri: str) -> dict[str, str]:
        if redirect_uri:
            self.oauth.redirect_uris[self.client_key].add(redirect_uri)
        return {"client_id": self.client_key, "client_secret": self.client_secret}

    def _open_id_of(self, username: str, followers: int = 0) -> str:
        user = next((u for u in self.users.values() if u.username == username), None)
        if user is None:
            user = User(f"-000{secrets.token_hex(14)}", username, followers)
            self.users[user.open_id] = user
        return user.open_id

    def authorize(self, req: Request) -> Response:
        with self.lock:
            return self.oauth.consent_page(req, {self.client_key: self.client_secret}, {"user.info.basic"})

    def authorize_decision(self, req: Request) -> Response:
        with self.lock:
            return self.oauth.decide(req, {self.client_key: self.client_secret}, self._open_id_of)

    def user(self, handle: str) -> User:
        with self.lock:
            return next(u for u in self.users.values() if u.username == handle.lstrip("@"))

    def _issue(self, open_id: str) -> tuple[str, str, float]:
        now = time.time()
        access, refresh = f"act.{secrets.token_urlsafe(40)}", f"rft.{secrets.token_urlsafe(40)}"
        self.access[access] = (open_id, now + self.access_ttl)
        self.refresh_tokens[refresh] = (open_id, now + self.refresh_ttl)
        return access, refresh, now + self.access_ttl

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access = {t: (u, 0.0) for t, (u, _) in self.access.items()}

    def expire_uploads(self) -> None:
        with self.lock:
            for publish in self.publishes.values():
                publish.expires = 0.0

    def scope(self, request: Request) -> str:
        found = self.access.get(request.bearer() or "")
        return found[0] if found else super().scope(request)

    def _user(self, req: Request, scope: str, bucket: str | None = None, per_minute: int = 0) -> User:
        found = self.access.get(req.bearer() or "")
        if found is None or found[1] <= time.time():
            raise fail(401, "access_token_invalid",
                       "The access token is invalid or not found in the request.")
        user = self.users[found[0]]
        if scope not in user.scopes:
            raise fail(401, "scope_not_authorized", "The user did not authorize the scope required for "
                                                    "completing this request.")
        if bucket:
            now = time.time()
            window = [t for t in self.windows.get((req.bearer() or "", bucket), []) if now - t < 60]
            if len(window) >= per_minute:
                raise fail(429, "rate_limit_exceeded",
                           "The API rate limit was exceeded. Please try again later.")
            self.windows[(req.bearer() or "", bucket)] = [*window, now]
        return user

    def _token(self, req: Request) -> Response:
        if not req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise _oauth_fail(400, "invalid_request",
                              "Content-Type must be application/x-www-form-urlencoded.")
        form = {k: v[-1] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        with self.lock:
            self.refresh_calls += 1
            if form.get("client_key") != self.client_key or form.get("client_secret") != self.client_secret:
                raise _oauth_fail(401, "invalid_client", "Client key or secret is incorrect.")
            if form.get("grant_type") == "authorization_code":
                code = self.oauth.redeem(form, self.client_key)
                access, refresh, _ = self._issue(code.user)
                return Response(200, {"access_token": access, "expires_in": self.access_ttl,
                                      "open_id": code.user, "refresh_expires_in": self.refresh_ttl,
                                      "refresh_token": refresh,
                                      "scope": ",".join(sorted(code.scopes)), "token_type": "Bearer"})
            if form.get("grant_type") != "refresh_token":
                raise _oauth_fail(400, "unsupported_grant_type", "The grant type is not supported.")
            found = self.refresh_tokens.pop(form.get("refresh_token", ""), None)  # rotation: single use
            if found is None or found[1] <= time.time():
                raise _oauth_fail(400, "invalid_grant", "Refresh token is invalid or expired.")
            access, refresh, _ = self._issue(found[0])
        return Response(200, {"access_token": access, "expires_in": self.access_ttl, "open_id": found[0],
                              "refresh_expires_in": self.refresh_ttl, "refresh_token": refresh,
                              "scope": ",".join(sorted(self.users[found[0]].scopes)), "token_type": "Bearer"})

    # -- publishing -------------------------------------------------------------------------------
    def _creator_info(self, req: Request) -> Response:
        with self.lock:
            user = self._user(req, "video.publish")
            self.creator_queries += 1
        return Response(200, envelope({
            "creator_avatar_url": f"https://p16.tiktokcdn.example/{user.open_id}.jpeg",
            "creator_username": user.username, "creator_nickname": user.username.title(),
            "privacy_level_options": list(user.privacy_options), "comment_disabled": user.comment_disabled,
            "duet_disabled": False, "stitch_disabled": True,
            "max_video_post_duration_sec": user.max_duration}))

    def _body(self, req: Request) -> dict[str, Any]:
        if not req.headers.get("content-type", "").startswith("application/json"):
            raise fail(400, "invalid_params", "Content-Type must be application/json; charset=UTF-8.")
        try:
            body = json.loads(req.body or b"null")
        except ValueError:
            raise fail(400, "invalid_params", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise fail(400, "invalid_params", "The request body must be a JSON object.")
        return body

    def _post_info(self, body: dict[str, Any], user: User, limits: dict[str, int]) -> dict[str, Any]:
        info = body.get("post_info")
        if not isinstance(info, dict):
            raise fail(400, "invalid_params", "post_info is required.")
        if info.get("privacy_level") not in user.privacy_options:
            raise fail(400, "privacy_level_option_mismatch", "The privacy_level is not among the creator's "
                                                             "privacy_level_options.")
        for name, limit in limits.items():
            value = info.get(name, "")
            if not isinstance(value, str) or utf16_units(value) > limit:
                raise fail(400, "invalid_params", f"post_info.{name} must be a string of at most {limit} "
                                                  "characters.")
        for name in ("disable_comment", "disable_duet", "disable_stitch", "brand_content_toggle",
                     "brand_organic_toggle", "auto_add_music", "is_aigc"):
            if name in info and not isinstance(info[name], bool):
                raise fail(400, "invalid_params", f"post_info.{name} must be a boolean.")
        if user.comment_disabled and info.get("disable_comment") is False:
            raise fail(400, "invalid_params", "The creator has comments disabled.")
        return info

    def _admit(self, req: Request) -> User:
        """Auth, the init rate limit and the creator's daily cap."""
        user = self._user(req, "video.publish", "init", self.init_per_minute)
        now = time.time()
        user.inits = [t for t in user.inits if now - t < 86400]
        if len(user.inits) >= self.daily_post_cap:
            raise fail(403, "spam_risk_too_many_posts", "The daily post cap for this creator is reached.")
        return user

    def _video_init(self, req: Request) -> Response:
        body = self._body(req)
        with self.lock:
            user = self._admit(req)
            info = self._post_info(body, user, {"title": 2200})
            source = body.get("source_info")
            if not isinstance(source, dict) or source.get("source") not in ("FILE_UPLOAD", "PULL_FROM_URL"):
                raise fail(400, "invalid_params", "source_info.source must be FILE_UPLOAD or PULL_FROM_URL.")
            publish = Publish(f"v_pub_{source['source'].split('_')[0].lower()}~v2-1.{secrets.randbits(60)}",
                              user.open_id, "video", source["source"], info)
            data: dict[str, Any] = {"publish_id": publish.id}
            if publish.source == "FILE_UPLOAD":
                publish.size, publish.chunk, publish.count = self._chunk_rules(source)
                publish.upload_id, publish.expires = secrets.token_urlsafe(16), time.time() + self.upload_ttl
                data["upload_url"] = f"{self.url}/upload/?upload_id={publish.upload_id}&upload_token=" \
                                     f"{secrets.token_hex(16)}"
            else:
                publish.urls = [self._verified(source.get("video_url"))]
                publish.status = "PROCESSING_DOWNLOAD"
            self._accept(user, publish)
        return Response(200, envelope(data))

    def _chunk_rules(self, source: dict[str, Any]) -> tuple[int, int, int]:
        size, chunk, count = (source.get(k) for k in ("video_size", "chunk_size", "total_chunk_count"))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (size, chunk, count)):
            raise fail(400, "invalid_params", "video_size, chunk_size and total_chunk_count must be positive "
                                              "integers.")
        assert isinstance(size, int) and isinstance(chunk, int) and isinstance(count, int)
        if size > 4096 * MB:
            raise fail(400, "invalid_params", "The video is larger than 4 GB.")
        if size < 5 * MB and (chunk != size or count != 1):
            raise fail(400, "invalid_params", "A video under 5 MB is uploaded whole: chunk_size must equal "
                                              "video_size and total_chunk_count must be 1.")
        if size >= 5 * MB and not 5 * MB <= chunk <= 64 * MB:
            raise fail(400, "invalid_params", "chunk_size must be between 5 MB and 64 MB.")
        if count != size // chunk or not 1 <= count <= 1000:
            raise fail(400, "invalid_params", "The total chunk count is invalid.")
        if size - (count - 1) * chunk > 128 * MB:
            raise fail(400, "invalid_params", "The last chunk may not exceed 128 MB.")
        return size, chunk, count

    def _verified(self, url: Any) -> str:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise fail(400, "invalid_params", "Media URLs must be http(s) URLs.")
        if not any(url.startswith(prefix) for prefix in self.verified_prefixes):
            raise fail(403, "url_ownership_unverified",
                       "The domain or URL prefix of the media is not verified for this app.")
        return url

    def _accept(self, user: User, publish: Publish) -> None:
        user.inits.append(time.time())
        self.publishes[publish.id] = publish
        self.inits += 1

    def _content_init(self, req: Request) -> Response:
        body = self._body(req)
        with self.lock:
            user = self._admit(req)
            modes = ("DIRECT_POST", "MEDIA_UPLOAD")
            if body.get("media_type") != "PHOTO" or body.get("post_mode") not in modes:
                raise fail(400, "invalid_params", "media_type must be PHOTO and post_mode DIRECT_POST or "
                                                  "MEDIA_UPLOAD.")
            info = self._post_info(body, user, {"title": 90, "description": 4000})
            source = body.get("source_info")
            if not isinstance(source, dict) or source.get("source") != "PULL_FROM_URL":
                raise fail(400, "invalid_params", "Photos support only source PULL_FROM_URL.")
            images = source.get("photo_images")
            if not isinstance(images, list) or not 1 <= len(images) <= 35:
                raise fail(400, "invalid_params", "photo_images must list 1 to 35 URLs.")
            cover = source.get("photo_cover_index", 0)
            if not isinstance(cover, int) or not 0 <= cover < len(images):
                raise fail(400, "invalid_params", "photo_cover_index is out of range.")
            publish = Publish(f"p_pub_url~v2.{secrets.randbits(60)}", user.open_id, "photo", "PULL_FROM_URL",
                              info, urls=[self._verified(u) for u in images], status="PROCESSING_DOWNLOAD")
            self._accept(user, publish)
        return Response(200, envelope({"publish_id": publish.id}))

    def _upload(self, req: Request) -> Response:
        with self.lock:
            publish = next((p for p in self.publishes.values()
                            if p.upload_id and p.upload_id == req.query.get("upload_id")), None)
            if publish is None or publish.expires <= time.time():
                raise fail(404, "invalid_params", "The upload URL is invalid or has expired.")
            mime = req.headers.get("content-type", "")
            if mime not in VIDEO_TYPES:
                raise fail(400, "invalid_file_upload",
                           f"Content-Type {mime!r} is not a supported video type.")
            index = publish.next_chunk
            if index >= publish.count:
                raise fail(400, "invalid_params", "Every chunk has already been uploaded.")
            start = index * publish.chunk
            end = publish.size if index == publish.count - 1 else start + publish.chunk
            expected = f"bytes {start}-{end - 1}/{publish.size}"
            if req.headers.get("content-range") != expected or len(req.body) != end - start:
                raise fail(400, "invalid_params", f"Chunks go in order: expected Content-Range {expected} "
                                                  f"with {end - start} bytes.")
            publish.mime = mime
            publish.digest.update(req.body)
            publish.head = (publish.head + req.body)[:16]
            publish.received, publish.next_chunk = end, index + 1
            self.chunks += 1
            return Response(201 if end == publish.size else 206, None,
                            {"Content-Range": f"bytes 0-{end - 1}/{publish.size}"})

    def _status_fetch(self, req: Request) -> Response:
        body = self._body(req)
        with self.lock:
            user = self._user(req, "video.publish", "status", self.status_per_minute)
            publish = self.publishes.get(str(body.get("publish_id")))
            if publish is None or publish.user != user.open_id:
                raise fail(400, "invalid_params", "The publish_id is invalid.")
            self.status_fetches += 1
            self._advance(publish, user)
            data: dict[str, Any] = {"status": publish.status}
            if publish.source == "FILE_UPLOAD":
                data["uploaded_bytes"] = publish.received
            else:
                data["downloaded_bytes"] = 0 if publish.status == "PROCESSING_DOWNLOAD" else 1
            if publish.status == "FAILED":
                data["fail_reason"] = publish.fail_reason
            if publish.status == "PUBLISH_COMPLETE":
                visible = publish.polls >= publish.done_at_poll + self.moderation_polls
                data["publicaly_available_post_id"] = [int(publish.post_id)] if visible else []
        return Response(200, envelope(data))

    def _advance(self, publish: Publish, user: User) -> None:
        """One poll of the state machine: processing starts once every byte is in (or at once for a pull)."""
        if publish.status not in ("PROCESSING_UPLOAD", "PROCESSING_DOWNLOAD"):
            publish.polls += 1
            return
        if publish.source == "FILE_UPLOAD" and publish.received < publish.size:
            return
        publish.polls += 1
        if publish.polls < self.processing_polls:
            return
        bad_mp4 = publish.mime in ("video/mp4", "video/quicktime") and publish.head[4:8] != b"ftyp"
        if bad_mp4 or any(u.lower().endswith(".png") for u in publish.urls):
            publish.status, publish.fail_reason = "FAILED", "file_format_check_failed"
            return
        publish.status, publish.done_at_poll = "PUBLISH_COMPLETE", publish.polls
        publish.post_id = str(7_300_000_000_000_000_000 + secrets.randbits(40))
        text = publish.info.get("description", publish.info.get("title", ""))
        self.record(publish.kind, {"account": user.username, "text": text, "title": publish.info.get("title"),
                                   "privacy": publish.info.get("privacy_level"), "urls": publish.urls,
                                   "bytes": publish.received, "sha256": publish.digest.hexdigest()},
                    key=publish.id, id=publish.post_id)

    # -- reads ------------------------------------------------------------------------------------
    def _fields(self, req: Request, allowed: set[str]) -> list[str]:
        fields = [f for f in req.query.get("fields", "").split(",") if f]
        if not fields or not set(fields) <= allowed:
            raise fail(400, "invalid_params", f"fields must be some of {', '.join(sorted(allowed))}.")
        return fields

    def _user_info(self, req: Request) -> Response:
        with self.lock:
            user = self._user(req, "user.info.basic")
            fields = self._fields(req, USER_FIELDS)
            if set(fields) & STATS_FIELDS and "user.info.stats" not in user.scopes:
                raise fail(401, "scope_not_authorized", "The user did not authorize the scope required for "
                                                        "completing this request.")
            values = {"open_id": user.open_id, "username": user.username,
                      "display_name": user.username.title(), "follower_count": user.followers,
                      "following_count": 0, "likes_count": 0,
                      "video_count": len(self.posts("video")), "avatar_url": "", "union_id": user.open_id}
        return Response(200, envelope({"user": {f: values[f] for f in fields}}))

    def _video_list(self, req: Request) -> Response:
        body = self._body(req)
        with self.lock:
            user = self._user(req, "video.list")
            fields = self._fields(req, LIST_FIELDS)
            count = body.get("max_count", 10)
            if not isinstance(count, int) or not 1 <= count <= 20:
                raise fail(400, "invalid_params", "max_count must be between 1 and 20.")
            # Only posts through moderation are listed.
            listed = [p for p in self.publishes.values() if p.user == user.open_id and p.kind == "video"
                      and p.status == "PUBLISH_COMPLETE"
                      and p.polls >= p.done_at_poll + self.moderation_polls]
            listed.sort(key=lambda p: p.created, reverse=True)
            videos = []
            for p in listed[:count]:
                values = {"id": p.post_id, "title": p.info.get("title", ""),
                          "video_description": p.info.get("title", ""), "create_time": int(p.created),
                          "share_url": f"https://www.tiktok.com/@{user.username}/video/{p.post_id}",
                          "duration": 0, "cover_image_url": ""}
                videos.append({f: values[f] for f in fields})
        return Response(200, envelope({"videos": videos, "cursor": 0, "has_more": len(listed) > count}))

    # -- control ----------------------------------------------------------------------------------
    def rate_limited(self, fault: Fault) -> Response:
        # TikTok documents no Retry-After; a test may still ask for one.
        headers = {} if fault.retry_after is None else {"Retry-After": str(int(fault.retry_after))}
        return Response(429, fault.body or envelope(None, "rate_limit_exceeded", "The API rate limit was "
                                                    "exceeded. Please try again later."), headers)

    def fault_response(self, fault: Fault) -> Response:
        status = fault.status or 500
        code = "internal_error" if status >= 500 else "invalid_params"
        return Response(status, fault.body or envelope(None, code, "Injected fault."))

    def reset(self) -> None:
        """Forget posts, uploads, windows and counters; users and their tokens stay valid."""
        with self.lock:
            super().reset()
            self.publishes.clear()
            self.windows.clear()
            for user in self.users.values():
                user.inits.clear()
            self._zero_counters()

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"users": len(self.users), "inits": self.inits, "chunks": self.chunks,
                    "status_fetches": self.status_fetches, "refresh_calls": self.refresh_calls}
