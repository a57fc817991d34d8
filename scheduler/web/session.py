"""Who is at the browser: the session cookie holds a login token (``desk.logins``: hashed at rest, 12 h,
revoked at logout), so a browser session is as checked, expiring and revocable as an API token.
Every POST carries a CSRF token derived from the session's secret, which a page from another site
cannot read (the cookie is HttpOnly and SameSite=Lax)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Form, Request, Response

from scheduler.core.db import session_scope
from scheduler.core.models import utcnow
from scheduler.desk import logins, tokens
from scheduler.desk.access import Actor
from scheduler.desk.errors import Forbidden, Unauthenticated

COOKIE = "cp_session"
LOGIN_COOKIE = "cp_login"  # the login form's own CSRF secret, before any session exists
PATH = "/ui"


class NotSignedIn(Exception):
    """No valid session: the page redirects to the login form."""


def address(request: Request) -> str | None:
    return request.client.host if request.client else None


def secure(request: Request) -> bool:
    # Behind a TLS proxy uvicorn's proxy headers make the scheme https; plain http on a laptop works.
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True, samesite="lax",
                        secure=secure(request))


def start(request: Request, response: Response, name: str, password: str) -> Actor:
    """Log in (rate-limited, failures counted as the API counts them) and set the session cookie."""
    secret, actor = logins.sign_in(name, password, utcnow(), address(request))
    set_cookie(request, response, COOKIE, secret, logins.LOGIN_HOURS * 3600)
    return actor


def end(request: Request, response: Response, actor: Actor) -> None:
    """Revoke the session's token, so a copied cookie stops working too, and drop the cookie."""
    if actor.token_id is not None:
        with session_scope() as s:
            tokens.revoke(s, actor, actor.token_id, utcnow())
    response.delete_cookie(COOKIE, path=PATH)


def current(request: Request) -> Actor:
    """The signed-in actor; NotSignedIn when the cookie is missing, expired, revoked or its user disabled."""
    secret = request.cookies.get(COOKIE)
    if not secret:
        raise NotSignedIn()
    try:
        with session_scope() as s:
            return tokens.authenticate(s, secret, utcnow(), address(request))
    except Unauthenticated:
        raise NotSignedIn() from None


def csrf_for(secret: str) -> str:
    return hmac.new(secret.encode(), b"crosspost csrf", hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> str:
    return csrf_for(request.cookies.get(COOKIE, ""))


def login_csrf(request: Request) -> str:
    """The login form's token: a random cookie of its own, echoed in the form (double submit)."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)


def check_login_csrf(request: Request, sent: str) -> None:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, sent):
        raise Forbidden("csrf: the form is stale or came from another site; reload the page")


def signed_in(request: Request) -> Actor:
    return current(request)


def checked_post(request: Request, csrf: Annotated[str, Form(max_length=128)] = "") -> Actor:
    """A POST's dependency: the signed-in actor, once the form's CSRF token matches the session."""
    actor = current(request)
    sent = csrf or request.headers.get("X-CSRF-Token", "")
    if not sent or not hmac.compare_digest(csrf_token(request), sent):
        raise Forbidden("csrf: the form is stale or came from another site; reload the page")
    return actor


User = Annotated[Actor, Depends(signed_in)]
Poster = Annotated[Actor, Depends(checked_post)]
