"""The dashboard as an app of its own, mounted at /ui on the API's app (``mount``): its own error pages
(HTML, not problem details), its static files, and ``/`` leading to it. The API imports this module by
name only, as ``crosspost serve`` names the API: the faces never import each other."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from config.settings import get_settings
from scheduler.core.deliveries import IllegalTransition
from scheduler.core.errors import UserError
from scheduler.desk.errors import Conflict, Forbidden, NotFound, TooManyAttempts, Unauthenticated
from scheduler.web import actions, composing, connecting, pages, people, render, reports
from scheduler.web.session import NotSignedIn, current

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
ROUTERS = (people.router, pages.router, actions.router, composing.router, reports.router,
           connecting.router)
STATUS_OF: list[tuple[type[Exception], int]] = [
    (Forbidden, 403), (NotFound, 404), (Conflict, 409), (TooManyAttempts, 429), (UserError, 422)]


def _signed_out(request: Request, exc: Exception) -> Response:
    if request.headers.get("HX-Request"):
        # The session ended while typing: send the whole page to the login form, not into the counters.
        return Response(status_code=401, headers={"HX-Redirect": "/ui/login?next=%2Fui%2Fcompose"})
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)


def _refused(request: Request, exc: Exception) -> Response:
    if isinstance(exc, Unauthenticated):
        return _signed_out(request, exc)
    status = 409 if isinstance(exc, IllegalTransition) else next(
        code for cls, code in STATUS_OF if isinstance(exc, cls))
    try:
        actor = current(request)
    except NotSignedIn:
        actor = None
    key = "forbidden" if status == 403 else "error"
    return render.page(request, actor, "error.html", status=status, title_key=key,
                       message=" ".join(str(exc).split()))


# Scripts and styles only from the dashboard itself, no framing (clickjacking), no referrer to the
# links it shows (published posts), and pages that may hold a token's secret are never cached.
HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}


def _policy() -> str:
    """The Content-Security-Policy; a form may lead to the platforms' authorize pages (connect)."""
    origins = " ".join(sorted({_origin(getattr(get_settings(), p).authorize_url)
                               for p in connecting.connectable()}))
    return ("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
            f"form-action 'self'{' ' + origins if origins else ''}; base-uri 'none'")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    response.headers.setdefault("Content-Security-Policy", _policy())
    for name, value in HEADERS.items():
        if name == "Cache-Control" and request.url.path.startswith("/ui/static/"):
            continue
        response.headers.setdefault(name, value)
    return response


def create() -> FastAPI:
    web = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    web.middleware("http")(_headers)
    web.add_exception_handler(NotSignedIn, _signed_out)
    web.add_exception_handler(UserError, _refused)
    web.add_exception_handler(IllegalTransition, _refused)
    web.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        web.include_router(router)
    return web


def mount(app: FastAPI) -> None:
    """Serve the dashboard at /ui of ``app`` and send a browser at / there (outside the API's schema)."""
    app.mount("/ui", create())

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/stories", status_code=307)
