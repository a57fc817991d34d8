"""Connecting and re-connecting an account from the dashboard, one flow for every platform.

OAuth 2 authorization code (PKCE where the platform supports it; each platform's differences are one
declaration in ``oauth_flows``): the dashboard sends the admin to the platform's authorize page with a
fresh ``state`` (and code challenge), kept in a short cookie signed with the session's secret, and on
the way back checks the state, redeems the code, runs the platform's post-steps, and hands the
credentials to the desk's ``accounts.connect`` (or ``reauthorise``), which asks the platform whose
they are before storing them. Mastodon has no installation-wide app: one is registered on each
instance and kept (``web_mastodon_apps``, the secret sealed with the credentials key). Bluesky takes an
app password and Telegram a bot token, each checked with the platform and never shown again."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import requests
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters.base import Credentials
from config.settings import OAuthApp, get_settings
from scheduler.core import vault
from scheduler.core.db import session_scope
from scheduler.core.errors import UserError, shown
from scheduler.core.models import utcnow
from scheduler.desk import accounts as desk_accounts
from scheduler.desk.access import Actor, require_everywhere
from scheduler.desk.errors import Forbidden, NotFound
from scheduler.matrix import accounts as matrix
from scheduler.web import render, session
from scheduler.web.models import MastodonApp
from scheduler.web.oauth_flows import FLOWS, App, Flow, Grant, refusal
from scheduler.web.session import Poster, User

router = APIRouter()
COOKIE = "cp_oauth"
COOKIE_SECONDS = 600


def app_for(platform: str) -> OAuthApp:
    """The platform's installation-wide app, if it has one (a client id set)."""
    app = getattr(get_settings(), platform, None) if platform in FLOWS else None
    if not isinstance(app, OAuthApp) or not app.client_id:
        raise NotFound(f"connect: no {shown(platform)} app is configured "
                       f"(CROSSPOST_{platform.upper()}__CLIENT_ID)")
    return app


def _app(platform: str) -> App:
    app = app_for(platform)
    return App(app.client_id, app.client_secret.get_secret_value() if app.client_secret else None,
               app.authorize_url, app.token_url, app.api_url)


def connectable() -> list[str]:
    """The platforms whose installation-wide app is configured (their authorize page's origin goes in
    the pages' form-action); Mastodon, Bluesky and Telegram have their own forms."""
    return [p for p in FLOWS if isinstance(getattr(get_settings(), p, None), OAuthApp)
            and getattr(get_settings(), p).client_id]


# -- the signed cookie that carries one connection from the authorize page back -------------------
def _sign(request: Request, payload: str) -> str:
    key = request.cookies.get(session.COOKIE, "").encode()
    return hmac.new(key, b"oauth " + payload.encode(), hashlib.sha256).hexdigest()


def _pack(request: Request, fields: dict[str, str]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(fields, separators=(",", ":")).encode()).decode()
    return f"{payload}.{_sign(request, payload)}"


def _unpack(request: Request, platform: str, state: str) -> dict[str, str]:
    """The connection this session started for ``platform`` with this ``state``; 403 otherwise."""
    payload, _, signature = request.cookies.get(COOKIE, "").rpartition(".")
    refused = Forbidden("connect: this answer is not for a connection this session started; start again")
    if not payload or not hmac.compare_digest(_sign(request, payload), signature):
        raise refused
    try:
        fields = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except ValueError:
        raise refused from None
    if (not isinstance(fields, dict) or fields.get("platform") != platform
            or not hmac.compare_digest(str(fields.get("state", "")), state)):
        raise refused
    return {k: str(v) for k, v in fields.items()}


