"""One click to act: retry, resolve, approve, reject, pause, resume, and editing a story or one
account's text. Each is a POST with the CSRF token, calling the same desk function as the API (which
checks the role and scope again), then back to the page it came from; an edit the checks refuse comes
back as its form with every problem beside the field (or the platform's variant) it is about."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from adapters import PLATFORMS
from scheduler.core.db import session_scope
from scheduler.core.errors import StoryRejected, UserError
from scheduler.core.models import utcnow
from scheduler.desk import accounts as desk_accounts
from scheduler.desk import approval
from scheduler.desk import deliveries as desk_deliveries
from scheduler.desk import stories as desk_stories
from scheduler.desk.access import Actor, require_role
from scheduler.desk.errors import Conflict, Forbidden, NotFound
from scheduler.web import compose, prefs, render, views
from scheduler.web.people import safe_next
from scheduler.web.session import Poster, User

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
            published: Annotated[str, Form(max_length=2048)] = "",
            republish: Annotated[bool, Form()] = False) -> Response:
    with session_scope() as s:
        desk_deliveries.resolve(s, actor, delivery_id, utcnow(), published=published.strip() or None,
                                republish=republish)
    return _back(back, "resolved", delivery_id)


@router.post("/stories/{story_id}/approve")
def approve(story_id: int, actor: Poster, back: Back = "/ui/inbox", now: Annotated[bool, Form()] = False,
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


# -- editing ----------------------------------------------------------------------------------------
Text = Annotated[str, Form(max_length=110_000)]
At = Annotated[str, Form(max_length=40)]


async def _variants(request: Request) -> dict[str, str]:
    """The ``variant_<platform>`` fields of an edit form (their names depend on the story's platforms);
    an empty one means the platform takes the story's text."""
    data = await request.form()
    found = {p: data.get(f"variant_{p}") for p in PLATFORMS}
    return {p: v[:110_000] for p, v in found.items() if isinstance(v, str) and v.strip()}


Variants = Annotated[dict[str, str], Depends(_variants)]


def place(problems: list[str], platforms: dict[str, str], variants: dict[str, str]) -> dict[str, list[str]]:
    """Each problem beside what it is about: ``x:@a: text: is too long`` goes to X's variant when the
    story has one for X, else to the text (naming the account); ``link: ...`` to the link; ``at: ...`` to
    the time; the rest (media, duplicates, a conflict) above the form."""
    placed: dict[str, list[str]] = {}
    for problem in problems:
        head, sep, rest = problem.partition(": ")
        account = head if sep and head in platforms else ""
        detail = rest if account else problem
        kind = detail.partition(":")[0]
        if kind == "text":
            platform = platforms.get(account, "")
            where = f"variant_{platform}" if platform in variants else "text"
        else:
            where = kind if kind in ("link", "at") else "general"
        placed.setdefault(where, []).append(f"{account}: {detail}" if account else detail)
    return placed


def _story_form(request: Request, actor: Actor, story_id: int, *, status: int = 200,
                sent: dict[str, Any] | None = None, problems: dict[str, list[str]] | None = None,
                back: str = "/ui/stories") -> Response:
    """The edit form with the story's values, or with what was sent and why it was refused."""
    with session_scope() as s:
        story = desk_stories.find(s, actor, story_id, "editor")
        labels: dict[str, list[str]] = {}
        for d in sorted(story.deliveries, key=lambda d: d.account.label):
            labels.setdefault(d.account.platform, []).append(d.account.label)
        tz = prefs.read(s, actor).tz
        local = (story.due_at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M")
                 if story.timing == "at" and story.due_at else "")
        shown = {"id": story.id, "status": story.status, "text": story.text, "link": story.link or "",
                 "variants": dict(story.variants or {}), "at": local, **(sent or {}),
                 "editable": views.story_editable(story, True), "thread": story.thread,
                 "waits_again": views.waits_again_after_edit(s, story),
                 "targets": sorted(str(d.account_id) for d in story.deliveries),
                 # Accounts given a text of their own keep it whatever the story says (and the preview,
                 # which shows the story's text per platform, is not theirs): the form names them.
                 "own": sorted(d.account.label for d in story.deliveries if d.text is not None)}
        # The same live counters and preview as compose (its check, posted with the story's accounts).
        form = compose.Form(text=shown["text"], link=shown["link"], targets=shown["targets"],
                            variants=shown["variants"], thread=story.thread)
        counters, general = compose.counters(s, form, tz, utcnow())
        previews = compose.previews(s, form, tz)
    return render.page(request, actor, "story_edit.html", status=status, story=shown,
                       labels=dict(sorted(labels.items())), problems=problems or {}, back=safe_next(back),
                       counters=counters, general=general, previews=previews)


@router.get("/stories/{story_id}/edit")
def edit_story_form(request: Request, story_id: int, actor: User,
                    back: Annotated[str, Query(max_length=500)] = "/ui/stories") -> Response:
    require_role(actor, "editor", "edit")
    return _story_form(request, actor, story_id, back=back)


@router.post("/stories/{story_id}/edit")
def edit_story(request: Request, story_id: int, actor: Poster, variants: Variants, text: Text = "",
               link: Annotated[str, Form(max_length=2048)] = "", at: At = "",
               next_slot: Annotated[bool, Form()] = False, back: Back = "/ui/stories") -> Response:
    """Text, link and variants through ``desk.stories.edit`` (every queueing check again; an approved
    story waits for its approver again), a new time through ``desk.stories.retime``, in one transaction:
    a refused time leaves the text as it was too. Unchanged parts are not edited (an edit of nothing
    must not send an approved story back to approval)."""
    sent = {"text": text, "link": link, "variants": variants, "at": at, "next_slot": next_slot}
    platforms: dict[str, str] = {}  # account label -> platform, to place the problems
    try:
        with session_scope() as s:
            story = desk_stories.find(s, actor, story_id, "editor")
            platforms = {d.account.label: d.account.platform for d in story.deliveries}
            tz = prefs.read(s, actor).tz
            when = compose.parse_local(at, tz) if at.strip() else None
            if (text, link.strip() or None, variants) != (story.text, story.link, dict(story.variants or {})):
                desk_stories.edit(s, actor, story_id, utcnow(), text=text, link=link.strip(),
                                  variants=variants)
            if next_slot:
                desk_stories.retime(s, actor, story_id, utcnow(), next_slot=True)
            elif when is not None and not (story.timing == "at" and story.due_at == when):
                desk_stories.retime(s, actor, story_id, utcnow(), at=when)
    except StoryRejected as exc:
        return _story_form(request, actor, story_id, status=422, sent=sent, back=back,
                           problems=place(exc.problems, platforms, variants))
    except UserError as exc:
        if isinstance(exc, Forbidden | NotFound):
            raise  # the error page, with its status
        return _story_form(request, actor, story_id, status=409 if isinstance(exc, Conflict) else 422,
                           sent=sent, back=back, problems=place([str(exc)], {}, variants))
    return _back(back, "done", story_id)


@router.post("/deliveries/{delivery_id}/text")
def edit_delivery_text(request: Request, delivery_id: int, actor: Poster, text: Text = "",
                       reset: Annotated[bool, Form()] = False, back: Back = "/ui/stories") -> Response:
    """One account's own text (``desk.deliveries.edit_text``: checked as that platform counts it), or
    ``reset`` to the story's text again; refused, the delivery's form comes back with the problems."""
    try:
        with session_scope() as s:
            desk_deliveries.edit_text(s, actor, delivery_id, None if reset else text, utcnow())
    except UserError as exc:
        if isinstance(exc, Forbidden | NotFound):
            raise
        problems = exc.problems if isinstance(exc, StoryRejected) else [str(exc)]
        return _delivery_form(request, actor, delivery_id, text=text, back=back, problems=problems,
                              status=409 if isinstance(exc, Conflict) else 422)
    return _back(back, "done", delivery_id)


@router.get("/deliveries/{delivery_id}/edit")
def edit_delivery_form(request: Request, delivery_id: int, actor: User,
                       back: Annotated[str, Query(max_length=500)] = "/ui/stories") -> Response:
    return _delivery_form(request, actor, delivery_id, back=back)


def _delivery_form(request: Request, actor: Actor, delivery_id: int, *, text: str | None = None,
                   back: str = "/ui/stories", problems: list[str] | None = None,
                   status: int = 200) -> Response:
    with session_scope() as s:
        found = desk_deliveries.find(s, actor, delivery_id, "editor")
        story = found.story
        own = found.text or (story.variants or {}).get(found.account.platform) or story.text
        shown = {"id": found.id, "story": story.id, "account": found.account.label,
                 "platform": found.account.platform, "state": found.state, "own": found.text is not None,
                 "text": own if text is None else text}
    return render.page(request, actor, "delivery_edit.html", status=status, d=shown,
                       problems=problems or [], back=safe_next(back))
