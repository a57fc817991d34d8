"""Errors as RFC 9457 problem details (``application/problem+json``): type, title, status, detail, and
``errors`` naming each field (or, for a refused story, each problem per account)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from scheduler.core.deliveries import IllegalTransition
from scheduler.core.errors import StoryRejected, UserError
from scheduler.desk.errors import Conflict, Forbidden, NotFound, TooManyAttempts, Unauthenticated

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
TITLES = {400: "Bad request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 422: "Unprocessable content", 429: "Too many requests",
          500: "Internal server error"}
STATUS_OF: list[tuple[type[Exception], int]] = [
    (Unauthenticated, 401), (Forbidden, 403), (NotFound, 404), (Conflict, 409), (TooManyAttempts, 429),
    (IllegalTransition, 409), (UserError, 422)]


def problem(status: int, detail: str, errors: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    title = TITLES.get(status, "Error")
    body: dict[str, Any] = {"type": f"/problems/{title.lower().replace(' ', '-')}", "title": title,
                            "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _field_error(message: str) -> dict[str, Any]:
    """Our errors begin with the field they are about: ``at: ... is in the past``."""
    field, sep, rest = message.partition(": ")
    if sep and field and " " not in field.strip():
        return {"field": field.strip(), "detail": rest}
    return {"detail": message}


def _story_problem(message: str) -> dict[str, Any]:
    """A queueing problem: ``ACCOUNT: field: detail`` for one account (platform:handle), else a field."""
    first = _field_error(message)
    if ":" in first.get("field", "") and "detail" in first:
        return {"account": first["field"], **_field_error(first["detail"])}
    return first


def _user_error(request: Request, exc: Exception) -> JSONResponse:
    status = next(code for cls, code in STATUS_OF if isinstance(exc, cls))
    message = " ".join(str(exc).split())
    if isinstance(exc, StoryRejected):
        return problem(422, f"{exc.outcome}: {len(exc.problems)} problem(s)",
                       [_story_problem(p) for p in exc.problems])
    headers = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after)
    return problem(status, message, [_field_error(message)] if status == 422 else None, headers or None)


def _where(loc: tuple[object, ...] | list[object]) -> str:
    """``('query', 'limit')`` -> ``limit``; ``('body', 'images', 0, 'url')`` -> ``images.0.url``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(str(p) for p in parts) or "body"


def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    # The message and where, never the input: it may be a password.
    errors = [{"field": _where(e.get("loc", ())), "detail": e.get("msg", "invalid")} for e in exc.errors()]
    return problem(422, f"{len(errors)} field(s) invalid", errors)


def _http(request: Request, exc: HTTPException) -> JSONResponse:
    return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The type only: an exception's text may hold a statement with its parameters.
    log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return problem(500, "the server failed; the error is logged")


def install(app: FastAPI) -> None:
    for cls in (UserError, IllegalTransition):
        app.add_exception_handler(cls, _user_error)
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
