"""The pages that read: the stories x accounts grid, the inbox, accounts, the calendar, health."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from config.settings import get_settings
from scheduler.core.db import session_scope
from scheduler.core.deliveries import CANCELLABLE, STATES
from scheduler.core.models import utcnow
from scheduler.desk import accounts as desk_accounts
from scheduler.desk import health
from scheduler.desk import stories as desk_stories
from scheduler.followers import summary
from scheduler.web import connecting, prefs, render, views
from scheduler.web.session import User

router = APIRouter()
Short = Annotated[str | None, Query(max_length=300)]


@router.get("/")
def home() -> Response:
    return RedirectResponse("/ui/stories", status_code=303)


@router.get("/stories")
def stories_page(request: Request, actor: User, status: Short = None, account: Short = None,
                 attention: bool = False,
                 cursor: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    with session_scope() as s:
        grid = views.grid(s, actor, status=status or None, account=account or None, attention=attention,
                          cursor=cursor)
        labels = [a["account"] for a in desk_accounts.listing(s, actor)]
    return render.page(request, actor, "stories.html", grid=grid, statuses=desk_stories.STATUSES,
                       chosen_status=status or "", account=account or "", attention=attention, labels=labels,
                       may_edit=actor.at_least("editor"), cancellable=CANCELLABLE,
                       live=_live_url(request))


def _live_url(request: Request) -> str:
    """The grid's cells as filtered now (``static/grid.js`` polls it): the page's own query, without the
    flash of the action that led here."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("done", "id")]
    return "/ui/stories/cells" + (f"?{urlencode(kept)}" if kept else "")


@router.get("/stories/cells")
def stories_cells(request: Request, actor: User, status: Short = None, account: Short = None,
                  attention: bool = False,
                  cursor: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    """The live refresh: the same grid (same filters, same page, the same scopes), as rows of cells each
    with a stamp of what it shows, so the page replaces only the cells that changed and keeps its
    filters, scroll and any editor that is open."""
    with session_scope() as s:
        grid = views.grid(s, actor, status=status or None, account=account or None, attention=attention,
                          cursor=cursor)
    kept = [(k, v) for k, v in request.query_params.multi_items()]
    back = "/ui/stories" + (f"?{urlencode(kept)}" if kept else "")
    return render.page(request, actor, "_grid_live.html", grid=grid, back=back,
                       may_edit=actor.at_least("editor"), cancellable=CANCELLABLE)


@router.get("/inbox")
def inbox_page(request: Request, actor: User) -> Response:
    with session_scope() as s:
        box = views.inbox(s, actor, utcnow())
    return render.page(request, actor, "inbox.html", box=box, may_edit=actor.at_least("editor"))


CHART_DAYS = 30


def _growth(actor: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Followers, their changes and a 30-day line per account: the report covers the whole matrix, so
    only a viewer of every account gets it (as GET /followers/report)."""
    if not actor.everywhere("viewer"):
        return {}, {}
    now = utcnow()
    first = now.date() - timedelta(days=CHART_DAYS - 1)
    with session_scope() as s:
        _, body, daily = summary.report(s, now, "account", None, get_settings().follower_interval, first)
    lines = {name: views.sparkline(points, first, CHART_DAYS) for name, points in daily.items()}
    return {g["group"]: g for g in body["groups"]}, lines


@router.get("/accounts")
def accounts_page(request: Request, actor: User) -> Response:
    with session_scope() as s:
        found = desk_accounts.listing(s, actor)
        editors = desk_stories.in_scope_ids(s, actor, "editor")  # None: every account
    editable = {a["id"] for a in found if editors is None or a["id"] in editors}
    growth, lines = _growth(actor)
    return render.page(request, actor, "accounts.html", accounts=found, growth=growth, lines=lines,
                       editable=editable,
                       connectable=connecting.connectable() if actor.everywhere("admin") else [],
                       mastodon=get_settings().mastodon.enabled)


def _span(today: date, span: str, offset: int) -> tuple[date, int]:
    """The first day and the length of the week (from Monday) or the month ``offset`` away from today's."""
    if span == "week":
        return today - timedelta(days=today.weekday()) + timedelta(weeks=offset), 7
    months = today.year * 12 + today.month - 1 + offset
    first = date(months // 12, months % 12 + 1, 1)
    following = date((months + 1) // 12, (months + 1) % 12 + 1, 1)
    return first, (following - first).days


@router.get("/calendar")
def calendar_page(request: Request, actor: User, week: Annotated[int, Query(ge=-520, le=520)] = 0,
                  span: Annotated[str, Query(pattern="^(week|month)$")] = "week",
                  account: Short = None, tag: Short = None) -> Response:
    """``week`` is the offset from the current week (or month, with ``span=month``)."""
    with session_scope() as s:
        tz = prefs.read(s, actor).tz
        first, length = _span(utcnow().astimezone(ZoneInfo(tz)).date(), span, week)
        start = datetime.combine(first, time(0), ZoneInfo(tz))
        days = views.week(s, actor, start, account=account or None, tag=tag or None, tz=tz, days=length)
        listed = desk_accounts.listing(s, actor)
    tags = sorted({t for a in listed for t in a["tags"]})
    return render.page(request, actor, "calendar.html", days=days, week=week, start=start, span=span,
                       account=account or "", tag=tag or "", labels=[a["account"] for a in listed], tags=tags)


@router.get("/health")
def health_page(request: Request, actor: User) -> Response:
    found = health.checks(utcnow())
    return render.page(request, actor, "health.html", checks=found, ready=health.ready(found),
                       states=STATES)
