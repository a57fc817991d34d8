"""Bluesky (AT Protocol): app-password sessions on the account's PDS, posts as records.

A post is written with ``putRecord`` under a record key derived from the delivery (its TID), and the
record never changes between attempts (``createdAt`` is fixed at the first one, uploaded blobs and
resolved mentions are kept in the delivery's progress), so a retry after a lost answer rewrites the
identical record: the PDS answers 200 with the same CID and no second post. A thread is one such
record per part, each under its own key, the later ones replying to the first and the previous.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar

import regex
import requests
from pydantic import StringConstraints, model_validator

from adapters import http
from adapters.base import (
    AccountRef,
    Adapter,
    Capabilities,
    Credentials,
    CredentialsModel,
    Handles,
    Identity,
    Media,
    Post,
    Problem,
    Progress,
    Published,
    Token,
    secret_like,
)
from adapters.errors import AuthExpired, Rejected, Transient
from adapters.text import Span, graphemes, link_spans, split_thread, utf8_bytes

POST = "app.bsky.feed.post"
TEXT_LIMIT = 300
TEXT_BYTES = 3000
VIDEO_ALT_LIMIT = 1000
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The official client's hashtag rule (@atproto/api richtext): after the start or white space, '#' or
# fullwidth U+FF03, at least one character that is not a digit or punctuation, no zero-width characters;
# not a hashtag when the '#' starts an emoji keycap (U+FE0F follows).
_ZW = "\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2"
_TAG_RE = regex.compile(
    rf"(^|\s)[#\uff03]((?!\ufe0f)[^\s{_ZW}]*[^\d\s\p{{P}}{_ZW}]+[^\s{_ZW}]*)?"
)
_TRAILING_PUNCTUATION = regex.compile(r"\p{P}+$")
_TAG_MAX_GRAPHEMES = 64
_TAG_MAX_BYTES = 640
# The official client's mention rule: '@' after the start, white space or '(', then a handle (domain
# labels; the last one starts with a letter). "mail@example.com" is not a mention.
_MENTION_RE = regex.compile(
    r"(?:^|(?<=[\s(]))@((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+"
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(?![a-zA-Z0-9_-])"
)


def tid(created_at: datetime, key: str) -> str:
    """The record key of one delivery: 53 bits of microseconds of ``created_at`` and a 10-bit clock
    id from ``key``, in the 13-character base32-sortable form. The same delivery always gets the same
    key; two deliveries created in the same millisecond differ unless their clock ids collide."""
    if created_at.tzinfo is None:
        raise ValueError("created_at must be timezone-aware")
    # Whole milliseconds, like createdAt: a time that lost its microseconds in storage between two
    # attempts still gives the same key and the same record.
    micros = (created_at - _EPOCH) // timedelta(milliseconds=1) * 1000
    if not 0 <= micros < 1 << 53:
        raise ValueError(f"created_at {created_at.isoformat()} is outside the TID range")
    clock = int.from_bytes(hashlib.sha256(key.encode()).digest(), "big") % 1024
    value = micros << 10 | clock
    return "".join(TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def part_time(created_at: datetime, index: int) -> datetime:
    """When part ``index`` of a thread says it was written: a millisecond apart, so the parts' keys
    sort in reading order."""
    return created_at + timedelta(milliseconds=index)


def part_tid(created_at: datetime, key: str, index: int) -> str:
    """The record key of part ``index``; part 0 is the key of a single post."""
    return tid(part_time(created_at, index), key if index == 0 else f"{key}:{index}")


def bluesky_length(text: str) -> int:
    """Length against both limits at once: at most 300 exactly when the text has at most 300 graphemes
    and at most 3000 UTF-8 bytes, so a thread split with it fits both."""
    return max(graphemes(text), -(-utf8_bytes(text) * TEXT_LIMIT // TEXT_BYTES))


def tag_spans(text: str) -> list[Span]:
    """Every hashtag in ``text`` with the UTF-8 byte range of '#tag'; ``value`` is the tag without '#'."""
    spans = []
    for m in _TAG_RE.finditer(text):
        tag = m.group(2)
        if not tag:
            continue
        tag = _TRAILING_PUNCTUATION.sub("", tag.strip())
        if not tag or graphemes(tag) > _TAG_MAX_GRAPHEMES or utf8_bytes(tag) > _TAG_MAX_BYTES:
            continue
        start = m.start(2) - 1  # the '#' or U+FF03: one code point
        byte_start = utf8_bytes(text[:start])
        spans.append(Span(byte_start, byte_start + utf8_bytes(text[start:m.start(2)] + tag), tag))
    return spans


def mention_spans(text: str) -> list[Span]:
    """Every ``@handle`` in ``text`` with the byte range of '@handle'; ``value`` is the handle, lower case."""
    spans = []
    for m in _MENTION_RE.finditer(text):
        if len(m.group(1)) > 253:
            continue
        start = utf8_bytes(text[:m.start()])
        spans.append(Span(start, start + utf8_bytes(m.group()), m.group(1).lower()))
    return spans


def facets(text: str, dids: Mapping[str, str | None] | None = None) -> list[dict[str, Any]]:
    """Link, mention and hashtag facets of ``text`` in byte order. A mention gets a facet only when
    ``dids`` knows its handle's DID; a tag or mention inside a link is part of the link."""
    links = link_spans(text)
    found = [(s, {"$type": "app.bsky.richtext.facet#link", "uri": s.value}) for s in links]
    others = [(s, {"$type": "app.bsky.richtext.facet#tag", "tag": s.value}) for s in tag_spans(text)]
    others += [(s, {"$type": "app.bsky.richtext.facet#mention", "did": (dids or {})[s.value]})
               for s in mention_spans(text) if (dids or {}).get(s.value)]
    found += [(s, f) for s, f in others
              if not any(s.byte_start < link.byte_end and link.byte_start < s.byte_end for link in links)]
    found.sort(key=lambda item: item[0].byte_start)
    return [{"index": {"byteStart": s.byte_start, "byteEnd": s.byte_end}, "features": [feature]}
            for s, feature in found]


