"""A Mastodon instance, as far as crosspost speaks to one (platforms.md section 3).

Implements ``GET /api/v2/instance``, ``POST /api/v2/media`` (multipart), ``GET /api/v1/media/:id``,
``POST /api/v1/statuses`` (JSON or form body, Idempotency-Key, media_ids, in_reply_to_id),
``GET /api/v1/accounts/verify_credentials`` and ``GET /api/v1/accounts/:id/statuses``, and for
connecting an account ``POST /api/v1/apps`` (an app registration: its client id and secret, its exact
redirect URIs and scopes), the consent page ``/oauth/authorize`` (PKCE optional, S256 only, as 4.3+)
and ``POST /oauth/token`` (the secret in the form or Basic auth; a code works once), with the
real server's checks and error bodies: an unknown token is 401, a missing scope or a disabled login
403, a blank or too-long status, an unknown visibility or unusable media 422, each as
``{"error": "..."}``.

Media processing is driven by polls, not by time: an image is ready at once (200), a video or GIF
answers 202, then 206 to the first ``processing_polls`` polls of ``GET /api/v1/media/:id`` and 200
after that. ``uploads`` counts every accepted upload.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import html
import io
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from PIL import Image
from twitter_text import extract_urls_with_indices

from adapters.standins.base import Fault, HttpError, Request, Response, StandIn
from adapters.standins.oauth import AuthorizationCodes, basic_client
from adapters.standins.text import graphemes

VISIBILITIES = ("public", "unlisted", "private", "direct")
DEFAULT_MAX_CHARACTERS = 500
IDEMPOTENCY_TTL = 3600.0
DESCRIPTION_LIMIT = 1500
SUPPORTED_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4", "video/quicktime")
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp",
               "video/mp4": "mp4", "video/quicktime": "mov"}
NOT_READY = "Cannot attach files that have not finished processing. Try again in a moment!"

# What Mastodon's formatter turns into links besides URLs: mentions (local or remote) and hashtags.
# URLs are what twitter-text's extractor finds with a scheme (Mastodon's Extractor, called with
# ``extract_url_without_protocol: false``): a known top-level domain, balanced parentheses.
_ENTITY_RE = re.compile(
    r"(?<![\w/@])@(?P<user>\w+)(?:@(?P<domain>[\w.-]+\w))?"
    r"|(?<![\w/#])#(?P<tag>\w+)"
)
_REMOTE_MENTION_RE = re.compile(r"(?<![\w/@])(@\w+)@[\w.-]+\w")
_PARAGRAPH_RE = re.compile(r"\n\s*\n")
_SCHEME_RE = re.compile(r"https?://(?:www\.)?")


@dataclass
class _Account:
    id: str
    username: str
    followers: int
    following: int = 0
    disabled: bool = False
    created_at: str = field(default_factory=lambda: _iso(datetime.now(UTC)))


@dataclass
class _Media:
    id: str
    username: str
    type: str  # "image" | "gifv" | "video"
    mime: str
    filename: str
    size: int
    sha256: str
    description: str | None
    polls_left: int
    width: int | None = None
    height: int | None = None
    status_id: str | None = None


@dataclass
class _Token:
    username: str
    scopes: frozenset[str]


def _iso(when: datetime) -> str:
    """Mastodon's timestamp format: milliseconds, UTC, ``Z``."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


