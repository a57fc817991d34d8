"""A feed item becomes a story: routed to the feed's accounts that speak its language, its text built
per platform from the feed's templates (links tagged with UTM parameters), and queued as the feed's
mode says: ``approve`` waits for an approver, ``auto`` takes each account's next slot."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from adapters import adapter_class
from adapters.base import Media
from scheduler.core.errors import UserError
from scheduler.core.models import Account, Story
from scheduler.desk import stories as desk_stories
from scheduler.desk.access import Actor, Role, Scope
from scheduler.feeds import links, templates
from scheduler.feeds.models import Feed, FeedItem
from scheduler.feeds.text import hashtags
from scheduler.matrix import accounts
from scheduler.stories.drafts import MAX_STORY_CHARS, Draft


def _primary(tag: str) -> str:
    return tag.split("-", 1)[0].lower()


def route(s: Session, feed: Feed, language: str | None) -> list[Account]:
    """The feed's target accounts that may carry an item in ``language`` (the item's, else the
    feed's): accounts whose language has the same primary subtag (``zh-Hans`` takes ``zh-CN``), and
    accounts that declare none. Without a language, every target."""
    targets = [a for a in accounts.select_targets(s, feed.targets) if a.status != "removed"]
    if not language:
        return targets
    wanted = _primary(language)
    return [a for a in targets if not a.language or _primary(a.language) == wanted]


def source_for(feed: Feed, platform: str) -> str:
    return feed.templates.get(platform) or feed.templates.get("default") or templates.DEFAULT


def wants_image(feed: Feed) -> bool:
    return any(templates.wants_image(src) for src in feed.templates.values())


def texts(feed: Feed, item: FeedItem, platforms: list[str],
          image: dict[str, Any] | None) -> tuple[str, dict[str, str]]:
    """(text, variants): one text per platform, each fitted to that platform's limit as its adapter
    counts it; the story's own text is the first platform's."""
    variants = {platform: render(feed, item, platform, image) for platform in platforms}
    text = variants[platforms[0]] if platforms else item.title
    return text[:MAX_STORY_CHARS], variants


def render(feed: Feed, item: FeedItem, platform: str, image: dict[str, Any] | None,
           account: str = "") -> str:
    """The item's text for ``platform`` (and, with ``account``, its link tagged for that account),
    fitted to the platform's limit as its adapter counts it."""
    utm = links.utm_values(feed.utm, platform=platform, feed=str(feed.id), account=account)
    fields = templates.Fields(
        title=item.title, summary=item.summary, link=links.with_utm(item.link, utm) if item.link else "",
        categories=list(item.categories or []), hashtags=hashtags(list(item.categories or [])),
        language=item.language or feed.language,
        image={"url": image.get("url") or "", "alt": image.get("alt") or ""} if image else None,
        feed=str(feed.id))
    caps = adapter_class(platform).caps
    return templates.fit(source_for(feed, platform), fields, caps.text_limit, caps.count)


def feed_actor(feed: Feed) -> Actor:
    """Who queues a feed's stories: the feed itself, an editor of the accounts it was given."""
    return Actor(name=f"feed:{feed.id}", via="feed", roles=(Role("editor", Scope("all")),))


def make_story(s: Session, feed: Feed, item: FeedItem, now: datetime, *, approval: bool) -> Story:
    """Queue ``item`` as one story to its routed accounts: each account's next slot when any of them
    has a posting schedule (one without is then a problem, named), else now (a matrix that keeps no
    schedules); waiting for approval when ``approval``. StoryRejected or UserError
    when queueing refuses it (the caller keeps the item, rejected, for an editor)."""
    language = item.language or feed.language
    targets = route(s, feed, language)
    if not targets:
        raise UserError(f"to: none of the feed's accounts takes language {language!r}")
    platforms = list(dict.fromkeys(a.platform for a in targets))
    image = (item.data or {}).get("image")
    text, variants = texts(feed, item, platforms, image)
    draft = Draft(text=text, targets=[str(a.id) for a in targets], variants=variants,
                  author=f"feed {feed.id}", media=[Media(**image)] if image else [],
                  next_slot=any(a.schedule for a in targets))
    # Through the desk, as the feed: the stored policies hold an `auto` story too (a feed can add a wait,
    # never remove one), the audit log says which feed queued it, and approvers are told.
    story = desk_stories.queue(s, feed_actor(feed), draft, now, require_approval=approval)
    story.language = language
    if item.link:
        # Each account's link names it (utm_content): the delivery's own text, the platform's otherwise.
        for delivery in story.deliveries:
            own = render(feed, item, delivery.account.platform, image, delivery.account.handle)
            if own != variants.get(delivery.account.platform):
                delivery.text = own
    return story


def promote(s: Session, item: FeedItem, now: datetime) -> Story:
    """An editor's go for a draft (or a rejected item, once its problem is fixed): queued like an
    ``auto`` item."""
    if item.status not in ("draft", "rejected"):
        raise UserError(f"item: {item.id} is {item.status}; only a draft or a rejected item is promoted")
    feed = s.get(Feed, item.feed_id)
    assert feed is not None
    story = make_story(s, feed, item, now, approval=False)
    item.status, item.story_id, item.error = "queued", story.id, None
    s.flush()
    return story
