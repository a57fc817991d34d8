"""Stand-in for the Threads API (graph.threads.net), as far as crosspost speaks to it (platforms.md §4).

Implements container creation (``POST /v1.0/{user}/threads``: TEXT, IMAGE, VIDEO, CAROUSEL, carousel
items, replies), container status (``GET /v1.0/{container}``) that turns FINISHED after a number of
polls, ``threads_publish`` with the 250-post / 1000-reply rolling quota, media reads, the profile's
``threads`` and ``replies`` lists, ``threads_insights`` (followers_count), ``threads_publishing_limit``
and ``GET /refresh_access_token``; for connecting an account, the authorize page ``/oauth/authorize``
(threads.net's; the exact registered ``redirect_uri``, ``state``, comma-separated scopes, no PKCE),
``POST /oauth/access_token`` (the code and the app's secret -> a one-hour token and ``user_id``) and
``GET /access_token?grant_type=th_exchange_token`` (-> a 60-day token). Errors use Meta's Graph envelope
``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`` with HTTP 400, as Graph does.

Media is not downloaded: a URL must be absolute http(s), and a URL in ``fail_urls`` makes its
container end in ERROR. The access token may come as ``Authorization: Bearer`` or ``access_token``.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import regex

from adapters.standins.base import Fault, HttpError, Request, Response, StandIn
from adapters.standins.oauth import AuthorizationCodes

TEXT_LIMIT = 500
LINK_LIMIT = 5
TOKEN_LIFE = 60 * 86400
CONTAINER_LIFE = 86400
ALL_SCOPES = ("threads_basic", "threads_content_publish", "threads_manage_insights", "threads_read_replies")
MEDIA_TYPES = {"TEXT": "TEXT_POST", "IMAGE": "IMAGE", "VIDEO": "VIDEO", "CAROUSEL": "CAROUSEL_ALBUM"}
_EMOJI = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}")
# A link as Meta's composer sees one: a scheme, then no white space (trimmed by ``_trim``).
_LINK = regex.compile(r"https?://[^\s<>\"]+", regex.IGNORECASE)
_CLOSES = {")": "(", "]": "[", "}": "{"}


def threads_length(text: str) -> int:
    """Meta's 500 (platforms.md §4.3): code points, except that an emoji counts its UTF-8 bytes."""
    return sum(len(g.encode()) if _EMOJI.search(g) else len(g) for g in regex.findall(r"\X", text))


def links(text: str, attachment: str | None = None) -> set[str]:
    """The distinct links of a post: those in its text and its link attachment (§4.3, at most 5)."""
    found = {_trim(m.group()) for m in _LINK.finditer(text)}
    return found | {attachment} if attachment else found


def _trim(url: str) -> str:
    """Drop what ends a sentence rather than the link: final punctuation, and a closing bracket that
    no opening one inside the link matches."""
    while url:
        last = url[-1]
        if last in ".,;:!?'\u2019\u201d" or (last in _CLOSES and url.count(last) > url.count(_CLOSES[last])):
            url = url[:-1]
        else:
            return url
    return url


def graph_error(message: str, code: int, subcode: int | None = None, status: int = 400,
                kind: str = "OAuthException", transient: bool = False) -> HttpError:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code,
                             "fbtrace_id": secrets.token_urlsafe(12)}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    return HttpError(status, {"error": error})


def _oauth_refusal(status: int, error: str, description: str) -> HttpError:
    # The token endpoint answers in Graph's envelope, like the rest of graph.threads.net.
    if error == "invalid_client":
        return graph_error("Error validating client secret.", 1)
    if "redirect" in description:
        return graph_error("Error validating verification code. Please make sure your redirect_uri is "
                           "identical to the one you used in the OAuth dialog request", 100, 36008)
    return graph_error("This authorization code has been used.", 100, 36009)


@dataclass
class _User:
    id: str
    username: str
    followers: int


@dataclass
class _Token:
    user_id: str
    scopes: frozenset[str]
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass
class _Container:
    id: str
    user_id: str
    media_type: str
    params: dict[str, str]
    polls_left: int
    fails: str | None = None
    carousel_item: bool = False
    used: bool = False
    created_at: float = field(default_factory=time.time)
    media_id: str | None = None


