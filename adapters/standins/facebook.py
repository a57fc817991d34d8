"""A Facebook Page through the Graph API, as far as crosspost speaks to one (platforms.md section 5).

Versioned routes (``/v24.0/...``; see :mod:`adapters.standins.graph`):

* ``POST /{page}/feed`` message, link, attached_media (JSON list or ``attached_media[i]`` form fields
  holding ``{"media_fbid": ...}``) -> ``{"id": "<page>_<post>"}``; code 506 for the same message as
  the Page's latest post.
* ``POST /{page}/photos`` multipart ``source`` or ``url``, caption, published (default true) ->
  ``{"id", "post_id"}``; unpublished photos wait to be attached to one feed post, once.
* ``POST /{page}/videos`` ``file_url`` or multipart ``source`` (MP4), description, title -> ``{"id"}``;
  ``GET /{video}?fields=status`` answers ``processing`` for ``video_polls`` reads, then ``ready``.
* ``GET /{page}/published_posts`` (also ``/feed``, ``/posts``) newest first with cursor paging;
  ``GET /{page}?fields=followers_count,fan_count,access_token``: the Page token for a user token
  (a new one when the old was invalidated).

Connecting (Facebook Login, see :class:`adapters.standins.graph.MetaLogin`): the dialog
``/dialog/oauth`` acting for the admin of the Page ``sign_in`` names, ``/oauth/access_token`` for the
code (a short-lived user token) and ``grant_type=fb_exchange_token`` (a long-lived one; the app's id
and secret), and ``GET /me/accounts`` listing the user's Pages with their Page tokens.

Tokens: a Page token (``pages_manage_posts`` to publish, ``pages_read_engagement`` to read,
``publish_video`` for videos) and the long-lived user token it was derived from. Refusals use Graph's
codes (190 with subcodes 460/463, 200, 100, 104, 324, 506); texts the docs do not give verbatim
(message too long, link with attached_media) are the stand-in's own words.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from adapters.standins.base import Request, Response
from adapters.standins.graph import GraphStandIn, MetaLogin, Upload, graph_error, graph_time, invalid

TEXT_LIMIT = 63_206
MAX_PHOTO_BYTES = 4 * 1024 * 1024
MAX_ATTACHED = 10
DEFAULT_SCOPES = ("pages_manage_posts", "pages_read_engagement", "pages_show_list", "publish_video")
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
_URL_RE = re.compile(r"https?://[^\s/$.?#][^\s]*", re.IGNORECASE)
_ATTACHED_FIELD_RE = re.compile(r"attached_media\[(\d+)\]")


@dataclass
class _Token:
    kind: str  # "page" | "user"
    subject: str  # page id or user id
    scopes: frozenset[str]
    state: str = "valid"  # "valid" | "revoked" | "expired"


@dataclass
class _Page:
    id: str
    handle: str
    followers: int
    user: str
    token: str = ""


@dataclass
class _Video:
    id: str
    page: str
    description: str
    polls_left: int
    error: str | None
    status: str = "processing"
    data: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)


class FacebookStandIn(GraphStandIn):
    platform = "facebook"
    buc_code = 80001
    buc_type = "pages"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.pages: dict[str, _Page] = {}
        self.tokens: dict[str, _Token] = {}
        self.feed: list[dict[str, Any]] = []  # every post, oldest first
        self.photos: dict[str, dict[str, Any]] = {}
        self.videos: dict[str, _Video] = {}
        self.uploads = 0
        self.app_id, self.app_secret = "2233445566", secrets.token_hex(16)
        self.login = MetaLogin(self._admin_of, self.app_id, self.app_secret)
        self._defaults()
        super().__init__(host, port)

    def _defaults(self) -> None:
        # Settable per test: how many status reads a video stays "processing", and why the next
        # video fails to process (None: it does not).
        self.video_polls = 2
        self.next_video_error: str | None = None
        self.unreachable_links: set[str] = set()

    def register(self) -> None:
        page = r"/(?P<page>[^/]+)"
        self.graph_route("GET", r"/dialog/oauth", self.dialog)
        self.graph_route("POST", r"/dialog/oauth", self.dialog)
        self.graph_route("GET", r"/oauth/access_token", self.access_token)
        self.graph_route("POST", r"/oauth/access_token", self.access_token)
        self.graph_route("GET", r"/me/accounts", self.me_accounts)
        self.graph_route("POST", rf"{page}/feed", self.create_post)
        self.graph_route("POST", rf"{page}/photos", self.create_photo)
        self.graph_route("POST", rf"{page}/videos", self.create_video)
        self.graph_route("GET", rf"{page}/(?:published_posts|feed|posts)", self.list_posts)
        self.graph_route("GET", rf"{page}/videos", self.list_videos)
        self.graph_route("GET", r"/(?P<id>[^/]+)", self.node)

    # -- accounts and control -----------------------------------------------------------------------
    def add_account(self, handle: str, followers: int = 0,
                    scopes: tuple[str, ...] = DEFAULT_SCOPES) -> dict[str, str]:
        """A Page with its admin user: the Page id, a Page token and the long-lived user token."""
        with self.lock:
            page_id, user_id = self.new_id(), self.new_id()
            user_token = "EAAU" + secrets.token_urlsafe(40)
            self.tokens[user_token] = _Token("user", user_id, frozenset(scopes))
            page = self.pages[page_id] = _Page(page_id, handle.lstrip("@"), followers, user_id)
            page.token = self._mint_page_token(page, frozenset(scopes))
            return {"page_id": page_id, "access_token": page.token, "user_access_token": user_token}

    def sign_in(self, handle: str, followers: int = 0) -> None:
        """Signed in on facebook.com as the admin of the Page ``handle`` (made if it is new)."""
        with self.lock:
            self.login.codes.signed_in = handle.lstrip("@")
            self._admin_of(handle.lstrip("@"), followers)

    def oauth_app(self, redirect_uri: str) -> dict[str, str]:
        if redirect_uri:
            self.login.codes.redirect_uris[self.app_id].add(redirect_uri)
        return {"client_id": self.app_id, "client_secret": self.app_secret}

    def _admin_of(self, handle: str, followers: int = 0) -> str:
        page = next((p for p in self.pages.values() if p.handle == handle), None)
        if page is None:
            page_id = self.new_id()
            page = self.pages[page_id] = _Page(page_id, handle, followers, self.new_id())
        return page.user

    # -- connecting -----------------------------------------------------------------------------------
    def dialog(self, req: Request) -> Response:
        with self.lock:
            return self.login.dialog(req)

    def access_token(self, req: Request) -> Response:
        """The code for a short-lived user token, or ``fb_exchange_token`` for a long-lived one."""
        params, _ = self.params(req)
        with self.lock:
            if params.get("grant_type") == "fb_exchange_token":
                if params.get("client_id") != self.app_id or params.get("client_secret") != self.app_secret:
                    raise graph_error("Error validating application. Invalid application ID or secret.", 101)
                token = self.tokens.get(str(params.get("fb_exchange_token") or ""))
                if token is None or token.state != "valid" or token.kind != "user":
                    raise graph_error("Invalid OAuth access token - Cannot parse access token", 190)
                issued, life = self._user_token(token.subject, token.scopes), 5_183_944
            else:
                user, scopes = self.login.redeem(params)
                issued, life = self._user_token(user, scopes), 5_400
        return Response(200, {"access_token": issued, "token_type": "bearer", "expires_in": life})

    def me_accounts(self, req: Request) -> Response:
        """The user's Pages with a Page token each (``pages_show_list``)."""
        params, _ = self.params(req)
        with self.lock:
            token = self._token(req, params)
            if token.kind != "user":
                raise graph_error("(#100) Tried accessing nonexisting field (accounts) on node type (Page)",
                                  100)
            if "pages_show_list" not in token.scopes:
                raise graph_error("(#200) The permission(s) pages_show_list are not available.", 200)
            data = []
            for page in self.pages.values():
                if page.user == token.subject:
                    page.token = self._mint_page_token(page, token.scopes)
                    data.append({"id": page.id, "name": page.handle, "username": page.handle,
                                 "access_token": page.token, "tasks": ["CREATE_CONTENT", "MANAGE"]})
            paging = {"cursors": {"before": "0", "after": str(len(data))}}
            return Response(200, {"data": data, "paging": paging})

    def _user_token(self, user: str, scopes: frozenset[str]) -> str:
        value = "EAAU" + secrets.token_urlsafe(40)
        self.tokens[value] = _Token("user", user, scopes)
        return value

    def invalidate(self, token: str, state: str = "revoked") -> None:
        """Make ``token`` fail: ``revoked`` (code 190/460, password changed) or ``expired`` (190/463)."""
        with self.lock:
            self.tokens[token].state = state

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.feed.clear()
            self.photos.clear()
            self.videos.clear()
            self.uploads = 0
            self._defaults()

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"pages": len(self.pages), "posts": len(self.feed), "uploads": self.uploads}

    # -- endpoints ------------------------------------------------------------------------------------
    def create_post(self, req: Request) -> Response:
        params, _ = self.params(req)
        with self.lock:
            page = self._authorize(req, params, self._path_page(req), "pages_manage_posts")
            message = params.get("message") or ""
            link = params.get("link") or ""
            if not isinstance(message, str) or not isinstance(link, str):
                raise invalid("message and link must be strings")
            media = self._attached(params, page)
            if not message.strip() and not link and not media:
                raise invalid("Missing message or attachment")
            if len(message) > TEXT_LIMIT:
                raise invalid(f"The message is {len(message)} characters long; at most {TEXT_LIMIT}")
            if link and media:
                raise invalid("A post cannot have both a link and attached_media")
            if link and not _URL_RE.fullmatch(link):
                raise graph_error("Invalid URL: the link is not a valid URL", 100, subcode=2061006)
            if link in self.unreachable_links:
                raise graph_error("Error posting link: the URL could not be scraped", 100, subcode=1609005)
            latest = next((p for p in reversed(self.feed) if p["page"] == page.id), None)
            if message and latest and latest["message"] == message:
                raise graph_error("(#506) Duplicate status message", 506)
            for photo in media:
                self.photos[photo]["attached"] = True
            post = self._store(page, message, link=link, photos=media, kind="feed")
            return Response(200, {"id": post["id"]})

    def create_photo(self, req: Request) -> Response:
        params, files = self.params(req)
        with self.lock:
            page = self._authorize(req, params, self._path_page(req), "pages_manage_posts")
            source, url = files.get("source"), params.get("url")
            if source is None and not url:
                raise graph_error("(#324) Requires upload file", 324)
            if source is not None:
                _check_photo(source)
            elif not isinstance(url, str) or not _URL_RE.fullmatch(url):
                raise invalid("url should represent a valid URL")
            published = _flag(params.get("published"), default=True)
            caption = str(params.get("caption") or "")
            photo_id = self.new_id()
            self.uploads += 1
            self.photos[photo_id] = {"page": page.id, "published": published, "attached": published,
                                     "caption": caption, "alt": params.get("alt_text_custom"),
                                     "bytes": len(source.data) if source else 0}
            if not published:
                return Response(200, {"id": photo_id})
            post = self._store(page, caption, photos=[photo_id], kind="photo")
            return Response(200, {"id": photo_id, "post_id": post["id"]})

    def create_video(self, req: Request) -> Response:
        params, files = self.params(req)
        with self.lock:
            page = self._authorize(req, params, self._path_page(req), "pages_manage_posts", "publish_video")
            source, url = files.get("source"), params.get("file_url")
            if source is None and not url:
                raise invalid("Requires file_url or an uploaded source file")
            if source is not None and source.data[4:8] != b"ftyp":
                raise graph_error("The video file you selected is in a format that we don't support.", 352)
            if source is None and (not isinstance(url, str) or not _URL_RE.fullmatch(url)):
                raise invalid("file_url should represent a valid URL")
            video = _Video(self.new_id(), page.id, str(params.get("description") or ""), self.video_polls,
                           self.next_video_error,
                           data={"title": params.get("title"), "file_url": url,
                                 "bytes": len(source.data) if source else 0})
            self.next_video_error = None
            self.videos[video.id] = video
            self.uploads += 1
            self.record("video", {"account": page.handle, "text": video.description, "video": video.id,
                                  **video.data}, id=video.id)
            return Response(200, {"id": video.id})

    def list_posts(self, req: Request) -> Response:
        params, _ = self.params(req)
        with self.lock:
            page = self._authorize(req, params, self._path_page(req), "pages_read_engagement")
            fields = _fields(params, {"id", "message", "created_time"})
            items = [p for p in reversed(self.feed) if p["page"] == page.id]
            return self.paged(req, params, items, lambda p: self._render(p, fields))

    def list_videos(self, req: Request) -> Response:
        """The Page's videos, newest first, as soon as they are uploaded (a video published on upload
        is listed here under its description while it still processes)."""
        params, _ = self.params(req)
        with self.lock:
            page = self._authorize(req, params, self._path_page(req), "pages_read_engagement")
            fields = _fields(params, {"id", "description", "created_time"})
            items = [{"id": v.id, "description": v.description, "created_time": graph_time(v.created),
                      "permalink_url": f"/{page.id}/videos/{v.id}"}
                     for v in sorted(self.videos.values(), key=lambda v: v.created, reverse=True)
                     if v.page == page.id]
            return self.paged(req, params, items,
                              lambda v: {k: x for k, x in v.items() if k in fields and x != ""})

    def node(self, req: Request) -> Response:
        params, _ = self.params(req)
        object_id = req.match.group("id") if req.match else ""
        with self.lock:
            if object_id == "me":
                # A Page token's "me" is its Page; a user token's is the user.
                token = self._token(req, params)
                if token.kind != "user":
                    return Response(200, self._page_node(req, params, self.pages[token.subject]))
                return Response(200, {k: v for k, v in {"id": token.subject, "name": "Page admin"}.items()
                                      if k in _fields(params, {"id", "name"})})
            if object_id in self.pages:
                return Response(200, self._page_node(req, params, self.pages[object_id]))
            if object_id in self.videos:
                video = self.videos[object_id]
                self._authorize(req, params, video.page)
                return Response(200, self._video_node(video, _fields(params, {"id"})))
            post = next((p for p in self.feed if p["id"] == object_id), None)
            if post is not None:
                self._authorize(req, params, post["page"])
                return Response(200, self._render(post, _fields(params, {"id", "message", "created_time"})))
            self.token_of(req, params)
            raise graph_error(f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot "
                              "be loaded due to missing permissions, or does not support this operation.",
                              100, subcode=33, type="GraphMethodException")

    # -- helpers ----------------------------------------------------------------------------------------
    def _path_page(self, req: Request) -> str:
        page_id = req.match.group("page") if req.match else ""
        if page_id not in self.pages:
            raise graph_error(f"Unsupported post request. Object with ID '{page_id}' does not exist.", 100,
                              subcode=33, type="GraphMethodException")
        return page_id

    def _token(self, req: Request, params: dict[str, Any]) -> _Token:
        value = self.token_of(req, params)
        token = self.tokens.get(value)
        if token is None:
            raise graph_error("Invalid OAuth access token - Cannot parse access token", 190)
        if token.state == "revoked":
            raise graph_error("Error validating access token: The session has been invalidated because the "
                              "user changed their password or Facebook has changed the session for security "
                              "reasons.", 190, subcode=460)
        if token.state == "expired":
            raise graph_error("Error validating access token: Session has expired.", 190, subcode=463)
        return token

    def _authorize(self, req: Request, params: dict[str, Any], page_id: str, *needs: str) -> _Page:
        """The Page, if the request's token is that Page's token and has every permission in ``needs``."""
        token = self._token(req, params)
        page = self.pages[page_id]
        if token.kind != "page" or token.subject != page_id:
            raise graph_error("(#200) If posting to a page, requires both pages_read_engagement and "
                              "pages_manage_posts as an admin with sufficient administrative permission", 200)
        missing = [n for n in needs if n not in token.scopes]
        if missing:
            raise graph_error(f"(#200) The permission(s) {', '.join(missing)} are not available. It could "
                              "because either they are deprecated or need to be approved by App Review.", 200)
        return page

    def _page_node(self, req: Request, params: dict[str, Any], page: _Page) -> dict[str, Any]:
        token = self._token(req, params)
        fields = _fields(params, {"id", "name"})
        if token.kind == "user":
            # A user reads a Page (and gets its token) through the admin role.
            if token.subject != page.user:
                raise graph_error("(#10) You do not have sufficient permissions to perform this action", 10)
        elif token.subject != page.id:
            raise graph_error("(#200) Permissions error", 200)
        node: dict[str, Any] = {"id": page.id, "name": page.handle, "username": page.handle}
        if "followers_count" in fields or "fan_count" in fields:
            if "pages_read_engagement" not in token.scopes:
                raise graph_error("(#200) The permission(s) pages_read_engagement are not available.", 200)
            node.update(followers_count=page.followers, fan_count=page.followers)
        if "access_token" in fields:
            if token.kind == "user" and self.tokens[page.token].state != "valid":
                page.token = self._mint_page_token(page, token.scopes)
            node["access_token"] = page.token
        return {k: v for k, v in node.items() if k in fields}

    def _video_node(self, video: _Video, fields: set[str]) -> dict[str, Any]:
        if video.status == "processing":
            if video.polls_left > 0:
                video.polls_left -= 1
            elif video.error:
                video.status = "error"
            else:
                video.status = "ready"
                self._store(self.pages[video.page], video.description, kind="video", video=video.id,
                            record=False)
        processing: dict[str, Any] = {"status": {"processing": "in_progress", "ready": "complete",
                                                 "error": "error"}[video.status]}
        if video.status == "error":
            processing["error"] = {"message": video.error}
        node = {"id": video.id,
                "status": {"video_status": video.status, "uploading_phase": {"status": "complete"},
                           "processing_phase": processing,
                           "publishing_phase": {"status": "complete" if video.status == "ready"
                                                else "not_started"}},
                "permalink_url": f"/{video.page}/videos/{video.id}/",
                "description": video.description}
        return {k: v for k, v in node.items() if k in fields}

    def _mint_page_token(self, page: _Page, scopes: frozenset[str]) -> str:
        token = "EAAP" + secrets.token_urlsafe(40)
        self.tokens[token] = _Token("page", page.id, scopes)
        return token

    def _attached(self, params: dict[str, Any], page: _Page) -> list[str]:
        raw = params.get("attached_media")
        if isinstance(raw, str):
            raw = _json_value(raw, "attached_media")
        if raw is None:
            indexed = sorted((int(m.group(1)), v) for k, v in params.items()
                             if (m := _ATTACHED_FIELD_RE.fullmatch(k)))
            raw = [_json_value(v, "attached_media") if isinstance(v, str) else v for _, v in indexed]
        if not isinstance(raw, list):
            raise invalid("param attached_media must be an array")
        if len(raw) > MAX_ATTACHED:
            raise invalid(f"param attached_media has {len(raw)} items; at most {MAX_ATTACHED}")
        ids = []
        for i, item in enumerate(raw):
            photo_id = str(item.get("media_fbid")) if isinstance(item, dict) else ""
            photo = self.photos.get(photo_id)
            if photo is None or photo["page"] != page.id or photo["attached"] or photo_id in ids:
                raise invalid(f"param attached_media[{i}] must be an unpublished, unattached photo of "
                              "this Page")
            ids.append(photo_id)
        return ids

    def _store(self, page: _Page, message: str, *, kind: str, link: str = "",
               photos: list[str] | None = None, video: str | None = None,
               record: bool = True) -> dict[str, Any]:
        post = {"id": f"{page.id}_{self.new_id()}", "page": page.id, "message": message, "link": link,
                "photos": photos or [], "video": video, "created": time.time(), "kind": kind}
        self.feed.append(post)
        if record:
            self.record("post", {"account": page.handle, "text": message, "link": link,
                                 "photos": list(photos or []), "kind": kind}, id=post["id"])
        return post

    def _render(self, post: dict[str, Any], fields: set[str]) -> dict[str, Any]:
        own = post["id"].split("_", 1)[1]
        node = {"id": post["id"], "created_time": graph_time(post["created"]),
                "permalink_url": f"https://www.facebook.com/{post['page']}/posts/{own}"}
        if post["message"]:
            node["message"] = post["message"]
        return {k: v for k, v in node.items() if k in fields}


def _fields(params: dict[str, Any], default: set[str]) -> set[str]:
    raw = params.get("fields")
    return {f.strip() for f in str(raw).split(",") if f.strip()} | {"id"} if raw else default


def _flag(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "1"):
        return True
    if str(value).lower() in ("false", "0"):
        return False
    raise invalid(f"param published must be a boolean, not {value!r}")


def _json_value(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise invalid(f"param {name} is not valid JSON") from None


def _check_photo(upload: Upload) -> None:
    if not upload.data.startswith(_IMAGE_MAGIC) or len(upload.data) > MAX_PHOTO_BYTES:
        raise graph_error("Photos should be smaller than 4 MB and saved as JPG, PNG, GIF, TIFF, HEIF or WebP "
                          "files.", 100, subcode=1366046)