def created_at_iso(created_at: datetime) -> str:
    """Lexicon datetime: UTC with milliseconds and 'Z', the form the official clients write."""
    return created_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A handle is a domain name (lowercase on the network); a DID names an account for good.
_HANDLE_RE = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+"
_DID_RE = r"did:(plc|web):[A-Za-z0-9._:%-]+"
AppPassword = secret_like(r"[a-z0-9]{4}(-[a-z0-9]{4}){3}",
                          "an app password (xxxx-xxxx-xxxx-xxxx, from Settings > Privacy > App passwords)")


class BlueskyCredentials(CredentialsModel):
    """An app password (and the login it belongs to: handle, DID or e-mail), and the session that
    refresh writes back: both JWTs rotate, the DID names the repository."""

    identifier: Annotated[str, StringConstraints(min_length=3, pattern=r"\S+")] | None = None
    password: AppPassword | None = None
    # The PDS's own names.
    accessJwt: Token | None = None
    refreshJwt: Token | None = None
    did: Annotated[str, StringConstraints(pattern=_DID_RE)] | None = None
    expires_at: datetime | None = None

    @model_validator(mode="after")
    def can_log_in(self) -> BlueskyCredentials:
        if not (self.identifier and self.password) and not self.refreshJwt:
            raise ValueError("need identifier and password (an app password), or a session's refreshJwt")
        return self


