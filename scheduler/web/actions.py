"""One click to act: retry, resolve, approve, reject, pause, resume. Each is a POST with the CSRF
token, calling the same desk function as the API (which checks the role and scope again), then back to
the page it came from."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from scheduler.core.db import session_scope
from scheduler.core.models import utcnow
from scheduler.desk import accounts as desk_accounts
from scheduler.desk import approval
from scheduler.desk import deliveries as desk_deliveries
from scheduler.desk import stories as desk_stories
from scheduler.web import compose, prefs
from scheduler.web.people import safe_next
from scheduler.web.session import Poster

router = APIRouter()
Back = Annotated[str, Form(max_length=500)]


def _back(back: str, done: str, ident: int) -> Response:
    target = safe_next(back)
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}done={done}&id={ident}", status_code=303)


@router.post("/deliveries/{delivery_id}/retry")
def retry(delivery_id: int, actor: Poster, back: Back = "/ui/inbox") -> Response:
    with session_scope() as s:
        desk_deliveries.retry(s, actor, delivery_id, utcnow())
    return _back(back, "retried", delivery_id)


@router.post("/deliveries/{delivery_id}/resolve")
def resolve(delivery_id: int, actor: Poster, back: Back = "/ui/inbox",
            published: Annotated[str, Form(max_length=2048)] = "", republish: bool = False) -> Response:
    with session_scope() as s:
        desk_deliveries.resolve(s, actor, delivery_id, utcnow(), published=published.strip() or None,
                                republish=republish)
    return _back(back, "resolved", delivery_id)


@router.post("/stories/{story_id}/approve")
def approve(story_id: int, actor: Poster, back: Back = "/ui/inbox", now: bool = False,
            fingerprint: Annotated[str, Form(max_length=64)] = "",
            at: Annotated[str, Form(max_length=40)] = "") -> Response:
    """The fingerprint of the text the approver read: an edit since then refuses the approval. A story
    whose time has passed goes out ``now`` or ``at`` a new time (the approver's zone)."""
    with session_scope() as s:
        story = desk_stories.find(s, actor, story_id, "approver")
        when = compose.parse_local(at, prefs.read(s, actor).tz) if at.strip() else None
        approval.approve(s, actor, story, utcnow(), at=when, publish_now=now, fingerprint=fingerprint or None)
    return _back(back, "approved", story_id)


@router.post("/stories/{story_id}/reject")
def reject(story_id: int, actor: Poster, reason: Annotated[str, Form(max_length=1000)],
           back: Back = "/ui/inbox") -> Response:
    with session_scope() as s:
        story = desk_stories.find(s, actor, story_id, "approver")
        approval.reject(s, actor, story, reason, utcnow())
    return _back(back, "rejected", story_id)


@router.post("/stories/{story_id}/cancel")
def cancel(story_id: int, actor: Poster, back: Back = "/ui/stories") -> Response:
    with session_scope() as s:
        desk_stories.cancel(s, actor, story_id, utcnow())
    return _back(back, "cancelled_story", story_id)


@router.post("/stories/{story_id}/retime")
def retime(story_id: int, actor: Poster, at: Annotated[str, Form(max_length=40)],
           back: Back = "/ui/calendar") -> Response:
    """Move a story's deliveries that have not started (the calendar's form, and its drag and drop)."""
    with session_scope() as s:
        when = compose.parse_local(at, prefs.read(s, actor).tz)
        desk_stories.retime(s, actor, story_id, utcnow(), at=when)
    return _back(back, "moved", story_id)


@router.post("/accounts/{account_id}/{action}")
def pause_or_resume(request: Request, account_id: int, action: str, actor: Poster) -> Response:
    if action not in ("pause", "resume"):
        return Response(status_code=404)
    with session_scope() as s:
        desk_accounts.set_status(s, actor, account_id, "paused" if action == "pause" else "active", utcnow())
    return _back("/ui/accounts", "done", account_id)
