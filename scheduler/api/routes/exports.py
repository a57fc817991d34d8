"""/exports: stories and deliveries as CSV or JSON Lines, the same rows as `stories export` and
`deliveries export` (and `stories import` reads the stories file back)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from scheduler.api.auth import Viewer
from scheduler.core.db import session_scope
from scheduler.desk import stories as desk_stories
from scheduler.desk.access import require_everywhere
from scheduler.desk.deliveries import check_state
from scheduler.stories import bulk, drafts

router = APIRouter(prefix="/exports", tags=["exports"])
Format = Annotated[str, Query(pattern="^(csv|jsonl)$")]
MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}
CONTENT = {200: {"content": {"text/csv": {}, "application/jsonl": {}}}}


def _window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    return (drafts.parse_time(since, "since") if since else None,
            drafts.parse_time(until, "until") if until else None)


@router.get("/stories", response_class=Response, responses=CONTENT)
def export_stories(actor: Viewer, format: Format = "csv", status: str | None = None,
                   since: str | None = None, until: str | None = None) -> Response:
    """Stories created in the window. Exports cover every desk: a viewer everywhere may take them."""
    require_everywhere(actor, "viewer", "export")
    start, end = _window(since, until)
    with session_scope() as s:
        rows = bulk.story_rows(s, status=desk_stories.check_status(status), since=start, until=end)
    return Response(bulk.render(rows, bulk.STORY_FIELDS, format), media_type=MEDIA[format])


@router.get("/deliveries", response_class=Response, responses=CONTENT)
def export_deliveries(actor: Viewer, format: Format = "csv", state: str | None = None,
                      since: str | None = None, until: str | None = None) -> Response:
    """Deliveries due in the window."""
    require_everywhere(actor, "viewer", "export")
    start, end = _window(since, until)
    with session_scope() as s:
        rows = bulk.delivery_rows(s, state=check_state(state), since=start, until=end)
    return Response(bulk.render(rows, bulk.DELIVERY_FIELDS, format), media_type=MEDIA[format])
