"""Mastodon (and API-compatible servers): one status per delivery on the account's own instance.

Reference: platforms.md section 3. Publishing is safe to repeat for an hour thanks to the
``Idempotency-Key`` header; after that, ``find_published`` looks the status up on the account's
timeline. Tokens never expire and cannot be refreshed.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests

from adapters import http
from adapters.base import AccountRef, Adapter, Capabilities, Post, Problem, Progress, Published
from adapters.errors import AuthExpired, RateLimited, Rejected, Transient
from adapters.text import mastodon_length

# Mastodon answers at most 40 statuses a page; a few pages cover any plausible burst of posts
# since a delivery's first attempt without walking an account's whole history.
_PAGE_SIZE = 40
_MAX_PAGES = 5
# Our clock and the instance's may disagree a little.
_CLOCK_SKEW = timedelta(minutes=1)

_BREAK_RE = re.compile(r"<br\s*/?>|</p>", re.IGNORECASE)
_TAG_RE = re.compile(r"<[^>]*>")
# Rendered HTML shows a remote mention ``@user@domain`` as ``@user``.
_REMOTE_MENTION_RE = re.compile(r"(@[\w.]+)@[\w.-]+\w")


class MastodonAdapter(Adapter):
    platform: ClassVar[str] = "mastodon"
    default_base_url: ClassVar[str] = "https://mastodon.social"

    # -- caps ---------------------------------------------------------------------------------
    # 500 is the default instance limit; check() is pure, so a story is held to it even where the
    # instance allows more. An instance that allows less answers 422, which becomes Rejected.
    caps: ClassVar[Capabilities] = Capabilities(
        text_limit=500, count=mastodon_length, unit="characters",
        idempotent=True, idempotent_for=timedelta(hours=1), can_find=True,
    )

    # -- check_platform -------------------------------------------------------------------------
    def check_platform(self, post: Post) -> list[Problem]:
        """Nothing beyond the shared rules: a text-and-link status has no other constraint."""
        return []

    # -- publish ------------------------------------------------------------------------------
    def publish(self, account: AccountRef, post: Post, key: str,
                progress: Progress | None = None) -> Published:
        response = self.request(
            account, "POST", f"{self.base_url(account)}/api/v1/statuses",
            json={"status": post.body, "visibility": "public"},
            headers={**self._auth(account), "Idempotency-Key": key},
        )
        status = self._json(response)
        if not isinstance(status, dict) or not status.get("id"):
            # A 2xx without a status: it may exist; a retry with the same key returns it if so.
            raise Transient(f"{self.platform}: the instance answered {response.status_code} without a status",
                            status=response.status_code, maybe_sent=True)
        return self._published(status)

    # -- followers ----------------------------------------------------------------------------
    def followers(self, account: AccountRef) -> int:
        count = self._me(account).get("followers_count")
        if not isinstance(count, int) or isinstance(count, bool):
            raise Transient(f"{self.platform}: verify_credentials has no followers_count")
        return count

    # -- refresh ------------------------------------------------------------------------------
    # Mastodon tokens never expire and there is no refresh flow: the base refresh() raises
    # AuthExpired, so a refused token sends the account to re-authorisation.

    # -- find_published -----------------------------------------------------------------------
    def find_published(self, account: AccountRef, post: Post, key: str) -> Published | None:
        """The status carrying ``post.body``, created no earlier than the delivery's first attempt.

        Without ``post.created_at`` any status with the same text counts: reporting a story as out
        is the lesser mistake next to posting it twice.
        """
        account_id = self._me(account).get("id")
        if not account_id:
            raise Transient(f"{self.platform}: verify_credentials has no account id")
        wanted = _normalise(post.body)
        since = post.created_at - _CLOCK_SKEW if post.created_at else None
        url = f"{self.base_url(account)}/api/v1/accounts/{account_id}/statuses"
        params: dict[str, Any] = {"limit": _PAGE_SIZE, "exclude_replies": "true"}
        for _ in range(_MAX_PAGES):
            page = self._json(self.request(account, "GET", url, params=params, headers=self._auth(account)))
            if not isinstance(page, list):
                # "Not found" from an unreadable answer would let the scheduler post twice.
                raise Transient(f"{self.platform}: the account's statuses were not a list")
            if not page:
                return None
            for status in page:
                if not isinstance(status, dict) or status.get("reblog"):
                    continue
                created = _parse_time(status.get("created_at"))
                if since and created and created < since:
                    # Newest first: everything after this is older still.
                    return None
                if _normalise(_html_text(str(status.get("content") or ""))) == wanted:
                    return self._published(status)
            if len(page) < _PAGE_SIZE or since is None:
                return None
            params["max_id"] = page[-1].get("id")
        return None

    # -- classify -----------------------------------------------------------------------------
    def classify(self, response: requests.Response) -> Exception | None:
        status = response.status_code
        detail = _error_text(response)
        if status == 429:
            waits = [w for w in (http.parse_reset(response.headers.get("X-RateLimit-Reset")),
                                 http.parse_retry_after(response.headers.get("Retry-After")))
                     if w is not None]
            # Both can be present; the later one is the one that is certainly honoured.
            return RateLimited(f"{self.platform}: rate limited (429): {detail}",
                               max(waits) if waits else 60.0, status=status, scope="account")
        if status == 401:
            return AuthExpired(f"{self.platform}: access token refused (401): {detail}; "
                               "re-authorise the account", status=status)
        if status in (403, 404, 410):
            return Rejected(f"{self.platform}: not allowed or account gone ({status}): {detail}",
                            status=status)
        if status == 422:
            return Rejected(f"{self.platform}: status refused (422): {detail}", status=status)
        if status >= 500:
            return Transient(f"{self.platform}: server error {status}: {detail}", status=status,
                             maybe_sent=True)
        return None

    # -- helpers ------------------------------------------------------------------------------
    def _auth(self, account: AccountRef) -> dict[str, str]:
        return {"Authorization": f"Bearer {account.credentials.require('access_token', self.platform)}"}

    def _me(self, account: AccountRef) -> dict[str, Any]:
        url = f"{self.base_url(account)}/api/v1/accounts/verify_credentials"
        me = self._json(self.request(account, "GET", url, headers=self._auth(account)))
        if not isinstance(me, dict):
            raise Transient(f"{self.platform}: verify_credentials did not answer an account")
        return me

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    def _published(self, status: dict[str, Any]) -> Published:
        return Published(remote_id=str(status["id"]), url=status.get("url") or status.get("uri"),
                         published_at=_parse_time(status.get("created_at")))


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # The API always sends UTC; a server that omits the zone still means UTC.
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _html_text(content: str) -> str:
    """A status's rendered HTML as plain text: paragraphs and line breaks become white space."""
    return html.unescape(_TAG_RE.sub("", _BREAK_RE.sub("\n", content)))


def _normalise(text: str) -> str:
    return " ".join(_REMOTE_MENTION_RE.sub(r"\1", text).split())


def _error_text(response: requests.Response) -> str:
    """The instance's own words: ``{"error": ..., "error_description": ...}`` or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get("error") or body.get("error_description")):
        parts = [str(body[k]) for k in ("error", "error_description") if body.get(k)]
        return ": ".join(parts)
    return response.text[:200].strip() or response.reason or "no details"
