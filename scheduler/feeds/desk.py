"""The feed commands as the desk runs them, for the CLI and the API alike: each call names its actor,
is checked against the actor's roles within the feed's targets, and every change goes to the audit log.

Scopes follow the desk's rule (``scheduler.desk.access``): a viewer sees a feed that reaches any
account they may see; changing a feed (add, edit, pause, resume, poll, promote its drafts) needs an
editor of every target *as the feed names it*: a tag target needs the role for that tag (or everywhere),
since a feed aimed at a tag reaches accounts tagged later too; removing a feed needs an admin everywhere,
like removing an account."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.core.db import session_scope
from scheduler.core.errors import UserError, parse_id, shown
from scheduler.core.models import Account, Story
from scheduler.desk import audit
from scheduler.desk.access import Actor, Scope, level, require_everywhere
from scheduler.desk.errors import Forbidden, NotFound
from scheduler.desk.pages import Page, page_of
from scheduler.feeds import inbox, making, polling, registry
from scheduler.feeds.models import Feed, FeedItem
from scheduler.matrix import accounts as matrix


def _is_account_ref(target: str) -> bool:
    # The same split as ``matrix.accounts.select_targets``: an id or platform:handle, else a tag.
    return parse_id(target) is not None or ":" in target


def _accounts(s: Session, targets: list[str]) -> list[Account]:
    """The live accounts the targets reach now; a target that no longer resolves (its account removed,
    its tag left on no account) reaches none instead of failing the read."""
    found: dict[int, Account] = {}
    for target in targets:
        try:
            for account in matrix.select_targets(s, [target]):
                found.setdefault(account.id, account)
        except UserError:
            continue
    return [a for a in found.values() if a.status != "removed"]


def _holds_target(s: Session, actor: Actor, role: str, target: str) -> bool:
    if actor.everywhere(role):
        return True
    target = target.strip()
    if _is_account_ref(target):
        try:
            return actor.may(role, matrix.find(s, target))
        except UserError:
            return False  # a target gone: only someone holding the role everywhere may act on it
    tag = Scope("tag", target.lower().removeprefix("#"))
    return any(level(r.role) >= level(role) and r.scope == tag for r in actor.roles)


def require_targets(s: Session, actor: Actor, role: str, targets: list[str], what: str) -> None:
    outside = [t for t in targets if not _holds_target(s, actor, role, t)]
    if outside:
        raise Forbidden(f"{what}: {actor.name} is not {'an' if role[0] in 'aeiou' else 'a'} {role} for "
                        f"{', '.join(shown(t, 40) for t in outside[:5])}")


def may_see(s: Session, actor: Actor, feed: Feed) -> bool:
    if actor.everywhere("viewer"):
        return True
    return any(actor.may("viewer", a) for a in _accounts(s, feed.targets)) or all(
        _holds_target(s, actor, "viewer", t) for t in feed.targets)


def _check(s: Session, actor: Actor, feed: Feed, role: str) -> Feed:
    if role == "viewer":
        if not may_see(s, actor, feed):
            raise Forbidden(f"feed: {feed.id} reaches no account {actor.name} may see")
    else:
        require_targets(s, actor, role, feed.targets, f"feed {feed.id}")
    return feed


def find(s: Session, actor: Actor, ref: str | int, role: str = "viewer") -> Feed:
    """By id (the API's paths: a missing one is NotFound) or as the CLI names it (id or URL)."""
    if isinstance(ref, int):
        feed = s.get(Feed, ref)
        if feed is None or feed.status == "removed":
            raise NotFound(f"feed: no feed {ref}")
    else:
        feed = registry.find(s, ref)
    return _check(s, actor, feed, role)


def listing(s: Session, actor: Actor, now: datetime, *,
            include_removed: bool = False) -> list[dict[str, Any]]:
    """Every feed the actor may see, with its health ("silent": quiet for longer than its cadence)."""
    query = select(Feed).order_by(Feed.id)
    if not include_removed:
        query = query.where(Feed.status != "removed")
    return [registry.describe(s, f, now) for f in s.scalars(query) if may_see(s, actor, f)]


def show(s: Session, actor: Actor, ref: str | int, now: datetime) -> dict[str, Any]:
    """One feed, its health and its waiting items."""
    feed = find(s, actor, ref)
    waiting = [inbox.describe_item(i) for i in inbox.items(s, feed_id=feed.id)]
    return {**registry.describe(s, feed, now), "waiting": waiting}


def silent(s: Session, actor: Actor, now: datetime) -> list[dict[str, Any]]:
    """The feeds the actor may see that went silent: for an inbox of what waits for a person."""
    return [row for row in listing(s, actor, now) if row["silent"]]


def add(s: Session, actor: Actor, url: str, targets: list[str], now: datetime, *,
        language: str | None = None, sources: dict[str, str] | None = None, mode: str = "draft",
        every: str = "15m", utm: dict[str, str] | None = None) -> Feed:
    # Targets are checked to exist first, so a typo is named as such rather than as a refusal.
    require_targets(s, actor, "editor", registry.check_targets(s, targets), "feed add")
    feed = registry.add(s, url, targets, now, language=language, sources=sources, mode=mode, every=every,
                        utm=utm)
    audit.record(s, actor, "feed.add", "feed", feed.id, now, url=feed.url, targets=feed.targets,
                 mode=feed.mode, every_seconds=feed.interval_seconds)
    return feed


_EDITABLE = ("targets", "language", "templates", "mode", "every_seconds", "utm")


def edit(s: Session, actor: Actor, ref: str | int, now: datetime, *, targets: list[str] | None = None,
         language: str | None = None, sources: dict[str, str] | None = None, mode: str | None = None,
         every: str | None = None, utm: dict[str, str] | None = None) -> Feed:
    """Change what is given; new targets must be within the actor's scopes as well as the old ones."""
    feed = find(s, actor, ref, "editor")
    if targets is not None:
        require_targets(s, actor, "editor", registry.check_targets(s, targets), f"feed {feed.id}")
    before = registry.describe(s, feed, now)
    registry.edit(s, feed, now, targets=targets, language=language, sources=sources, mode=mode,
                  every=every, utm=utm)
    after = registry.describe(s, feed, now)
    audit.record(s, actor, "feed.edit", "feed", feed.id, now,
                 **{k: {"before": before[k], "after": after[k]} for k in _EDITABLE if before[k] != after[k]})
    return feed


def set_status(s: Session, actor: Actor, ref: str | int, status: str, now: datetime) -> Feed:
    """Pause or resume (an editor of the feed), remove (an admin everywhere: a removed feed's items stay
    as the dedupe memory, but nobody can bring the feed back)."""
    if status == "removed":
        require_everywhere(actor, "admin", "feed remove")
    feed = find(s, actor, ref, "editor")
    registry.set_status(s, feed, status, now)
    action = {"paused": "feed.pause", "active": "feed.resume", "removed": "feed.remove"}[status]
    audit.record(s, actor, action, "feed", feed.id, now)
    return feed


def poll(actor: Actor, ref: str | int, now: datetime) -> polling.PollResult:
    """Poll one feed now, paused or not. The fetch runs outside any transaction (as beat's polls), so
    the check and the audit entry take short transactions of their own."""
    with session_scope() as s:
        feed_id = find(s, actor, ref, "editor").id
    result = polling.poll_feed(feed_id, now, force=True)
    audit.note(actor, "feed.poll", "feed", feed_id, now, outcome=result.outcome, new=result.new,
               stories=result.story_ids, error=result.error)
    return result


def poll_due(actor: Actor, now: datetime) -> list[polling.PollResult]:
    """Poll every due feed now: every desk's feeds, so an editor everywhere."""
    require_everywhere(actor, "editor", "feeds poll")
    results = polling.poll_due(now)
    if results:
        audit.note(actor, "feed.poll", "feed", "due", now,
                   feeds={r.feed_id: r.outcome for r in results})
    return results


def drafts(s: Session, actor: Actor, *, feed: str | int | None = None,
           statuses: tuple[str, ...] = ("draft", "rejected"), cursor: str | None = None, limit: int = 200,
           order: str = "newest") -> Page:
    """The inbox of feed items (drafts, and items queueing refused with the reason), within the feeds
    the actor may see; a page by item id."""
    for status in statuses:
        if status not in inbox.ITEM_STATUSES:
            raise UserError(f"status: {shown(status)} is not one of {', '.join(inbox.ITEM_STATUSES)}")
    query = select(FeedItem).where(FeedItem.status.in_(statuses))
    if feed is not None:
        query = query.where(FeedItem.feed_id == find(s, actor, feed).id)
    elif not actor.everywhere("viewer"):
        seen = [f.id for f in s.scalars(select(Feed)) if may_see(s, actor, f)]
        query = query.where(FeedItem.feed_id.in_(seen))
    return page_of(s, query, FeedItem.id, cursor, limit, inbox.describe_item, order=order)


def find_item(s: Session, actor: Actor, ref: str | int, role: str = "viewer") -> FeedItem:
    if isinstance(ref, int):
        item = s.get(FeedItem, ref)
        if item is None:
            raise NotFound(f"item: no feed item {ref}")
    else:
        item = inbox.find_item(s, ref)
    feed = s.get(Feed, item.feed_id)
    assert feed is not None  # the foreign key
    _check(s, actor, feed, role)
    return item


def promote(s: Session, actor: Actor, ref: str | int, now: datetime) -> tuple[FeedItem, Story]:
    """Queue a draft (or a rejected item) as a story, by an editor of the item's feed."""
    item = find_item(s, actor, ref, "editor")
    story = making.promote(s, item, now)
    audit.record(s, actor, "feed_item.promote", "feed_item", item.id, now, feed=item.feed_id, story=story.id)
    return item, story
