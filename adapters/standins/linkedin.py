"""Stand-in for LinkedIn's versioned REST API, as far as crosspost speaks to it (platforms.md §7).

Implements ``POST /rest/posts`` (201, URN in ``x-restli-id``), the author finder and a post read, the
Images API (initializeUpload, one authorised PUT), the Videos API (initializeUpload, signed part PUTs
answering ETags, finalizeUpload, status that turns AVAILABLE after a number of reads),
``networkSizes`` and ``memberFollowersCount``, and ``POST /oauth/v2/accessToken`` (refresh; the
refresh token keeps the lifetime of its first grant; and the authorization code, with the app's id and
secret in the form, from the authorize page ``/oauth/v2/authorization``: the exact registered
``redirect_uri``, ``state``, no PKCE for web apps, a refresh token only for apps approved for it).
Every REST call needs a bearer token,
``LinkedIn-Version`` (an active YYYYMM: the last 12 months) and ``X-Restli-Protocol-Version: 2.0.0``;
URNs in paths must be URL-encoded. Errors have LinkedIn's shape ``{"status", "serviceErrorCode",
"code", "message"}``; validation errors are 422 with ``errorDetails.inputErrors``.

Commentary is parsed as little text the way integrators report LinkedIn does: escapes, URLs,
hashtags and mentions are understood, and the first other reserved character silently ends the
text (201 all the same). ``record`` stores what a reader would see as ``text``.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

import regex

from adapters.standins.base import Fault, HttpError, Request, Response, StandIn
from adapters.standins.oauth import AuthorizationCodes
from adapters.standins.text import utf16_units

TEXT_LIMIT = 3000
RESERVED = frozenset("\\|{}@[]()<>#*_~")
ACCESS_LIFE = 60 * 86400
REFRESH_LIFE = 365 * 86400
MIN_VIDEO, MAX_VIDEO = 75 * 1024, 500 * 1024 * 1024
MEMBER_SCOPES = ("openid", "profile", "w_member_social")
ORG_SCOPES = ("w_organization_social", "r_organization_social", "rw_organization_admin")
_URL_RE = re.compile("https?://[^\\s<>\"\\\\]+[^\\s<>\"\\\\.,;:!?)\\]}'\u2019\u201d]")
_HASHTAG_RE = regex.compile(r"(?<!\S)#[\p{L}\p{M}\p{N}]")
_MENTION_RE = re.compile(r"@\[(?P<name>[^\]\\]+)\]\((?P<urn>urn:li:(?:person|organization):[\w-]+)\)")
_URN_RE = re.compile(r"urn:li:(?P<kind>person|organization):(?P<id>[\w-]+)")
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


def render_little_text(commentary: str) -> str:
    """What LinkedIn shows for ``commentary``: escapes resolved, mentions as their names; the text
    stops at the first reserved character that is not part of an escape, URL, hashtag or mention."""
    out: list[str] = []
    i = 0
    while i < len(commentary):
        char = commentary[i]
        if char == "\\":
            if i + 1 < len(commentary) and commentary[i + 1] in RESERVED:
                out.append(commentary[i + 1])
                i += 2
                continue
            break
        url = _URL_RE.match(commentary, i) if commentary.startswith(("http://", "https://"), i) else None
        if url:
            out.append(url.group())
            i = url.end()
            continue
        mention = _MENTION_RE.match(commentary, i)
        if mention:
            out.append(mention["name"])
            i = mention.end()
            continue
        if char in RESERVED and not (char == "#" and _HASHTAG_RE.match(commentary, i)):
            break
        out.append(char)
        i += 1
    return "".join(out)


def li_error(status: int, message: str, code: str | None = None, service: int | None = None) -> HttpError:
    body: dict[str, Any] = {"status": status, "message": message}
    if code:
        body["code"] = code
    if service is not None:
        body["serviceErrorCode"] = service
    return HttpError(status, body)


def invalid(path: str, message: str, code: str = "INVALID_VALUE") -> HttpError:
    return HttpError(422, {"status": 422, "message": f"ERROR :: {path} :: {message}",
                           "errorDetailType": "com.linkedin.common.error.BadRequest",
                           "errorDetails": {"inputErrors": [{"code": code, "description": message,
                                                             "input": {"inputPath": {"fieldPath": path}}}]}})


@dataclass
class _Token:
    member: str
    scopes: frozenset[str]
    expires_at: float
    revoked: bool = False


@dataclass
class _Media:
    urn: str
    owner: str
    kind: str
    status: str = "WAITING_UPLOAD"
    size: int = 0
    parts: list[tuple[int, int]] = field(default_factory=list)
    etags: dict[int, str] = field(default_factory=dict)
    data: dict[int, bytes] = field(default_factory=dict)
    sig: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    polls_left: int = 0
    reason: str | None = None


class LinkedInStandIn(StandIn):
    platform = "linkedin"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.client_id = "crosspost-standin"
        self.client_secret = secrets.token_urlsafe(24)
        self.tokens: dict[str, _Token] = {}
        self.refresh_tokens: dict[str, tuple[str, frozenset[str], float]] = {}
        self.admins: dict[str, set[str]] = {}  # organization urn -> member urns
        self.followers: dict[str, int] = {}
        self.media: dict[str, _Media] = {}
        self.post_list: list[dict[str, Any]] = []
        self.uploads = 0
        self.refresh_calls = 0
        self._seq = 7_141_000_000_000_000_000
        # Connecting: the app's authorize page and codes; the members signed in by name.
        self.oauth = AuthorizationCodes({self.client_id: set()}, pkce="none", grant_error="invalid_request",
                                        refuse=_code_refusal)
        self.members: dict[str, str] = {}  # a name used in tests -> the member's URN
        self.grants_refresh_tokens = True  # an app approved for programmatic refresh
        self._defaults()
        super().__init__(host, port)

    def _defaults(self) -> None:
        self.part_size = 4 * 1024 * 1024
        self.video_polls = 2
        self.version_months = 12

    def register(self) -> None:
        self.route("POST", r"/oauth/v2/accessToken", self.access_token)
        self.route("GET", r"/oauth/v2/authorization", self.authorize)
        self.route("POST", r"/oauth/v2/authorization", self.authorize_decision)
        self.route("POST", r"/rest/posts", self.create_post)
        self.route("GET", r"/rest/posts", self.find_posts)
        self.route("GET", r"/rest/posts/(?P<urn>[^/]+)", self.read_post)
        self.route("POST", r"/rest/(?P<kind>images|videos)", self.media_action)
        self.route("GET", r"/rest/(?P<kind>images|videos)/(?P<urn>[^/]+)", self.read_media)
        self.route("PUT", r"/dms-uploads/image/(?P<id>[^/]+)", self.upload_image)
        self.route("PUT", r"/dms-uploads/video/(?P<id>[^/]+)/(?P<part>\d+)", self.upload_part)
        self.route("GET", r"/rest/networkSizes/(?P<urn>[^/]+)", self.network_size)
        self.route("GET", r"/rest/memberFollowersCount", self.member_followers)
        self.route("GET", r"/v2/userinfo", self.userinfo)
        self.route("GET", r"/rest/organizationAcls", self.organization_acls)

    # -- accounts and control ---------------------------------------------------------------------
    def add_account(self, handle: str, followers: int = 0, scopes: tuple[str, ...] | None = None,
                    refreshable: bool = True) -> dict[str, str]:
        """Tokens for ``handle``: an organisation URN gets an administrator member with the page
        scopes; anything else is a member (a bare name gets an ``author`` URN in the credentials)."""
        urn = _URN_RE.fullmatch(handle)
        with self.lock:
            if urn and urn["kind"] == "organization":
                member = f"urn:li:person:{secrets.token_hex(5)}"
                self.admins.setdefault(handle, set()).add(member)
                author, granted = handle, scopes or (*MEMBER_SCOPES, *ORG_SCOPES)
            else:
                author = handle if urn else f"urn:li:person:{secrets.token_hex(5)}"
                member, granted = author, scopes or MEMBER_SCOPES
            self.followers[author] = followers
            now = time.time()
            token = "AQV" + secrets.token_urlsafe(48)
            self.tokens[token] = _Token(member, frozenset(granted), now + ACCESS_LIFE)
            creds = {"access_token": token, "client_id": self.client_id, "client_secret": self.client_secret,
                     "expires_at": _iso(now + ACCESS_LIFE)}
            if refreshable:
                refresh = "AQX" + secrets.token_urlsafe(48)
                self.refresh_tokens[refresh] = (member, frozenset(granted), now + REFRESH_LIFE)
                creds.update(refresh_token=refresh, refresh_expires_at=_iso(now + REFRESH_LIFE))
            if not urn:
                creds["author"] = author
        return creds

    def sign_in(self, handle: str, followers: int = 0) -> None:
        """Signed in on linkedin.com as the member ``handle`` names: an organisation URN signs in one
        of its administrators; any other name is a member of its own."""
        with self.lock:
            self.oauth.signed_in = handle
            self.followers[handle if handle.startswith("urn:li:") else self._member_named(handle)] = followers
            self._member_named(handle)

    def oauth_app(self, redirect_uri: str) -> dict[str, str]:
        if redirect_uri:
            self.oauth.redirect_uris[self.client_id].add(redirect_uri)
        return {"client_id": self.client_id, "client_secret": self.client_secret}

    def _member_named(self, name: str) -> str:
        if name not in self.members:
            member = name if name.startswith("urn:li:person:") else f"urn:li:person:{secrets.token_hex(5)}"
            if name.startswith("urn:li:organization:"):
                self.admins.setdefault(name, set()).add(member)
                self.followers.setdefault(name, 0)
            self.members[name] = member
        return self.members[name]

    def authorize(self, req: Request) -> Response:
        with self.lock:
            return self.oauth.consent_page(req, {self.client_id: self.client_secret}, set())

    def authorize_decision(self, req: Request) -> Response:
        with self.lock:
            return self.oauth.decide(req, {self.client_id: self.client_secret}, self._member_named)

    def expire_access_tokens(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                token.expires_at = min(token.expires_at, time.time() - 1)

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh_tokens.clear()

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.media.clear()
            self.post_list.clear()
            self.uploads = self.refresh_calls = 0
            self._defaults()

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"posts": len(self.post_list), "media": len(self.media), "uploads": self.uploads}

    def rate_limited(self, fault: Fault) -> Response:
        # LinkedIn sends no rate-limit headers; a test may still ask for a Retry-After.
        headers = {} if fault.retry_after is None else {"Retry-After": str(int(fault.retry_after))}
        body = fault.body or {
            "status": 429, "serviceErrorCode": 101, "code": "TOO_MANY_REQUESTS",
            "message": "Resource level throttle limit for calls to this resource is reached."}
        return Response(429, body, headers)

    def fault_response(self, fault: Fault) -> Response:
        status = fault.status or 500
        return Response(status, fault.body or {"status": status, "message": "Internal Server Error"})

    # -- OAuth --------------------------------------------------------------------------------
    def access_token(self, req: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        with self.lock:
            self.refresh_calls += 1
            if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
                raise HttpError(401, {"error": "invalid_client",
                                      "error_description": "Client authentication failed"})
            if form.get("grant_type") == "authorization_code":
                return self._redeem(form)
            if form.get("grant_type") != "refresh_token":
                raise HttpError(400, {"error": "unsupported_grant_type",
                                      "error_description": "grant_type must be authorization_code or "
                                                           "refresh_token"})
            grant = self.refresh_tokens.get(form.get("refresh_token", ""))
            if grant is None or grant[2] < time.time():
                raise HttpError(400, {"error": "invalid_grant", "error_description": "The provided "
                                      "authorization grant or refresh token is invalid, expired or revoked"})
            member, scopes, refresh_expires = grant
            for token in self.tokens.values():
                if token.member == member and token.scopes == scopes:
                    token.revoked = True
            now = time.time()
            new = "AQV" + secrets.token_urlsafe(48)
            self.tokens[new] = _Token(member, scopes, now + ACCESS_LIFE)
            return Response(200, {"access_token": new, "expires_in": ACCESS_LIFE,
                                  "refresh_token": form["refresh_token"],
                                  "refresh_token_expires_in": int(refresh_expires - now),
                                  "scope": ",".join(sorted(scopes))})

    def _redeem(self, form: dict[str, str]) -> Response:
        code = self.oauth.redeem(form, self.client_id)
        now = time.time()
        token = "AQV" + secrets.token_urlsafe(48)
        self.tokens[token] = _Token(code.user, code.scopes, now + ACCESS_LIFE)
        body: dict[str, Any] = {"access_token": token, "expires_in": ACCESS_LIFE,
                                "scope": ",".join(sorted(code.scopes))}
        if self.grants_refresh_tokens:
            refresh = "AQX" + secrets.token_urlsafe(48)
            self.refresh_tokens[refresh] = (code.user, code.scopes, now + REFRESH_LIFE)
            body.update(refresh_token=refresh, refresh_token_expires_in=REFRESH_LIFE)
        return Response(200, body)

    # -- posts --------------------------------------------------------------------------------
    def create_post(self, req: Request) -> Response:
        body = self._body(req)
        with self.lock:
            member, token = self._rest(req)
            author = _string(body, "/author")
            self._may_post(member, token, author)
            commentary = body.get("commentary", "")
            if not isinstance(commentary, str):
                raise invalid("/commentary", "commentary must be a string")
            visibility = body.get("visibility")
            if visibility not in ("PUBLIC", "CONNECTIONS", "LOGGED_IN"):
                raise invalid("/visibility", f"{visibility!r} is not a valid visibility")
            if visibility == "CONNECTIONS" and not author.startswith("urn:li:person:"):
                raise invalid("/visibility", "CONNECTIONS is only for members")
            distribution = body.get("distribution")
            feed = distribution.get("feedDistribution") if isinstance(distribution, dict) else None
            if feed not in ("MAIN_FEED", "NONE"):
                raise invalid("/distribution/feedDistribution", "feedDistribution is required")
            if body.get("lifecycleState") != "PUBLISHED":
                raise invalid("/lifecycleState", "lifecycleState must be PUBLISHED")
            content = body.get("content")
            if content is not None:
                self._check_content(author, content)
            shown = render_little_text(commentary)
            if not shown.strip() and content is None:
                raise invalid("/commentary", "a post without content needs commentary")
            if utf16_units(shown) > TEXT_LIMIT:
                raise invalid("/commentary", f"length of {utf16_units(shown)} exceeds the maximum allowed "
                                             f"length of {TEXT_LIMIT}", "MAX_LENGTH_EXCEEDED")
            for earlier in self.post_list:
                same = (earlier["author"], earlier["commentary"], earlier.get("content"))
                if same == (author, commentary, content):
                    raise HttpError(422, {
                        "status": 422,
                        "message": f"Unable to create post: Content is a duplicate of {earlier['id']}",
                        "errorDetails": {"inputErrors": [{"code": "DUPLICATE_POST",
                                                          "description": "duplicate content"}]}})
            self._seq += 1
            urn = f"urn:li:share:{self._seq}"
            now_ms = int(time.time() * 1000)
            post = {"id": urn, "author": author, "commentary": commentary, "visibility": visibility,
                    "distribution": distribution, "lifecycleState": "PUBLISHED", "createdAt": now_ms,
                    "lastModifiedAt": now_ms, "publishedAt": now_ms, "isReshareDisabledByAuthor":
                    bool(body.get("isReshareDisabledByAuthor"))}
            if content is not None:
                post["content"] = content
            self.post_list.append(post)
            self.record("post", {"account": author, "text": shown, "commentary": commentary,
                                 "content": content, "version": req.headers.get("linkedin-version")}, id=urn)
            return Response(201, None, {"x-restli-id": urn, "x-linkedin-id": urn})

    def find_posts(self, req: Request) -> Response:
        with self.lock:
            member, token = self._rest(req)
            if req.query.get("q") != "author":
                raise li_error(400, "the only finder is q=author", "ILLEGAL_ARGUMENT")
            author = req.query.get("author", "")
            if author.startswith("urn:li:organization:"):
                allowed = "r_organization_social" in token.scopes and member in self.admins.get(author, set())
            else:
                allowed = author == member and "r_member_social" in token.scopes
            if not allowed:
                raise li_error(403, "Not enough permissions to access: partnerApiPostsExternal.FINDER-author",
                               "ACCESS_DENIED", 100)
            try:
                count = min(max(int(req.query.get("count", "10")), 1), 100)
            except ValueError:
                raise li_error(400, "count must be an integer", "ILLEGAL_ARGUMENT") from None
            mine = [p for p in reversed(self.post_list) if p["author"] == author][:count]
            return Response(200, {"elements": mine, "paging": {"start": 0, "count": count, "links": []}})

    def read_post(self, req: Request) -> Response:
        with self.lock:
            self._rest(req)
            urn = self._path_urn(req)
            post = next((p for p in self.post_list if p["id"] == urn), None)
            if post is None:
                raise li_error(404, f"Post {urn} not found", "NOT_FOUND")
            return Response(200, post)

    # -- media --------------------------------------------------------------------------------
    def media_action(self, req: Request) -> Response:
        body = self._body(req)
        kind = req.match["kind"] if req.match else ""
        action = req.query.get("action")
        with self.lock:
            member, token = self._rest(req)
            if action == "initializeUpload":
                request = body.get("initializeUploadRequest")
                if not isinstance(request, dict):
                    raise invalid("/initializeUploadRequest", "initializeUploadRequest is required")
                owner = _string(request, "/initializeUploadRequest/owner")
                self._may_post(member, token, owner)
                return Response(200, {"value": self._initialize(kind, owner, request)})
            if action == "finalizeUpload" and kind == "videos":
                return self._finalize(body.get("finalizeUploadRequest"))
            raise li_error(400, f"unknown action {action!r} for {kind}", "ILLEGAL_ARGUMENT")

    def _initialize(self, kind: str, owner: str, request: dict[str, Any]) -> dict[str, Any]:
        self._seq += 1
        key = f"D4E10AQ{self._seq}"
        expires = int((time.time() + 86400) * 1000)
        if kind == "images":
            item = _Media(f"urn:li:image:{key}", owner, "image")
            self.media[item.urn] = item
            return {"uploadUrlExpiresAt": expires, "uploadUrl": f"{self.url}/dms-uploads/image/{key}",
                    "image": item.urn}
        size = request.get("fileSizeBytes")
        if not isinstance(size, int) or not MIN_VIDEO <= size <= MAX_VIDEO:
            raise invalid("/initializeUploadRequest/fileSizeBytes",
                          f"fileSizeBytes must be between {MIN_VIDEO} and {MAX_VIDEO}")
        for flag in ("uploadCaptions", "uploadThumbnail"):
            if not isinstance(request.get(flag, False), bool):
                raise invalid(f"/initializeUploadRequest/{flag}", f"{flag} must be a boolean")
        item = _Media(f"urn:li:video:{key}", owner, "video", size=size)
        item.parts = [(start, min(start + self.part_size, size) - 1)
                      for start in range(0, size, self.part_size)]
        self.media[item.urn] = item
        return {"uploadUrlsExpireAt": expires, "video": item.urn, "uploadToken": "",
                "uploadInstructions": [{"uploadUrl": f"{self.url}/dms-uploads/video/{key}/{n}?sig={item.sig}",
                                        "firstByte": first, "lastByte": last}
                                       for n, (first, last) in enumerate(item.parts)]}

    def _finalize(self, request: Any) -> Response:
        if not isinstance(request, dict):
            raise invalid("/finalizeUploadRequest", "finalizeUploadRequest is required")
        item = self.media.get(str(request.get("video")))
        if item is None or item.kind != "video":
            raise li_error(404, f"video {request.get('video')} not found", "NOT_FOUND")
        if item.status != "WAITING_UPLOAD":
            raise li_error(400, "the upload is already finalized", "ILLEGAL_ARGUMENT")
        if request.get("uploadToken") != "" or not isinstance(request.get("uploadedPartIds"), list):
            raise invalid("/finalizeUploadRequest", "uploadToken and uploadedPartIds are required")
        expected = [item.etags.get(n) for n in range(len(item.parts))]
        if None in expected or request["uploadedPartIds"] != expected:
            raise li_error(400, "uploadedPartIds do not match the uploaded parts, in order",
                           "ILLEGAL_ARGUMENT")
        data = b"".join(item.data[n] for n in range(len(item.parts)))
        item.status, item.polls_left = "PROCESSING", self.video_polls
        if b"ftyp" not in data[:64]:
            item.reason = "Video format is not supported"
        return Response(200, None)

    def read_media(self, req: Request) -> Response:
        with self.lock:
            self._rest(req)
            item = self.media.get(self._path_urn(req))
            if item is None:
                raise li_error(404, "media not found", "NOT_FOUND")
            if item.status == "PROCESSING":
                if item.polls_left > 0:
                    item.polls_left -= 1
                else:
                    item.status = "PROCESSING_FAILED" if item.reason else "AVAILABLE"
            body = {"id": item.urn, "owner": item.owner, "status": item.status}
            if item.reason and item.status == "PROCESSING_FAILED":
                body["processingFailureReason"] = item.reason
            return Response(200, body)

    def upload_image(self, req: Request) -> Response:
        with self.lock:
            item = self.media.get(f"urn:li:image:{req.match['id'] if req.match else ''}")
            if item is None:
                raise li_error(404, "no such upload", "NOT_FOUND")
            token = self.tokens.get(req.bearer() or "")
            if token is None or token.revoked or token.expires_at < time.time():
                raise li_error(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600)
            if not req.body.startswith(_IMAGE_MAGIC):
                raise li_error(400, "the image is not a JPEG, PNG or GIF", "ILLEGAL_ARGUMENT")
            self.uploads += 1
            item.status, item.size = "AVAILABLE", len(req.body)
            return Response(201, None)

    def upload_part(self, req: Request) -> Response:
        with self.lock:
            assert req.match is not None
            item = self.media.get(f"urn:li:video:{req.match['id']}")
            n = int(req.match["part"])
            if item is None or req.query.get("sig") != item.sig or n >= len(item.parts):
                raise li_error(403, "the upload URL is not valid", "ACCESS_DENIED")
            if item.status != "WAITING_UPLOAD":
                raise li_error(400, "the upload is already finalized", "ILLEGAL_ARGUMENT")
            first, last = item.parts[n]
            if len(req.body) != last - first + 1:
                raise li_error(400, f"part {n} must be {last - first + 1} bytes, got {len(req.body)}",
                               "ILLEGAL_ARGUMENT")
            self.uploads += 1
            item.data[n] = req.body
            item.etags[n] = f"/ambry-video/signedId/{hashlib.sha256(req.body).hexdigest()[:24]}"
            return Response(200, None, {"ETag": item.etags[n]})

    # -- followers ----------------------------------------------------------------------------
    def network_size(self, req: Request) -> Response:
        with self.lock:
            member, token = self._rest(req)
            urn = self._path_urn(req)
            if req.query.get("edgeType") != "COMPANY_FOLLOWED_BY_MEMBER":
                raise li_error(400, "edgeType must be COMPANY_FOLLOWED_BY_MEMBER", "ILLEGAL_ARGUMENT")
            if member not in self.admins.get(urn, set()) or not {"rw_organization_admin",
                                                                 "r_organization_social"} & token.scopes:
                raise li_error(403, "Not enough permissions to access: networkSizes.GET", "ACCESS_DENIED",
                               100)
            return Response(200, {"firstDegreeSize": self.followers.get(urn, 0)})

    def member_followers(self, req: Request) -> Response:
        with self.lock:
            member, token = self._rest(req)
            if req.query.get("q") != "me":
                raise li_error(400, "the finder is q=me", "ILLEGAL_ARGUMENT")
            if "r_member_profileAnalytics" not in token.scopes:
                raise li_error(403, "Not enough permissions to access: memberFollowersCount.FINDER-me",
                               "ACCESS_DENIED", 100)
            return Response(200, {"elements": [{"memberFollowersCount": self.followers.get(member, 0)}],
                                  "paging": {"count": 10, "start": 0, "links": []}})

    def userinfo(self, req: Request) -> Response:
        """OpenID Connect userinfo (unversioned, needs ``openid`` and ``profile``): ``sub`` is the
        member's id."""
        with self.lock:
            token = self.tokens.get(req.bearer() or "")
            if token is None or token.revoked or token.expires_at < time.time():
                raise HttpError(401, {"serviceErrorCode": 65600, "message": "Invalid access token",
                                      "status": 401})
            if not {"openid", "profile"} <= token.scopes:
                raise li_error(403, "Not enough permissions to access: userinfo.GET.NO_VERSION",
                               "ACCESS_DENIED", 100)
            member_id = token.member.rsplit(":", 1)[-1]
            return Response(200, {"sub": member_id, "name": f"Member {member_id}", "email_verified": True,
                                  "locale": {"country": "US", "language": "en"}})

    def organization_acls(self, req: Request) -> Response:
        """The organisations the token's member has a role in (``q=roleAssignee``)."""
        with self.lock:
            member, token = self._rest(req)
            if req.query.get("q") != "roleAssignee":
                raise li_error(400, "the finder is q=roleAssignee", "ILLEGAL_ARGUMENT")
            if not {"rw_organization_admin", "r_organization_social", "w_organization_social"} & token.scopes:
                raise li_error(403, "Not enough permissions to access: organizationAcls.FINDER-roleAssignee",
                               "ACCESS_DENIED", 100)
            elements = [{"organization": org, "role": "ADMINISTRATOR", "state": "APPROVED",
                         "roleAssignee": member}
                        for org, members in sorted(self.admins.items()) if member in members]
            return Response(200, {"elements": elements, "paging": {"count": 10, "start": 0, "links": []}})

    # -- helpers ------------------------------------------------------------------------------
    def _rest(self, req: Request) -> tuple[str, _Token]:
        token = self.tokens.get(req.bearer() or "")
        if token is None:
            raise li_error(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600)
        if token.revoked:
            raise li_error(401, "The token used in the request has been revoked by the user",
                           "REVOKED_ACCESS_TOKEN", 65601)
        if token.expires_at < time.time():
            raise li_error(401, "The token used in the request has expired", "EXPIRED_ACCESS_TOKEN", 65602)
        version = req.headers.get("linkedin-version", "")
        if not version:
            raise li_error(400, "A version must be present. Please specify a version by adding the "
                                "LinkedIn-Version header.", "VERSION_MISSING")
        if not self._active(version):
            raise li_error(426, f"Requested version {version} is not active", "NONEXISTENT_VERSION")
        if req.headers.get("x-restli-protocol-version") != "2.0.0":
            raise li_error(400, "X-Restli-Protocol-Version: 2.0.0 is required", "ILLEGAL_ARGUMENT")
        return token.member, token

    def _active(self, version: str) -> bool:
        if not re.fullmatch(r"20\d\d(0[1-9]|1[0-2])", version):
            return False
        now = datetime.now(UTC)
        age = (now.year - int(version[:4])) * 12 + now.month - int(version[4:])
        return 0 <= age < self.version_months

    def _may_post(self, member: str, token: _Token, author: str) -> None:
        if author.startswith("urn:li:organization:"):
            ok = member in self.admins.get(author, set()) and "w_organization_social" in token.scopes
        else:
            ok = author == member and "w_member_social" in token.scopes
        if not _URN_RE.fullmatch(author) or not ok:
            raise li_error(403, "Not enough permissions to access: partnerApiPostsExternal.CREATE for "
                           f"{author}", "ACCESS_DENIED", 100)

    def _check_content(self, author: str, content: Any) -> None:
        if not isinstance(content, dict) or len(content) != 1:
            raise invalid("/content", "content must hold exactly one of media, multiImage, article")
        kind, value = next(iter(content.items()))
        if kind == "media":
            self._usable(author, _string(value, "/content/media/id", "id"), "/content/media/id")
        elif kind == "multiImage":
            images = value.get("images") if isinstance(value, dict) else None
            if not isinstance(images, list) or not 2 <= len(images) <= 20:
                raise invalid("/content/multiImage/images", "a MultiImage holds 2 to 20 images")
            for n, image in enumerate(images):
                urn = _string(image, f"/content/multiImage/images/{n}/id", "id")
                if not urn.startswith("urn:li:image:"):
                    raise invalid(f"/content/multiImage/images/{n}/id", "only images go in a MultiImage")
                self._usable(author, urn, f"/content/multiImage/images/{n}/id")
        elif kind == "article":
            source = _string(value, "/content/article/source", "source")
            if not source.startswith(("http://", "https://")):
                raise invalid("/content/article/source", "source must be an absolute URL")
            _string(value, "/content/article/title", "title")
        else:
            raise invalid(f"/content/{kind}", f"unknown content {kind}")

    def _usable(self, author: str, urn: str, path: str) -> None:
        item = self.media.get(urn)
        if item is None or item.owner != author:
            raise invalid(path, f"{urn} does not exist or is not owned by {author}")
        if item.status != "AVAILABLE":
            raise invalid(path, f"{urn} is {item.status}, not AVAILABLE")

    def _path_urn(self, req: Request) -> str:
        raw = req.match["urn"] if req.match else ""
        if ":" in raw:
            raise li_error(400, "Rest.li 2.0 keys in paths must be URL-encoded", "ILLEGAL_ARGUMENT")
        return unquote(raw)

    def _body(self, req: Request) -> dict[str, Any]:
        if not req.headers.get("content-type", "").startswith("application/json"):
            raise li_error(415, "the body must be application/json", "UNSUPPORTED_MEDIA_TYPE")
        try:
            data = json.loads(req.body or b"null")
        except ValueError:
            raise li_error(400, "the body is not JSON", "ILLEGAL_ARGUMENT") from None
        if not isinstance(data, dict):
            raise li_error(400, "the body must be a JSON object", "ILLEGAL_ARGUMENT")
        return data


def _string(data: Any, path: str, name: str | None = None) -> str:
    value = data.get(name or path.rsplit("/", 1)[-1]) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise invalid(path, f"{path} is required and must be a string")
    return value


def _code_refusal(status: int, error: str, description: str) -> HttpError:
    # LinkedIn's one sentence for every bad code, redirect_uri or verifier.
    return HttpError(status, {"error": error, "error_description": "Unable to retrieve access token: "
                              "appid/redirect uri/code verifier does not match authorization code. Or "
                              "authorization code expired. Or external member binding exists"})


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