class BlueskyAdapter(Adapter):
    platform = "bluesky"
    default_base_url = "https://bsky.social"

    # -- caps ----------------------------------------------------------------------------------
    # Images: the lexicon's 1,000,000 bytes (PDS 0.5.35 accepts 2,000,000; older servers and clients
    # do not). Video goes up as one blob like an image, so it stays under the 50 MiB blob cap of
    # Bluesky's PDSes.
    caps = Capabilities(
        text_limit=TEXT_LIMIT, count=graphemes, unit="graphemes", idempotent=True, can_find=True,
        max_images=4, max_image_bytes=1_000_000,
        image_types=frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"}),
        max_videos=1, video_types=frozenset({"video/mp4"}), max_video_bytes=50_000_000, threads=True,
    )
    credentials_model: ClassVar[type[CredentialsModel]] = BlueskyCredentials
    # Handles are domain names, lowercase on the network; a DID names an account for good.
    handles: ClassVar[Handles] = Handles(name=_HANDLE_RE, ids=_DID_RE,
                                          what="a domain name such as newsroom.bsky.social, nor a DID")
    rules: ClassVar[http.Rules] = http.Rules(reset_headers=("ratelimit-reset",))

    # -- check_platform ------------------------------------------------------------------------
    def check_platform(self, post: Post) -> list[Problem]:
        problems = []
        size = utf8_bytes(post.body)
        if size > TEXT_BYTES and not post.thread:
            problems.append(Problem(self.platform, "text", f"is {size} UTF-8 bytes long; the limit is "
                                                           f"{TEXT_BYTES}; use --thread for a reply chain"))
        elif post.thread:
            try:
                self._parts(post)
            except ValueError as exc:
                problems.append(Problem(self.platform, "text", f"cannot be split into a thread: {exc}"))
        for m in post.videos:
            if graphemes(m.alt) > VIDEO_ALT_LIMIT:
                problems.append(Problem(self.platform, "media", f"video alt text is {graphemes(m.alt)} "
                                                                f"graphemes; the limit is {VIDEO_ALT_LIMIT}"))
        return problems

    # -- publish -------------------------------------------------------------------------------
    def publish(self, account: AccountRef, post: Post, key: str,
                progress: Progress | None = None) -> Published:
        if post.created_at is None:
            # A time taken now would differ on the retry, and the retry would edit instead of no-op.
            raise ValueError("bluesky: post.created_at must be fixed at the first attempt")
        progress = progress if progress is not None else Progress()
        access, did = self._session(account)
        parts: list[str] = progress.get("thread") or self._parts(post)
        if len(parts) > 1 and not progress.get("thread"):
            progress.save(thread=parts)  # a retry never splits differently (after an upgrade, say)
        written: list[dict[str, str]] = [dict(p) for p in progress.get("parts") or []]
        embed = self._embed(account, access, post, progress) if post.media and not written else None
        dids = self._resolve(account, parts[len(written):], progress)
        for i in range(len(written), len(parts)):
            record: dict[str, Any] = {"$type": POST, "text": parts[i],
                                      "createdAt": created_at_iso(part_time(post.created_at, i))}
            if found := facets(parts[i], dids):
                record["facets"] = found
            if post.language:
                # Language labels let feeds and readers filter and translate; every part shares one.
                record["langs"] = [post.language]
            if i == 0 and embed:
                record["embed"] = embed
            if written:
                record["reply"] = {"root": written[0], "parent": written[-1]}
            written.append(self._put(account, access, did, part_tid(post.created_at, key, i), record,
                                     progress))
            if len(parts) > 1:
                progress.save(parts=written)
        return Published(remote_id=written[0]["uri"],
                         url=self._web_url(account, part_tid(post.created_at, key, 0)))

    def _parts(self, post: Post) -> list[str]:
        body = post.body
        if post.thread and bluesky_length(body) > TEXT_LIMIT:
            return split_thread(body, TEXT_LIMIT, bluesky_length)
        return [body]

    def _put(self, account: AccountRef, access: str, did: str, rkey: str, record: dict[str, Any],
             progress: Progress) -> dict[str, str]:
        try:
            response = self.request(
                account, "POST", f"{self.base_url(account)}/xrpc/com.atproto.repo.putRecord",
                headers=_bearer(access),
                json={"repo": did, "collection": POST, "rkey": rkey, "record": record})
        except _BlobNotFound as exc:
            # The PDS forgets blobs no record uses after a while: upload again on the next attempt
            # (same bytes, same CIDs, so the record is still the same).
            progress.save(blobs=[])
            raise Transient(f"{exc.reason}; the media is uploaded again on the next attempt",
                            status=exc.status) from None
        data = _json(response)
        uri, cid = data.get("uri"), data.get("cid")
        if not isinstance(uri, str) or not isinstance(cid, str):
            raise Transient("bluesky: putRecord answered without uri and cid", maybe_sent=True)
        return {"uri": uri, "cid": cid}

    def _resolve(self, account: AccountRef, texts: list[str], progress: Progress) -> dict[str, str | None]:
        """The DID of every handle mentioned in ``texts`` (None: it does not resolve, so it stays plain
        text), kept in progress so that every attempt writes the same facets."""
        known: dict[str, str | None] = dict(progress.get("mentions") or {})
        missing = sorted({s.value for text in texts for s in mention_spans(text)} - set(known))
        for handle in missing:
            try:
                response = self.request(
                    account, "GET", f"{self.base_url(account)}/xrpc/com.atproto.identity.resolveHandle",
                    params={"handle": handle})
            except Rejected:  # 400 HandleNotFound, or "Unable to resolve handle" for another domain
                known[handle] = None
                continue
            did = _json(response).get("did")
            known[handle] = did if isinstance(did, str) and did.startswith("did:") else None
        if missing:
            progress.save(mentions=known)
        return known

    # -- media upload --------------------------------------------------------------------------
    def _embed(self, account: AccountRef, access: str, post: Post, progress: Progress) -> dict[str, Any]:
        blobs: list[dict[str, Any]] = list(progress.get("blobs") or [])
        for media in post.media[len(blobs):]:
            blobs.append(self._upload(account, access, media))
            progress.save(blobs=blobs)
        if post.videos:
            video = post.videos[0]
            embed: dict[str, Any] = {"$type": "app.bsky.embed.video", "video": blobs[0]}
            if video.alt:
                embed["alt"] = video.alt
            if ratio := _aspect(video):
                embed["aspectRatio"] = ratio
            return embed
        images = []
        for media, blob in zip(post.media, blobs, strict=True):
            image: dict[str, Any] = {"image": blob, "alt": media.alt}
            if ratio := _aspect(media):
                image["aspectRatio"] = ratio
            images.append(image)
        return {"$type": "app.bsky.embed.images", "images": images}

    def _upload(self, account: AccountRef, access: str, media: Media) -> dict[str, Any]:
        # Sent as is: EXIF (camera, GPS) is not stripped; the newsroom's media are assumed cleaned.
        try:
            with open(media.path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise Rejected(f"bluesky: cannot read the media file {media.path}: {exc.strerror}") from None
        response = self.request(
            account, "POST", f"{self.base_url(account)}/xrpc/com.atproto.repo.uploadBlob",
            headers={**_bearer(access), "Content-Type": media.mime}, data=data,
        )
        blob = _json(response).get("blob")
        if not isinstance(blob, dict) or not isinstance(blob.get("ref"), dict):
            raise Transient("bluesky: uploadBlob answered without a blob")
        return blob  # as the PDS describes it (its mimeType is sniffed from the bytes)

    # -- followers -----------------------------------------------------------------------------
    def followers(self, account: AccountRef) -> int:
        access, did = self._session(account)
        response = self.request(
            account, "GET", f"{self.base_url(account)}/xrpc/app.bsky.actor.getProfile",
            headers=_bearer(access), params={"actor": did},
        )
        count = _json(response).get("followersCount")
        if not isinstance(count, int):
            raise Transient("bluesky: getProfile answered without followersCount")
        return count

    # -- refresh -------------------------------------------------------------------------------
    def refresh(self, account: AccountRef) -> Credentials:
        """A new session: rotate the refresh token if there is one; log in again with the app password
        only when the PDS refuses it (``createSession`` is limited to 30 per 5 minutes per account)."""
        credentials = account.credentials
        base = self.base_url(account)
        refresh_jwt = credentials.get("refreshJwt")
        if refresh_jwt:
            try:
                response = self.request(account, "POST", f"{base}/xrpc/com.atproto.server.refreshSession",
                                        headers=_bearer(refresh_jwt))
                return self._stored(credentials, response)
            except AuthExpired:
                pass  # expired or revoked: the app password may still work
        identifier, password = credentials.get("identifier"), credentials.get("password")
        if not identifier or not password:
            raise AuthExpired("bluesky: the session cannot be refreshed and no app password is stored; "
                              "re-authorise the account")
        try:
            response = self.request(account, "POST", f"{base}/xrpc/com.atproto.server.createSession",
                                    json={"identifier": identifier, "password": password})
        except AuthExpired as exc:
            raise AuthExpired(f"{exc.reason}; re-authorise the account with a new app password",
                              status=exc.status) from None
        return self._stored(credentials, response)

    # -- find_published ------------------------------------------------------------------------
    def find_published(self, account: AccountRef, post: Post, key: str,
                       progress: Progress | None = None) -> Published | None:
        """The delivery's post if it is there; for a thread, only when its last part is there too
        (parts go out in order; otherwise publish resumes the chain from its progress)."""
        if post.created_at is None:
            return None  # publish never ran for it: it would have refused without a time
        did = account.credentials.get("did")
        if not did:
            raise AuthExpired("bluesky: no session yet")
        last = len(self._parts(post)) - 1
        found = None
        for index in sorted({last, 0}, reverse=True):
            rkey = part_tid(post.created_at, key, index)
            # getRecord is public: no token, so an expired one cannot make the answer an auth error.
            try:
                response = self.request(
                    account, "GET", f"{self.base_url(account)}/xrpc/com.atproto.repo.getRecord",
                    params={"repo": did, "collection": POST, "rkey": rkey},
                )
            except _NotFound:
                return None
            found = Published(remote_id=_json(response).get("uri") or f"at://{did}/{POST}/{rkey}",
                              url=self._web_url(account, rkey))
        return found

    # -- classify ------------------------------------------------------------------------------
    def classify(self, response: requests.Response) -> Exception | None:
        """Only what Bluesky's error names add to the status (``rules`` and the defaults do the rest:
        ratelimit-reset on a 429, 5xx, 401): a taken-down account, an expired token that comes as a
        400, and the not-found answers that find_published and media reuse read."""
        status = response.status_code
        if status == 429 or status >= 500:
            return None
        body = http.body_of(response)
        name = str(body.get("error") or "") if isinstance(body, dict) else ""
        reason = f"bluesky: {status} {name}: {body.get('message') or ''}".rstrip(": ") if name else ""
        if name in _TAKEN_DOWN:
            return Rejected(reason, status=status)
        if name in _AUTH_ERRORS:
            return AuthExpired(reason, status=status)
        if name == "RecordNotFound":
            return _NotFound(reason, status=status)
        if name == "BlobNotFound":
            return _BlobNotFound(reason, status=status)
        return None

    # -- identity ------------------------------------------------------------------------------
    def whoami(self, account: AccountRef) -> Identity:
        """The session's handle and DID: getSession with a stored session, else the login itself
        (createSession answers with both)."""
        access = account.credentials.get("accessJwt")
        base = self.base_url(account)
        if access:
            response = self.request(account, "GET", f"{base}/xrpc/com.atproto.server.getSession",
                                    headers=_bearer(access))
        else:
            identifier = account.credentials.require("identifier", self.platform)
            password = account.credentials.require("password", self.platform)
            response = self.request(account, "POST", f"{base}/xrpc/com.atproto.server.createSession",
                                    json={"identifier": identifier, "password": password})
        data = self.json(response)
        if not isinstance(data.get("handle"), str) or not isinstance(data.get("did"), str):
            raise Transient("bluesky: the session names no handle and DID")
        return Identity(handle=self.normalize_handle(data["handle"]), remote_id=data["did"])

    # -- helpers -------------------------------------------------------------------------------
    def _session(self, account: AccountRef) -> tuple[str, str]:
        access, did = account.credentials.get("accessJwt"), account.credentials.get("did")
        if not access or not did:
            raise AuthExpired("bluesky: no session yet")
        return access, did

    def _stored(self, credentials: Credentials, response: requests.Response) -> Credentials:
        data = _json(response)
        if not data.get("accessJwt") or not data.get("refreshJwt"):
            raise Transient("bluesky: session answer without tokens")
        # Both tokens rotate: the old refresh token is revoked, so the new pair must be stored.
        return credentials.merged(accessJwt=data["accessJwt"], refreshJwt=data["refreshJwt"],
                                  did=data.get("did"), expires_at=_expiry(data["accessJwt"]))

    def _web_url(self, account: AccountRef, rkey: str) -> str:
        return f"https://bsky.app/profile/{account.handle.lstrip('@')}/post/{rkey}"


class _NotFound(Rejected):
    """getRecord's 400 RecordNotFound: for find_published an answer, elsewhere a refusal."""


class _BlobNotFound(Rejected):
    """putRecord's 400 BlobNotFound: an uploaded blob is gone (or was never this account's)."""


_AUTH_ERRORS = frozenset({"ExpiredToken", "InvalidToken", "AuthenticationRequired", "AuthMissing"})
_TAKEN_DOWN = frozenset({"AccountTakedown", "AccountDeactivated"})


def _aspect(media: Media) -> dict[str, int] | None:
    if media.width and media.height and media.width > 0 and media.height > 0:
        return {"width": int(media.width), "height": int(media.height)}
    return None


def _expiry(jwt: str) -> str | None:
    """When the access token expires, from its ``exp`` claim (read, not verified: it is only a hint
    for refreshing early), as ISO-8601 UTC."""
    try:
        payload = jwt.split(".")[1]
        exp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
        return datetime.fromtimestamp(int(exp), UTC).isoformat()
    except (IndexError, ValueError, KeyError, TypeError, OverflowError, OSError):
        return None


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _json(response: requests.Response) -> dict[str, Any]:
    return http.json_object(response, "bluesky")
