"""/deliveries: list with filters, show with attempts, one account's own text, retry, resolve."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from scheduler.api.auth import Editor, Viewer
from scheduler.api.schemas import Changed, DeliveryText, ObjectId, Order, Page, Resolve
from scheduler.core.db import session_scope
from scheduler.core.errors import MAX_ID
from scheduler.core.models import utcnow
from scheduler.desk import deliveries as desk

router = APIRouter(prefix="/deliveries", tags=["deliveries"])
Id = Annotated[int, Query(ge=1, le=MAX_ID)]


@router.get("", response_model=Page)
def list_deliveries(actor: Viewer, state: str | None = None, story: Id | None = None,
                    account: str | None = None, cursor: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 200,
                    order: Order = "newest") -> dict[str, Any]:
    with session_scope() as s:
        page = desk.listing(s, actor, state=state, story=story, account=account, cursor=cursor, limit=limit,
                            order=order)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/{delivery_id}", response_model=Changed)
def show_delivery(delivery_id: ObjectId, actor: Viewer) -> dict[str, Any]:
    with session_scope() as s:
        return desk.show(s, actor, delivery_id)


@router.patch("/{delivery_id}", response_model=Changed)
def edit_delivery(delivery_id: ObjectId, body: DeliveryText, actor: Editor) -> dict[str, Any]:
    with session_scope() as s:
        desk.edit_text(s, actor, delivery_id, body.text, utcnow())
        return desk.show(s, actor, delivery_id)


@router.post("/{delivery_id}/retry", response_model=Changed)
def retry_delivery(delivery_id: ObjectId, actor: Editor) -> dict[str, Any]:
    with session_scope() as s:
        desk.retry(s, actor, delivery_id, utcnow())
    return {"id": delivery_id, "state": "scheduled"}


@router.post("/{delivery_id}/resolve", response_model=Changed)
def resolve_delivery(delivery_id: ObjectId, body: Resolve, actor: Editor) -> dict[str, Any]:
    with session_scope() as s:
        state = desk.resolve(s, actor, delivery_id, utcnow(), published=body.published,
                             republish=body.republish)
    return {"id": delivery_id, "state": state}
