"""Sign in and out, one's preferences, and the admin's pages: the audit log, users and tokens."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from scheduler.core.db import session_scope
from scheduler.core.errors import UserError
from scheduler.core.models import utcnow
from scheduler.desk import audit, events, mail, tokens, users
from scheduler.desk.access import Actor, require_everywhere
from scheduler.desk.errors import Forbidden, TooManyAttempts, Unauthenticated
from scheduler.desk.models import User as DeskUser
from scheduler.web import i18n, prefs, render, session
from scheduler.web.session import Poster, User

router = APIRouter()
Text = Annotated[str, Form(max_length=1024)]


def safe_next(target: str | None) -> str:
    """Only a path of the dashboard: never another site (an open redirect)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/stories"


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    token = session.login_csrf(request)
    response = render.page(request, None, "login.html", next=safe_next(next), csrf_login=token)
    session.set_cookie(request, response, session.LOGIN_COOKIE, token, 3600)
    return response


@router.post("/login")
def login(request: Request, name: Text, password: Text, csrf: Text = "", next: Text = "") -> Response:
    session.check_login_csrf(request, csrf)
    response = RedirectResponse(safe_next(next), status_code=303)
    try:
        session.start(request, response, name, password)
    except (Unauthenticated, TooManyAttempts) as exc:
        token = secrets.token_urlsafe(24)
        limited = isinstance(exc, TooManyAttempts)
        page = render.page(request, None, "login.html", status=429 if limited else 401, next=safe_next(next),
                           csrf_login=token, failure=str(exc) if limited else None, wrong=True)
        session.set_cookie(request, page, session.LOGIN_COOKIE, token, 3600)
        return page
    response.delete_cookie(session.LOGIN_COOKIE, path=session.PATH)
    return response


@router.post("/logout")
def logout(request: Request, actor: Poster) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    session.end(request, response, actor)
    return response


@router.get("/settings")
def settings_form(request: Request, actor: User) -> Response:
    return _settings(request, actor)


def _settings(request: Request, actor: Actor, status: int = 200, sent: dict[str, Any] | None = None,
              problems: dict[str, list[str]] | None = None) -> Response:
    """Preferences, and what the user is told by e-mail (the choices ``PUT /me/notifications`` sets)."""
    with session_scope() as s:
        user = s.get(DeskUser, actor.user_id) if actor.user_id is not None else None
        chosen = None if user is None else {"email": user.email or "", "notify": list(user.notify or []),
                                            "digest": bool(user.digest)}
    return render.page(request, actor, "settings.html", status=status, languages=i18n.LANGUAGES,
                       notifications=sent or chosen, kinds=events.KINDS, mail_on=mail.configured(),
                       problems=problems or {})


@router.post("/settings")
def save_settings(request: Request, actor: Poster, language: Annotated[str, Form(max_length=16)],
                  tz: Annotated[str, Form(max_length=64)]) -> Response:
    with session_scope() as s:
        prefs.save(s, actor, language, tz)
    return RedirectResponse("/ui/settings?done=done", status_code=303)


@router.post("/settings/notifications")
def save_notifications(request: Request, actor: Poster, email: Annotated[str, Form(max_length=255)] = "",
                       notify: Annotated[list[str], Form(max_length=20)] = [],  # noqa: B006 - FastAPI copies it
                       digest: Annotated[bool, Form()] = False) -> Response:
    """One's own e-mail notifications, through the desk's ``users.set_notifications`` (a user sets their
    own; kinds and the address checked there); refused, the page says why beside the field."""
    try:
        with session_scope() as s:
            user = s.get(DeskUser, actor.user_id) if actor.user_id is not None else None
            if user is None:
                raise Forbidden("notifications: this session belongs to no user")
            users.set_notifications(s, actor, user, utcnow(), email=email.strip() or None, notify=notify,
                                    digest=digest)
    except UserError as exc:
        if isinstance(exc, Forbidden):
            raise
        field = "email" if str(exc).startswith("email") else "notify"
        return _settings(request, actor, 422, {"email": email, "notify": notify, "digest": digest},
                         {field: [str(exc)]})
    return RedirectResponse("/ui/settings?done=done#notifications", status_code=303)


@router.get("/audit")
def audit_page(request: Request, actor: User, cursor: Annotated[str | None, Query(max_length=20)] = None,
               object: Annotated[str | None, Query(max_length=80)] = None) -> Response:
    kind, ident = audit.parse_object(object) if object else (None, None)
    with session_scope() as s:
        found = audit.entries(s, actor, object_type=kind, object_id=ident, cursor=cursor, limit=100)
    return render.page(request, actor, "audit.html", entries=found.items, next_cursor=found.next_cursor,
                       object=object or "")


@router.get("/users")
def users_page(request: Request, actor: User, created: str | None = None) -> Response:
    """Admins see and manage everyone; anyone else sees their own tokens."""
    with session_scope() as s:
        people = users.listing(s, actor) if actor.everywhere("admin") else []
        mine = tokens.listing(s, actor)
    return render.page(request, actor, "users.html", people=people, tokens=mine, created=None)


@router.post("/users")
def add_user(request: Request, actor: Poster, name: Annotated[str, Form(max_length=64)], password: Text,
             roles: Text = "") -> Response:
    require_everywhere(actor, "admin", "users")
    with session_scope() as s:
        parsed = [users.parse_role(s, r) for r in roles.split(",") if r.strip()]
        users.add(s, actor, name.strip(), utcnow(), password=password, roles=parsed)
    return RedirectResponse("/ui/users?done=done", status_code=303)


@router.post("/users/{name}/disable")
def disable_user(request: Request, name: str, actor: Poster) -> Response:
    with session_scope() as s:
        users.disable(s, actor, users.find(s, name), utcnow())
    return RedirectResponse("/ui/users?done=done", status_code=303)


@router.post("/tokens")
def create_token(request: Request, actor: Poster, name: Annotated[str, Form(max_length=64)],
                 days: Annotated[float, Form(gt=0, le=tokens.MAX_DAYS)] = 90) -> Response:
    """A token for oneself (its secret shown on this one answer, never again)."""
    with session_scope() as s:
        user = users.find(s, actor.name)
        _, secret = tokens.create(s, actor, user, name.strip(), utcnow(), days=days)
    with session_scope() as s:
        people = users.listing(s, actor) if actor.everywhere("admin") else []
        mine = tokens.listing(s, actor)
    page = render.page(request, actor, "users.html", status=201, people=people, tokens=mine, created=secret)
    page.headers["Cache-Control"] = "no-store"  # the secret must not stay in a cache
    return page


@router.post("/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: int, actor: Poster) -> Response:
    with session_scope() as s:
        tokens.revoke(s, actor, token_id, utcnow())
    return RedirectResponse("/ui/users?done=done", status_code=303)
