"""/feeds and /feed-items: the `crosspost feeds` commands over HTTP (list with health, show, add, edit,
pause, resume, remove, poll now, the drafts inbox, promote), through the same service functions
(``scheduler.feeds.desk``), which check scopes and write the audit log; and the feeds' figures for
/metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field

from scheduler.api.auth import Admin, Editor, Viewer
from scheduler.api.schemas import Changed, ObjectId, Order, Page
from scheduler.core.db import session_scope
from scheduler.core.errors import MAX_ID
from scheduler.core.models import utcnow
from scheduler.feeds import desk, figures, registry

router = APIRouter(tags=["feeds"])
Templates = dict[str, str]


# The bodies live here rather than in schemas.py: they belong to these routes only. Values are checked
# by the service (``registry``), so the API and the CLI refuse the same input with the same words.
class FeedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=1024, description="http(s) URL of an RSS, Atom, JSON Feed or news sitemap.")
    to: list[str] = Field(min_length=1, max_length=100, description="Account ids, platform:handle, or tags.")
    language: str | None = Field(None, max_length=35, description="BCP-47 language of the feed.")
    templates: Templates = Field(default_factory=dict, description="Jinja2 sources: \"default\" and/or one "
                                 "per platform.")
    mode: str = Field("draft", description="draft, approve or auto.")
    every: str = Field("15m", max_length=20, description="Polling interval: 90s, 5m, 2h, 1d.")
    utm: dict[str, str] = Field(default_factory=dict, description="utm_source, utm_medium, utm_campaign... "
                                "({platform} and {feed} filled in).")


class FeedEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: list[str] | None = Field(None, min_length=1, max_length=100)
    language: str | None = Field(None, max_length=35, description="Empty clears it.")
    templates: Templates | None = None
    mode: str | None = None
    every: str | None = Field(None, max_length=20)
    utm: dict[str, str] | None = None


@router.get("/feeds", response_model=list[Changed])
def list_feeds(actor: Viewer, removed: bool = False) -> list[dict[str, Any]]:
    """The feeds the caller may see, with their health; ``silent`` marks one quiet for longer than its
    usual cadence."""
    with session_scope() as s:
        return desk.listing(s, actor, utcnow(), include_removed=removed)


@router.post("/feeds", status_code=201, response_model=Changed)
def add_feed(body: FeedIn, actor: Editor) -> dict[str, Any]:
    """Watch a feed for the accounts and tags in ``to`` (the caller must edit each of them)."""
    now = utcnow()
    with session_scope() as s:
        feed = desk.add(s, actor, body.url, body.to, now, language=body.language,
                        sources=body.templates or None, mode=body.mode, every=body.every,
                        utm=body.utm or None)
        return registry.describe(s, feed, now)


@router.get("/feeds/{feed_id}", response_model=Changed)
def show_feed(feed_id: ObjectId, actor: Viewer) -> dict[str, Any]:
    """A feed, its health and its waiting items."""
    with session_scope() as s:
        return desk.show(s, actor, feed_id, utcnow())


@router.patch("/feeds/{feed_id}", response_model=Changed)
def edit_feed(feed_id: ObjectId, body: FeedEdit, actor: Editor) -> dict[str, Any]:
    now = utcnow()
    with session_scope() as s:
        feed = desk.edit(s, actor, feed_id, now, targets=body.to, language=body.language,
                         sources=body.templates, mode=body.mode, every=body.every, utm=body.utm)
        return registry.describe(s, feed, now)


def _status(feed_id: int, actor: Any, status: str) -> dict[str, Any]:
    now = utcnow()
    with session_scope() as s:
        feed = desk.set_status(s, actor, feed_id, status, now)
        return {"id": feed.id, "url": feed.url, "status": feed.status}


@router.post("/feeds/{feed_id}/pause", response_model=Changed)
def pause_feed(feed_id: ObjectId, actor: Editor) -> dict[str, Any]:
    return _status(feed_id, actor, "paused")


@router.post("/feeds/{feed_id}/resume", response_model=Changed)
def resume_feed(feed_id: ObjectId, actor: Editor) -> dict[str, Any]:
    return _status(feed_id, actor, "active")


@router.delete("/feeds/{feed_id}", response_model=Changed)
def remove_feed(feed_id: ObjectId, actor: Admin) -> dict[str, Any]:
    """Stop watching a feed; its items stay, so an article it carried never comes back elsewhere."""
    return _status(feed_id, actor, "removed")


@router.post("/feeds/{feed_id}/poll", response_model=Changed)
def poll_feed(feed_id: ObjectId, actor: Editor) -> dict[str, Any]:
    """Poll now (even a paused feed), in this request: the outcome, new items and stories made."""
    return desk.poll(actor, feed_id, utcnow()).as_dict()


@router.get("/feed-items", response_model=Page)
def list_items(actor: Viewer, feed: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
               status: Annotated[list[str] | None, Query(max_length=4, description="draft, rejected, "
                                                         "queued or skipped (default: draft and rejected)")]
               = None,
               cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
               order: Order = "newest") -> dict[str, Any]:
    """The inbox: feed items waiting for an editor, within the feeds the caller may see."""
    with session_scope() as s:
        page = desk.drafts(s, actor, feed=feed, statuses=tuple(status or ("draft", "rejected")),
                           cursor=cursor, limit=limit, order=order)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.post("/feed-items/{item_id}/promote", response_model=Changed)
def promote_item(item_id: ObjectId, actor: Editor) -> dict[str, Any]:
    """Queue a draft (or a rejected item) as a story: each account's next slot, or now."""
    with session_scope() as s:
        item, story = desk.promote(s, actor, item_id, utcnow())
        return {"item": item.id, "story": story.id, "status": story.status}


class FeedMetrics(Collector):
    """Silent feeds and each feed's errors as Prometheus gauges, read afresh at each scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with session_scope() as s:
            found = figures.read(s, utcnow())
        yield GaugeMetricFamily("crosspost_feeds_silent", "Active feeds quiet for longer than their usual "
                                "cadence", value=len(found.silent))
        silent = GaugeMetricFamily("crosspost_feed_silent", "1 for an active feed quiet for longer than its "
                                   "usual cadence, else 0", labels=["feed"])
        errors = GaugeMetricFamily("crosspost_feed_errors", "Failed fetches of a feed, in all",
                                   labels=["feed"])
        in_row = GaugeMetricFamily("crosspost_feed_errors_in_row", "Failed fetches of a feed since its "
                                   "last good one (its backoff)", labels=["feed"])
        for feed_id, count in found.errors.items():
            silent.add_metric([str(feed_id)], 1 if feed_id in found.silent else 0)
            errors.add_metric([str(feed_id)], count)
            in_row.add_metric([str(feed_id)], found.errors_in_row[feed_id])
        yield silent
        yield errors
        yield in_row
