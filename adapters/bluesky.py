"""Bluesky (AT Protocol): app-password sessions on the account's PDS, posts as records.

A post is written with ``putRecord`` under a record key derived from the delivery (its TID), and the
record never changes between attempts (``createdAt`` is fixed at the first one), so a retry after a
lost answer rewrites the identical record: the PDS answers 200 with the same CID and no second post.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import regex
import requests

from adapters import http
from adapters.base import AccountRef, Adapter, Capabilities, Credentials, Post, Problem, Progress, Published
from adapters.errors import AuthExpired, RateLimited, Rejected, Transient
from adapters.text import Span, graphemes, link_spans, utf8_bytes

POST = "app.bsky.feed.post"
TEXT_BYTES = 3000
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


def facets(text: str) -> list[dict[str, Any]]:
    """Link and hashtag facets of ``text`` in byte order; a tag inside a link is part of the link."""
    links = link_spans(text)
    found = [(s, {"$type": "app.bsky.richtext.facet#link", "uri": s.value}) for s in links]
    found += [(s, {"$type": "app.bsky.richtext.facet#tag", "tag": s.value}) for s in tag_spans(text)
              if not any(s.byte_start < link.byte_end and link.byte_start < s.byte_end for link in links)]
    found.sort(key=lambda item: item[0].byte_start)
    return [{"index": {"byteStart": s.byte_start, "byteEnd": s.byte_end}, "features": [feature]}
            for s, feature in found]


def created_at_iso(created_at: datetime) -> str:
    """Lexicon datetime: UTC with milliseconds and 'Z', the form the official clients write."""
    return created_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class BlueskyAdapter(Adapter):
    platform = "bluesky"
    default_base_url = "https://bsky.social"

    # -- caps ----------------------------------------------------------------------------------
    caps = Capabilities(text_limit=300, count=graphemes, unit="graphemes", idempotent=True, can_find=True)

    # -- check_platform ------------------------------------------------------------------------
    def check_platform(self, post: Post) -> list[Problem]:
        size = utf8_bytes(post.body)
        if size > TEXT_BYTES:
            return [Problem(self.platform, "text", f"is {size} UTF-8 bytes long; the limit is {TEXT_BYTES}")]
        return []

    # -- publish -------------------------------------------------------------------------------
    def publish(self, account: AccountRef, post: Post, key: str,
                progress: Progress | None = None) -> Published:
        if post.created_at is None:
            # A time taken now would differ on the retry, and the retry would edit instead of no-op.
            raise ValueError("bluesky: post.created_at must be fixed at the first attempt")
        access, did = self._session(account)
        rkey = tid(post.created_at, key)
        record: dict[str, Any] = {"$type": POST, "text": post.body,
                                  "createdAt": created_at_iso(post.created_at)}
        if found := facets(post.body):
            record["facets"] = found
        response = self.request(
            account, "POST", f"{self.base_url(account)}/xrpc/com.atproto.repo.putRecord",
            headers=_bearer(access),
            json={"repo": did, "collection": POST, "rkey": rkey, "record": record},
        )
        uri = _json(response).get("uri") or f"at://{did}/{POST}/{rkey}"
        return Published(remote_id=uri, url=self._web_url(account, rkey))

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
    def find_published(self, account: AccountRef, post: Post, key: str) -> Published | None:
        if post.created_at is None:
            return None  # publish never ran for it: it would have refused without a time
        did = account.credentials.get("did")
        if not did:
            raise AuthExpired("bluesky: no session yet")
        rkey = tid(post.created_at, key)
        # getRecord is public: no token, so an expired one cannot make the answer an auth error.
        try:
            response = self.request(
                account, "GET", f"{self.base_url(account)}/xrpc/com.atproto.repo.getRecord",
                params={"repo": did, "collection": POST, "rkey": rkey},
            )
        except _NotFound:
            return None
        uri = _json(response).get("uri") or f"at://{did}/{POST}/{rkey}"
        return Published(remote_id=uri, url=self._web_url(account, rkey))

    # -- classify ------------------------------------------------------------------------------
    def classify(self, response: requests.Response) -> Exception | None:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        name, message = str(body.get("error") or ""), str(body.get("message") or "")
        detail = f"{status} {name}: {message}" if name else f"{status}: {message or response.text[:200]}"
        reason = f"bluesky: {detail}".rstrip(": ")
        if status == 429:
            waits = [w for w in (http.parse_reset(response.headers.get("ratelimit-reset")),
                                 http.parse_retry_after(response.headers.get("Retry-After")))
                     if w is not None]
            return RateLimited(reason, max(waits) if waits else 60.0, status=status)
        if status >= 500:
            return Transient(reason, status=status, maybe_sent=True)
        if name in _TAKEN_DOWN:
            return Rejected(reason, status=status)
        if status == 401 or name in _AUTH_ERRORS:
            return AuthExpired(reason, status=status)
        if name == "RecordNotFound":
            return _NotFound(reason, status=status)
        if status in (400, 403, 413):
            return Rejected(reason, status=status)
        return None

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
                                  did=data.get("did"))

    def _web_url(self, account: AccountRef, rkey: str) -> str:
        return f"https://bsky.app/profile/{account.handle.lstrip('@')}/post/{rkey}"


class _NotFound(Rejected):
    """getRecord's 400 RecordNotFound: for find_published an answer, elsewhere a refusal."""


_AUTH_ERRORS = frozenset({"ExpiredToken", "InvalidToken", "AuthenticationRequired", "AuthMissing"})
_TAKEN_DOWN = frozenset({"AccountTakedown", "AccountDeactivated"})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise Transient(f"bluesky: {response.status_code} answer is not JSON", status=response.status_code,
                        maybe_sent=True) from None
    return data if isinstance(data, dict) else {}
