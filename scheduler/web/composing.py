"""Compose: the form, its live counters (an htmx POST as one types, answered with a fragment), and
queueing through the desk (roles, approval policy, audit), with every problem shown per account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile  # what request.form() gives (FastAPI's is a subclass)

from adapters import PLATFORMS
from scheduler.core.db import session_scope
from scheduler.core.errors import StoryRejected, UserError
from scheduler.core.models import utcnow
from scheduler.desk import stories as desk_stories
from scheduler.desk.access import Actor, require_role
from scheduler.web import compose, prefs, render
from scheduler.web.session import Poster, User

router = APIRouter()
MAX_FIELD = 110_000  # a little over the longest story queueing accepts, which then says so
UPLOADS = ("image_1", "image_2", "image_3", "image_4", "video")


async def _form(request: Request) -> compose.Form:
    data = await request.form()

    def text(name: str) -> str:
        value = data.get(name, "")
        return value[:MAX_FIELD] if isinstance(value, str) else ""

    uploads, images = [], []
    for name in UPLOADS:
        item = data.get(name)
        if isinstance(item, UploadFile) and item.filename:
            uploads.append(compose.Upload(item.filename, item.file, text(f"{name}_alt")[:1500]))
        chosen = item.filename if isinstance(item, UploadFile) else text(f"{name}_name")
        if name != "video" and chosen:
            images.append((chosen[:200], text(f"{name}_alt")[:1500]))
    return compose.Form(
        uploads=uploads, text=text("text"), link=text("link")[:2048],
        targets=[v for v in data.getlist("to") if isinstance(v, str) and v.strip()][:200],
        variants={p: text(f"variant_{p}") for p in PLATFORMS if text(f"variant_{p}").strip()},
        when=text("when") if text("when") in ("now", "at", "next_slot") else "now",
        at_local=text("at")[:40], thread=text("thread") == "on", images=images)


Filled = Annotated[compose.Form, Depends(_form)]


def _page(request: Request, actor: Actor, form: compose.Form, status: int = 200,
          problems: list[dict[str, str]] | None = None) -> Response:
    with session_scope() as s:
        tags, accounts = compose.editable_targets(s, actor)
        tz = prefs.read(s, actor).tz
        counters, general = compose.counters(s, form, tz, utcnow()) if form.targets or form.text else ([], [])
        previews = compose.previews(s, form, tz)
        platforms = sorted({a.platform for a in accounts})
        choices = [(a.id, a.label, a.platform) for a in accounts]
    return render.page(request, actor, "compose.html", status=status, form=form, tags=tags,
                       choices=choices, platforms=platforms, counters=counters, general=general,
                       problems=problems or [], previews=previews)


@router.get("/compose")
def compose_form(request: Request, actor: User) -> Response:
    require_role(actor, "editor", "compose")
    return _page(request, actor, compose.Form())


@router.post("/compose/check")
def compose_check(request: Request, actor: Poster, form: Filled) -> Response:
    """The counters fragment: each platform's count as it counts, and the queueing checks' problems."""
    require_role(actor, "editor", "compose")
    with session_scope() as s:
        tz = prefs.read(s, actor).tz
        counters, general = compose.counters(s, form, tz, utcnow())
        previews = compose.previews(s, form, tz)
    return render.page(request, actor, "_check.html", counters=counters, general=general,
                       previews=previews)


def _split(problem: str) -> dict[str, str]:
    """``mastodon:@a: text: is too long`` -> account and detail (as the API's 422 lists them)."""
    head, sep, rest = problem.partition(": ")
    if sep and ":" in head and " " not in head:
        return {"account": head, "detail": rest}
    return {"account": "", "detail": problem}


@router.post("/compose")
def queue(request: Request, actor: Poster, form: Filled) -> Response:
    require_role(actor, "editor", "compose")
    try:
        with session_scope() as s:
            tz = prefs.read(s, actor).tz
        draft = compose.draft_of(form, tz)
        # Stored before the transaction: on SQLite it holds the write lock.
        draft.media = compose.store_uploads(form.uploads)
        with session_scope() as s:
            story = desk_stories.queue(s, actor, draft, utcnow())
            story_id = story.id
    except StoryRejected as exc:
        return _page(request, actor, form, 422, [_split(p) for p in exc.problems])
    except UserError as exc:
        if type(exc) is not UserError:
            raise  # Forbidden and the like: the error page
        return _page(request, actor, form, 422, [_split(str(exc))])
    return RedirectResponse(f"/ui/stories?done=queued&id={story_id}", status_code=303)
