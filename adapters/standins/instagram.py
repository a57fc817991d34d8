"""Instagram's content-publishing API, as far as crosspost speaks to it (platforms.md section 6).

Versioned routes (``/v24.0/...``; see :mod:`adapters.standins.graph`):

* ``POST /{ig-user}/media`` -> a container: ``image_url`` (IMAGE), ``media_type=REELS&video_url``,
  carousel items (``is_carousel_item=true``, IMAGE or ``media_type=VIDEO``), or
  ``media_type=CAROUSEL&children=a,b`` (2 to ``max_carousel`` finished items of this user, each used
  once). Captions: at most 2200 characters, 30 hashtags and 20 mentions.
* ``GET /{container}?fields=status_code,status``: IN_PROGRESS for ``image_polls`` / ``video_polls`` /
  ``carousel_polls`` reads, then FINISHED (or ERROR for a URL in ``broken_urls``); EXPIRED after 24 h.
* ``POST /{ig-user}/media_publish?creation_id=``: only a FINISHED, unpublished, non-item container
  (code 9007/2207027 while in progress), within the rolling 24-hour quota (code 9/2207042).
* ``GET /{ig-user}/content_publishing_limit``, ``GET /{ig-user}/media`` (newest first, cursor paging),
  ``GET /{ig-user}?fields=followers_count``, ``GET /{media}?fields=permalink,timestamp``.
* Tokens: Instagram-Login tokens refresh at ``/refresh_access_token?grant_type=ig_refresh_token``
  (unversioned as documented, at least 24 h old, unexpired); Facebook-Login tokens are extended at
  ``/oauth/access_token?grant_type=fb_exchange_token`` with the app id and secret. Both live 60 days.
* Connecting through Facebook Login (:class:`adapters.standins.graph.MetaLogin`): the dialog
  ``/dialog/oauth`` for the professional account ``sign_in`` names, the code at ``/oauth/access_token``,
  and ``GET /me/accounts`` listing the user's Page with its ``instagram_business_account``.

Error texts the docs do not give verbatim (caption limits, carousel rules, a too-young token) are the
stand-in's own words under the codes platforms.md lists.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.standins.base import Request, Response
from adapters.standins.graph import Container, GraphStandIn, MetaLogin, graph_error, graph_time, invalid

TOKEN_LIFE = 60 * 24 * 3600
CAPTION_LIMIT, MAX_HASHTAGS, MAX_MENTIONS = 2200, 30, 20
SCOPES = {
    "instagram": {"basic": "instagram_business_basic", "publish": "instagram_business_content_publish"},
    "facebook": {"basic": "instagram_basic", "publish": "instagram_content_publish"},
}
_URL_RE = re.compile(r"https?://[^\s/$.?#][^\s]*", re.IGNORECASE)
_HASHTAG_RE = re.compile(r"(?<![\w#])#\w+")
_MENTION_RE = re.compile(r"(?<![\w@])@[\w.]+")


@dataclass
class _User:
    id: str
    username: str
    followers: int
    login: str


@dataclass
class _Token:
    user: str
    scopes: frozenset[str]
    issued_at: float
    expires_at: float
    state: str = "valid"  # "valid" | "revoked"


class InstagramStandIn(GraphStandIn):
    platform = "instagram"
    buc_code = 80002
    buc_type = "instagram"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.users: dict[str, _User] = {}
        self.tokens: dict[str, _Token] = {}
        self.containers: dict[str, Container] = {}
        self.media: list[dict[str, Any]] = []  # published, oldest first
        self.app_id, self.app_secret = "1122334455", secrets.token_hex(16)
        self.refreshes = 0
        self.login = MetaLogin(self._professional, self.app_id, self.app_secret)
        self._defaults()
        super().__init__(host, port)

    def _defaults(self) -> None:
        # Settable per test.
        self.image_polls, self.video_polls, self.carousel_polls = 0, 2, 0
        self.quota_total = 100
        self.max_carousel = 10
        self.token_min_age = 24 * 3600.0
        self.broken_urls: set[str] = set()

    def register(self) -> None:
        user = r"/(?P<user>\d+)"
        self.route("GET", r"/refresh_access_token", self.refresh_token)
        self.graph_route("GET", r"/refresh_access_token", self.refresh_token)
        self.graph_route("GET", r"/oauth/access_token", self.exchange_token)
        self.graph_route("POST", r"/oauth/access_token", self.exchange_token)
        self.graph_route("GET", r"/dialog/oauth", self.dialog)
        self.graph_route("POST", r"/dialog/oauth", self.dialog)
        self.graph_route("GET", r"/me/accounts", self.me_accounts)
        self.graph_route("POST", rf"{user}/media", self.create_container)
        self.graph_route("POST", rf"{user}/media_publish", self.publish)
        self.graph_route("GET", rf"{user}/media", self.list_media)
        self.graph_route("GET", rf"{user}/content_publishing_limit", self.publishing_limit)
        self.graph_route("GET", r"/(?P<id>[^/]+)", self.node)

    # -- accounts and control -----------------------------------------------------------------------
    def add_account(self, handle: str, followers: int = 0, login: str = "instagram",
                    scopes: tuple[str, ...] | None = None) -> dict[str, str]:
        """A professional account and a fresh long-lived token for it."""
        with self.lock:
            user = _User(self.new_id(), handle.lstrip("@"), followers, login)
            self.users[user.id] = user
            granted = frozenset(scopes if scopes is not None else SCOPES[login].values())
            token = self._issue(user, granted)
            credentials = {"access_token": token, "user_id": user.id,
                           "expires_at": datetime.fromtimestamp(self.tokens[token].expires_at, UTC)
                           .isoformat(timespec="seconds")}
            if login == "facebook":
                credentials.update(login="facebook", app_id=self.app_id, app_secret=self.app_secret)
            return credentials

    def sign_in(self, handle: str, followers: int = 0) -> None:
        """Signed in on facebook.com as the admin of the Page linked to the professional account
        ``handle`` (made if it is new)."""
        with self.lock:
            self.login.codes.signed_in = handle.lstrip("@")
            self._professional(handle.lstrip("@"), followers)

    def oauth_app(self, redirect_uri: str) -> dict[str, str]:
        if redirect_uri:
            self.login.codes.redirect_uris[self.app_id].add(redirect_uri)
        return {"client_id": self.app_id, "client_secret": self.app_secret}

    def _professional(self, username: str, followers: int = 0) -> str:
        user = next((u for u in self.users.values()
                     if u.username == username and u.login == "facebook"), None)
        if user is None:
            user = _User(self.new_id(), username, followers, "facebook")
            self.users[user.id] = user
        return user.id

    def dialog(self, req: Request) -> Response:
        with self.lock:
            return self.login.dialog(req)

    def me_accounts(self, req: Request) -> Response:
        """The Facebook user's Page, linked to their professional account (``pages_show_list``)."""
        params, _ = self.params(req)
        with self.lock:
            token = self._valid(self.token_of(req, params))
            if "pages_show_list" not in token.scopes:
                raise graph_error("(#200) The permission(s) pages_show_list are not available.", 200)
            user = self.users[token.user]
            page = {"id": str(int(user.id) + 500_000), "name": f"{user.username} Page",
                    "access_token": "EAAP" + secrets.token_urlsafe(40), "tasks": ["CREATE_CONTENT"],
                    "instagram_business_account": {"id": user.id, "username": user.username}}
            return Response(200, {"data": [page] if user.login == "facebook" else []})

    def invalidate(self, token: str) -> None:
        """The user changed password or removed the app: code 190/460 from now on."""
        with self.lock:
            self.tokens[token].state = "revoked"

    def age_token(self, token: str, seconds: float) -> None:
        """Pretend ``token`` was issued ``seconds`` earlier (it expires that much earlier too)."""
        with self.lock:
            self.tokens[token].issued_at -= seconds
            self.tokens[token].expires_at -= seconds

    def expire_containers(self) -> None:
        with self.lock:
            for container in self.containers.values():
                container.created_at -= 25 * 3600

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.containers.clear()
            self.media.clear()
            self.refreshes = 0
            self._defaults()

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"users": len(self.users), "containers": len(self.containers), "media": len(self.media)}

    def uploads(self, kind: str | None = None) -> int:
        """Containers created (Meta fetched the media once for each), optionally of one media type."""
        with self.lock:
            return sum(1 for c in self.containers.values() if kind is None or c.media_type == kind)

    # -- tokens -------------------------------------------------------------------------------------
    def refresh_token(self, req: Request) -> Response:
        params, _ = self.params(req)
        if params.get("grant_type") != "ig_refresh_token":
            raise invalid("grant_type must be ig_refresh_token")
        with self.lock:
            value = self.token_of(req, params)
            token = self._valid(value)
            user = self.users[token.user]
            if user.login != "instagram":
                raise graph_error("Invalid OAuth access token - Cannot parse access token", 190)
            if time.time() - token.issued_at < self.token_min_age:
                raise invalid("The access token is less than 24 hours old and cannot be refreshed yet")
            self.refreshes += 1
            fresh = self._issue(user, token.scopes)
            return Response(200, {"access_token": fresh, "token_type": "bearer", "expires_in": TOKEN_LIFE})

    def exchange_token(self, req: Request) -> Response:
        params, _ = self.params(req)
        if params.get("code") is not None and params.get("grant_type") in (None, "authorization_code"):
            with self.lock:
                user, scopes = self.login.redeem(params)
                short = self._issue(self.users[user], scopes)
                self.tokens[short].expires_at = time.time() + 5_400  # Facebook Login's short-lived token
            return Response(200, {"access_token": short, "token_type": "bearer", "expires_in": 5_400})
        if params.get("grant_type") != "fb_exchange_token":
            raise invalid("grant_type must be fb_exchange_token")
        if params.get("client_id") != self.app_id or params.get("client_secret") != self.app_secret:
            raise graph_error("Error validating application. Invalid application ID or secret.", 101)
        with self.lock:
            token = self._valid(str(params.get("fb_exchange_token") or ""))
            self.refreshes += 1
            fresh = self._issue(self.users[token.user], token.scopes)
            return Response(200, {"access_token": fresh, "token_type": "bearer",
                                  "expires_in": TOKEN_LIFE - 56})

    # -- publishing ---------------------------------------------------------------------------------
    def create_container(self, req: Request) -> Response:
        params, _ = self.params(req)
        with self.lock:
            user = self._authorize(req, params, "publish")
            item = _flag(params.get("is_carousel_item"))
            media_type = str(params.get("media_type") or ("IMAGE" if params.get("image_url") else "")).upper()
            polls = self.image_polls
            children: list[str] = []
            if media_type == "IMAGE":
                url = self._url(params, "image_url")
            elif media_type in ("REELS", "VIDEO"):
                url = self._url(params, "video_url")
                polls = self.video_polls
                if media_type == "VIDEO" and not item:
                    raise invalid("The VIDEO media type is only for carousel items; publish single videos as "
                                  "REELS")
                if media_type == "REELS" and item:
                    raise invalid("REELS cannot be a carousel item; use media_type=VIDEO")
            elif media_type == "CAROUSEL":
                url, polls = None, self.carousel_polls
                children = self._children(str(params.get("children") or ""), user)
            elif not media_type:
                raise invalid("The parameter image_url or media_type is required")
            else:
                raise invalid(f"Unsupported media_type {media_type}", subcode=2207023)
            if not item:
                self._check_caption(str(params.get("caption") or ""))
            container = Container(self.new_id(), user.id, media_type, {**params, "is_carousel_item": item},
                                  polls_left=polls, children=children,
                                  error="Error: 2207003: Media download has failed" if url in self.broken_urls
                                  else None)
            container.params.pop("access_token", None)
            for child in children:
                self.containers[child].params["used"] = True
            self.containers[container.id] = container
            return Response(200, {"id": container.id})

    def publish(self, req: Request) -> Response:
        params, _ = self.params(req)
        with self.lock:
            user = self._authorize(req, params, "publish")
            creation = str(params.get("creation_id") or "")
            if not creation:
                raise invalid("The parameter creation_id is required")
            container = self.containers.get(creation)
            if container is None or container.owner != user.id:
                raise graph_error("Media ID is not available", 9007, subcode=2207006)
            status = self._status(container)
            if container.params.get("is_carousel_item"):
                raise invalid("A carousel item cannot be published on its own", subcode=2207028)
            if status == "IN_PROGRESS":
                raise graph_error("Media ID is not available", 9007, subcode=2207027,
                                  user_msg="The media is not ready for publishing, please wait for a moment")
            if status == "EXPIRED":
                raise invalid("The media container has expired; create a new one", subcode=2207008)
            if status != "FINISHED":
                raise invalid(f"The media container cannot be published ({status})")
            if self._used_quota(user) >= self.quota_total:
                raise graph_error("Application request limit reached", 9, subcode=2207042,
                                  user_msg="You have reached the maximum number of posts that is allowed "
                                           "to be published in 24 hours.")
            container.status_code = "PUBLISHED"
            caption = str(container.params.get("caption") or "")
            media_id = self.new_id()
            kind = {"IMAGE": "IMAGE", "REELS": "VIDEO", "CAROUSEL": "CAROUSEL_ALBUM"}[container.media_type]
            self.media.append({"id": media_id, "user": user.id, "caption": caption, "media_type": kind,
                               "timestamp": time.time(), "container": container.id,
                               "permalink": f"https://www.instagram.com/p/{secrets.token_urlsafe(8)}/"})
            self.record("media", {
                "account": user.username, "text": caption, "media_type": container.media_type,
                "items": len(container.children) or 1,
                "urls": [self._media_url(c) for c in container.children or [container.id]]}, id=media_id)
            return Response(200, {"id": media_id})

    def list_media(self, req: Request) -> Response:
        params, _ = self.params(req)
        with self.lock:
            user = self._authorize(req, params, "basic")
            fields = _fields(params, {"id"})
            items = [m for m in reversed(self.media) if m["user"] == user.id]
            return self.paged(req, params, items, lambda m: self._render(m, fields))

    def publishing_limit(self, req: Request) -> Response:
        params, _ = self.params(req)
        with self.lock:
            user = self._authorize(req, params, "basic")
            fields = _fields(params, {"quota_usage"})
            entry: dict[str, Any] = {"quota_usage": self._used_quota(user),
                                     "config": {"quota_total": self.quota_total, "quota_duration": 86400}}
            return Response(200, {"data": [{k: v for k, v in entry.items() if k in fields}]})

    def node(self, req: Request) -> Response:
        params, _ = self.params(req)
        object_id = req.match.group("id") if req.match else ""
        with self.lock:
            token = self._valid(self.token_of(req, params))
            user = self.users[token.user]
            if object_id in (user.id, "me"):
                node = {"id": user.id, "user_id": user.id, "username": user.username,
                        "followers_count": user.followers, "follows_count": 0,
                        "media_count": sum(1 for m in self.media if m["user"] == user.id)}
                return Response(200, _only(node, _fields(params, {"id"})))
            container = self.containers.get(object_id)
            if container is not None and container.owner == user.id:
                status = container.read_status()
                text = {"IN_PROGRESS": "In Progress: Media is still being processed.",
                        "FINISHED": "Finished: Media has been uploaded and it is ready to be published.",
                        "PUBLISHED": "Published: Media has been successfully published.",
                        "EXPIRED": "Expired: Media was not published within 24 hours.",
                        "ERROR": container.error or "Error"}[status]
                return Response(200, _only({"id": container.id, "status_code": status, "status": text},
                                           _fields(params, {"id"})))
            media = next((m for m in self.media if m["id"] == object_id and m["user"] == user.id), None)
            if media is not None:
                return Response(200, self._render(media, _fields(params, {"id"})))
            raise graph_error(f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot "
                              "be loaded due to missing permissions, or does not support this operation.",
                              100, subcode=33, type="GraphMethodException")

    # -- helpers ------------------------------------------------------------------------------------
    def _issue(self, user: _User, scopes: frozenset[str]) -> str:
        token = ("IGAA" if user.login == "instagram" else "EAAI") + secrets.token_urlsafe(40)
        now = time.time()
        self.tokens[token] = _Token(user.id, scopes, now, now + TOKEN_LIFE)
        return token

    def _valid(self, value: str) -> _Token:
        token = self.tokens.get(value)
        if token is None:
            raise graph_error("Invalid OAuth access token - Cannot parse access token", 190)
        if token.state == "revoked":
            raise graph_error("Error validating access token: The session has been invalidated because the "
                              "user changed their password or Facebook has changed the session for security "
                              "reasons.", 190, subcode=460)
        if token.expires_at <= time.time():
            when = datetime.fromtimestamp(token.expires_at, UTC).strftime("%A, %d-%b-%y %H:%M:%S UTC")
            raise graph_error(f"Error validating access token: Session has expired on {when}.", 190,
                              subcode=463)
        return token

    def _authorize(self, req: Request, params: dict[str, Any], need: str) -> _User:
        token = self._valid(self.token_of(req, params))
        wanted = req.match.group("user") if req.match else ""
        user = self.users[token.user]
        if wanted != user.id:
            raise graph_error(f"Unsupported request. Object with ID '{wanted}' does not exist, cannot be "
                              "loaded due to missing permissions, or does not support this operation.", 100,
                              subcode=33, type="GraphMethodException")
        if SCOPES[user.login][need] not in token.scopes:
            raise graph_error("(#10) Application does not have permission for this action", 10)
        return user

    def _url(self, params: dict[str, Any], name: str) -> str:
        url = params.get(name)
        if not url:
            raise invalid(f"The parameter {name} is required")
        if not isinstance(url, str) or not _URL_RE.fullmatch(url):
            raise graph_error("The media could not be fetched from this URI", 9004, subcode=2207052)
        return url

    def _check_caption(self, caption: str) -> None:
        text = _URL_RE.sub(" ", caption)
        for what, count, limit in (("characters", len(caption), CAPTION_LIMIT),
                                   ("hashtags", len(_HASHTAG_RE.findall(text)), MAX_HASHTAGS),
                                   ("mentions", len(_MENTION_RE.findall(text)), MAX_MENTIONS)):
            if count > limit:
                raise invalid(f"The caption has {count} {what}; at most {limit}", subcode=2207010)

    def _children(self, raw: str, user: _User) -> list[str]:
        ids = [c.strip() for c in raw.split(",") if c.strip()]
        if not 2 <= len(ids) <= self.max_carousel or len(set(ids)) != len(ids):
            raise invalid(f"A carousel needs 2 to {self.max_carousel} different children, not {len(ids)}",
                          subcode=2207028)
        for child_id in ids:
            child = self.containers.get(child_id)
            if child is None or child.owner != user.id or not child.params.get("is_carousel_item") \
                    or child.params.get("used"):
                raise invalid(f"Child {child_id} is not an unused carousel item of this user",
                              subcode=2207028)
            status = self._status(child)
            if status == "IN_PROGRESS":
                raise graph_error("Media ID is not available", 9007, subcode=2207027,
                                  user_msg="The carousel item is not ready, please wait for a moment")
            if status != "FINISHED":
                raise invalid(f"Child {child_id} cannot be used ({status})", subcode=2207028)
        return ids

    def _status(self, container: Container) -> str:
        """The status without counting as a read (only status reads move processing along)."""
        if container.status_code in ("IN_PROGRESS", "FINISHED") and \
                time.time() - container.created_at > 24 * 3600:
            container.status_code = "EXPIRED"
        return container.status_code

    def _used_quota(self, user: _User) -> int:
        since = time.time() - 24 * 3600
        return sum(1 for m in self.media if m["user"] == user.id and m["timestamp"] > since)

    def _media_url(self, container_id: str) -> str:
        params = self.containers[container_id].params
        return str(params.get("image_url") or params.get("video_url") or "")

    def _render(self, media: dict[str, Any], fields: set[str]) -> dict[str, Any]:
        node = {"id": media["id"], "caption": media["caption"], "media_type": media["media_type"],
                "timestamp": graph_time(media["timestamp"]), "permalink": media["permalink"]}
        return _only(node, fields)


def _fields(params: dict[str, Any], default: set[str]) -> set[str]:
    raw = params.get("fields")
    return {f.strip() for f in str(raw).split(",") if f.strip()} | {"id"} if raw else default


def _only(node: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k in fields}


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")
