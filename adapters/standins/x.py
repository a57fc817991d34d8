"""An X API v2 stand-in, as far as crosspost speaks to X (platforms.md section 1).

Implements ``POST /2/tweets``, ``GET /2/users/me``, ``GET /2/users/:id/tweets``, the v2 media upload
(one-shot ``POST /2/media/upload``; ``initialize`` / ``append`` / ``finalize``; ``STATUS``), alt text
(``POST /2/media/metadata``), ``POST /2/oauth2/token`` (refresh, rotating; and the authorization code
with PKCE behind ``/i/oauth2/authorize``, see ``oauth.py``), with X's checks and
answer shapes: v2 problems ``{"title", "detail", "type", "status"}``, ``{"errors": [...]}`` for invalid
requests, 403 for duplicate content, OAuth ``{"error", "error_description"}`` on the token endpoint,
and 429 with ``x-rate-limit-*`` headers (X sends no Retry-After). Text is counted with the adapter's
own weighted length (twitter-text v3).

Where X's behaviour is not documented the stand-in picks the strict reading: media must be used by
the account that uploaded it, segments must arrive in order (re-sending the last one replaces it),
and a refresh token works once.
"""

from __future__ import annotations

import email.policy
import hashlib
import html
import secrets
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from typing import Any

from twitter_text import extract_urls_with_indices, parse_tweet
from twitter_text.config import config as twitter_text_config

from adapters.standins.base import Fault, HttpError, Request, Response, StandIn
from adapters.standins.oauth import AuthorizationCodes, basic_client

PROBLEMS = "https://api.twitter.com/2/problems"
SCOPES = ("tweet.read", "tweet.write", "users.read", "media.write", "offline.access")
# media_category -> (accepted media types, largest total_bytes)
CATEGORIES = {
    "tweet_image": ({"image/jpeg", "image/png", "image/webp", "image/gif"}, 5 * 1024 * 1024),
    "tweet_gif": ({"image/gif"}, 15 * 1024 * 1024),
    "tweet_video": ({"video/mp4", "video/quicktime"}, 512 * 1024 * 1024),
}
MAX_SEGMENT = 5 * 1024 * 1024
_V3 = twitter_text_config["version3"]
TEXT_LIMIT: int = _V3["max_weighted_tweet_length"]
_IMAGE_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
                (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))
_TWEPOCH_MS = 1288834974657
_TWEET_FIELDS = {"id", "text", "created_at", "author_id", "conversation_id", "in_reply_to_user_id",
                 "referenced_tweets", "attachments", "entities", "public_metrics", "edit_history_tweet_ids"}
_USER_FIELDS = {"id", "name", "username", "created_at", "description", "public_metrics", "protected",
                "verified", "profile_image_url", "location", "url"}
