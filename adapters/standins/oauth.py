"""OAuth 2.0 authorization code with PKCE for the stand-ins, as strict as the platforms: the
``redirect_uri`` must be one the app registered (exactly), ``state`` must be sent and comes back,
the code challenge is S256 (or plain), a code lives ten minutes and works once, and the token request
must repeat the ``redirect_uri`` and send the verifier that hashes to the challenge.

One class serves every stand-in; what differs between platforms is declared on it: whether PKCE is
required (X, TikTok), optional (Mastodon, Google: a challenge sent must be answered) or not part of the
flow (Meta, LinkedIn), which challenge methods are accepted, the client parameter's name (TikTok's
``client_key``), how scopes are separated (commas at Meta and TikTok), the scopes an app may ask for
(Mastodon: a subset of the app's registration), and the platform's own error body for a refused code
(``refuse``). ``form_client`` checks a client that sends its secret in the token form.

The platform's sign-in is the stand-in's ``signed_in`` user: the consent page acts for them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

from adapters.standins.base import HttpError, Request, Response

CODE_SECONDS = 600


@dataclass
class _Code:
    client: str
    redirect_uri: str
    challenge: str
    method: str
    scopes: frozenset[str]
    user: str
    expires: float
    params: dict[str, str] = field(default_factory=dict)  # the whole request (Google's access_type...)


@dataclass
class AuthorizationCodes:
    """The codes one stand-in has issued, and the redirect URIs each of its apps registered."""

    redirect_uris: dict[str, set[str]] = field(default_factory=dict)
    signed_in: str | None = None  # the user signed in on the platform's own site
    codes: dict[str, _Code] = field(default_factory=dict)
    pkce: Literal["required", "optional", "none"] = "required"
    methods: tuple[str, ...] = ("S256", "plain")
    client_param: str = "client_id"
    scope_sep: str = " "
    # client -> the scopes its registration allows; absent: any (the platform checks them elsewhere).
    allowed_scopes: dict[str, frozenset[str]] = field(default_factory=dict)
    grant_error: str = "invalid_grant"  # RFC 6749's word for a bad code; X says invalid_request
    refuse: Callable[[int, str, str], HttpError] = field(default=lambda status, error, text:
                                                          _oauth(status, error, text))

    def scopes_of(self, text: str) -> set[str]:
        return {s.strip() for s in text.split(self.scope_sep) if s.strip()}

    def consent_page(self, req: Request, clients: dict[str, Any], required: set[str]) -> Response:
        """GET authorize: every parameter checked before anything is shown; a bad ``redirect_uri`` is
        never redirected to (an error page instead, as the platforms do)."""
        q = req.query
        client = q.get(self.client_param, "")
        if client not in clients:
            return _page(400, f"Something went wrong: unknown {self.client_param}")
        if q.get("redirect_uri", "") not in self.redirect_uris.get(client, set()):
            return _page(400, "Something went wrong: redirect_uri does not match a registered callback")
        problems = []
        if q.get("response_type") != "code":
            problems.append("response_type must be code")
        if not q.get("state"):
            problems.append("state is required")
        if self.pkce == "required" and not q.get("code_challenge"):
            problems.append("code_challenge is required")
        if (self.pkce != "none" and q.get("code_challenge")
                and q.get("code_challenge_method", "plain") not in self.methods):
            problems.append(f"code_challenge_method must be {' or '.join(self.methods)}")
        scopes = self.scopes_of(q.get("scope", ""))
        if not required <= scopes:
            problems.append(f"scope must include {' '.join(sorted(required - scopes))}")
        allowed = self.allowed_scopes.get(client)
        if allowed is not None and not scopes <= allowed:
            return _redirect(q["redirect_uri"], {"error": "invalid_scope",
                                                 "error_description": "The requested scope is invalid, "
                                                 "unknown, or malformed.", "state": q.get("state", "")})
        if problems:
            return _redirect(q["redirect_uri"], {"error": "invalid_request",
                                                 "error_description": "; ".join(problems),
                                                 "state": q.get("state", "")})
        if self.signed_in is None:
            return _page(401, "Sign in to the platform first")
        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in q.items())
        body = (f"<h1>Authorize app</h1><p>{html.escape(client)} wants to use your account "
                f"@{html.escape(self.signed_in)}.</p><form method='post'>{hidden}"
                "<button name='decision' value='allow'>Authorize app</button>"
                "<button name='decision' value='deny'>Cancel</button></form>")
        return Response(200, raw=body.encode(), headers={"Content-Type": "text/html; charset=utf-8"})

    def decide(self, req: Request, clients: dict[str, Any], user_of: Any) -> Response:
        """POST authorize: the user's decision, back to the registered ``redirect_uri``."""
        form = req.form()
        client, redirect_uri = form.get(self.client_param, ""), form.get("redirect_uri", "")
        if client not in clients or redirect_uri not in self.redirect_uris.get(client, set()):
            return _page(400, "Something went wrong: redirect_uri does not match a registered callback")
        if form.get("decision") != "allow" or self.signed_in is None:
            return _redirect(redirect_uri, {"error": "access_denied", "state": form.get("state", "")})
        code = secrets.token_urlsafe(24)
        # A platform without PKCE ignores a challenge (Meta, LinkedIn): nothing is asked at the token.
        challenge = form.get("code_challenge", "") if self.pkce != "none" else ""
        self.codes[code] = _Code(client, redirect_uri, challenge, form.get("code_challenge_method", "plain"),
                                 frozenset(self.scopes_of(form.get("scope", ""))), user_of(self.signed_in),
                                 time.time() + CODE_SECONDS,
                                 {k: v for k, v in form.items() if k != "decision"})
        return _redirect(redirect_uri, {"state": form.get("state", ""), "code": code})

    def redeem(self, form: dict[str, str], client: str) -> _Code:
        """The token request's code: once only, for the same app and redirect_uri, with the verifier."""
        code = self.codes.pop(form.get("code", ""), None)
        if code is None or code.client != client or code.expires < time.time():
            raise self.refuse(400, self.grant_error, "Value passed for the authorization code was invalid.")
        if form.get("redirect_uri") != code.redirect_uri:
            raise self.refuse(400, self.grant_error, "Value passed for the redirect uri did not match the "
                                                    "uri of the authorization code.")
        if not code.challenge:
            return code  # no PKCE in this flow (or none asked for where it is optional)
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        expected = (base64.urlsafe_b64encode(digest).rstrip(b"=").decode() if code.method == "S256"
                    else verifier)
        if not verifier or not hmac.compare_digest(expected, code.challenge):
            raise self.refuse(400, self.grant_error, "Value passed for the code verifier did not match the "
                                                    "code challenge.")
        return code

    def form_client(self, form: dict[str, str], clients: dict[str, str | None]) -> str:
        """The client of a token request that sends its secret in the form (Meta, LinkedIn, Google,
        TikTok, Mastodon): both must match, compared in constant time."""
        client, secret = form.get(self.client_param, ""), form.get("client_secret", "")
        expected = clients.get(client)
        if client not in clients or (expected is not None and not hmac.compare_digest(secret, expected)):
            raise self.refuse(401, "invalid_client", "Client authentication failed.")
        return client


def basic_client(req: Request) -> tuple[str, str] | None:
    """The client id and secret of an ``Authorization: Basic`` header: None without one, empty strings
    for one that does not decode (the caller refuses it as it refuses a wrong secret)."""
    header = req.headers.get("authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:  # bad base64 (binascii.Error) or not UTF-8
        return "", ""
    return client_id, secret


def _oauth(status: int, error: str, description: str) -> HttpError:
    return HttpError(status, {"error": error, "error_description": description})


def _page(status: int, message: str) -> Response:
    return Response(status, raw=f"<h1>{html.escape(message)}</h1>".encode(),
                    headers={"Content-Type": "text/html; charset=utf-8"})


def _redirect(uri: str, params: dict[str, str]) -> Response:
    sep = "&" if "?" in uri else "?"
    return Response(302, raw=b"", headers={"Location": f"{uri}{sep}{urlencode(params)}"})
