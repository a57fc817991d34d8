"""What the Meta Graph family (Facebook Pages, Instagram, Threads) shares: one error envelope, one
set of error codes, usage headers that say how long to wait, and media containers that are polled
until ready (platforms.md sections 4.8, 5.4, 5.7, 6.5, 6.8 and 12.2).

The API other adapters may rely on: ``GRAPH_VERSION``, ``GraphError``/``parse_error``,
``usage_wait``, ``classify``, ``container_state``, ``RULES`` and ``GraphAdapter`` (with its edge
pager for ``find_published``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import requests

from adapters import http
from adapters.base import AccountRef, Adapter, Handles, Identity, parse_time
from adapters.errors import AdapterError, AuthExpired, InProgress, RateLimited, Rejected, Transient

# Pinned: every Graph version lives about two years, and an unpinned call silently follows the app's
# default version. The Pages docs' examples are at v24/v25.
GRAPH_VERSION = "v24.0"

# Platform limits (4 app, 17 user, 32 page via user token, 613 custom, 341 app limit) and the
# Business Use Case limits (80000-80014: 80001 Pages, 80002 Instagram, 80004 ads...).
RATE_CODES = frozenset({4, 17, 32, 613, 341, *range(80000, 80015)})
_APP_CODES = frozenset({4, 341})
AUTH_CODES = frozenset({102, 104, 190})
TRANSIENT_CODES = frozenset({1, 2})
PERMISSION_CODES = frozenset({3, 10, *range(200, 300)})
# Graph says "wait" without saying how long when no usage header is sent. The platform windows roll
# over an hour (app/user) or 24 h (BUC); five minutes re-checks without hammering (calls made while
# throttled still count).
DEFAULT_WAIT = 300.0
# find_published reads at most this many pages of an edge: enough for any burst of posts since a
# delivery's first attempt, without walking a profile's whole history.
EDGE_PAGE_SIZE = 25
EDGE_PAGES = 4


@dataclass(frozen=True)
class GraphError:
    """The ``{"error": {...}}`` envelope of a failed Graph call."""

    status: int
    message: str
    type: str = ""
    code: int | None = None
    subcode: int | None = None
    transient: bool = False
    user_message: str = ""
    trace: str = ""

    def describe(self) -> str:
        """The platform's words for operators: message, the user-facing text, codes and the trace id
        Meta support asks for."""
        codes = f"code {self.code}" + (f"/{self.subcode}" if self.subcode else "")
        text = self.message
        if self.user_message and self.user_message not in text:
            text = f"{text}: {self.user_message}"
        return f"{text} ({codes}{f', fbtrace_id {self.trace}' if self.trace else ''})"


def parse_error(response: requests.Response) -> GraphError | None:
    """The Graph error in ``response``, or None when the body is not a Graph envelope."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    return GraphError(
        status=response.status_code, message=str(error.get("message") or "no message"),
        type=str(error.get("type") or ""), code=_int(error.get("code")),
        subcode=_int(error.get("error_subcode")),
        transient=error.get("is_transient") is True,
        user_message=str(error.get("error_user_msg") or error.get("error_user_title") or ""),
        trace=str(error.get("fbtrace_id") or ""),
    )


def usage_wait(response: requests.Response) -> float | None:
    """Seconds to wait from ``X-Business-Use-Case-Usage`` (``estimated_time_to_regain_access``, in
    minutes, per business object: the longest counts) or ``Retry-After``."""
    waits = []
    try:
        usage = json.loads(response.headers.get("X-Business-Use-Case-Usage") or "{}")
    except ValueError:
        usage = {}
    for entries in (usage.values() if isinstance(usage, dict) else ()):
        for entry in entries if isinstance(entries, list) else [entries]:
            minutes = entry.get("estimated_time_to_regain_access") if isinstance(entry, dict) else None
            if isinstance(minutes, int | float) and not isinstance(minutes, bool) and minutes > 0:
                waits.append(float(minutes) * 60)
    retry_after = http.parse_retry_after(response.headers.get("Retry-After"))
    if retry_after:
        waits.append(retry_after)
    return max(waits) if waits else None


def classify(response: requests.Response, platform: str) -> AdapterError | None:
    """The typed error for a failed Graph call; None when the answer is no Graph envelope (then the
    HTTP status decides, as for any platform)."""
    error = parse_error(response)
    if error is None:
        return None
    reason = f"{platform}: {error.describe()}"
    code, status = error.code, response.status_code
    if code in RATE_CODES or status == 429:
        return RateLimited(reason, usage_wait(response) or DEFAULT_WAIT, status=status,
                           scope="app" if code in _APP_CODES else "account")
    if code in AUTH_CODES:
        return AuthExpired(reason, status=status)
    if error.transient or code in TRANSIENT_CODES or status >= 500:
        # Whether a create may have gone through is the one rule's (http.maybe_sent, with RULES).
        return Transient(reason, status=status)
    if code in PERMISSION_CODES:
        return Rejected(f"{reason}; the token lacks a permission or the account a role", status=status)
    if code == 506:
        return Rejected(f"{reason}; a duplicate of a recent post", status=status)
    if code == 368 and error.subcode == 1390008:
        # "You're posting too fast": a spam throttle that lifts, not a refusal of the content.
        return RateLimited(reason, usage_wait(response) or 3600.0, status=status)
    return Rejected(reason, status=status)


