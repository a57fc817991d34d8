"""Who is calling: a bearer token resolved to an Actor (dependency ``caller``), and the role a route
needs before it runs (``needs``); scopes are checked by the desk's service functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from scheduler.core.db import session_scope
from scheduler.core.models import utcnow
from scheduler.desk import tokens
from scheduler.desk.access import Actor, require_everywhere, require_role
from scheduler.desk.errors import Unauthenticated

bearer = HTTPBearer(auto_error=False, description="An API token (`crosspost tokens create`, or "
                    "POST /auth/login).")


def address(request: Request) -> str | None:
    return request.client.host if request.client else None


def caller(request: Request,
           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Actor:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("authorization: send Authorization: Bearer TOKEN")
    with session_scope() as s:
        return tokens.authenticate(s, credentials.credentials, utcnow(), address(request))


def needs(role: str, *, everywhere: bool = False) -> Callable[[Actor], Actor]:
    """A dependency: the caller, if they hold ``role`` somewhere (or ``everywhere``)."""
    def check(actor: Annotated[Actor, Depends(caller)]) -> Actor:
        if everywhere:
            require_everywhere(actor, role, "this route")
        else:
            require_role(actor, role, "this route")
        return actor

    check.__name__ = f"needs_{role}{'_everywhere' if everywhere else ''}"
    return check


Viewer = Annotated[Actor, Depends(needs("viewer"))]
Editor = Annotated[Actor, Depends(needs("editor"))]
Approver = Annotated[Actor, Depends(needs("approver"))]
Admin = Annotated[Actor, Depends(needs("admin", everywhere=True))]
AnyUser = Annotated[Actor, Depends(caller)]
