"""Connecting and re-connecting an account through the platform's own sign-in (OAuth 2 authorization
code with PKCE; X for now): the dashboard sends the admin to the platform's authorize page with a fresh
``state`` and code challenge, kept in a short cookie signed with the session's secret, and on the way
back checks the state, redeems the code with the verifier, and hands the tokens to the desk's
``accounts.connect`` (or ``reauthorise``), which asks the platform whose they are before storing them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import requests
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from config.settings import OAuthApp, get_settings
from scheduler.core.db import session_scope
from scheduler.core.errors import UserError, shown
from scheduler.core.models import utcnow
from scheduler.desk import accounts as desk_accounts
from scheduler.desk.access import require_everywhere
from scheduler.desk.errors import Forbidden, NotFound
from scheduler.matrix import accounts as matrix
from scheduler.web import session
from scheduler.web.session import Poster, User

router = APIRouter()
COOKIE = "cp_oauth"
SCOPES = {"x": "tweet.read tweet.write users.read media.write offline.access"}


def app_for(platform: str) -> OAuthApp:
    """The platform's app, if the installation has one (a client id set)."""
    app = getattr(get_settings(), platform, None) if platform in SCOPES else None
    if not isinstance(app, OAuthApp) or not app.client_id:
        raise NotFound(f"connect: no {shown(platform)} app is configured "
                       f"(CROSSPOST_{platform.upper()}__CLIENT_ID)")
    return app


def _sign(request: Request, payload: str) -> str:
    key = request.cookies.get(session.COOKIE, "").encode()
    return hmac.new(key, b"oauth " + payload.encode(), hashlib.sha256).hexdigest()


def _callback(request: Request, platform: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/ui/oauth/{platform}/callback"


@router.post("/connect/bluesky/app-password")
def connect_bluesky(actor: Poster, handle: Annotated[str, Form(max_length=255)],
                    password: Annotated[str, Form(max_length=64)],
                    pds: Annotated[str, Form(max_length=1024)] = "") -> Response:
    """Bluesky takes an app password (no OAuth for third parties): checked by logging in to the PDS
    before anything is stored; the password is never shown again, not even in an error."""
    require_everywhere(actor, "admin", "accounts add")
    handle = matrix.check_handle("bluesky", handle.strip())
    creds = {"identifier": handle, "password": password.strip()}
    with session_scope() as s:
        existing = matrix.by_handle(s, "bluesky", handle)
    try:
        if existing:
            account, _, _ = desk_accounts.reauthorise(actor, f"bluesky:{handle}", creds, utcnow())
        else:
            account, _ = desk_accounts.connect(actor, "bluesky", handle, creds, utcnow(),
                                               base_url=pds.strip() or None)
    except UserError as exc:
        raise UserError(str(exc).replace(creds["password"], "***") if creds["password"] else str(exc)
                        ) from None
    return RedirectResponse(f"/ui/accounts?done=connected&id={account.id}", status_code=303)


@router.post("/connect/{platform}")
def connect(request: Request, platform: str, actor: Poster,
            handle: Annotated[str, Form(max_length=255)]) -> Response:
    """To the platform's authorize page; the state and the verifier stay in a signed cookie."""
    require_everywhere(actor, "admin", "accounts add")
    app = app_for(platform)
    handle = matrix.check_handle(platform, handle.strip())
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({"response_type": "code", "client_id": app.client_id,
                       "redirect_uri": _callback(request, platform), "scope": SCOPES[platform],
                       "state": state, "code_challenge": challenge, "code_challenge_method": "S256"})
    payload = "|".join((platform, handle, state, verifier))
    response = RedirectResponse(f"{app.authorize_url}?{query}", status_code=303)
    session.set_cookie(request, response, COOKIE, f"{payload}|{_sign(request, payload)}", 600)
    return response


def _redeem(request: Request, platform: str, app: OAuthApp, code: str, verifier: str) -> dict[str, Any]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": _callback(request, platform),
            "code_verifier": verifier, "client_id": app.client_id}
    secret = app.client_secret.get_secret_value() if app.client_secret else None
    try:
        answer = requests.post(app.token_url, data=form, timeout=get_settings().http_timeout,
                               auth=(app.client_id, secret) if secret else None)
        body = answer.json()
    except (requests.RequestException, ValueError) as exc:
        raise UserError(f"connect: the platform's token endpoint did not answer ({type(exc).__name__})"
                        ) from None
    if answer.status_code != 200 or "access_token" not in body:
        raise UserError(f"connect: the platform refused the code ({shown(str(body.get('error')))}: "
                        f"{shown(str(body.get('error_description', '')), 200)})")
    creds: dict[str, Any] = {"access_token": body["access_token"], "client_id": app.client_id}
    if body.get("refresh_token"):
        creds["refresh_token"] = body["refresh_token"]
    if secret:
        creds["client_secret"] = secret
    if body.get("expires_in"):
        creds["expires_at"] = (utcnow() + timedelta(seconds=int(body["expires_in"]))).isoformat()
    return creds


@router.get("/oauth/{platform}/callback")
def callback(request: Request, platform: str, actor: User, state: str = "", code: str = "",
             error: str = "") -> Response:
    """Back from the platform: the state must be the one this session sent; then the tokens go to the
    desk, which checks with the platform that they are the named account's."""
    require_everywhere(actor, "admin", "accounts add")
    app = app_for(platform)
    stored = request.cookies.get(COOKIE, "")
    payload, _, signature = stored.rpartition("|")
    parts = payload.split("|")
    if (len(parts) != 4 or not hmac.compare_digest(_sign(request, payload), signature) or parts[0] != platform
            or not hmac.compare_digest(parts[2], state)):
        raise Forbidden("connect: this answer is not for a connection this session started; start again")
    if error:
        raise UserError(f"connect: the platform said {shown(error)}")
    _, handle, _, verifier = parts
    creds = _redeem(request, platform, app, code, verifier)
    now = utcnow()
    with session_scope() as s:
        existing = matrix.by_handle(s, platform, handle)
    if existing:
        account, _, _ = desk_accounts.reauthorise(actor, f"{platform}:{handle}", creds, now)
    else:
        account, _ = desk_accounts.connect(actor, platform, handle, creds, now, base_url=app.api_url or None)
    response = RedirectResponse(f"/ui/accounts?done=connected&id={account.id}", status_code=303)
    response.delete_cookie(COOKIE, path=session.PATH)
    return response


def connectable() -> list[str]:
    """The platforms whose app is configured, for the accounts page."""
    return [p for p in SCOPES if getattr(get_settings(), p).client_id]