_TITLES = {400: "Invalid Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}


def problem(status: int, detail: str, title: str | None = None, kind: str = "about:blank") -> HttpError:
    return HttpError(status, {"title": title or _TITLES.get(status, "Error"), "detail": detail, "type": kind,
                              "status": status})


def invalid(message: str) -> HttpError:
    """X's answer to a request its schema or rules refuse: the reasons are in ``errors``."""
    return HttpError(400, {"errors": [{"parameters": {}, "message": message}], "title": "Invalid Request",
                           "detail": "One or more parameters to your request was invalid.",
                           "type": f"{PROBLEMS}/invalid-request"})


def oauth_error(status: int, error: str, description: str) -> HttpError:
    return HttpError(status, {"error": error, "error_description": description})


@dataclass
class _User:
    id: str
    username: str
    followers: int


@dataclass
class _Upload:
    id: str
    owner: str
    media_type: str
    category: str
    total: int
    expires: float
    segments: list[bytes] = field(default_factory=list)
    state: str = "uploading"  # uploading -> pending/in_progress -> succeeded | failed
    polls: int = 0
    alt: str = ""


class XStandIn(StandIn):
    platform = "x"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.users: dict[str, _User] = {}
        self.tokens: dict[str, dict[str, Any]] = {}  # access token -> user, scopes, client, exp
        self.refresh_tokens: dict[str, dict[str, Any]] = {}  # refresh token -> user, scopes, client
        # Two apps: a public client (client_id in the form) and a confidential one (Basic auth).
        self.clients: dict[str, str | None] = {"standin-public": None,
                                               "standin-confidential": secrets.token_urlsafe(24)}
        # Connecting an account: the authorize page and the authorization_code grant (PKCE).
        self.oauth = AuthorizationCodes({client: set() for client in self.clients},
                                        grant_error="invalid_request")
        self.tweets: list[dict[str, Any]] = []
        self.media: dict[str, _Upload] = {}
        self._last_id = 0
        self._defaults()
        super().__init__(host, port)

    def _defaults(self) -> None:
        # Settable per test.
        self.access_ttl = 7200.0
        self.media_ttl = 86400
        self.processing_polls = 2  # STATUS calls before a video is ready
        self.check_after_secs = 1
        self.fail_processing = False
        self.reads_allowed = True  # False: an API tier without timeline reads
        self.window = "x-rate-limit"  # which limit a 429 reports exhausted
        self.uploads = self.appends = self.status_polls = self.refresh_calls = 0

    def register(self) -> None:
        self.route("POST", r"/2/tweets", self.create_tweet)
        self.route("GET", r"/2/users/me", self.users_me)
        self.route("GET", r"/2/users/(?P<id>[^/]+)/tweets", self.user_tweets)
        self.route("POST", r"/2/media/upload", self.upload_one_shot)
        self.route("GET", r"/2/media/upload", self.upload_status)
        self.route("POST", r"/2/media/upload/initialize", self.upload_initialize)
        self.route("POST", r"/2/media/upload/(?P<id>[^/]+)/append", self.upload_append)
        self.route("POST", r"/2/media/upload/(?P<id>[^/]+)/finalize", self.upload_finalize)
        self.route("POST", r"/2/media/metadata", self.media_metadata)
        self.route("POST", r"/2/oauth2/token", self.token)
        self.route("GET", r"/i/oauth2/authorize", self.authorize)
        self.route("POST", r"/i/oauth2/authorize", self.authorize_decision)

    # -- accounts and control ---------------------------------------------------------------------
    def add_account(self, handle: str, followers: int = 0, confidential: bool = False,
                    scopes: tuple[str, ...] = SCOPES) -> dict[str, str]:
        username = handle.lstrip("@")
        client = "standin-confidential" if confidential else "standin-public"
        with self.lock:
            user = next((u for u in self.users.values() if u.username == username), None)
            if user is None:
                user = _User(self._next_id(), username, followers)
                self.users[user.id] = user
            user.followers = followers
            grant = self._issue(user.id, frozenset(scopes), client)
        creds = {"access_token": grant["access_token"], "client_id": client, "user_id": user.id,
                 "expires_at": _iso(time.time() + self.access_ttl)}
        if "refresh_token" in grant:
            creds["refresh_token"] = grant["refresh_token"]
        if confidential:
            creds["client_secret"] = str(self.clients[client])
        return creds

    def expire_access_tokens(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                token["exp"] = 0.0

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.tweets.clear()
            self.media.clear()
            self._defaults()

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"users": len(self.users), "tweets": len(self.tweets), "uploads": self.uploads,
                    "appends": self.appends, "refresh_calls": self.refresh_calls}

    def rate_limited(self, fault: Fault) -> Response:
        wait = fault.retry_after if fault.retry_after is not None else 1
        reset = str(int(time.time() + wait + 0.999))
        headers = {"x-rate-limit-limit": "100", "x-rate-limit-remaining": "1", "x-rate-limit-reset": reset}
        headers.update({f"{self.window}-limit": "100", f"{self.window}-remaining": "0",
                        f"{self.window}-reset": reset})
        return Response(429, fault.body or problem(429, "Too Many Requests").body, headers)

    def fault_response(self, fault: Fault) -> Response:
        status = fault.status or 500
        title = _TITLES.get(status, "Error")
        return Response(status, fault.body or {"title": title, "detail": title, "type": "about:blank",
                                               "status": status})

    def _note_retry_after(self, req: Request, response: Response) -> None:
        # X announces the end of a rate-limit window as Unix seconds, never as Retry-After.
        reset = response.headers.get(f"{self.window}-reset")
        if response.status == 429 and reset:
            with self.lock:
                self.retry_blocks[self.scope(req)] = float(reset)

    # -- posts ------------------------------------------------------------------------------------
    def create_tweet(self, req: Request) -> Response:
        user = self._authorize(req, "tweet.read", "tweet.write", "users.read")
        body = _json_object(req)
        unknown = set(body) - {"text", "media", "reply", "quote_tweet_id", "reply_settings", "poll",
                               "nullcast", "for_super_followers_only", "made_with_ai", "paid_partnership"}
        if unknown:
            raise invalid(f"$.{sorted(unknown)[0]}: is not defined in the schema and the schema does not "
                          "allow additional properties")
        text = body.get("text")
        if text is not None and not isinstance(text, str):
            raise invalid("$.text: string found, but a different type was expected")
        media_ids = _list_field(body, "media", "media_ids")
        reply_to = _scalar_field(body, "reply", "in_reply_to_tweet_id")
        if not (text or media_ids):
            raise invalid("$: text or media.media_ids is required")
        # X's own rule, from twitter-text v3 itself (not from the adapter under test): NFC first.
        if text and parse_tweet(unicodedata.normalize("NFC", text), _V3).weightedLength > TEXT_LIMIT:
            raise invalid("Your Tweet text is too long. For more information on how Twitter determines "
                          "text length see https://github.com/twitter/twitter-text.")
        with self.lock:
            uploads = self._attachable(user, media_ids)
            if reply_to is not None and not any(t["id"] == reply_to for t in self.tweets):
                raise problem(403, "You attempted to reply to a Tweet that is deleted or not visible to you.")
            normalised = unicodedata.normalize("NFC", text or "")
            if normalised and any(t["author"] == user.id and t["nfc"] == normalised for t in self.tweets):
                raise problem(403, "You are not allowed to create a Tweet with duplicate content.")
            tweet_id = self._next_id()
            self.tweets.append({"id": tweet_id, "author": user.id, "text": text or "", "nfc": normalised,
                                "media_ids": media_ids, "reply_to": reply_to, "at": time.time()})
            self.record("tweet", {"account": user.username, "text": text or "", "media_ids": media_ids,
                                  "media": [(u.category, u.media_type, u.alt) for u in uploads],
                                  "reply_to": reply_to}, id=tweet_id)
        return Response(201, {"data": {"id": tweet_id, "text": text or "",
                                       "edit_history_tweet_ids": [tweet_id]}})

    def _attachable(self, user: _User, media_ids: list[Any]) -> list[_Upload]:
        if not media_ids:
            return []
        if len(media_ids) > 4:
            raise invalid("$.media.media_ids: must have at most 4 items")
        found = [self.media.get(str(m)) if isinstance(m, str) else None for m in media_ids]
        if any(u is None or u.owner != user.id or u.state != "succeeded" or u.expires < time.time()
               for u in found):
            raise invalid("Your media IDs are invalid.")
        uploads = [u for u in found if u is not None]
        if len(uploads) > 1 and any(u.category != "tweet_image" for u in uploads):
            raise invalid("Your media IDs are invalid: a post carries up to 4 photos, or 1 GIF, or 1 video.")
        return uploads

    def users_me(self, req: Request) -> Response:
        user = self._authorize(req, "tweet.read", "users.read")
        fields = _fields(req, "user.fields", _USER_FIELDS)
        data: dict[str, Any] = {"id": user.id, "name": user.username.title(), "username": user.username}
        if "public_metrics" in fields:
            with self.lock:
                count = sum(1 for t in self.tweets if t["author"] == user.id)
            data["public_metrics"] = {"followers_count": user.followers, "following_count": 0,
                                      "tweet_count": count, "listed_count": 0}
        return Response(200, {"data": data})

    def user_tweets(self, req: Request) -> Response:
        self._authorize(req, "tweet.read", "users.read")
        if not self.reads_allowed:
            raise HttpError(403, {
                "title": "Client Forbidden", "type": f"{PROBLEMS}/client-forbidden",
                "reason": "client-not-enrolled", "required_enrollment": "Appropriate Level of API Access",
                "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys "
                          "and tokens from a Twitter developer App that is attached to a Project. You can "
                          "create a project via the developer portal.",
            })
        fields = _fields(req, "tweet.fields", _TWEET_FIELDS)
        max_results = _int_param(req, "max_results", 10)
        if not 5 <= max_results <= 100:
            raise invalid(f"The `max_results` query parameter value [{max_results}] is not between 5 and 100")
        excluded = set(filter(None, req.query.get("exclude", "").split(",")))
        if excluded - {"retweets", "replies"}:
            raise invalid(f"The `exclude` query parameter value [{req.query['exclude']}] is not one of "
                          "[retweets, replies]")
        since = _time_param(req, "start_time")
        offset = _int_param(req, "pagination_token", 0) if req.query.get("pagination_token") else 0
        owner = req.match.group("id") if req.match else ""
        with self.lock:
            if owner not in self.users:
                return Response(200, {"errors": [{
                    "value": owner, "detail": f"Could not find user with id: [{owner}].",
                    "title": "Not Found Error", "resource_type": "user", "parameter": "id",
                    "resource_id": owner, "type": f"{PROBLEMS}/resource-not-found"}]})
            mine = [t for t in reversed(self.tweets) if t["author"] == owner
                    and (since is None or t["at"] >= since)
                    and not ("replies" in excluded and t["reply_to"])]
        page = mine[offset:offset + max_results]
        if not page:
            return Response(200, {"meta": {"result_count": 0}})
        meta: dict[str, Any] = {"result_count": len(page), "newest_id": page[0]["id"],
                                "oldest_id": page[-1]["id"]}
        if offset + max_results < len(mine):
            meta["next_token"] = str(offset + max_results)
        return Response(200, {"data": [self._render(t, fields) for t in page], "meta": meta})

    def _render(self, tweet: dict[str, Any], fields: set[str]) -> dict[str, Any]:
        # X shows text with every URL as a t.co link, a t.co link for attached media, and &, < and >
        # escaped as HTML entities.
        text = tweet["text"]
        for url in sorted(extract_urls_with_indices(text), key=lambda u: -u["indices"][0]):
            start, end = url["indices"]
            text = text[:start] + _tco(url["url"]) + text[end:]
        if tweet["media_ids"]:
            text = f"{text} {_tco(tweet['id'])}".strip()
        data = {"id": tweet["id"], "text": html.escape(text, quote=False),
                "edit_history_tweet_ids": [tweet["id"]]}
        if "created_at" in fields:
            data["created_at"] = datetime.fromtimestamp(tweet["at"], UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return data

    # -- media --------------------------------------------------------------------------------------
    def upload_one_shot(self, req: Request) -> Response:
        user = self._authorize(req, "media.write")
        form = _multipart(req)
        media, category = form.get("media"), form.get("media_category", b"").decode()
        if media is None:
            raise invalid("$.media: is missing but it is required")
        if category != "tweet_image":
            raise invalid(f"$.media_category: [{category}] is not valid for a one-shot upload; "
                          "use the chunked upload")
        if len(media) > CATEGORIES["tweet_image"][1]:
            raise invalid(f"File size exceeds {CATEGORIES['tweet_image'][1]} bytes.")
        media_type = next((t for magic, t in _IMAGE_MAGIC if media.startswith(magic)), None)
        if media_type is None and media[8:12] == b"WEBP":
            media_type = "image/webp"
        if media_type is None:
            raise invalid("media type unrecognized.")
        with self.lock:
            upload = self._new_upload(user, media_type, category, len(media))
            upload.segments, upload.state = [media], "succeeded"
        return Response(200, {"data": {"id": upload.id, "media_key": f"3_{upload.id}", "size": len(media),
                                       "expires_after_secs": self.media_ttl}})

    def upload_initialize(self, req: Request) -> Response:
        user = self._authorize(req, "media.write")
        body = _json_object(req)
        media_type, total = body.get("media_type"), body.get("total_bytes")
        category = body.get("media_category")
        for name, value, kind in (("media_type", media_type, str), ("total_bytes", total, int),
                                  ("media_category", category, str)):
            if value is None:
                raise invalid(f"$.{name}: is missing but it is required")
            if not isinstance(value, kind) or isinstance(value, bool):
                raise invalid(f"$.{name}: {type(value).__name__} found, {kind.__name__} expected")
        assert isinstance(total, int) and isinstance(category, str)
        if category not in CATEGORIES:
            raise invalid(f"$.media_category: does not have a value in the enumeration {sorted(CATEGORIES)}")
        types, limit = CATEGORIES[category]
        if media_type not in types:
            raise invalid(f"media_type {media_type} is not allowed for media_category {category}")
        if not 0 < total <= limit:
            raise invalid(f"total_bytes {total} is not between 1 and {limit} for {category}")
        with self.lock:
            upload = self._new_upload(user, str(media_type), category, total)
        return Response(200, {"data": {"id": upload.id, "media_key": f"7_{upload.id}",
                                       "expires_after_secs": self.media_ttl}})

    def upload_append(self, req: Request) -> Response:
        user = self._authorize(req, "media.write")
        form = _multipart(req)
        chunk, raw_index = form.get("media"), form.get("segment_index", b"").decode()
        if chunk is None or not raw_index.isdigit():
            raise invalid("segment_index and media are required")
        index = int(raw_index)
        if index > 999 or len(chunk) > MAX_SEGMENT:
            raise invalid(f"segment_index must be 0-999 and a segment at most {MAX_SEGMENT} bytes")
        with self.lock:
            upload = self._upload(user, req)
            if upload.state != "uploading":
                raise invalid("Media already finalized.")
            if index == len(upload.segments):
                upload.segments.append(chunk)
            elif index == len(upload.segments) - 1:
                upload.segments[index] = chunk  # the client re-sent a segment whose answer it lost
            else:
                raise invalid(f"Segment {index} is out of order: expected segment {len(upload.segments)}.")
            if sum(map(len, upload.segments)) > upload.total:
                raise invalid("Segments exceed the total_bytes given at initialize.")
            self.appends += 1
            return Response(200, {"data": {"expires_at": int(upload.expires)}})

    def upload_finalize(self, req: Request) -> Response:
        user = self._authorize(req, "media.write")
        with self.lock:
            upload = self._upload(user, req)
            if upload.state != "uploading":
                raise invalid("Media already finalized.")
            size = sum(map(len, upload.segments))
            if size != upload.total:
                raise invalid(f"Segments do not add up to provided total file size ({size} of "
                              f"{upload.total}).")
            data = {"id": upload.id, "media_key": f"7_{upload.id}", "size": size,
                    "expires_after_secs": max(0, int(upload.expires - time.time()))}
            if upload.category == "tweet_image":
                upload.state = "succeeded"
            else:
                upload.state = "pending" if self.processing_polls else "succeeded"
                data["processing_info"] = self._processing(upload)
            return Response(200, {"data": data})

    def upload_status(self, req: Request) -> Response:
        user = self._authorize(req, "media.write")
        if req.query.get("command") != "STATUS" or not req.query.get("media_id"):
            raise invalid("command=STATUS and media_id are required")
        with self.lock:
            upload = self._upload(user, req, req.query["media_id"])
            if upload.state == "uploading":
                raise invalid("Media is not finalized.")
            self.status_polls += 1
            if upload.state in ("pending", "in_progress"):
                upload.polls += 1
                if upload.polls >= self.processing_polls:
                    upload.state = "failed" if self.fail_processing else "succeeded"
                else:
                    upload.state = "in_progress"
            return Response(200, {"data": {"id": upload.id, "media_key": f"7_{upload.id}",
                                           "processing_info": self._processing(upload)}})

    def media_metadata(self, req: Request) -> Response:
        user = self._authorize(req, "media.write")
        body = _json_object(req)
        alt = _scalar_field(body, "metadata", "alt_text")
        text = alt.get("text") if isinstance(alt, dict) else None
        if not isinstance(body.get("id"), str) or not isinstance(text, str):
            raise invalid("$.id and $.metadata.alt_text.text are required strings")
        if len(text) > 1000:
            raise invalid("$.metadata.alt_text.text: must be at most 1000 characters")
        with self.lock:
            upload = self._upload(user, req, body["id"])
            upload.alt = text
        return Response(200, {"data": {"id": upload.id, "associated_metadata": {"alt_text": {"text": text}}}})

    def _new_upload(self, user: _User, media_type: str, category: str, total: int) -> _Upload:
        upload = _Upload(self._next_id(), user.id, media_type, category, total, time.time() + self.media_ttl)
        self.media[upload.id] = upload
        self.uploads += 1
        return upload

    def _upload(self, user: _User, req: Request, media_id: str | None = None) -> _Upload:
        media_id = media_id or (req.match.group("id") if req.match else "")
        upload = self.media.get(media_id)
        if upload is None or upload.owner != user.id or upload.expires < time.time():
            raise invalid(f"Media id {media_id} not found.")
        return upload

    def _processing(self, upload: _Upload) -> dict[str, Any]:
        if upload.state == "succeeded":
            return {"state": "succeeded", "progress_percent": 100}
        if upload.state == "failed":
            return {"state": "failed", "progress_percent": 100,
                    "error": {"code": 1, "name": "InvalidMedia", "message": "Unsupported video format"}}
        done = int(100 * upload.polls / max(1, self.processing_polls))
        return {"state": upload.state, "check_after_secs": self.check_after_secs, "progress_percent": done}

    # -- OAuth 2.0 ------------------------------------------------------------------------------
    def token(self, req: Request) -> Response:
        form = req.form()
        with self.lock:
            self.refresh_calls += 1
            client = self._client(req, form)
            if form.get("grant_type") == "authorization_code":
                code = self.oauth.redeem(form, client)
                issued = self._issue(code.user, code.scopes, client)
                return Response(200, {"token_type": "bearer", "expires_in": int(self.access_ttl),
                                      "scope": " ".join(sorted(code.scopes)), **issued})
            if form.get("grant_type") != "refresh_token":
                raise oauth_error(400, "invalid_request", "grant_type must be authorization_code or "
                                                          "refresh_token.")
            grant = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if grant is None or grant["client"] != client:
                raise oauth_error(400, "invalid_request", "Value passed for the token was invalid.")
            issued = self._issue(grant["user"], grant["scopes"], client)
        return Response(200, {"token_type": "bearer", "expires_in": int(self.access_ttl),
                              "scope": " ".join(sorted(grant["scopes"])), **issued})

    def authorize(self, req: Request) -> Response:
        """X's consent page for the signed-in user (``sign_in``)."""
        with self.lock:
            return self.oauth.consent_page(req, self.clients, {"tweet.read", "tweet.write", "users.read"})

    def authorize_decision(self, req: Request) -> Response:
        with self.lock:
            return self.oauth.decide(req, self.clients, self._user_named)

    def sign_in(self, handle: str, followers: int = 0) -> None:
        """Who is signed in on the stand-in's own site (the consent page acts for them)."""
        username = handle.lstrip("@")
        with self.lock:
            self.oauth.signed_in = username
            self._user_named(username, followers)

    def oauth_app(self, redirect_uri: str) -> dict[str, str]:
        # The public client: PKCE instead of a secret.
        if redirect_uri:
            self.oauth.redirect_uris["standin-public"].add(redirect_uri)
        return {"client_id": "standin-public"}

    def _user_named(self, username: str, followers: int = 0) -> str:
        user = next((u for u in self.users.values() if u.username == username), None)
        if user is None:
            user = _User(self._next_id(), username, followers)
            self.users[user.id] = user
        return user.id

    def _client(self, req: Request, form: dict[str, str]) -> str:
        if (basic := basic_client(req)) is not None:
            client_id, secret = basic
            if client_id not in self.clients or self.clients[client_id] != secret:
                raise oauth_error(401, "unauthorized_client", "Missing valid authorization header")
            return client_id
        client_id = form.get("client_id", "")
        if client_id not in self.clients or self.clients[client_id] is not None:
            # A confidential client must authenticate with Basic auth.
            raise oauth_error(401, "unauthorized_client", "Missing valid authorization header")
        return client_id

    def _issue(self, user_id: str, scopes: frozenset[str], client: str) -> dict[str, str]:
        access = secrets.token_urlsafe(32)
        self.tokens[access] = {"user": user_id, "scopes": scopes, "client": client,
                               "exp": time.time() + self.access_ttl}
        issued = {"access_token": access}
        if "offline.access" in scopes:
            refresh = secrets.token_urlsafe(32)
            self.refresh_tokens[refresh] = {"user": user_id, "scopes": scopes, "client": client}
            issued["refresh_token"] = refresh
        return issued

    def _authorize(self, req: Request, *scopes: str) -> _User:
        with self.lock:
            token = self.tokens.get(req.bearer() or "")
            if token is None or token["exp"] < time.time():
                raise problem(401, "Unauthorized")
            if not set(scopes) <= token["scopes"]:
                raise problem(403, "You are not permitted to perform this action.")
            return self.users[token["user"]]

    def _next_id(self) -> str:
        # A snowflake: milliseconds since X's epoch in the high bits, so ids sort by time.
        with self.lock:
            self._last_id = max(self._last_id + 1, (int(time.time() * 1000) - _TWEPOCH_MS) << 22)
            return str(self._last_id)

    def duplicates(self) -> int:
        with self.lock:
            seen: dict[tuple[str, str], int] = {}
            for c in self.created:
                ident = (str(c.data.get("account")), unicodedata.normalize("NFC", str(c.data.get("text"))))
                seen[ident] = seen.get(ident, 0) + 1
        return sum(n - 1 for n in seen.values())


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tco(seed: str) -> str:
    return "https://t.co/" + hashlib.sha256(seed.encode()).hexdigest()[:10]


def _json_object(req: Request) -> dict[str, Any]:
    if not req.headers.get("content-type", "").startswith("application/json"):
        raise invalid("Content-Type must be application/json")
    data = req.json()
    if not isinstance(data, dict):
        raise invalid("$: object expected")
    return data


def _list_field(body: dict[str, Any], outer: str, inner: str) -> list[Any]:
    value = _scalar_field(body, outer, inner)
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        raise invalid(f"$.{outer}.{inner}: a non-empty array is expected")
    return value


def _scalar_field(body: dict[str, Any], outer: str, inner: str) -> Any:
    container = body.get(outer)
    if container is None:
        return None
    if not isinstance(container, dict):
        raise invalid(f"$.{outer}: object expected")
    return container.get(inner)


def _fields(req: Request, name: str, known: set[str]) -> set[str]:
    fields = set(filter(None, req.query.get(name, "").split(",")))
    if fields - known:
        raise invalid(f"The `{name}` query parameter value [{sorted(fields - known)[0]}] is not one of "
                      f"[{', '.join(sorted(known))}]")
    return fields


def _int_param(req: Request, name: str, default: int) -> int:
    raw = req.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid(f"The `{name}` query parameter value [{raw}] is not valid") from None


def _time_param(req: Request, name: str) -> float | None:
    raw = req.query.get(name)
    if raw is None:
        return None
    try:
        when = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise invalid(f"The `{name}` query parameter value [{raw}] is not a valid RFC 3339 date-time "
                      "(YYYY-MM-DDTHH:mm:ssZ)") from None
    return when.timestamp()


def _multipart(req: Request) -> dict[str, bytes]:
    ctype = req.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise invalid("Content-Type must be multipart/form-data")
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + req.body)
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            fields[name] = part.get_payload(decode=True) or b""
    return fields