class MastodonStandIn(StandIn):
    platform = "mastodon"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.accounts: dict[str, _Account] = {}
        self.tokens: dict[str, _Token] = {}
        self.statuses: list[dict[str, Any]] = []
        self.media: dict[str, _Media] = {}
        self.uploads = 0
        # (account id, key) -> (status id, time stored)
        self.idempotency: dict[tuple[str, str], tuple[str, float]] = {}
        self._last_id = 0
        # Connecting: registered apps (client id -> secret) and their codes; the scopes an app may ask.
        self.clients: dict[str, str | None] = {}
        self.apps_registered = 0
        self.app_tokens = 0  # client_credentials grants
        self.oauth = AuthorizationCodes({}, pkce="optional", methods=("S256",),
                                        refuse=_doorkeeper_error)
        self._defaults()
        super().__init__(host, port)

    def _defaults(self) -> None:
        # Settable per test: an instance with another limit, a shorter key memory, a 429 without
        # Retry-After (Mastodon's own rack-attack answer sends only the X-RateLimit-* headers).
        self.max_characters = DEFAULT_MAX_CHARACTERS
        self.characters_reserved_per_url = 23
        self.max_media_attachments = 4
        self.idempotency_ttl = IDEMPOTENCY_TTL
        self.retry_after_header = True
        self.image_size_limit = 16_777_216
        self.video_size_limit = 103_809_024
        self.image_matrix_limit = 33_177_600
        # Polls of GET /api/v1/media/:id that answer 206 before a video is ready.
        self.processing_polls = 1

    def register(self) -> None:
        self.route("GET", r"/api/v2/instance", self.instance)
        self.route("POST", r"/api/v2/media", self.upload_media)
        self.route("GET", r"/api/v1/media/(?P<id>[^/]+)", self.show_media)
        self.route("POST", r"/api/v1/statuses", self.create_status)
        self.route("GET", r"/api/v1/accounts/verify_credentials", self.verify_credentials)
        self.route("GET", r"/api/v1/accounts/(?P<id>[^/]+)/statuses", self.account_statuses)
        self.route("POST", r"/api/v1/apps", self.create_app)
        self.route("GET", r"/oauth/authorize", self.authorize)
        self.route("POST", r"/oauth/authorize", self.authorize_decision)
        self.route("POST", r"/oauth/token", self.token)

    # -- accounts and control ---------------------------------------------------------------------
    def add_account(self, handle: str, followers: int = 0,
                    scopes: tuple[str, ...] = ("read", "write")) -> dict[str, str]:
        """A new token for ``handle`` (the account is created on first use)."""
        username = handle.lstrip("@").split("@")[0]
        token = secrets.token_urlsafe(32)
        with self.lock:
            account = self.accounts.get(username)
            if account is None:
                account = self.accounts[username] = _Account(self._next_id(), username, followers)
            account.followers = followers
            self.tokens[token] = _Token(username, frozenset(scopes))
        return {"access_token": token}

    def sign_in(self, handle: str, followers: int = 0) -> None:
        """Who is signed in on the instance's own pages (the consent page acts for them)."""
        username = handle.lstrip("@").split("@")[0]
        with self.lock:
            self.oauth.signed_in = username
            self._account_named(username, followers)

    def _account_named(self, username: str, followers: int = 0) -> str:
        if username not in self.accounts:
            self.accounts[username] = _Account(self._next_id(), username, followers)
        return username

    # -- connecting: app registration and OAuth 2 (Doorkeeper's answers) ---------------------------
    def create_app(self, req: Request) -> Response:
        """``POST /api/v1/apps``: client_name and redirect_uris required (absolute URIs, or the
        out-of-band one), scopes default ``read``; the answer carries the client id and secret."""
        form = self._params(req)
        name, website = _scalar(form.get("client_name")), _scalar(form.get("website"))
        raw = form.get("redirect_uris")
        uris = ([u for u in (_scalar(v) for v in raw) if u] if isinstance(raw, list)
                else (_scalar(raw) or "").split())
        scopes = (_scalar(form.get("scopes")) or "read").split()
        if not name:
            raise HttpError(422, {"error": "Validation failed: Application name can't be blank"})
        if not uris or any(u != "urn:ietf:wg:oauth:2.0:oob" and not re.match(r"^[a-z][a-z0-9+.-]*://\S+$", u)
                           for u in uris):
            raise HttpError(422, {"error": "Validation failed: Redirect URI must be an absolute URI."})
        if not all(scope.split(":")[0] in _KNOWN_SCOPES for scope in scopes):
            raise HttpError(422, {"error": "Validation failed: Scopes are invalid"})
        client, secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.lock:
            self.apps_registered += 1
            self.clients[client] = secret
            self.oauth.redirect_uris[client] = set(uris)
            self.oauth.allowed_scopes[client] = frozenset(scopes)
            app_id = self._next_id()
        return Response(200, {"id": app_id, "name": name, "website": website, "scopes": scopes,
                              "redirect_uri": "\n".join(uris), "redirect_uris": uris,
                              "vapid_key": "", "client_id": client, "client_secret": secret,
                              "client_secret_expires_at": 0})

    def authorize(self, req: Request) -> Response:
        with self.lock:
            return self.oauth.consent_page(req, self.clients, set())

    def authorize_decision(self, req: Request) -> Response:
        with self.lock:
            return self.oauth.decide(req, self.clients, self._account_named)

    def token(self, req: Request) -> Response:
        """``POST /oauth/token``: authorization_code with the app's id and secret (form or Basic), or
        client_credentials: an app token, no user (how a client checks its registration still exists;
        Doorkeeper answers 401 invalid_client for an app the instance deleted)."""
        form = req.form()
        if (basic := basic_client(req)) is not None:
            form = {**form, "client_id": basic[0], "client_secret": basic[1]}
        with self.lock:
            if form.get("grant_type") not in ("authorization_code", "client_credentials"):
                raise _doorkeeper_error(400, "unsupported_grant_type", "The authorization grant type is "
                                        "not supported by the authorization server.")
            client = self.oauth.form_client(form, self.clients)
            if form["grant_type"] == "client_credentials":
                # Mastodon's documentation asks for one of the app's redirect URIs here too.
                if form.get("redirect_uri") not in self.oauth.redirect_uris.get(client, set()):
                    raise _doorkeeper_error(400, "invalid_grant", "The redirect uri included is not valid.")
                scopes = set((form.get("scope") or "read").split())
                if not scopes <= self.oauth.allowed_scopes.get(client, frozenset()):
                    raise _doorkeeper_error(400, "invalid_scope", "The requested scope is invalid, unknown, "
                                            "or malformed.")
                self.app_tokens += 1
                return Response(200, {"access_token": secrets.token_urlsafe(32), "token_type": "Bearer",
                                      "scope": " ".join(sorted(scopes)), "created_at": int(time.time())})
            code = self.oauth.redeem(form, client)
            token = secrets.token_urlsafe(32)
            self.tokens[token] = _Token(code.user, code.scopes)
            scope = " ".join(sorted(code.scopes))
        return Response(200, {"access_token": token, "token_type": "Bearer", "scope": scope,
                              "created_at": int(time.time())})

    def delete_app(self, client_id: str) -> None:
        """The instance's admin removed a registered app: its id and secret no longer authenticate."""
        with self.lock:
            self.clients.pop(client_id, None)

    def revoke(self, token: str) -> None:
        with self.lock:
            self.tokens.pop(token, None)

    def disable(self, handle: str) -> None:
        with self.lock:
            self.accounts[handle.lstrip("@").split("@")[0]].disabled = True

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.statuses.clear()
            self.idempotency.clear()
            self.media.clear()
            self.uploads = 0
            for account in self.accounts.values():
                account.disabled = False
            self._defaults()

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"accounts": len(self.accounts), "statuses": len(self.statuses), "uploads": self.uploads}

    def rate_limited(self, fault: Fault) -> Response:
        wait = fault.retry_after if fault.retry_after is not None else 1
        reset = datetime.now(UTC) + timedelta(seconds=wait)
        headers = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Reset": reset.isoformat(timespec="microseconds").replace("+00:00", "Z")}
        if self.retry_after_header:
            headers["Retry-After"] = str(int(wait) if float(wait).is_integer() else wait)
        return Response(429, fault.body or {"error": "Too many requests"}, headers)

    # -- endpoints ----------------------------------------------------------------------------
    def instance(self, req: Request) -> Response:
        host = self.url.split("://", 1)[1]
        return Response(200, {
            "domain": host, "title": "crosspost stand-in", "version": "4.5.0", "source_url": "",
            "configuration": {
                "urls": {"streaming": f"ws://{host}"},
                "accounts": {"max_featured_tags": 10},
                "statuses": {"max_characters": self.max_characters,
                             "max_media_attachments": self.max_media_attachments,
                             "characters_reserved_per_url": self.characters_reserved_per_url},
                "media_attachments": {"supported_mime_types": list(SUPPORTED_TYPES),
                                      "description_limit": DESCRIPTION_LIMIT,
                                      "image_size_limit": self.image_size_limit,
                                      "image_matrix_limit": self.image_matrix_limit,
                                      "video_size_limit": self.video_size_limit,
                                      "video_frame_rate_limit": 120, "video_matrix_limit": 8_294_400},
                "polls": {"max_options": 4, "max_characters_per_option": 50,
                          "min_expiration": 300, "max_expiration": 2_629_746},
            },
        })

    def create_status(self, req: Request) -> Response:
        account = self._authorize(req, "write:statuses")
        params = self._params(req)
        key = req.headers.get("idempotency-key") or None
        with self.lock:
            # Like PostStatusService: a remembered key answers before any validation.
            if key:
                seen = self.idempotency.get((account.id, key))
                if seen and time.time() - seen[1] < self.idempotency_ttl:
                    return Response(200, self._render(self._status(seen[0])))
            text = _scalar(params.get("status")) or ""
            spoiler = _scalar(params.get("spoiler_text")) or ""
            visibility = _scalar(params.get("visibility")) or "public"
            media = self._attachable(account, params.get("media_ids"))
            if visibility not in VISIBILITIES:
                raise HttpError(422, {"error": f"'{visibility}' is not a valid visibility"})
            if params.get("scheduled_at"):
                raise HttpError(422, {"error": "the stand-in does not schedule statuses"})
            if not text.strip() and not media:
                raise HttpError(422, {"error": "Validation failed: Text can't be blank"})
            length = graphemes(spoiler + _countable(text, self.characters_reserved_per_url))
            if length > self.max_characters:
                raise HttpError(422, {"error": f"Validation failed: Text character limit of "
                                               f"{self.max_characters} exceeded"})
            reply_to = _scalar(params.get("in_reply_to_id")) or None
            parent = self._parent(reply_to) if reply_to else None
            status = self._store(account, text, spoiler, visibility, parent, media)
            if key:
                self.idempotency[(account.id, key)] = (status["id"], time.time())
            self.record("status", {
                "account": account.username, "text": text, "visibility": visibility,
                "spoiler_text": spoiler, "format": params["_format"],
                "user_agent": req.headers.get("user-agent", ""), "in_reply_to_id": reply_to,
                "media": [{"id": m.id, "type": m.type, "description": m.description, "sha256": m.sha256}
                          for m in media],
            }, key=key, id=status["id"])
            return Response(200, self._render(status))

    def upload_media(self, req: Request) -> Response:
        account = self._authorize(req, "write:media")
        fields, files = _multipart(req)
        if "file" not in files or not files["file"][2]:
            raise HttpError(422, {"error": "Validation failed: File can't be blank"})
        filename, declared, data = files["file"]
        description = fields.get("description") or None
        if description and len(description) > DESCRIPTION_LIMIT:
            raise HttpError(422, {"error": "Validation failed: Description is too long (maximum is "
                                           f"{DESCRIPTION_LIMIT} characters)"})
        mime = _sniff(data)
        if mime is None:
            raise HttpError(422, {"error": "File type of uploaded media could not be verified"})
        if mime not in SUPPORTED_TYPES:
            raise HttpError(422, {"error": "Validation failed: File content type is invalid"})
        if declared not in (mime, "application/octet-stream"):
            raise HttpError(422, {"error": "Validation failed: File has contents that are not what they "
                                           "are reported to be"})
        image = mime.startswith("image/")
        limit = self.image_size_limit if image else self.video_size_limit
        if len(data) > limit:
            raise HttpError(422, {"error": f"Validation failed: File file size must be less than "
                                           f"{limit // (1024 * 1024)} MB"})
        width = height = None
        if image:
            try:
                with Image.open(io.BytesIO(data)) as picture:
                    width, height = picture.size
            except Exception:  # Pillow raises many kinds for a broken file
                raise HttpError(422, {"error": "File type of uploaded media could not be verified"}) from None
            if width * height > self.image_matrix_limit:
                raise HttpError(422, {"error": f"{width}x{height} images are not supported"})
        # Mastodon turns a GIF into a looping video (gifv), processed like one.
        kind = "image" if image and mime != "image/gif" else "gifv" if image else "video"
        with self.lock:
            item = _Media(self._next_id(), account.username, kind, mime, filename, len(data),
                          hashlib.sha256(data).hexdigest(), description,
                          0 if kind == "image" else self.processing_polls, width, height)
            self.media[item.id] = item
            self.uploads += 1
            return Response(200 if kind == "image" else 202, self._render_media(item, ready=kind == "image"))

    def show_media(self, req: Request) -> Response:
        account = self._authorize(req, "write:media")
        with self.lock:
            item = self.media.get(req.match.group("id") if req.match else "")
            if item is None or item.username != account.username:
                raise HttpError(404, {"error": "Record not found"})
            if item.polls_left > 0:
                item.polls_left -= 1
                return Response(206, self._render_media(item, ready=False))
            return Response(200, self._render_media(item, ready=True))

    def verify_credentials(self, req: Request) -> Response:
        account = self._authorize(req, "read:accounts")
        with self.lock:
            body = self._render_account(account)
            body["source"] = {"privacy": "public", "sensitive": False, "language": None, "note": "",
                              "fields": []}
            return Response(200, body)

    def account_statuses(self, req: Request) -> Response:
        # Public endpoint: a token is optional, but a bad one is still refused.
        viewer = self._authorize(req, "read:statuses") if req.headers.get("authorization") else None
        with self.lock:
            wanted = req.match.group("id") if req.match else ""
            owner = next((a for a in self.accounts.values() if a.id == wanted), None)
            if owner is None:
                raise HttpError(404, {"error": "Record not found"})
            try:
                limit = min(max(int(req.query.get("limit", "20")), 1), 40)
            except ValueError:
                limit = 20
            shown = ("public", "unlisted", "private", "direct") if viewer is owner else ("public", "unlisted")
            found = []
            for status in reversed(self.statuses):
                if status["_account"] != owner.username or status["visibility"] not in shown:
                    continue
                if req.query.get("exclude_replies") in ("true", "1") and status["in_reply_to_id"]:
                    continue
                if "max_id" in req.query and int(status["id"]) >= _int(req.query["max_id"]):
                    continue
                if "since_id" in req.query and int(status["id"]) <= _int(req.query["since_id"]):
                    continue
                found.append(self._render(status))
                if len(found) == limit:
                    break
            return Response(200, found)

    # -- helpers ------------------------------------------------------------------------------
    def _authorize(self, req: Request, scope: str) -> _Account:
        with self.lock:
            token = self.tokens.get(req.bearer() or "")
            if token is None:
                raise HttpError(401, {"error": "The access token is invalid"})
            # A top-level scope ("write") covers its parts ("write:statuses"); "profile" is
            # enough to read one's own account.
            granted = token.scopes
            if not (scope in granted or scope.split(":")[0] in granted
                    or (scope == "read:accounts" and "profile" in granted)):
                raise HttpError(403, {"error": "This action is outside the authorized scopes"})
            account = self.accounts[token.username]
            if account.disabled:
                raise HttpError(403, {"error": "Your login is currently disabled"})
            return account

    def _params(self, req: Request) -> dict[str, Any]:
        ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            data = req.json()
            if not isinstance(data, dict):
                raise HttpError(400, {"error": "Error occurred while parsing request parameters"})
            return {**data, "_format": "json"}
        if ctype in ("", "application/x-www-form-urlencoded"):
            params: dict[str, Any] = {"_format": "form"}
            for name, values in parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True).items():
                if name.endswith("[]"):
                    params[name[:-2]] = values
                else:
                    params[name] = values[-1]
            return params
        raise HttpError(415, {"error": f"the stand-in reads JSON or form bodies, not {ctype}"})

    def _attachable(self, account: _Account, raw: Any) -> list[_Media]:
        """The media a new status may carry, checked like PostStatusService#validate_media!."""
        if not isinstance(raw, list) or not raw:
            return []
        if len(raw) > self.max_media_attachments:
            raise HttpError(422, {"error": f"Cannot attach more than {self.max_media_attachments} files"})
        ids = [str(i) for i in raw]
        # Another account's media, or one already attached, is as unknown as a made-up id.
        missing = [i for i in ids if (m := self.media.get(i)) is None or m.username != account.username
                   or m.status_id is not None]
        if missing:
            raise HttpError(422, {"error": f"Media {', '.join(missing)} not found"})
        media = [self.media[i] for i in ids]
        if len(media) > 1 and any(m.type == "video" for m in media):
            raise HttpError(422, {"error": "Cannot attach a video to a post that already contains images"})
        if any(m.polls_left > 0 for m in media):
            raise HttpError(422, {"error": NOT_READY})
        return media

    def _parent(self, status_id: str) -> dict[str, Any]:
        for status in self.statuses:
            if status["id"] == status_id and status["visibility"] != "direct":
                return status
        raise HttpError(404, {"error": "The post you are trying to reply to does not appear to exist."})

    def _render_media(self, item: _Media, ready: bool) -> dict[str, Any]:
        base = f"{self.url}/system/media_attachments/files/{item.id}"
        meta = {"original": {"width": item.width, "height": item.height}} if item.width else {}
        return {"id": item.id, "type": item.type,
                "url": f"{base}/original/{item.filename}" if ready else None,
                "preview_url": f"{base}/small/{item.id}.{_EXTENSIONS[item.mime]}",
                "remote_url": None, "text_url": None, "meta": meta, "description": item.description,
                "blurhash": None}

    def _next_id(self) -> str:
        # Snowflake-like: milliseconds in the high bits, so ids sort by creation time.
        with self.lock:
            self._last_id = max(self._last_id + 1, int(time.time() * 1000) << 16)
            return str(self._last_id)

    def _store(self, account: _Account, text: str, spoiler: str, visibility: str,
               parent: dict[str, Any] | None, media: list[_Media]) -> dict[str, Any]:
        status_id = self._next_id()
        for item in media:
            item.status_id = status_id
        status = {
            "id": status_id, "created_at": _iso(datetime.now(UTC)),
            "in_reply_to_id": parent["id"] if parent else None,
            "in_reply_to_account_id": self.accounts[parent["_account"]].id if parent else None,
            "sensitive": bool(spoiler), "spoiler_text": spoiler,
            "visibility": visibility, "language": "en",
            "uri": f"{self.url}/users/{account.username}/statuses/{status_id}",
            "url": f"{self.url}/@{account.username}/{status_id}",
            "replies_count": 0, "reblogs_count": 0, "favourites_count": 0,
            "content": self._html(text), "reblog": None,
            "media_attachments": [self._render_media(m, ready=True) for m in media], "mentions": [],
            "tags": [], "emojis": [], "card": None, "poll": None, "_account": account.username,
        }
        self.statuses.append(status)
        return status

    def _status(self, status_id: str) -> dict[str, Any]:
        for status in self.statuses:
            if status["id"] == status_id:
                return status
        raise HttpError(404, {"error": "Record not found"})

    def _render(self, status: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in status.items() if not k.startswith("_")}
        body["account"] = self._render_account(self.accounts[status["_account"]])
        return body

    def _render_account(self, account: _Account) -> dict[str, Any]:
        return {
            "id": account.id, "username": account.username, "acct": account.username,
            "display_name": account.username, "locked": False, "bot": False,
            "created_at": account.created_at, "note": "", "url": f"{self.url}/@{account.username}",
            "followers_count": account.followers, "following_count": account.following,
            "statuses_count": sum(1 for s in self.statuses if s["_account"] == account.username),
        }

    def _html(self, text: str) -> str:
        """Mastodon's plain-text formatter: ``<p>`` per paragraph, ``<br />`` per line break,
        escaped text, and links whose scheme and tail are hidden in ``invisible`` spans."""
        paragraphs = [p for p in _PARAGRAPH_RE.split(text.strip()) if p.strip()]
        return "".join(f"<p>{'<br />'.join(self._line(line) for line in p.split(chr(10)))}</p>"
                       for p in paragraphs)

    def _line(self, line: str) -> str:
        out, pos = [], 0
        for start, end in _urls(line):
            out.append(self._entities(line[pos:start]))
            url = line[start:end]
            pos = end
            scheme = _SCHEME_RE.match(url)
            prefix = scheme.group() if scheme else ""
            shown, tail = url[len(prefix):len(prefix) + 30], url[len(prefix) + 30:]
            out.append(f'<a href="{html.escape(url)}" target="_blank" rel="nofollow noopener" '
                       f'translate="no"><span class="invisible">{html.escape(prefix)}</span>'
                       f'<span class="{"ellipsis" if tail else ""}">{html.escape(shown)}</span>'
                       f'<span class="invisible">{html.escape(tail)}</span></a>')
        out.append(self._entities(line[pos:]))
        return "".join(out)

    def _entities(self, text: str) -> str:
        """Mentions and hashtags of a stretch of text without URLs, as HTML."""
        out, pos = [], 0
        for m in _ENTITY_RE.finditer(text):
            out.append(html.escape(text[pos:m.start()]))
            pos = m.end()
            if m["user"]:
                # A resolved mention shows only the username, even for a remote account.
                host = f"https://{m['domain']}" if m["domain"] else self.url
                out.append(f'<span class="h-card" translate="no"><a href="{html.escape(host)}/@{m["user"]}" '
                           f'class="u-url mention">@<span>{m["user"]}</span></a></span>')
            else:
                out.append(f'<a href="{self.url}/tags/{m["tag"]}" class="mention hashtag" '
                           f'rel="tag">#<span>{m["tag"]}</span></a>')
        out.append(html.escape(text[pos:]))
        return "".join(out)


