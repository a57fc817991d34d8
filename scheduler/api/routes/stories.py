"""/stories: queue (with Idempotency-Key), list, show, edit, cancel, retime, approve, reject."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Header, Query, Request, Response, UploadFile
from sqlalchemy.exc import IntegrityError

from scheduler.api.auth import Approver, Editor, Viewer
from scheduler.api.schemas import Approve, Changed, ObjectId, Order, Page, Reject, Retime, StoryEdit, StoryIn
from scheduler.core.db import session_scope
from scheduler.core.errors import UserError, shown
from scheduler.core.models import utcnow
from scheduler.desk import approval, idempotency
from scheduler.desk import stories as desk
from scheduler.desk.access import Actor
from scheduler.stories import bulk, drafts, media

router = APIRouter(prefix="/stories", tags=["stories"])
MAX_IMPORT = 20 * 1024 * 1024
IMPORT_CHUNK = 1024 * 1024


def _draft(body: StoryIn) -> drafts.Draft:
    draft = drafts.Draft(text=body.text, targets=list(body.to), link=body.link or None,
                         variants=dict(body.variants), thread=body.thread, next_slot=body.next_slot)
    for platform, text in body.variants.items():
        drafts.parse_variant(f"{platform}={text}")  # the same check as --variant
    if body.at is not None:
        draft.at = drafts.parse_time(body.at)
    if body.not_before is not None:
        draft.not_before = drafts.parse_time(body.not_before, "not_before")
    draft.media += [media.ingest(image.url, image.alt) for image in body.images]
    if body.video is not None:
        draft.media.append(media.ingest(body.video))
    return draft


def _queue(actor: Actor, body: StoryIn, key: str | None, raw: bytes) -> tuple[dict[str, Any], bool]:
    digest = idempotency.body_hash(raw)
    if key is not None:  # a retry is answered before any media is fetched again
        with session_scope() as s:
            earlier = idempotency.replay(s, actor, key, digest)
            if earlier is not None:
                return desk.show(s, actor, earlier), False
    # Media are fetched before the transaction begins: on SQLite it holds the write lock.
    draft = _draft(body)
    with session_scope() as s:
        def queue() -> Any:
            return desk.queue(s, actor, draft, utcnow(), allow_duplicate=body.allow_duplicate)

        if key is None:
            story, created = queue(), True
        else:
            story, created = idempotency.queue_once(s, actor, key, digest, utcnow(), queue)
        return desk.show(s, actor, story), created


@router.post("", status_code=201, response_model=Changed, responses={200: {"description": "A replay"}})
def queue_story(body: StoryIn, request: Request, response: Response, actor: Editor,
                idempotency_key: Annotated[str | None, Header(max_length=255)] = None) -> dict[str, Any]:
    """Queue a story; 422 lists every problem, per account. With an Idempotency-Key, a retry returns
    the story the first request queued (200) instead of queueing it again."""
    raw = json.dumps(body.model_dump(), sort_keys=True).encode()
    try:
        row, created = _queue(actor, body, idempotency_key, raw)
    except IntegrityError as exc:
        if idempotency_key is None or not idempotency.is_key_clash(exc):
            raise
        row, created = _queue(actor, body, idempotency_key, raw)  # the concurrent twin won: replay it
    response.status_code = 201 if created else 200
    return row


@router.post("/import", response_model=Changed)
def import_stories(file: Annotated[UploadFile, File(description="A .csv or .jsonl file, as `stories "
                                                   "import` reads (media by URL only).")],
                   actor: Editor, skip_invalid: bool = False,
                   allow_duplicate: bool = False) -> dict[str, Any]:
    """Queue one story per row; every row is checked first and nothing is stored if any row is invalid,
    unless ``skip_invalid``. Rows go through the same roles and approval policy as ``POST /stories``."""
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise UserError(f"file: {shown(file.filename or '')} must end in .csv or .jsonl")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"
        with path.open("wb") as out:
            while chunk := file.file.read(IMPORT_CHUNK):
                out.write(chunk)
                if out.tell() > MAX_IMPORT:  # stop writing, not after the disk filled
                    raise UserError(f"file: larger than {MAX_IMPORT} bytes")
        desk.check_remote_media(str(path))
        now = utcnow()
        prepared = bulk.prepare(str(path), now)  # media fetched before the transaction
    with session_scope() as s:
        result = desk.import_prepared(s, actor, prepared, now, skip_invalid=skip_invalid,
                                      allow_duplicate=allow_duplicate)
    return {"imported": result.imported,
            "skipped": [{"row": n, "problems": p} for n, p in sorted(result.skipped.items())]}


@router.get("", response_model=Page)
def list_stories(actor: Viewer, status: str | None = None, cursor: str | None = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50, order: Order = "newest") -> dict[str, Any]:
    with session_scope() as s:
        page = desk.listing(s, actor, status=desk.check_status(status), cursor=cursor, limit=limit,
                            order=order)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/{story_id}", response_model=Changed)
def show_story(story_id: ObjectId, actor: Viewer) -> dict[str, Any]:
    with session_scope() as s:
        return desk.show(s, actor, desk.find(s, actor, story_id))


@router.patch("/{story_id}", response_model=Changed)
def edit_story(story_id: ObjectId, body: StoryEdit, actor: Editor) -> dict[str, Any]:
    """Edit text, link or variants until a delivery starts; a story needing approval waits again."""
    with session_scope() as s:
        story = desk.edit(s, actor, story_id, utcnow(), text=body.text, link=body.link,
                          variants=body.variants)
        return desk.show(s, actor, story)


@router.post("/{story_id}/cancel", response_model=Changed)
def cancel_story(story_id: ObjectId, actor: Editor) -> dict[str, Any]:
    with session_scope() as s:
        return {"story": story_id, "cancelled": desk.cancel(s, actor, story_id, utcnow())}


@router.post("/{story_id}/retime", response_model=Changed)
def retime_story(story_id: ObjectId, body: Retime, actor: Editor) -> dict[str, Any]:
    at = drafts.parse_time(body.at) if body.at is not None else None
    with session_scope() as s:
        return {"story": story_id, "moved": desk.retime(s, actor, story_id, utcnow(), at=at,
                                                        next_slot=body.next_slot)}


@router.post("/{story_id}/approve", response_model=Changed)
def approve_story(story_id: ObjectId, body: Approve, actor: Approver) -> dict[str, Any]:
    """409 if the story's time has passed and neither ``now`` nor ``at`` is given."""
    at = drafts.parse_time(body.at) if body.at is not None else None
    with session_scope() as s:
        story = desk.find(s, actor, story_id, "approver")
        moved = approval.approve(s, actor, story, utcnow(), at=at, publish_now=body.now,
                                 fingerprint=body.fingerprint)
        return {"story": story_id, "status": story.status, "scheduled": moved}


@router.post("/{story_id}/reject", response_model=Changed)
def reject_story(story_id: ObjectId, body: Reject, actor: Approver) -> dict[str, Any]:
    with session_scope() as s:
        story = desk.find(s, actor, story_id, "approver")
        cancelled = approval.reject(s, actor, story, body.reason, utcnow())
        return {"story": story_id, "status": story.status, "cancelled": cancelled}