def _graph_error(body: Any) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def unknown_outcome(body: Any) -> bool:
    """platforms.md 5.7/6.8: ``is_transient``, codes 1/2 and Instagram's 2207001 ("An unknown error
    occurred") leave a create's outcome unknown, whatever the HTTP status."""
    error = _graph_error(body)
    return (error.get("is_transient") is True or _int(error.get("code")) in TRANSIENT_CODES
            or _int(error.get("error_subcode")) == 2207001)


def words(body: Any) -> str | None:
    error = _graph_error(body)
    return str(error.get("message")) if error.get("message") else None


RULES = http.Rules(words=words, unknown_outcome=unknown_outcome, default_wait=DEFAULT_WAIT)


def container_state(platform: str, status_code: str | None, detail: str = "", *, after: float = 60.0) -> str:
    """What a media container's status means for the next step (single read, no waiting):
    ``"FINISHED"`` publish it, ``"PUBLISHED"`` it already went out, ``"EXPIRED"`` create it again.
    ``IN_PROGRESS`` raises InProgress (come back after ``after`` seconds) and ``ERROR`` raises
    Rejected with the platform's reason; the caller saves the container id before asking."""
    if status_code in ("FINISHED", "PUBLISHED", "EXPIRED"):
        return status_code
    if status_code == "IN_PROGRESS":
        raise InProgress(f"{platform}: the media is still processing", after=after)
    if status_code == "ERROR":
        raise Rejected(f"{platform}: media processing failed: {detail or 'no details'}")
    raise Transient(f"{platform}: unknown container status {status_code!r}")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class GraphAdapter(Adapter):
    """Base of a Graph adapter: versioned URLs, the token as a Bearer header (never in a URL, where
    logs and error texts could pick it up), JSON answers, and the Graph error mapping."""

    api_version: ClassVar[str] = GRAPH_VERSION
    rules: ClassVar[http.Rules] = RULES

    # The node that says whose token this is, and the fields that name it.
    identity_node: ClassVar[str] = "me"
    identity_fields: ClassVar[str] = "id,username,name"
    # ``@NewsRoom`` -> ``newsroom``: Meta usernames match regardless of case; a numeric id is one too.
    handles: ClassVar[Handles] = Handles(name=r"[A-Za-z0-9._]{1,100}",
                                         what="a username (letters, digits, periods, underscores) nor a "
                                              "numeric id")

    def token(self, account: AccountRef) -> str:
        return account.credentials.require("access_token", self.platform)

    def whoami(self, account: AccountRef) -> Identity:
        """The token's own profile (``me``): its username, else its id, and its id as the stable one."""
        node = self.call(account, "GET", self.identity_node_of(account), self.token(account),
                         params={"fields": self.identity_fields})
        remote_id = node.get("user_id") or node.get("id")
        if not remote_id:
            raise Transient(f"{self.platform}: {self.identity_node_of(account)} answered without an id")
        username = node.get("username")
        handle = self.normalize_handle(str(username if username else remote_id))
        return Identity(handle=handle, remote_id=str(remote_id), name=node.get("name") or None)

    def identity_node_of(self, account: AccountRef) -> str:
        return self.identity_node

    def graph_url(self, account: AccountRef, path: str) -> str:
        return f"{self.base_url(account)}/{self.api_version}/{path.lstrip('/')}"

    def call(self, account: AccountRef, method: str, path: str, token: str, **kwargs: Any) -> dict[str, Any]:
        """One Graph call with ``token``; the JSON object it answered."""
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {token}"}
        response = self.request(account, method, self.graph_url(account, path), headers=headers, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise Transient(f"{self.platform}: {method} …/{path.rsplit('/', 1)[-1]} answered "
                            f"{response.status_code} without a JSON object",
                            status=response.status_code, maybe_sent=method != "GET")
        return body

    def classify(self, response: requests.Response) -> Exception | None:
        return classify(response, self.platform)

    def edge(self, account: AccountRef, path: str, token: str, fields: str, *, stamp: str,
             since: datetime | None, pages: int = EDGE_PAGES,
             ) -> Iterator[tuple[dict[str, Any], datetime | None]]:
        """The items of a Graph edge, newest first, with the time in their ``stamp`` field, page by
        page until an item older than ``since`` or ``pages`` pages. An answer without a list raises
        Transient: "not found" from an unreadable answer would let the scheduler post twice."""
        params: dict[str, Any] = {"fields": fields, "limit": EDGE_PAGE_SIZE}
        for _ in range(pages):
            listing = self.call(account, "GET", path, token, params=params)
            items = listing.get("data")
            if not isinstance(items, list):
                raise Transient(f"{self.platform}: {path.rsplit('/', 1)[-1]} answered without a list")
            for item in items:
                if not isinstance(item, dict):
                    continue
                created = parse_time(item.get(stamp))
                if since and created and created < since:
                    return
                yield item, created
            paging = listing.get("paging") if isinstance(listing.get("paging"), dict) else {}
            after = (paging.get("cursors") or {}).get("after")
            if not items or not after or not paging.get("next"):
                return
            params["after"] = after
