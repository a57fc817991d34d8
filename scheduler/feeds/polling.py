"""Polling a feed: claim it, fetch it (conditional GET, through the SSRF-safe fetcher, within a size
and time limit) outside any transaction, then store each new item and make its story in a transaction
of its own. The items' unique keys decide what is new, so two pollers at once create each story once."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from config.settings import Settings, get_settings
from scheduler.core.db import session_scope
from scheduler.core.errors import UserError
from scheduler.core.models import utcnow
from scheduler.feeds import health, links, making, pages
from scheduler.feeds.models import Feed, FeedItem
from scheduler.feeds.parsing import Entry, Parsed, parse
from scheduler.stories import fetching, media

log = logging.getLogger(__name__)

FEED_MAX_BYTES = 10 * 1024 * 1024
FEED_TIMEOUT = 30.0
# A feed seen for the first time may list a hundred old articles: only the newest become stories;
# the rest are remembered as seen (status "skipped") so they never flood in later.
MAX_NEW_PER_POLL = 20
# While a poll runs, its feed is not due again for this long (a crashed poll is retried after it): the
# feed's fetch and, at worst, every new article's page fetched for its image, with room to store them.
CLAIM = timedelta(seconds=FEED_TIMEOUT + MAX_NEW_PER_POLL * pages.PAGE_TIMEOUT + 60)


@dataclass
class PollResult:
    feed_id: int
    outcome: str  # fetched | not_modified | error | skipped
    new: int = 0  # items stored this poll (skipped ones included)
    skipped: int = 0
    stories: int = 0
    drafts: int = 0
    rejected: int = 0
    error: str | None = None
    story_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def due_feeds(s: Session, now: datetime, limit: int = 100) -> list[int]:
    return list(s.scalars(select(Feed.id).where(Feed.status == "active", Feed.next_poll_at <= now)
                          .order_by(Feed.next_poll_at).limit(limit)))


def _claim(feed_id: int, now: datetime, force: bool) -> tuple[str, str | None, str | None] | None:
    """(url, etag, last_modified) of the feed if this poller takes it, else None. The conditional
    UPDATE on next_poll_at lets one of two pollers through. ``force`` (an operator's `feeds poll FEED`)
    takes it even from a running poll: the items' unique keys still store each article once."""
    with session_scope() as s:
        feed = s.get(Feed, feed_id)
        if feed is None or feed.status == "removed" or (not force and feed.status != "active"):
            return None
        if not force and feed.next_poll_at > now:
            return None
        claim = update(Feed).where(Feed.id == feed_id)
        if not force:
            claim = claim.where(Feed.next_poll_at == feed.next_poll_at)
        taken = s.execute(claim.values(next_poll_at=now + CLAIM).execution_options(synchronize_session=False))
        if not taken.rowcount:
            return None
        return feed.url, feed.etag, feed.last_modified


def _failed(feed_id: int, now: datetime, message: str) -> None:
    with session_scope() as s:
        feed = s.get(Feed, feed_id)
        if feed is None:
            return
        feed.errors_in_row += 1
        feed.error_count += 1
        feed.fetch_count += 1
        feed.last_error, feed.last_fetch_at = message, now
        feed.next_poll_at = health.next_poll(now, timedelta(seconds=feed.interval_seconds),
                                             feed.errors_in_row)


def _fetch(url: str, etag: str | None, modified: str | None,
           settings: Settings) -> tuple[fetching.Fetched, Parsed | None]:
    conditional = {}
    if etag:
        conditional["If-None-Match"] = etag
    if modified:
        conditional["If-Modified-Since"] = modified
    sink = io.BytesIO()
    got = fetching.fetch(url, sink, settings, what="feed", max_bytes=FEED_MAX_BYTES, timeout=FEED_TIMEOUT,
                         total=FEED_TIMEOUT,
                         headers=conditional or None)
    if got.status == 304:
        return got, None
    return got, parse(sink.getvalue(), got.url, got.headers.get("content-type"))


def _unseen(s: Session, feed_id: int, entries: list[Entry]) -> list[Entry]:
    """Entries whose GUID this feed never had and whose canonical link no feed ever had (read in
    batches; the unique keys still decide when the item is stored)."""
    guid_keys = {links.text_key(e.guid) for e in entries}
    link_keys = {k for e in entries if (k := links.link_key(e.link))}
    seen_guids: set[str] = set()
    seen_links: set[str] = set()
    for batch in _batches(sorted(guid_keys)):
        seen_guids.update(s.scalars(select(FeedItem.guid_key).where(FeedItem.feed_id == feed_id,
                                                                    FeedItem.guid_key.in_(batch))))
    for batch in _batches(sorted(link_keys)):
        seen_links.update(k for k in s.scalars(select(FeedItem.link_key).where(FeedItem.link_key.in_(batch)))
                          if k)
    return [e for e in entries if links.text_key(e.guid) not in seen_guids
            and links.link_key(e.link) not in seen_links]


def _batches(keys: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(keys), size):
        yield keys[start:start + size]


def _images(entries: list[Entry], settings: Settings) -> dict[str, dict[str, Any]]:
    """Each article's Open Graph image, fetched once into the media store (a page without one, or
    one that cannot be fetched, just leaves the story without an image)."""
    found: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not entry.link:
            continue
        try:
            ref = pages.fetch_image_ref(entry.link, settings)
            if ref is not None:
                found[entry.guid] = media.to_json(media.ingest(ref.url, alt=ref.alt, settings=settings))
        except UserError as exc:
            log.info("feed item %s: no image: %s", entry.link, exc)
    return found


def _store(s: Session, feed: Feed, entry: Entry, status: str, now: datetime,
           image: dict[str, Any] | None) -> FeedItem | None:
    """The item's row, or None when another feed, poll or worker already has this article."""
    item = FeedItem(feed_id=feed.id, guid=entry.guid, guid_key=links.text_key(entry.guid),
                    link_key=links.link_key(entry.link), link=entry.link[:2048] if entry.link else None,
                    title=entry.title, summary=entry.summary, categories=entry.categories,
                    language=entry.language, published_at=entry.published, status=status,
                    data={"image": image} if image else {}, created_at=now)
    try:
        with s.begin_nested():
            s.add(item)
            s.flush()
    except IntegrityError:
        return None
    except DataError:
        # One item the database cannot hold (a value too long for its column) must not fail the feed.
        log.warning("feed %s: item %r cannot be stored", feed.id, entry.guid[:200], exc_info=True)
        return None
    return item


def _take_in(feed_id: int, entries: list[Entry], images: dict[str, dict[str, Any]], now: datetime,
             result: PollResult) -> None:
    """Store each new item, and make its story, in a short transaction of its own, oldest first
    (feeds list the newest first). A poller thus holds one article's keys at a time: two pollers of
    feeds that carry the same articles never wait on each other in a cycle, and the embedded
    database's write lock is never held for a whole feed."""
    for n, entry in enumerate(reversed(entries)):
        with session_scope() as s:
            feed = s.get(Feed, feed_id)
            if feed is None:
                return
            skip = n < len(entries) - MAX_NEW_PER_POLL
            status = "skipped" if skip else ("draft" if feed.mode == "draft" else "queued")
            item = _store(s, feed, entry, status, now, images.get(entry.guid))
            if item is None:
                continue
            result.new += 1
            result.drafts += status == "draft"
            result.skipped += status == "skipped"
            if status != "queued":
                continue
            try:
                with s.begin_nested():
                    story = making.make_story(s, feed, item, now, approval=feed.mode == "approve")
                    item.story_id = story.id
                    s.flush()
                result.stories += 1
                result.story_ids.append(story.id)
            except UserError as exc:  # StoryRejected too: the item waits for an editor, with the reason
                item.status, item.error = "rejected", " ".join(str(exc).split())[:2000]
                result.rejected += 1


def poll_feed(feed_id: int, now: datetime | None = None, settings: Settings | None = None, *,
              force: bool = False) -> PollResult:
    """Poll one feed if it is due (``force``: now, paused or not)."""
    now = now or utcnow()
    settings = settings or get_settings()
    claimed = _claim(feed_id, now, force)
    if claimed is None:
        return PollResult(feed_id, "skipped")
    url, etag, modified = claimed
    try:
        got, parsed = _fetch(url, etag, modified, settings)
    except UserError as exc:
        message = " ".join(str(exc).split())
        _failed(feed_id, now, message)
        return PollResult(feed_id, "error", error=message)
    except Exception as exc:
        # A parser's bug on one odd document must not leave the feed claimed and silent: it backs off
        # and shows the error like any other.
        log.exception("feed %s: reading %s failed", feed_id, url)
        message = f"feed: cannot read {url}: {type(exc).__name__}"
        _failed(feed_id, now, message)
        return PollResult(feed_id, "error", error=message)
    result = PollResult(feed_id, "not_modified" if parsed is None else "fetched")
    with session_scope() as s:
        feed = s.get(Feed, feed_id)
        if feed is None:
            return PollResult(feed_id, "skipped")
        fresh = _unseen(s, feed_id, parsed.entries) if parsed else []
        wants = bool(fresh) and making.wants_image(feed)
    images = _images(fresh[:MAX_NEW_PER_POLL], settings) if wants else {}
    try:
        return _record(feed_id, now, got, parsed, fresh, images, result)
    except OperationalError as exc:
        # A lock timeout (or a deadlock) while storing: the items stored so far stay, with their
        # stories; the rest are tried again after the short backoff.
        message = f"database: {type(exc.orig).__name__ if exc.orig else 'error'} while storing items"
        _failed(feed_id, now, message)
        return PollResult(feed_id, "error", error=message)


def _record(feed_id: int, now: datetime, got: fetching.Fetched, parsed: Parsed | None, fresh: list[Entry],
            images: dict[str, dict[str, Any]], result: PollResult) -> PollResult:
    """Store the new items with their stories, then the feed's health."""
    with session_scope() as s:
        feed = s.get(Feed, feed_id)
        if feed is None:
            return PollResult(feed_id, "skipped")
        declared = feed.language
    if parsed is not None:
        if parsed.language and not declared:
            for entry in fresh:
                entry.language = entry.language or parsed.language
        _take_in(feed_id, fresh, images, now, result)
    with session_scope() as s:
        feed = s.get(Feed, feed_id)
        if feed is None:
            return PollResult(feed_id, "skipped")
        if parsed is not None:
            feed.etag = got.headers.get("etag") or None
            feed.last_modified = got.headers.get("last-modified") or None
        feed.item_count += result.new
        if result.new:
            feed.last_new_at = now
        if got.moved_to and got.moved_to != feed.url:
            log.info("feed %s moved permanently to %s", feed.id, got.moved_to)
            feed.url = got.moved_to[:1024]
        feed.errors_in_row, feed.last_error = 0, None
        feed.fetch_count += 1
        feed.last_fetch_at = now
        feed.next_poll_at = health.next_poll(now, timedelta(seconds=feed.interval_seconds), 0)
    return result


def poll_due(now: datetime | None = None, settings: Settings | None = None) -> list[PollResult]:
    """Poll every due feed, one after another (for `crosspost feeds poll` without a feed)."""
    now = now or utcnow()
    with session_scope() as s:
        ids = due_feeds(s, now)
    return [poll_feed(feed_id, now, settings) for feed_id in ids]


def tick(send: Callable[[int], None], now: datetime | None = None) -> list[int]:
    """Hand every due feed to a worker (``send``); the poll's own claim keeps a feed handed out twice
    from being fetched twice."""
    now = now or utcnow()
    with session_scope() as s:
        ids = due_feeds(s, now)
    for feed_id in ids:
        send(feed_id)
    return ids
