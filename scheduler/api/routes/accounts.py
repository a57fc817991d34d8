"""/accounts and /schedule: the matrix within the caller's scopes, pausing, schedules and their slots.
Adding and re-authorising accounts (credentials) stay on the CLI of the host that holds the key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from scheduler.api.auth import Admin, Editor, Viewer
from scheduler.api.schemas import AccountEdit, Changed, ObjectId, ScheduleIn
from scheduler.core.db import session_scope
from scheduler.core.models import utcnow
from scheduler.desk import accounts as desk
from scheduler.matrix import accounts as matrix

router = APIRouter(tags=["accounts"])


@router.get("/accounts", response_model=list[Changed])
def list_accounts(actor: Viewer) -> list[dict[str, Any]]:
    """The accounts the caller may see."""
    with session_scope() as s:
        return desk.listing(s, actor)


@router.get("/accounts/{account_id}", response_model=Changed)
def show_account(account_id: ObjectId, actor: Viewer) -> dict[str, Any]:
    with session_scope() as s:
        return matrix.describe(desk.find(s, actor, account_id))


@router.patch("/accounts/{account_id}", response_model=Changed)
def edit_account(account_id: ObjectId, body: AccountEdit, actor: Admin) -> dict[str, Any]:
    """Name, tags, zone, language; tags decide scopes, so only an admin changes them."""
    with session_scope() as s:
        return desk.edit(s, actor, account_id, utcnow(), name=body.name, tags=body.tags, tz=body.tz,
                         language=body.language)


@router.delete("/accounts/{account_id}", response_model=Changed)
def remove_account(account_id: ObjectId, actor: Admin) -> dict[str, Any]:
    with session_scope() as s:
        return {"id": account_id, "removed": True, "cancelled": desk.remove(s, actor, account_id, utcnow())}


@router.post("/accounts/{account_id}/pause", response_model=Changed)
def pause_account(account_id: ObjectId, actor: Editor) -> dict[str, Any]:
    with session_scope() as s:
        return desk.set_status(s, actor, account_id, "paused", utcnow())


@router.post("/accounts/{account_id}/resume", response_model=Changed)
def resume_account(account_id: ObjectId, actor: Editor) -> dict[str, Any]:
    with session_scope() as s:
        return desk.set_status(s, actor, account_id, "active", utcnow())


@router.put("/accounts/{account_id}/schedule", response_model=Changed)
def set_schedule(account_id: ObjectId, body: ScheduleIn, actor: Editor) -> dict[str, Any]:
    """Replace the posting schedule (an empty list clears it)."""
    with session_scope() as s:
        return desk.set_schedule(s, actor, account_id, utcnow(), body.cron, body.min_gap_minutes, body.tz)


@router.get("/schedule/slots", response_model=list[Changed])
def upcoming_slots(actor: Viewer, account: str | None = None,
                   days: Annotated[int, Query(ge=1, le=366)] = 7,
                   tz: Annotated[str, Query(max_length=64)] = "UTC") -> list[dict[str, Any]]:
    """Upcoming slots and what fills them, in each account's zone and in ``tz``."""
    with session_scope() as s:
        return desk.upcoming_slots(s, actor, utcnow(), ref=account, days=days, tz=tz)
