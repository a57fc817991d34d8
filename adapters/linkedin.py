"""LinkedIn Posts API, for members and organisation pages (platforms.md §7).

The author is the account handle when it is a URN (``urn:li:organization:123`` or
``urn:li:person:abc``), else the ``author`` URN stored with the credentials; nothing is guessed,
so a page's story never goes to its administrator's own profile. Credentials: ``access_token``
(60 days, ``expires_at``) and, for apps approved for programmatic refresh, ``refresh_token``,
``client_id`` and ``client_secret``.

Commentary is "little text": reserved characters are escaped so LinkedIn never cuts the post short.
LinkedIn has no idempotency key but refuses identical content (422 DUPLICATE_POST naming the first
post), and the delivery's progress records that a create was sent; a retry that meets a duplicate of
its own earlier attempt takes that post as the answer.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar
from urllib.parse import quote

import regex
import requests
from pydantic import StringConstraints, model_validator

from adapters import http
from adapters.base import (
    AccountRef,
    Adapter,
    Capabilities,
    CredentialsModel,
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
from adapters.errors import AuthExpired, InProgress, RateLimited, Rejected, Transient
from adapters.text import utf16_units

# Versions are sunset about a year after release (an inactive one answers 426).
VERSION = "202605"
OAUTH_URL = "https://www.linkedin.com/oauth/v2/accessToken"
RESERVED = frozenset("\\|{}@[]()<>#*_~")
MAX_PIXELS = 36_152_320
MIN_VIDEO_BYTES = 75 * 1024
VIDEO_POLL_AFTER = 10.0
_URN_RE = re.compile(r"urn:li:(person|organization):[A-Za-z0-9_-]+")
_DUPLICATE_RE = re.compile(r"duplicate of (urn:li:[a-zA-Z]+:\d+)")
# A URL as the little-text parser sees it: a backslash ends it (it starts an escape).
_LINK_RE = re.compile("https?://[^\\s<>\"\\\\]+[^\\s<>\"\\\\.,;:!?)\\]}'\u2019\u201d]")
# A '#' that starts a word followed by a letter or digit is a hashtag and stays live.
_HASHTAG_RE = regex.compile(r"(?<!\S)#[\p{L}\p{M}\p{N}]")
_CLOCK_SKEW = timedelta(minutes=2)


def escape_little_text(text: str) -> str:
    """``text`` as LinkedIn's little-text commentary shows it literally: every reserved character is
    backslash-escaped, except inside URLs (so they still link) and the '#' of a hashtag."""
    urls = [(m.start(), m.end()) for m in _LINK_RE.finditer(text)]
    out: list[str] = []
    i = 0
    while i < len(text):
        if urls and i == urls[0][0]:
            start, end = urls.pop(0)
            out.append(text[start:end])
            i = end
            continue
        char = text[i]
        if char in RESERVED and not (char == "#" and _HASHTAG_RE.match(text, i)):
            out.append("\\")
        out.append(char)
        i += 1
    return "".join(out)


def post_url(urn: str) -> str:
    return f"https://www.linkedin.com/feed/update/{urn}/"


# Roles that may post for an organisation (platforms.md 7.1).
_POSTING_ROLES = frozenset({"ADMINISTRATOR", "CONTENT_ADMINISTRATOR", "DIRECT_SPONSORED_CONTENT_POSTER"})


class LinkedInCredentials(OAuthCredentials):
    """A 60-day member token; apps approved for programmatic refresh also hold a refresh token (365
    days, ``refresh_expires_at``) and refresh with the app's client id and secret. ``author`` is the
    URN posts go out as when the handle is not one."""

    client_id: Word | None = None
    client_secret: Token | None = None
    refresh_expires_at: datetime | None = None
    author: Annotated[str, StringConstraints(pattern=f"^{_URN_RE.pattern}$")] | None = None

    @model_validator(mode="after")
    def refreshable(self) -> LinkedInCredentials:
        if self.refresh_token is not None and not (self.client_id and self.client_secret):
            raise ValueError("client_id and client_secret: are required with a refresh_token")
        return self


class LinkedInAdapter(Adapter):
    platform: ClassVar[str] = "linkedin"
    default_base_url: ClassVar[str] = "https://api.linkedin.com"

    # -- caps ---------------------------------------------------------------------------------
    # 3000 "characters" of the unescaped text; LinkedIn is a Java service, so UTF-16 units are the
    # safe reading. One video, or up to 20 images (MultiImage); never both.
    caps: ClassVar[Capabilities] = Capabilities(
        text_limit=3000, count=utf16_units, unit="UTF-16 code units", can_find=True,
        max_images=20, image_types=frozenset({"image/jpeg", "image/png", "image/gif"}),
        max_image_bytes=8 * 1024 * 1024, max_videos=1, max_video_bytes=500 * 1024 * 1024,
    )
    credentials_model: ClassVar[type[CredentialsModel]] = LinkedInCredentials
    # Only apps approved for programmatic refresh get a refresh token; it keeps the lifetime of
    # its first grant (365 days), the access token lives 60 days.
    token_refresh: ClassVar[TokenRefresh] = TokenRefresh(
        path="/oauth/v2/accessToken", url=OAUTH_URL, life=5_184_000,
        lifetimes=(("refresh_token_expires_in", "refresh_expires_at"),))

    # -- check_platform -------------------------------------------------------------------------
    def check_platform(self, post: Post) -> list[Problem]:
        problems = []
        for m in post.media:
            if m.kind == "image" and m.width and m.height and m.width * m.height >= MAX_PIXELS:
                problems.append(Problem(self.platform, "media", f"image is {m.width}x{m.height}; LinkedIn "
                                                                f"takes fewer than {MAX_PIXELS} pixels"))
            if m.kind == "video" and m.size < MIN_VIDEO_BYTES:
                problems.append(Problem(self.platform, "media", f"video is {m.size} bytes; the least is "
                                                                f"{MIN_VIDEO_BYTES}"))
            if m.kind == "video" and m.width and m.height and not 1 / 2.4 <= m.width / m.height <= 2.4:
                problems.append(Problem(self.platform, "media", f"video is {m.width}x{m.height}; the aspect "
                                                                "ratio must be between 1:2.4 and 2.4:1"))
        return problems

    # -- publish ------------------------------------------------------------------------------
    def publish(self, account: AccountRef, post: Post, key: str,
                progress: Progress | None = None) -> Published:
        progress = progress if progress is not None else Progress()
        if progress.get("post"):
            return Published(remote_id=progress.get("post"), url=post_url(progress.get("post")))
        author = self._author(account)
        body: dict[str, Any] = {
            "author": author, "commentary": escape_little_text(post.body), "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                             "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": False,
        }
        if content := self._content(account, author, post, progress):
            body["content"] = content
        sent_before = bool(progress.get("sent")) or progress.fenced is not None
        progress.save(sent=True)
        try:
            with progress.sending("post"):
                response = self._rest(account, "POST", "posts", json=body)
            urn = response.headers.get("x-restli-id")
        except _Duplicate as dup:
            if not (sent_before and dup.urn):
                raise Rejected(f"{dup.reason}; LinkedIn refuses the same content twice: change the text",
                               status=dup.status) from None
            urn = dup.urn  # our own earlier attempt went out; its answer was lost
        if not urn:
            raise Transient("linkedin: post created without an x-restli-id", maybe_sent=True)
        progress.save(post=urn)
        return Published(remote_id=urn, url=post_url(urn))

    def _content(self, account: AccountRef, author: str, post: Post,
                 progress: Progress) -> dict[str, Any] | None:
        if post.videos:
            media: dict[str, Any] = {"id": self._video(account, author, post.videos[0], progress)}
            return {"media": {**media, "title": post.title} if post.title else media}
        if post.images:
            images = self._images(account, author, post.images, progress)
            items = [{"id": urn, **({"altText": m.alt} if m.alt else {})}
                     for urn, m in zip(images, post.images, strict=True)]
            return {"media": items[0]} if len(items) == 1 else {"multiImage": {"images": items}}
        if post.link:
            # API posts get no scraped preview: the card shows what we give it.
            first_line = post.text.strip().splitlines()[0][:200] if post.text.strip() else post.link
            return {"article": {"source": post.link, "title": post.title or first_line}}
        return None

    # -- media upload ---------------------------------------------------------------------------
    def _images(self, account: AccountRef, author: str, images: tuple[Media, ...],
                progress: Progress) -> list[str]:
        done: list[str] = list(progress.get("images") or [])
        for m in images[len(done):]:
            value = self._value(self._rest(account, "POST", "images?action=initializeUpload",
                                           json={"initializeUploadRequest": {"owner": author}}))
            with open(m.path, "rb") as f:
                data = f.read()
            # One PUT of the whole file (images are never chunked), with the member's token.
            self.request(account, "PUT", value["uploadUrl"], data=data, headers={
                **self.auth(account), "Content-Type": "application/octet-stream"})
            done.append(value["image"])
            progress.save(images=list(done))
        return done

    def _video(self, account: AccountRef, author: str, m: Media, progress: Progress) -> str:
        state: dict[str, Any] = dict(progress.get("video") or {})
        expired = state.get("expires") and state["expires"] / 1000 < datetime.now(UTC).timestamp()
        if not state or (not state.get("finalized") and expired):
            size = os.path.getsize(m.path)
            value = self._value(self._rest(account, "POST", "videos?action=initializeUpload", json={
                "initializeUploadRequest": {"owner": author, "fileSizeBytes": size, "uploadCaptions": False,
                                            "uploadThumbnail": False}}))
            state = {"urn": value["video"], "token": value.get("uploadToken") or "", "etags": [],
                     "expires": value.get("uploadUrlsExpireAt"),
                     "parts": [[p["uploadUrl"], p["firstByte"], p["lastByte"]]
                               for p in value.get("uploadInstructions") or []]}
            progress.save(video=state)
        if not state.get("finalized"):
            etags = list(state["etags"])
            with open(m.path, "rb") as f:
                for url, first, last in state["parts"][len(etags):]:
                    f.seek(first)
                    answer = self.request(account, "PUT", url, data=f.read(last - first + 1),
                                          headers={"Content-Type": "application/octet-stream"})
                    if not answer.headers.get("ETag"):
                        raise Transient("linkedin: a video part was taken without an ETag")
                    etags.append(answer.headers["ETag"])
                    progress.save(video={**state, "etags": list(etags)})
            # A finalize whose answer was lost must not be repeated (LinkedIn refuses it): the video's
            # status tells whether it went through.
            if not state.get("finalizing") or self._video_status(account, state["urn"]).get(
                    "status") == "WAITING_UPLOAD":
                progress.save(video={**state, "etags": etags, "finalizing": True})
                self._rest(account, "POST", "videos?action=finalizeUpload", json={"finalizeUploadRequest": {
                    "video": state["urn"], "uploadToken": state["token"], "uploadedPartIds": etags}})
            state = {**state, "etags": etags, "finalized": True}
            progress.save(video=state)
        video = self._video_status(account, state["urn"])
        status = video.get("status")
        if status == "AVAILABLE":
            return str(state["urn"])
        if status == "PROCESSING_FAILED":
            why = video.get("processingFailureReason") or "no reason given"
            raise Rejected(f"linkedin: video processing failed: {why}")
        raise InProgress(f"linkedin: the video is {str(status or 'processing').lower()}",
                         after=VIDEO_POLL_AFTER)

    def _video_status(self, account: AccountRef, urn: str) -> dict[str, Any]:
        return _json(self._rest(account, "GET", f"videos/{quote(urn, safe='')}"))

    # -- followers ----------------------------------------------------------------------------
    def followers(self, account: AccountRef) -> int:
        """Organisations: ``networkSizes`` ``firstDegreeSize``. Members: ``memberFollowersCount``,
        which needs the restricted ``r_member_profileAnalytics`` scope (refused without it)."""
        author = self._author(account)
        if author.startswith("urn:li:organization:"):
            data = _json(self._rest(account, "GET", f"networkSizes/{quote(author, safe='')}",
                                    params={"edgeType": "COMPANY_FOLLOWED_BY_MEMBER"}))
            count = data.get("firstDegreeSize")
        else:
            data = _json(self._rest(account, "GET", "memberFollowersCount", params={"q": "me"}))
            elements = data.get("elements") or [{}]
            count = elements[0].get("memberFollowersCount") if isinstance(elements[0], dict) else None
        if not isinstance(count, int) or isinstance(count, bool):
            raise Transient("linkedin: the follower answer carried no count")
        return count

    # -- refresh: declared in ``token_refresh`` --------------------------------------------------

    # -- find_published -----------------------------------------------------------------------
    def find_published(self, account: AccountRef, post: Post, key: str,
                       progress: Progress | None = None) -> Published | None:
        """The author's recent post with this commentary. Listing needs r_organization_social (pages)
        or the restricted r_member_social (members); without it the answer is None and a retried
        publish relies on LinkedIn's duplicate refusal instead."""
        author = self._author(account)
        try:
            response = self._rest(account, "GET", "posts", headers={"X-RestLi-Method": "FINDER"}, params={
                "q": "author", "author": author, "count": 20, "sortBy": "LAST_MODIFIED"})
        except Rejected as exc:
            if exc.status == 403:
                return None
            raise
        wanted = escape_little_text(post.body)
        since = (post.created_at - _CLOCK_SKEW).timestamp() * 1000 if post.created_at else 0
        for element in _json(response).get("elements") or []:
            if element.get("commentary") == wanted and (element.get("createdAt") or 0) >= since:
                return Published(remote_id=element["id"], url=post_url(element["id"]),
                                 published_at=datetime.fromtimestamp(element["createdAt"] / 1000, UTC))
        return None

    # -- identity -----------------------------------------------------------------------------
    @classmethod
    def normalize_handle(cls, handle: str) -> str:
        """A URN as given (its id is case-sensitive). Anything else is only a label (the URN then
        travels as ``author`` in the credentials): lowercase, without ``@``, spaces collapsed."""
        text = handle.strip()
        if _URN_RE.fullmatch(text):
            return text
        if text.startswith("urn:"):
            raise ValueError(f"linkedin: handle {text!r} is not urn:li:person:<id> or "
                             "urn:li:organization:<id>")
        name = " ".join(text.removeprefix("@").lower().split())
        if not name:
            raise ValueError("linkedin: handle is empty")
        return name

    def whoami(self, account: AccountRef) -> Identity:
        """The token's member (OpenID userinfo). For an organisation, the organisation itself, once
        the member is found to hold a posting role in it; a member token naming another author is
        refused here, before anything is stored."""
        url = f"{self.base_url(account)}/v2/userinfo"
        info = _json(self.request(account, "GET", url, headers=self.auth(account)))
        if not info.get("sub"):
            raise Transient("linkedin: userinfo answered without sub")
        member = f"urn:li:person:{info['sub']}"
        name = info.get("name") or None
        author = self._author(account)
        if author.startswith("urn:li:organization:"):
            acls = _json(self._rest(account, "GET", "organizationAcls",
                                    params={"q": "roleAssignee", "state": "APPROVED"}))
            roles = {e.get("role") for e in acls.get("elements") or []
                     if isinstance(e, dict) and e.get("organization") == author}
            if not roles & _POSTING_ROLES:
                raise Rejected(f"linkedin: {member} has no posting role in {author}")
            return Identity(handle=author, remote_id=author, name=name)
        if author != member:
            raise Rejected(f"linkedin: the token belongs to {member}, not to {author}")
        handle = account.handle.strip()
        return Identity(handle=self.normalize_handle(handle), remote_id=member, name=name)

    # -- classify -----------------------------------------------------------------------------
    def classify(self, response: requests.Response) -> Exception | None:
        body = _json(response, strict=False)
        status = response.status_code
        code = str(body.get("code") or body.get("error") or "")
        message = str(body.get("message") or body.get("error_description") or response.text[:200]).strip()
        reason = f"linkedin: {status} {code}: {message}" if code else f"linkedin: {status}: {message}"
        if status == 429:
            wait = http.parse_retry_after(response.headers.get("Retry-After"))
            # No header: the daily call limits reset at midnight UTC.
            scope = "app" if "application" in message.lower() else "account"
            return RateLimited(reason, wait if wait is not None else _until_midnight(), status=status,
                               scope=scope)
        if status >= 500:
            return None  # the defaults; "maybe sent" follows the one rule in http.py
        if status == 401 or code == "invalid_grant":
            return AuthExpired(reason, status=status)
        inputs = (body.get("errorDetails") or {}).get("inputErrors") or []
        if status == 422 and ("DUPLICATE_POST" in {i.get("code") for i in inputs} or "duplicate" in message):
            found = _DUPLICATE_RE.search(message)
            return _Duplicate(reason, found.group(1) if found else None, status=status)
        if status == 426:
            return Rejected(f"{reason} (LinkedIn-Version {VERSION} is no longer served: update crosspost)",
                            status=status)
        method = getattr(response.request, "method", None)
        if status == 403 and method == "GET" and "/rest/videos/" in (response.url or ""):
            # Reported right after an upload, before the video is readable; it passes.
            return Transient(reason, status=status)
        if status == 403:
            return Rejected(f"{reason} (the app or the member lacks a permission for this author)",
                            status=status)
        return Rejected(reason, status=status)

    # -- helpers ------------------------------------------------------------------------------
    def _author(self, account: AccountRef) -> str:
        for candidate in (account.handle.strip(), account.credentials.get("author") or ""):
            if _URN_RE.fullmatch(candidate):
                return candidate
        raise Rejected("linkedin: the account handle must be urn:li:organization:<id> or urn:li:person:<id> "
                       "(or store that URN as 'author' with the credentials)")

    def _rest(self, account: AccountRef, method: str, path: str, headers: dict[str, str] | None = None,
              **kwargs: Any) -> requests.Response:
        headers = {**self.auth(account), "LinkedIn-Version": VERSION, "X-Restli-Protocol-Version": "2.0.0",
                   **(headers or {})}
        url = f"{self.base_url(account)}/rest/{path}"
        return self.request(account, method, url, headers=headers, **kwargs)

    def _value(self, response: requests.Response) -> dict[str, Any]:
        value = _json(response).get("value")
        if not isinstance(value, dict):
            raise Transient("linkedin: initializeUpload answered without a value")
        return value


class _Duplicate(Rejected):
    """422 DUPLICATE_POST, with the URN of the post that already carries this content."""

    def __init__(self, reason: str, urn: str | None, *, status: int | None = None) -> None:
        super().__init__(reason, status=status)
        self.urn = urn



def _until_midnight(now: datetime | None = None) -> float:
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


def _json(response: requests.Response, strict: bool = True) -> dict[str, Any]:
    """The answer's JSON object; not ``strict`` (an error body): ``{}`` for anything else."""
    if not strict:
        body = http.body_of(response)
        return body if isinstance(body, dict) else {}
    return http.json_object(response, "linkedin")
