"""What the Meta Graph stand-ins share (Facebook Pages, Instagram; usable for Threads).

* Versioned paths: every route lives under ``/vNN.N/``; an unversioned or unknown path answers Graph's
  ``Unknown path components`` (code 2500), a version older than ``MIN_VERSION`` code 2635.
* Parameters from the query string, a form body, a JSON body or multipart form data (files are kept
  apart as ``Upload``); the token from ``access_token`` or an ``Authorization: Bearer|OAuth`` header.
* Errors in Graph's envelope ``{"error": {"message", "type", "code", "error_subcode", "is_transient",
  "fbtrace_id"}}``, mostly with HTTP 400 as Graph sends them; rate limits as Graph signals them
  (HTTP 400, a BUC code and ``X-Business-Use-Case-Usage`` with ``estimated_time_to_regain_access``
  in minutes), not as a bare 429.
* Media containers that stay ``IN_PROGRESS`` for a set number of status reads, then turn ``FINISHED``
  (or ``ERROR``), expire after 24 h, and are ``PUBLISHED`` once used.
* Facebook Login for connecting accounts (:class:`MetaLogin`): the dialog ``/vNN.N/dialog/oauth``
  (one app, ``app_id``/``app_secret``; the exact registered ``redirect_uri``, ``state``, scopes
  separated by commas, no PKCE) and the code's redemption at ``/vNN.N/oauth/access_token`` with the
  app secret, refused in Graph's envelope (a used code 100/36009, another redirect_uri 100/36008, a
  wrong secret code 1).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from adapters.standins.base import Fault, HttpError, Request, Response, StandIn
from adapters.standins.oauth import AuthorizationCodes

MIN_VERSION = (21, 0)
CURRENT_VERSION = "v24.0"
CONTAINER_TTL = 24 * 3600.0
_VERSION_RE = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


def graph_error(message: str, code: int, *, status: int = 400, subcode: int | None = None,
                type: str = "OAuthException", transient: bool = False, user_msg: str | None = None,
                headers: dict[str, str] | None = None) -> HttpError:
    """An HttpError answering Graph's error envelope."""
    error: dict[str, Any] = {"message": message, "type": type, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if user_msg:
        error["error_user_title"] = "Error"
        error["error_user_msg"] = user_msg
    error["is_transient"] = transient
    error["fbtrace_id"] = "A" + secrets.token_urlsafe(15)
    return HttpError(status, {"error": error}, headers)


def invalid(message: str, subcode: int | None = None) -> HttpError:
    """Graph's ``(#100)`` invalid-parameter answer."""
    return graph_error(f"(#100) {message}" if subcode is None else message, 100, subcode=subcode)


def graph_time(at: float) -> str:
    """Graph's time format: ``2026-11-28T12:00:00+0000``."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


@dataclass
class Upload:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class Container:
    """A media container (Instagram, Threads): created, processed over ``polls_left`` status reads,
    then published once."""

    id: str
    owner: str
    media_type: str
    params: dict[str, Any]
    polls_left: int = 0
    error: str | None = None
    status_code: str = "IN_PROGRESS"
    created_at: float = field(default_factory=time.time)
    children: list[str] = field(default_factory=list)

    def read_status(self, now: float | None = None) -> str:
        """The status a read sees; each read of an in-progress container brings it one step closer."""
        now = time.time() if now is None else now
        if self.status_code in ("IN_PROGRESS", "FINISHED") and now - self.created_at > CONTAINER_TTL:
            self.status_code = "EXPIRED"
        if self.status_code == "IN_PROGRESS":
            if self.polls_left > 0:
                self.polls_left -= 1
            else:
                self.status_code = "ERROR" if self.error else "FINISHED"
        return self.status_code


def _login_refusal(status: int, error: str, description: str) -> HttpError:
    """The OAuth refusals as Graph words them (its envelope, not RFC 6749's)."""
    if error == "invalid_client":
        return graph_error("Error validating client secret.", 1)
    if "redirect" in description:
        return graph_error("Error validating verification code. Please make sure your redirect_uri is "
                           "identical to the one you used in the OAuth dialog request", 100, subcode=36008)
    return graph_error("This authorization code has been used.", 100, subcode=36009)


class MetaLogin:
    """Facebook Login for one app: the dialog and the code's redemption (the token endpoint's other
    grants are the stand-ins' own). ``user_of(signed_in)`` names the user the consent acts for."""

    def __init__(self, user_of: Callable[[str], str], app_id: str, app_secret: str) -> None:
        self.app_id, self.app_secret, self.user_of = app_id, app_secret, user_of
        self.codes = AuthorizationCodes({app_id: set()}, pkce="none", scope_sep=",", refuse=_login_refusal)

    @property
    def clients(self) -> dict[str, str | None]:
        return {self.app_id: self.app_secret}

    def dialog(self, req: Request) -> Response:
        if req.method == "GET":
            return self.codes.consent_page(req, self.clients, set())
        return self.codes.decide(req, self.clients, self.user_of)

    def redeem(self, params: dict[str, Any]) -> tuple[str, frozenset[str]]:
        """``code`` with the app's id and secret: the user and the scopes granted."""
        form = {k: str(v) for k, v in params.items()}
        client = self.codes.form_client(form, self.clients)
        code = self.codes.redeem(form, client)
        return code.user, code.scopes


class GraphStandIn(StandIn):
    """Base of the Graph stand-ins. Subclasses add routes with :meth:`graph_route` and set
    ``buc_code`` (80001 Pages, 80002 Instagram)."""

    buc_code = 80001
    buc_type = "pages"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._next_id = int(time.time()) * 1000
        super().__init__(host, port)

    # -- routing ------------------------------------------------------------------------------------
    def graph_route(self, method: str, pattern: str, handler: Callable[[Request], Response]) -> None:
        """A route under a version prefix; ``pattern`` is the path after it (``/(?P<id>\\d+)/feed``)."""
        self.route(method, rf"/v(?P<version>\d+\.\d+){pattern}", handler)

    def dispatch(self, req: Request) -> Response:
        versioned = _VERSION_RE.match(req.path)
        if versioned and (int(versioned.group(1)), int(versioned.group(2))) < MIN_VERSION:
            return self._answer(graph_error(
                f"(#2635) You are calling a deprecated version of the Graph API. Please update to the "
                f"latest version: {CURRENT_VERSION}.", 2635))
        response = super().dispatch(req)
        if response.status == 404 and isinstance(response.body, dict) and "error" in response.body \
                and not isinstance(response.body["error"], dict):
            # The base's "no such route": Graph's words for it.
            return self._answer(graph_error(f"Unknown path components: {req.path}", 2500))
        return response

    @staticmethod
    def _answer(error: HttpError) -> Response:
        return Response(error.status, error.body, error.headers)

    # -- request parts ------------------------------------------------------------------------------
    def params(self, req: Request) -> tuple[dict[str, Any], dict[str, Upload]]:
        """Query and body parameters (the body wins), and the uploaded files by field name."""
        params: dict[str, Any] = dict(req.query)
        files: dict[str, Upload] = {}
        ctype = req.headers.get("content-type", "")
        kind = ctype.split(";")[0].strip().lower()
        if not req.body:
            return params, files
        if kind == "application/json":
            data = req.json()
            if not isinstance(data, dict):
                raise invalid("The request body must be a JSON object")
            params.update(data)
        elif kind == "multipart/form-data":
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + req.body)
            for part in message.iter_parts():
                name = str(part.get_param("name", header="content-disposition") or "")
                if part.get_filename():
                    files[name] = Upload(str(part.get_filename()), part.get_content_type(),
                                         part.get_payload(decode=True) or b"")
                elif name:
                    params[name] = part.get_payload(decode=True).decode("utf-8", "replace")
        elif kind in ("", "application/x-www-form-urlencoded"):
            params.update({k: v[-1] for k, v in
                           parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True).items()})
        else:
            raise invalid(f"Unsupported content type {kind}")
        return params, files

    def token_of(self, req: Request, params: dict[str, Any]) -> str:
        """The access token of ``req``; Graph's code 104 when there is none."""
        header = req.headers.get("authorization", "")
        for scheme in ("Bearer ", "OAuth "):
            if header.startswith(scheme):
                return header[len(scheme):].strip()
        token = params.get("access_token")
        if isinstance(token, str) and token:
            return token
        raise graph_error("An access token is required to request this resource.", 104)

    def scope(self, request: Request) -> str:
        # Rate-limit scope by token, whichever way it travels.
        try:
            return self.token_of(request, dict(request.query))[:16]
        except HttpError:
            return "anonymous"

    def new_id(self) -> str:
        with self.lock:
            self._next_id += 1
            return str(self._next_id)

    # -- errors shaped like Graph's ---------------------------------------------------------------
    def rate_limited(self, fault: Fault) -> Response:
        wait = fault.retry_after if fault.retry_after is not None else 60
        minutes = max(1, math.ceil(float(wait) / 60))
        usage = {"0": [{"type": self.buc_type, "call_count": 100, "total_cputime": 12, "total_time": 14,
                        "estimated_time_to_regain_access": minutes}]}
        body = fault.body or {"error": {
            "message": f"(#{self.buc_code}) There have been too many calls from this account. "
                       "Wait a bit and try again.",
            "type": "OAuthException", "code": self.buc_code, "is_transient": True,
            "fbtrace_id": "A" + secrets.token_urlsafe(15)}}
        return Response(400, body, {"X-Business-Use-Case-Usage": json.dumps(usage)})

    def fault_response(self, fault: Fault) -> Response:
        status = fault.status or 500
        if fault.body is not None:
            return Response(status, fault.body)
        if status >= 500:
            error = graph_error("An unexpected error has occurred. Please retry your request later.", 2,
                                status=status, transient=True)
        elif status == 401:
            error = graph_error("Error validating access token: Session has expired.", 190, status=status,
                                subcode=463)
        elif status == 403:
            error = graph_error("(#200) Permissions error", 200, status=status)
        else:
            error = invalid("Invalid parameter")
            error.status = status
        return self._answer(error)

    def _note_retry_after(self, req: Request, response: Response) -> None:
        # Graph signals its waits in the usage header (minutes), not Retry-After: honour both.
        super()._note_retry_after(req, response)
        try:
            usage = json.loads(response.headers.get("X-Business-Use-Case-Usage", "{}"))
            minutes = max(e.get("estimated_time_to_regain_access", 0) for v in usage.values() for e in v)
        except (ValueError, AttributeError, TypeError):
            return
        if minutes:
            with self.lock:
                self.retry_blocks[self.scope(req)] = time.time() + 60 * float(minutes)

    def paged(self, req: Request, params: dict[str, Any], items: list[dict[str, Any]],
              render: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
        """One page of a Graph edge (newest first), with ``limit`` / ``after`` cursors and a ``next``
        link carrying every parameter but the token."""
        try:
            limit = min(max(int(params.get("limit", 25)), 1), 100)
            start = int(params.get("after") or 0)
        except ValueError:
            raise invalid("limit and after must be numbers") from None
        chunk = items[start:start + limit]
        body: dict[str, Any] = {"data": [render(item) for item in chunk]}
        if chunk:
            body["paging"] = {"cursors": {"before": str(start), "after": str(start + len(chunk))}}
            if start + len(chunk) < len(items):
                query = {**{k: v for k, v in params.items() if k != "access_token"},
                         "after": start + len(chunk)}
                body["paging"]["next"] = f"{self.url}{req.path}?{urlencode(query)}"
        return Response(200, body)