class ThreadsStandIn(StandIn):
    platform = "threads"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.users: dict[str, _User] = {}
        self.tokens: dict[str, _Token] = {}
        self.containers: dict[str, _Container] = {}
        self.media: dict[str, dict[str, Any]] = {}
        self.refresh_calls = 0
        self._seq = 17_841_400_000_000_000
        # The Threads app (its own id and secret, apart from the Meta app's) and its codes.
        self.app_id, self.app_secret = "3344556677", secrets.token_hex(16)
        self.oauth = AuthorizationCodes({self.app_id: set()}, pkce="none", scope_sep=",",
                                        refuse=_oauth_refusal)
        self._defaults()
        super().__init__(host, port)

    def _defaults(self) -> None:
        # Status polls before a container is FINISHED, per media type; settable per test.
        self.polls = {"TEXT": 0, "IMAGE": 1, "VIDEO": 2, "CAROUSEL": 1}
        self.fail_urls: dict[str, str] = {}
        self.quota_total = 250
        self.reply_quota_total = 1000
        # The followers_count shape is unsure (platforms.md §4.7): "total_value" or "values".
        self.followers_shape = "total_value"

    def register(self) -> None:
        self.route("GET", r"/refresh_access_token", self.refresh)
        self.route("GET", r"/oauth/authorize", self.authorize)
        self.route("POST", r"/oauth/authorize", self.authorize_decision)
        self.route("POST", r"/oauth/access_token", self.access_token)
        self.route("GET", r"/access_token", self.exchange)
        self.route("POST", r"/v1\.0/(?P<user>[^/]+)/threads", self.create_container)
        self.route("POST", r"/v1\.0/(?P<user>[^/]+)/threads_publish", self.publish)
        self.route("GET", r"/v1\.0/(?P<user>[^/]+)/(?P<edge>threads|replies)", self.list_media)
        self.route("GET", r"/v1\.0/(?P<user>[^/]+)/threads_insights", self.insights)
        self.route("GET", r"/v1\.0/(?P<user>[^/]+)/threads_publishing_limit", self.publishing_limit)
        self.route("GET", r"/v1\.0/(?P<id>[^/]+)", self.read_node)

    # -- accounts and control ---------------------------------------------------------------------
    def add_account(self, handle: str, followers: int = 0,
                    scopes: tuple[str, ...] = ALL_SCOPES) -> dict[str, str]:
        """A long-lived token for ``handle``, issued two days ago (so it may be refreshed)."""
        username = handle.lstrip("@")
        now = time.time()
        with self.lock:
            user = next((u for u in self.users.values() if u.username == username), None)
            if user is None:
                user = _User(self._next_id(), username, followers)
                self.users[user.id] = user
            user.followers = followers
            token = "THAA" + secrets.token_urlsafe(40)
            issued = now - 2 * 86400
            self.tokens[token] = _Token(user.id, frozenset(scopes), issued, issued + TOKEN_LIFE)
            expires = datetime.fromtimestamp(issued + TOKEN_LIFE, UTC).isoformat(timespec="seconds")
        return {"access_token": token, "user_id": user.id, "expires_at": expires}

    def sign_in(self, handle: str, followers: int = 0) -> None:
        """Signed in on threads.net as ``handle`` (the consent page acts for them)."""
        with self.lock:
            self.oauth.signed_in = handle.lstrip("@")
            self._user_named(handle.lstrip("@"), followers)

    def oauth_app(self, redirect_uri: str) -> dict[str, str]:
        if redirect_uri:
            self.oauth.redirect_uris[self.app_id].add(redirect_uri)
        return {"client_id": self.app_id, "client_secret": self.app_secret}

    def _user_named(self, username: str, followers: int = 0) -> str:
        user = next((u for u in self.users.values() if u.username == username), None)
        if user is None:
            user = _User(self._next_id(), username, followers)
            self.users[user.id] = user
        return user.id

    # -- connecting ---------------------------------------------------------------------------------
    def authorize(self, req: Request) -> Response:
        with self.lock:
            return self.oauth.consent_page(req, {self.app_id: self.app_secret}, {"threads_basic"})

    def authorize_decision(self, req: Request) -> Response:
        with self.lock:
            return self.oauth.decide(req, {self.app_id: self.app_secret}, self._user_named)

    def access_token(self, req: Request) -> Response:
        """The code, with the app's id and secret, for a short-lived (one-hour) token."""
        params = self._params(req)
        with self.lock:
            if params.get("grant_type") != "authorization_code":
                raise graph_error("Param grant_type must be authorization_code", 100)
            client = self.oauth.form_client(params, {self.app_id: self.app_secret})
            code = self.oauth.redeem(params, client)
            token = "THAA" + secrets.token_urlsafe(40)
            self.tokens[token] = _Token(code.user, code.scopes, time.time(), time.time() + 3600)
            return Response(200, {"access_token": token, "user_id": int(code.user)})

    def exchange(self, req: Request) -> Response:
        """``th_exchange_token``: a valid short-lived token and the app secret for a 60-day token."""
        params = self._params(req)
        with self.lock:
            if params.get("grant_type") != "th_exchange_token":
                raise graph_error("Param grant_type must be th_exchange_token", 100)
            if params.get("client_secret") != self.app_secret:
                raise graph_error("Error validating client secret.", 1)
            token = self._token(params.get("access_token", ""))
            long = "THAA" + secrets.token_urlsafe(40)
            self.tokens[long] = _Token(token.user_id, token.scopes, time.time(), time.time() + TOKEN_LIFE)
            return Response(200, {"access_token": long, "token_type": "bearer", "expires_in": TOKEN_LIFE})

    def expire_tokens(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                token.expires_at = min(token.expires_at, time.time() - 1)

    def expire_containers(self) -> None:
        with self.lock:
            for container in self.containers.values():
                container.created_at -= CONTAINER_LIFE + 1

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.containers.clear()
            self.media.clear()
            self.refresh_calls = 0
            self._defaults()

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"users": len(self.users), "containers": len(self.containers), "media": len(self.media)}

    def rate_limited(self, fault: Fault) -> Response:
        # Graph answers rate limits with HTTP 400 and code 17 (user) and says when in the
        # business-use-case header, in minutes; there is no Retry-After.
        minutes = max(1, math.ceil((fault.retry_after if fault.retry_after is not None else 60) / 60))
        usage = {"0": [{"type": "threads", "call_count": 100, "total_cputime": 40, "total_time": 60,
                        "estimated_time_to_regain_access": minutes}]}
        body = fault.body or graph_error("User request limit reached", 17).body
        return Response(400, body, {"X-Business-Use-Case-Usage": json.dumps(usage)})

    def _note_retry_after(self, req: Request, response: Response) -> None:
        # The wait is in the usage header (minutes), not Retry-After: count early comers by it too.
        super()._note_retry_after(req, response)
        try:
            usage = json.loads(response.headers.get("X-Business-Use-Case-Usage", "{}"))
            minutes = max((e.get("estimated_time_to_regain_access", 0) for v in usage.values() for e in v),
                          default=0)
        except (ValueError, AttributeError, TypeError):
            return
        if minutes:
            with self.lock:
                self.retry_blocks[self.scope(req)] = time.time() + 60 * float(minutes)

    def fault_response(self, fault: Fault) -> Response:
        status = fault.status or 500
        body = fault.body or graph_error("An unexpected error has occurred. Please retry your request later.",
                                         2, status=status, transient=True).body
        return Response(status, body)

    # -- endpoints ----------------------------------------------------------------------------
    def create_container(self, req: Request) -> Response:
        params = self._params(req)
        with self.lock:
            user = self._user(req, params, "threads_content_publish")
            kind = params.get("media_type", "")
            if kind not in MEDIA_TYPES:
                raise graph_error("Param media_type must be one of {TEXT, IMAGE, VIDEO, CAROUSEL}", 100)
            text = params.get("text", "")
            if kind == "TEXT" and not text.strip():
                raise graph_error("Param text is required for TEXT posts", 100)
            if threads_length(text) > TEXT_LIMIT:
                raise graph_error(f"Param text must be at most {TEXT_LIMIT} characters long.", 100)
            attachment = params.get("link_attachment")
            if attachment and kind != "TEXT":
                raise graph_error("Param link_attachment is only supported for TEXT posts", 100)
            if len(links(text, attachment)) > LINK_LIMIT:
                raise graph_error("THREADS_API__LINK_LIMIT_EXCEEDED: a post may contain at most "
                                  f"{LINK_LIMIT} links", 100, 4279028)
            if len(params.get("alt_text", "")) > 1000:
                raise graph_error("Param alt_text must be at most 1000 characters long.", 100)
            carousel_item = params.get("is_carousel_item", "false").lower() == "true"
            if carousel_item and kind not in ("IMAGE", "VIDEO"):
                raise graph_error("Only IMAGE and VIDEO containers can be carousel items", 100)
            fails = None
            if kind in ("IMAGE", "VIDEO"):
                url = params.get(f"{kind.lower()}_url", "")
                if not _is_url(url):
                    raise graph_error(f"Param {kind.lower()}_url must be a valid URL", 100)
                fails = self.fail_urls.get(url)
            if kind == "CAROUSEL":
                self._check_children(user, params.get("children", ""))
            if params.get("reply_to_id"):
                self._check_reply(user, params["reply_to_id"])
            container = _Container(self._next_id(), user.id, kind, params, self.polls[kind], fails,
                                   carousel_item)
            self.containers[container.id] = container
            return Response(200, {"id": container.id})

    def publish(self, req: Request) -> Response:
        params = self._params(req)
        with self.lock:
            user = self._user(req, params, "threads_content_publish")
            container = self.containers.get(params.get("creation_id", ""))
            if container is None or container.user_id != user.id:
                raise graph_error("Param creation_id must be a container of this user", 100, 4279009)
            status = self._status(container)
            if status == "IN_PROGRESS":
                raise graph_error("The media is not ready to be published. Please wait a moment.",
                                  9007, 2207027)
            if status != "FINISHED" or container.carousel_item:
                raise graph_error(f"The container cannot be published (status {status})", 100, 4279009)
            reply_to = container.params.get("reply_to_id")
            since = time.time() - 86400
            used = sum(1 for m in self.media.values() if m["_user"] == user.id and m["_at"] > since
                       and bool(m["is_reply"]) == bool(reply_to))
            if used >= (self.reply_quota_total if reply_to else self.quota_total):
                raise graph_error("You have reached the maximum number of posts that the API may publish in "
                                  "24 hours", 9, 2207042, kind="OAuthException")
            media_id = self._next_id()
            shortcode = secrets.token_urlsafe(8).replace("-", "x").replace("_", "y")
            now = time.time()
            children = [c for c in container.params.get("children", "").split(",") if c]
            self.media[media_id] = {
                "id": media_id, "media_type": MEDIA_TYPES[container.media_type],
                "text": container.params.get("text", ""), "shortcode": shortcode, "username": user.username,
                "permalink": f"https://www.threads.net/@{user.username}/post/{shortcode}",
                "timestamp": _graph_time(now),
                "is_reply": bool(reply_to), "replied_to": {"id": reply_to} if reply_to else None,
                "_user": user.id, "_at": now,
            }
            container.media_id = media_id
            self.record("reply" if reply_to else "post", {
                "account": user.username, "text": container.params.get("text", ""),
                "media_type": container.media_type, "reply_to": reply_to,
                "link_attachment": container.params.get("link_attachment"),
                "media_urls": [self._url_of(self.containers[c]) for c in children]
                or [u for u in (self._url_of(container),) if u],
            }, id=media_id)
            return Response(200, {"id": media_id})

    def read_node(self, req: Request) -> Response:
        params = self._params(req)
        node = req.match["id"] if req.match else ""
        with self.lock:
            user = self._user(req, params, "threads_basic", path_user=False)
            fields = [f for f in params.get("fields", "id").split(",") if f]
            container = self.containers.get(node)
            if container is not None and container.user_id == user.id:
                body = {"id": container.id, "status": self._status(container, poll="status" in fields)}
                if body["status"] == "ERROR" and "error_message" in fields:
                    body["error_message"] = container.fails
                return Response(200, {k: v for k, v in body.items() if k in fields or k == "id"})
            media = self.media.get(node)
            if media is not None:
                return Response(200, _fields(media, fields))
            if node in ("me", user.id):
                me = {"id": user.id, "username": user.username}
                return Response(200, {k: v for k, v in me.items() if k in fields or k == "id"})
        raise graph_error(f"Unsupported get request. Object with ID '{node}' does not exist, cannot be "
                          "loaded due to missing permissions, or does not support this operation", 100, 33)

    def list_media(self, req: Request) -> Response:
        params = self._params(req)
        replies = bool(req.match and req.match["edge"] == "replies")
        with self.lock:
            user = self._user(req, params, "threads_read_replies" if replies else "threads_basic")
            try:
                limit = min(max(int(params.get("limit", "25")), 1), 100)
            except ValueError:
                raise graph_error("Param limit must be an integer", 100) from None
            fields = [f for f in params.get("fields", "id").split(",") if f]
            mine = sorted((m for m in self.media.values()
                           if m["_user"] == user.id and m["is_reply"] == replies),
                          key=lambda m: m["_at"], reverse=True)[:limit]
            return Response(200, {"data": [_fields(m, fields) for m in mine],
                                  "paging": {"cursors": {"before": "QVFI", "after": "QVFI"}}})

    def insights(self, req: Request) -> Response:
        params = self._params(req)
        with self.lock:
            user = self._user(req, params, "threads_manage_insights")
            metrics = [m for m in params.get("metric", "").split(",") if m]
            if not metrics:
                raise graph_error("The parameter metric is required", 100)
            data = []
            for metric in metrics:
                if metric != "followers_count":
                    raise graph_error(f"The stand-in has no metric {metric}", 100)
                value = ({"total_value": {"value": user.followers}} if self.followers_shape == "total_value"
                         else {"values": [{"value": user.followers, "end_time": _graph_time(time.time())}]})
                data.append({"name": "followers_count", "period": "day", "title": "followers_count",
                             "description": "The number of followers on your profile.", **value,
                             "id": f"{user.id}/insights/followers_count/day"})
            return Response(200, {"data": data})

    def publishing_limit(self, req: Request) -> Response:
        params = self._params(req)
        with self.lock:
            user = self._user(req, params, "threads_basic")
            since = time.time() - 86400
            recent = [m for m in self.media.values() if m["_user"] == user.id and m["_at"] > since]
            return Response(200, {"data": [{
                "quota_usage": sum(1 for m in recent if not m["is_reply"]),
                "config": {"quota_total": self.quota_total, "quota_duration": 86400},
                "reply_quota_usage": sum(1 for m in recent if m["is_reply"]),
                "reply_config": {"quota_total": self.reply_quota_total, "quota_duration": 86400}}]})

    def refresh(self, req: Request) -> Response:
        params = self._params(req)
        with self.lock:
            self.refresh_calls += 1
            if params.get("grant_type") != "th_refresh_token":
                raise graph_error("Param grant_type must be th_refresh_token", 100)
            old = params.get("access_token", "")
            token = self._token(old)
            if time.time() - token.issued_at < 86400:
                raise graph_error("A long-lived token can be refreshed only when it is at least 24 hours "
                                  "old", 190, 460)
            token.revoked = True
            new = "THAA" + secrets.token_urlsafe(40)
            self.tokens[new] = _Token(token.user_id, token.scopes, time.time(), time.time() + TOKEN_LIFE)
            return Response(200, {"access_token": new, "token_type": "bearer", "expires_in": TOKEN_LIFE})

    # -- helpers ------------------------------------------------------------------------------
    def _params(self, req: Request) -> dict[str, str]:
        params = dict(req.query)
        if req.body:
            ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype not in ("", "application/x-www-form-urlencoded"):
                raise graph_error(f"The stand-in reads form bodies, not {ctype}", 100)
            params.update({k: v[-1] for k, v in parse_qs(req.body.decode("utf-8", "replace"),
                                                         keep_blank_values=True).items()})
        return params

    def _token(self, value: str) -> _Token:
        token = self.tokens.get(value)
        if token is None or token.revoked:
            raise graph_error("Invalid OAuth access token - Cannot parse access token", 190)
        if token.expires_at < time.time():
            raise graph_error("Error validating access token: Session has expired", 190, 463)
        return token

    def _user(self, req: Request, params: dict[str, str], scope: str, path_user: bool = True) -> _User:
        value = req.bearer() or params.get("access_token")
        if not value:
            raise graph_error("An access token is required to request this resource.", 104)
        token = self._token(value)
        if scope not in token.scopes:
            raise graph_error(f"(#10) Application does not have permission for this action ({scope})", 10)
        user = self.users[token.user_id]
        wanted = req.match["user"] if path_user and req.match else None
        if wanted is not None and wanted not in ("me", user.id):
            raise graph_error(f"Unsupported request: object '{wanted}' is not the token's user", 100, 33)
        return user

    def _status(self, container: _Container, poll: bool = False) -> str:
        if container.media_id:
            return "PUBLISHED"
        if time.time() - container.created_at > CONTAINER_LIFE:
            return "EXPIRED"
        if container.polls_left > 0:
            if poll:
                container.polls_left -= 1
            return "IN_PROGRESS"
        return "ERROR" if container.fails else "FINISHED"

    def _check_children(self, user: _User, raw: str) -> None:
        ids = [c.strip() for c in raw.split(",") if c.strip()]
        if not 2 <= len(ids) <= 20:
            raise graph_error("Param children must list between 2 and 20 carousel items", 100)
        for child_id in ids:
            child = self.containers.get(child_id)
            if child is None or child.user_id != user.id or not child.carousel_item or child.used:
                raise graph_error(f"Param children: {child_id} is not an unused carousel item of this "
                                  "user", 100)
            status = self._status(child)
            if status != "FINISHED":
                raise graph_error(f"Carousel item {child_id} is not ready (status {status})", 100)
        for child_id in ids:
            self.containers[child_id].used = True

    def _check_reply(self, user: _User, reply_to: str) -> None:
        if reply_to not in self.media:
            raise graph_error(f"Param reply_to_id: no post {reply_to}", 100, 33)

    def _url_of(self, container: _Container) -> str | None:
        return container.params.get("image_url") or container.params.get("video_url")

    def _next_id(self) -> str:
        with self.lock:
            self._seq += 1
            return str(self._seq)


def _fields(media: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    return {k: media[k] for k in ["id", *fields] if k in media and not k.startswith("_")}


def _graph_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