def _callback(request: Request, platform: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/ui/oauth/{platform}/callback"


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _authorize_url(request: Request, flow: Flow, app: App, handle: str,
                   instance: str = "") -> tuple[str, str]:
    """The platform's authorize page for a new connection, and the cookie that remembers it."""
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    query = {"response_type": "code", flow.client_param: app.client_id,
             "redirect_uri": _callback(request, flow.platform), "scope": flow.scope_for(handle),
             "state": state, **flow.extra}
    if flow.pkce:
        query.update(code_challenge=_challenge(verifier), code_challenge_method="S256")
    cookie = _pack(request, {"platform": flow.platform, "handle": handle, "state": state,
                             "verifier": verifier if flow.pkce else "", "instance": instance})
    return f"{app.authorize_url}?{urlencode(query)}", cookie


# -- routes ------------------------------------------------------------------------------------------
@router.post("/connect/bluesky/app-password")
def connect_bluesky(actor: Poster, handle: Annotated[str, Form(max_length=255)],
                    password: Annotated[str, Form(max_length=64)],
                    pds: Annotated[str, Form(max_length=1024)] = "") -> Response:
    """Bluesky takes an app password (no OAuth for third parties): checked by logging in to the PDS
    before anything is stored; the password is never shown again, not even in an error."""
    require_everywhere(actor, "admin", "accounts add")
    handle = matrix.check_handle("bluesky", handle.strip())
    creds = {"identifier": handle, "password": password.strip()}
    account_id = _store(actor, "bluesky", handle, creds, pds.strip() or None, creds["password"])
    return RedirectResponse(f"/ui/accounts?done=connected&id={account_id}", status_code=303)


@router.post("/connect/telegram/bot-token")
def connect_telegram(actor: Poster, handle: Annotated[str, Form(max_length=255)],
                     bot_token: Annotated[str, Form(max_length=128)] = "") -> Response:
    """A channel and the bot token from @BotFather (Telegram has no OAuth): the desk checks it with
    getMe, getChat and getChatMember (the bot may post there) before anything is stored; the token is
    never shown again, not even in an error."""
    # Optional in the form so that a role that may not connect is told 403, not which field is missing.
    require_everywhere(actor, "admin", "accounts add")
    handle = matrix.check_handle("telegram", handle.strip())
    token = bot_token.strip()
    if not token:
        raise UserError("bot token: required (from @BotFather)")
    account_id = _store(actor, "telegram", handle, {"bot_token": token},
                        get_settings().telegram.api_url.rstrip("/") or None, token)
    return RedirectResponse(f"/ui/accounts?done=connected&id={account_id}", status_code=303)


@router.post("/connect/mastodon")
def connect_mastodon(request: Request, actor: Poster, handle: Annotated[str, Form(max_length=255)],
                     instance: Annotated[str, Form(max_length=1024)] = "") -> Response:
    """The instance's app (registered now, or the one registered before for this callback), then a
    page leading to the instance's authorize page: a link, since the pages' form-action cannot name
    every instance in advance."""
    require_everywhere(actor, "admin", "accounts add")
    if not get_settings().mastodon.enabled:
        raise NotFound("connect: connecting Mastodon accounts from the dashboard is turned off "
                       "(CROSSPOST_MASTODON__ENABLED)")
    handle = matrix.check_handle("mastodon", handle.strip())
    origin = _origin(instance)
    app = _mastodon_app(_callback(request, "mastodon"), origin, verify=True)
    url, cookie = _authorize_url(request, FLOWS["mastodon"], app, handle, origin)
    response = render.page(request, actor, "connect_continue.html", url=url, instance=origin,
                           account=f"mastodon:{handle}")
    session.set_cookie(request, response, COOKIE, cookie, COOKIE_SECONDS)
    return response


@router.post("/connect/{platform}")
def connect(request: Request, platform: str, actor: Poster,
            handle: Annotated[str, Form(max_length=255)]) -> Response:
    """To the platform's authorize page; the state and the verifier stay in a signed cookie."""
    require_everywhere(actor, "admin", "accounts add")
    app = _app(platform)
    handle = matrix.check_handle(platform, handle.strip())
    url, cookie = _authorize_url(request, FLOWS[platform], app, handle)
    response = RedirectResponse(url, status_code=303)
    session.set_cookie(request, response, COOKIE, cookie, COOKIE_SECONDS)
    return response


@router.get("/oauth/{platform}/callback")
def callback(request: Request, platform: str, actor: User, state: str = "", code: str = "",
             error: str = "") -> Response:
    """Back from the platform: the state must be the one this session sent; then the code is
    redeemed, the platform's post-steps run, and the credentials go to the desk, which checks with
    the platform that they are the named account's."""
    require_everywhere(actor, "admin", "accounts add")
    if platform not in FLOWS:
        raise NotFound(f"connect: {shown(platform)} is not connected through OAuth")
    started = _unpack(request, platform, state)
    if error:
        raise UserError(f"connect: the platform said {shown(error)}")
    flow, handle, instance = FLOWS[platform], started["handle"], started.get("instance", "")
    app = _mastodon_app(_callback(request, platform), instance) if platform == "mastodon" else _app(platform)
    body = _redeem(request, flow, app, code, started.get("verifier", ""))
    grant = Grant(platform, handle, app, body, get_settings().http_timeout)
    creds = flow.finish(grant)
    hidden = [v for v in (*creds.values(), app.secret) if isinstance(v, str) and len(v) >= 8]
    account_id = _store(actor, platform, handle, creds, app.api_url or None, *hidden)
    response = RedirectResponse(f"/ui/accounts?done=connected&id={account_id}", status_code=303)
    response.delete_cookie(COOKIE, path=session.PATH)
    return response


# -- helpers -----------------------------------------------------------------------------------------
def _redeem(request: Request, flow: Flow, app: App, code: str, verifier: str) -> dict[str, Any]:
    """The code for the platform's tokens, the app authenticating the way the platform wants."""
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": _callback(request, flow.platform)}
    if flow.pkce:
        form["code_verifier"] = verifier
    auth = None
    if flow.client_auth == "form":
        if not app.secret and flow.needs_secret:
            raise UserError(f"connect: the {flow.platform} app has no client secret "
                            f"(CROSSPOST_{flow.platform.upper()}__CLIENT_SECRET)")
        form.update({flow.client_param: app.client_id, "client_secret": app.secret or ""})
    elif app.secret:
        auth = (app.client_id, app.secret)
    else:
        form["client_id"] = app.client_id  # a public client: PKCE stands in for the secret
    try:
        # Never followed: a 307 would carry the code and the app's secret to wherever it points.
        answer = requests.post(app.token_url, data=form, auth=auth, timeout=get_settings().http_timeout,
                               allow_redirects=False)
        body = answer.json()
    except (requests.RequestException, ValueError) as exc:
        raise UserError(f"connect: the platform's token endpoint did not answer ({type(exc).__name__})"
                        ) from None
    if (answer.status_code != 200 or not isinstance(body, dict)
            or not isinstance(body.get("access_token"), str)):
        raise UserError(f"connect: the platform refused the code ({refusal(body)})")
    return body


def _store(actor: Actor, platform: str, handle: str, creds: dict[str, Any], base_url: str | None,
           *secret_values: str) -> int:
    """Connect a new account or re-authorise the existing one; the account's id. An error never
    carries one of ``secret_values`` (a platform may echo what it was sent)."""
    with session_scope() as s:
        existing = matrix.by_handle(s, platform, handle)
    try:
        if existing:
            account, _, _ = desk_accounts.reauthorise(actor, f"{platform}:{handle}", creds, utcnow(),
                                                      base_url=base_url)
        else:
            account, _ = desk_accounts.connect(actor, platform, handle, creds, utcnow(), base_url=base_url)
    except UserError as exc:
        text = str(exc)
        for value in secret_values:
            if value:
                text = text.replace(value, "***")
        raise type(exc)(text) from None
    return account.id


def _origin(instance: str) -> str:
    """A Mastodon instance's address as one spelling (``https://host[:port]``), so one app is kept per
    instance whatever the admin typed."""
    instance = instance.strip()
    if instance and "://" not in instance:
        instance = f"https://{instance}"
    matrix.check_url(instance, "instance")
    parts = urlsplit(instance)
    # The app's secret and the account's token would cross the network in clear: plain http only for
    # an instance on this machine (a stand-in, a rehearsal); Mastodon itself is served over https.
    if parts.scheme != "https" and (parts.hostname or "") not in ("localhost", "::1") \
            and not (parts.hostname or "").startswith("127."):
        raise UserError(f"instance: {shown(instance)} must be an https address")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _still_registered(instance: str, client_id: str, secret: str, scopes: str, redirect_uri: str) -> bool:
    """Whether the instance still knows the app: its answer to a client_credentials grant. An instance
    whose admin deleted the app answers 401 invalid_client, and would show the desk's admin an error
    page at the consent step, with no way back; the app is then registered again."""
    try:
        answer = requests.post(f"{instance}/oauth/token", timeout=get_settings().http_timeout,
                               allow_redirects=False,
                               data={"grant_type": "client_credentials", "client_id": client_id,
                                     "client_secret": secret, "scope": scopes, "redirect_uri": redirect_uri})
    except requests.RequestException as exc:
        raise UserError(f"connect: {shown(instance)} did not answer ({type(exc).__name__})") from None
    if answer.status_code == 200:
        return True
    if answer.status_code == 401:
        return False
    try:
        body = answer.json()
    except ValueError:
        body = None
    raise UserError(f"connect: {shown(instance)} refused the app's registration "
                    f"(HTTP {answer.status_code}: {refusal(body)})")


def _app_row(s: Session, instance: str, redirect_uri: str) -> MastodonApp | None:
    return s.scalars(select(MastodonApp).where(MastodonApp.instance == instance,
                                               MastodonApp.redirect_uri == redirect_uri)).first()


def _mastodon_app(redirect_uri: str, instance: str, *, verify: bool = False) -> App:
    """The app registered on ``instance`` for this callback and these scopes, registering it the first
    time (or again if its secret no longer opens: sealed under a key since rotated away). With
    ``verify`` (before the admin is sent to the consent page, not when the code comes back: the code is
    bound to the app), the instance is asked whether it still knows the app, and one it deleted is
    registered again."""
    if not instance:
        raise UserError("connect: no Mastodon instance was named")
    scopes = " ".join(FLOWS["mastodon"].scopes)
    urls = (f"{instance}/oauth/authorize", f"{instance}/oauth/token", instance)
    kept: tuple[str, str] | None = None
    with session_scope() as s:
        row = _app_row(s, instance, redirect_uri)
        if row is not None and row.scopes == scopes:
            try:
                secret = vault.unseal(row.client_secret).get("client_secret")
            except vault.VaultError:
                secret = None
            if secret:
                kept = (row.client_id, secret)
    # Asked outside the transaction: an instance may take the whole HTTP timeout to answer.
    if kept and (not verify or _still_registered(instance, *kept, scopes, redirect_uri)):
        return App(*kept, *urls)
    settings = get_settings()
    form = {"client_name": settings.mastodon.client_name, "redirect_uris": redirect_uri, "scopes": scopes}
    if settings.mastodon.website:
        form["website"] = settings.mastodon.website
    try:
        answer = requests.post(f"{instance}/api/v1/apps", data=form, timeout=settings.http_timeout,
                               allow_redirects=False)
        body = answer.json()
    except (requests.RequestException, ValueError) as exc:
        raise UserError(f"connect: {shown(instance)} did not answer the app registration "
                        f"({type(exc).__name__})") from None
    if (answer.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("client_id"), str)
            or not isinstance(body.get("client_secret"), str)):
        raise UserError(f"connect: {shown(instance)} refused to register the app ({refusal(body)})")
    sealed = vault.seal(Credentials({"client_secret": body["client_secret"]}))
    try:
        with session_scope() as s:
            row = _app_row(s, instance, redirect_uri)
            if row is None:
                s.add(MastodonApp(instance=instance, redirect_uri=redirect_uri, scopes=scopes,
                                  client_id=body["client_id"], client_secret=sealed))
            else:
                row.scopes, row.client_id, row.client_secret = scopes, body["client_id"], sealed
    except IntegrityError:
        pass  # another admin registered one at the same moment: theirs is kept, this one still works
    return App(body["client_id"], body["client_secret"], *urls)
