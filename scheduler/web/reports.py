"""The admin's and the analyst's pages: the matrix report (followers by platform, tag or account over a
period, gaps shown as gaps, CSV) and the webhooks with their delivery logs."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from config.settings import get_settings
from scheduler.core.db import session_scope
from scheduler.core.models import utcnow
from scheduler.desk import webhooks
from scheduler.desk.access import require_everywhere
from scheduler.desk.events import KINDS
from scheduler.followers import reports, summary
from scheduler.web import render
from scheduler.web.session import Poster, User

router = APIRouter()
By = Annotated[str, Query(pattern="^(platform|tag|account)$")]
Days = Annotated[int, Query(ge=1, le=366)]


def _report(by: str, days: int) -> tuple[dict[str, Any], dict[str, Any]]:
    now = utcnow()
    with session_scope() as s:
        _, body, daily = summary.report(s, now, by, None, get_settings().follower_interval,
                                        now.date() - timedelta(days=days - 1))
    return body, daily


@router.get("/followers")
def followers_page(request: Request, actor: User, by: By = "platform", days: Days = 30) -> Response:
    """The report covers the whole matrix: a viewer of every account (as GET /followers/report)."""
    require_everywhere(actor, "viewer", "followers report")
    body, daily = _report(by, days)
    today = utcnow().date()
    dates = [today - timedelta(days=n) for n in range(days)]
    # A day without any sample of a group stays empty: a gap, never a zero.
    table = {name: {d: (v, n) for d, v, n in points} for name, points in daily.items()}
    return render.page(request, actor, "followers.html", body=body, table=table, dates=dates, by=by,
                       days=days, groupings=reports.GROUPINGS)


@router.get("/followers.csv")
def followers_csv(actor: User, by: By = "platform", days: Days = 30) -> Response:
    require_everywhere(actor, "viewer", "followers report")
    _, daily = _report(by, days)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(summary.CSV_HEADER)
    writer.writerows(summary.daily_rows(daily))
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="followers-by-{by}.csv"'})


@router.get("/webhooks")
def webhooks_page(request: Request, actor: User, hook: Annotated[int | None, Query(ge=1)] = None) -> Response:
    with session_scope() as s:
        hooks = webhooks.listing(s, actor)
        entries = webhooks.log(s, actor, hook) if hook else []
    return render.page(request, actor, "webhooks.html", hooks=hooks, hook=hook, entries=entries, kinds=KINDS,
                       created=None)


@router.post("/webhooks")
def add_webhook(request: Request, actor: Poster, url: Annotated[str, Form(max_length=2048)],
                events: Annotated[list[str] | None, Form()] = None) -> Response:
    """The hook's signing secret is on this one answer, never again."""
    with session_scope() as s:
        _, secret = webhooks.create(s, actor, url.strip(), utcnow(), events or [])
    with session_scope() as s:
        hooks = webhooks.listing(s, actor)
    return render.page(request, actor, "webhooks.html", status=201, hooks=hooks, hook=None, entries=[],
                       kinds=KINDS, created=secret)


@router.post("/webhooks/{hook_id}/remove")
def remove_webhook(hook_id: int, actor: Poster) -> Response:
    with session_scope() as s:
        webhooks.remove(s, actor, hook_id, utcnow())
    return RedirectResponse("/ui/webhooks?done=done", status_code=303)
