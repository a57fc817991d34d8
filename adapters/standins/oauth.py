"""OAuth 2.0 authorization code with PKCE for the stand-ins, as strict as the platforms: the
``redirect_uri`` must be one the app registered (exactly), ``state`` must be sent and comes back,
the code challenge is S256 (or plain), a code lives ten minutes and works once, and the token request
must repeat the ``redirect_uri`` and send the verifier that hashes to the challenge.

The platform's sign-in is the stand-in's ``signed_in`` user: the consent page acts for them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
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


@dataclass
class AuthorizationCodes:
    """The codes one stand-in has issued, and the redirect URIs each of its apps registered."""

    redirect_uris: dict[str, set[str]] = field(default_factory=dict)
    signed_in: str | None = None  # the user signed in on the platform's own site
    codes: dict[str, _Code] = field(default_factory=dict)

    def consent_page(self, req: Request, clients: dict[str, Any], required: set[str]) -> Response:
        """GET authorize: every parameter checked before anything is shown; a bad ``redirect_uri`` is
        never redirected to (an error page instead, as the platforms do)."""
        q = req.query
        client = q.get("client_id", "")
        if client not in clients:
            return _page(400, "Something went wrong: unknown client_id")
        if q.get("redirect_uri", "") not in self.redirect_uris.get(client, set()):
            return _page(400, "Something went wrong: redirect_uri does not match a registered callback")
        problems = []
        if q.get("response_type") != "code":
            problems.append("response_type must be code")
        if not q.get("state"):
            problems.append("state is required")
        if not q.get("code_challenge"):
            problems.append("code_challenge is required")
        if q.get("code_challenge_method", "plain") not in ("S256", "plain"):
            problems.append("code_challenge_method must be S256 or plain")
        scopes = set(q.get("scope", "").split())
        if not required <= scopes:
            problems.append(f"scope must include {' '.join(sorted(required - scopes))}")
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
        client, redirect_uri = form.get("client_id", ""), form.get("redirect_uri", "")
        if client not in clients or redirect_uri not in self.redirect_uris.get(client, set()):
            return _page(400, "Something went wrong: redirect_uri does not match a registered callback")
        if form.get("decision") != "allow" or self.signed_in is None:
            return _redirect(redirect_uri, {"error": "access_denied", "state": form.get("state", "")})
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(client, redirect_uri, form.get("code_challenge", ""),
                                 form.get("code_challenge_method", "plain"),
                                 frozenset(form.get("scope", "").split()), user_of(self.signed_in),
                                 time.time() + CODE_SECONDS)
        return _redirect(redirect_uri, {"state": form.get("state", ""), "code": code})

    def redeem(self, form: dict[str, str], client: str) -> _Code:
        """The token request's code: once only, for the same app and redirect_uri, with the verifier."""
        code = self.codes.pop(form.get("code", ""), None)
        if code is None or code.client != client or code.expires < time.time():
            raise _oauth(400, "invalid_request", "Value passed for the authorization code was invalid.")
        if form.get("redirect_uri") != code.redirect_uri:
            raise _oauth(400, "invalid_request", "Value passed for the redirect uri did not match the "
                                                 "uri of the authorization code.")
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        expected = (base64.urlsafe_b64encode(digest).rstrip(b"=").decode() if code.method == "S256"
                    else verifier)
        if not verifier or not hmac.compare_digest(expected, code.challenge):
            raise _oauth(400, "invalid_request", "Value passed for the code verifier did not match the "
                                                 "code challenge.")
        return code


def _oauth(status: int, error: str, description: str) -> HttpError:
    return HttpError(status, {"error": error, "error_description": description})


def _page(status: int, message: str) -> Response:
    return Response(status, raw=f"<h1>{html.escape(message)}</h1>".encode(),
                    headers={"Content-Type": "text/html; charset=utf-8"})


def _redirect(uri: str, params: dict[str, str]) -> Response:
    sep = "&" if "?" in uri else "?"
    return Response(302, raw=b"", headers={"Location": f"{uri}{sep}{urlencode(params)}"})