def _urls(text: str) -> list[tuple[int, int]]:
    """Where Mastodon sees URLs: twitter-text's extractor, scheme required (code point indices)."""
    return [tuple(u["indices"]) for u in extract_urls_with_indices(text, extract_urls_without_protocol=False)]


def _countable(text: str, url_length: int) -> str:
    """Mastodon's StatusLengthValidator#countable_text: each URL the extractor recognises becomes
    ``url_length`` characters, a remote mention ``@user@domain`` counts as ``@user``; a URL the
    extractor does not recognise (an unknown top-level domain) counts as its characters."""
    out, pos = [], 0
    for start, end in _urls(text):
        out.append(_REMOTE_MENTION_RE.sub(r"\1", text[pos:start]))
        out.append("x" * url_length)
        pos = end
    out.append(_REMOTE_MENTION_RE.sub(r"\1", text[pos:]))
    return "".join(out)


def _multipart(req: Request) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    """Fields and files (name -> (file name, declared type, bytes)) of a multipart/form-data body."""
    ctype = req.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        return {}, {}
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + req.body)
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode("utf-8", "replace")
        else:
            files[name] = (filename, part.get_content_type(), data)
    return fields, files


def _sniff(data: bytes) -> str | None:
    """The type a file's first bytes show, as the server's content-type detection reads it."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return "video/quicktime" if data[8:10] == b"qt" else "video/mp4"
    return None


def _scalar(value: Any) -> str | None:
    """A parameter as Rails would permit it: scalars become text, arrays and objects are dropped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


_KNOWN_SCOPES = frozenset({"read", "write", "follow", "push", "profile", "admin"})


def _doorkeeper_error(status: int, error: str, description: str) -> HttpError:
    # Doorkeeper's words: invalid_grant covers a bad, spent or foreign code, redirect_uri or verifier.
    if error == "invalid_grant":
        description = ("The provided authorization grant is invalid, expired, revoked, does not match the "
                       "redirection URI used in the authorization request, or was issued to another client.")
    elif error == "invalid_client":
        description = ("Client authentication failed due to unknown client, no client authentication "
                       "included, or unsupported authentication method.")
    return HttpError(status, {"error": error, "error_description": description})


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise HttpError(400, {"error": f"invalid id {value!r}"}) from None
