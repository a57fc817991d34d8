"""``crosspost feeds``: the websites' feeds that become stories, their health, and the drafts inbox."""

from __future__ import annotations

from typing import Annotated

import typer

from adapters import PLATFORMS
from scheduler.cli.common import JsonOpt, db, done, emit, group
from scheduler.core.errors import UserError, read_text_file, shown
from scheduler.core.models import utcnow
from scheduler.desk.access import Actor
from scheduler.feeds import desk, registry

feeds_app = group("Feeds (RSS, Atom, JSON Feed, news sitemaps) whose new articles become stories.")

# The table fits 100 columns; `show` and --json have every field.
FEED_COLUMNS = ["id", "url", "mode", "status", "last_new_at", "item_count", "error_count", "silent"]
ITEM_COLUMNS = ["id", "feed", "status", "title", "link", "story", "error"]
POLL_COLUMNS = ["feed_id", "outcome", "new", "stories", "drafts", "rejected", "skipped", "error"]

ToOpt = Annotated[list[str] | None, typer.Option("--to", help="Account (id or platform:handle) or tag; "
                                                 "repeatable.")]
LangOpt = Annotated[str | None, typer.Option("--lang", help="BCP-47 language of the feed (zh, en...): "
                                             "items go to accounts that post in it.")]
TemplateOpt = Annotated[list[str] | None, typer.Option(
    "--template", help="Jinja2 template FILE for every platform, or PLATFORM=FILE for one; repeatable. "
    "Fields: title, summary, link, categories, hashtags, image (mention it to attach the article's "
    "Open Graph image), language, feed.")]
ModeOpt = Annotated[str | None, typer.Option("--mode", help="draft (waits for an editor), approve (waits "
                                             "for approval) or auto (each account's next slot).")]
EveryOpt = Annotated[str | None, typer.Option("--every", help="Polling interval: 90s, 5m, 2h, 1d.")]
UtmOpt = Annotated[list[str] | None, typer.Option(
    "--utm", help="KEY=VALUE for utm_source, utm_medium, utm_campaign, utm_content, utm_term; {platform} "
    "and {feed} are filled in; an empty value drops the parameter. Repeatable.")]


def _templates(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    sources: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or name not in PLATFORMS:
            name, path = "default", value
        sources[name] = read_text_file(path, f"template: {name}", limit=10_000)
    return sources


def _utm(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    pairs = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep:
            raise UserError(f"utm: {shown(value, 40)} must be KEY=VALUE")
        pairs[key.strip()] = text.strip()
    return pairs


@feeds_app.command("add")
def feeds_add(url: str, to: ToOpt = None, lang: LangOpt = None, template: TemplateOpt = None,
              mode: ModeOpt = None, every: EveryOpt = None, utm: UtmOpt = None,
              as_json: JsonOpt = False) -> None:
    """Watch a feed; its new articles become stories for the accounts and tags given with --to."""
    with db() as s:
        now = utcnow()
        feed = desk.add(s, Actor.cli(), url, to or [], now, language=lang, sources=_templates(template),
                        mode=mode or "draft", every=every or "15m", utm=_utm(utm))
        shown_row = registry.describe(s, feed, now)
    done(as_json, f"feed {shown_row['id']} added: {shown_row['url']} ({shown_row['mode']}, every "
         f"{shown_row['every_seconds']} s)", **shown_row)


@feeds_app.command("list")
def feeds_list(removed: Annotated[bool, typer.Option("--removed", help="Removed feeds too.")] = False,
               as_json: JsonOpt = False) -> None:
    """Every feed with its health; "silent" marks one quiet for longer than its usual cadence."""
    with db() as s:
        rows = desk.listing(s, Actor.cli(), utcnow(), include_removed=removed)
    emit(rows, as_json, FEED_COLUMNS, title="feeds")


@feeds_app.command("show")
def feeds_show(feed: str, as_json: JsonOpt = False) -> None:
    """One feed: its settings, its health and its waiting items."""
    with db() as s:
        row = desk.show(s, Actor.cli(), feed, utcnow())
    if as_json:
        emit([row], True, [])
        return
    waiting = row.pop("waiting")
    emit([{"field": k, "value": v} for k, v in row.items()], False, ["field", "value"],
         title=f"feed {row['id']}")
    emit(waiting, False, ITEM_COLUMNS, title="waiting items")


@feeds_app.command("edit")
def feeds_edit(feed: str, to: ToOpt = None, lang: LangOpt = None, template: TemplateOpt = None,
               mode: ModeOpt = None, every: EveryOpt = None, utm: UtmOpt = None,
               as_json: JsonOpt = False) -> None:
    """Change a feed (only what is given; --lang "" clears the language)."""
    with db() as s:
        now = utcnow()
        found = desk.edit(s, Actor.cli(), feed, now, targets=to, language=lang,
                          sources=_templates(template), mode=mode, every=every, utm=_utm(utm))
        row = registry.describe(s, found, now)
    done(as_json, f"feed {row['id']} changed", **row)


def _status(feed: str, status: str, as_json: JsonOpt, verb: str) -> None:
    with db() as s:
        found = desk.set_status(s, Actor.cli(), feed, status, utcnow())
        feed_id, url = found.id, found.url
    done(as_json, f"feed {feed_id} {verb}: {url}", id=feed_id, url=url, status=status)


@feeds_app.command("pause")
def feeds_pause(feed: str, as_json: JsonOpt = False) -> None:
    """Stop polling a feed (its items and stories stay)."""
    _status(feed, "paused", as_json, "paused")


@feeds_app.command("resume")
def feeds_resume(feed: str, as_json: JsonOpt = False) -> None:
    """Poll a paused feed again, from the next tick."""
    _status(feed, "active", as_json, "resumed")


@feeds_app.command("remove")
def feeds_remove(feed: str, as_json: JsonOpt = False) -> None:
    """Stop watching a feed. Its items are kept, so an article it carried never comes back through
    another feed."""
    _status(feed, "removed", as_json, "removed")


@feeds_app.command("poll")
def feeds_poll(feed: Annotated[str | None, typer.Argument(help="One feed (id or URL), even if not due "
                                                          "or paused; without it, every due feed.")] = None,
               as_json: JsonOpt = False) -> None:
    """Poll now, in this process."""
    with db():
        pass  # the database check, before any fetch
    results = [desk.poll(Actor.cli(), feed, utcnow())] if feed is not None else \
        desk.poll_due(Actor.cli(), utcnow())
    emit([r.as_dict() for r in results], as_json, POLL_COLUMNS, title="polled")


@feeds_app.command("drafts")
def feeds_drafts(feed: Annotated[str | None, typer.Option(help="Only this feed (id or URL).")] = None,
                 status: Annotated[list[str] | None, typer.Option(
                     help="draft, rejected, queued or skipped; repeatable (default: draft and rejected).")]
                 = None,
                 as_json: JsonOpt = False) -> None:
    """The inbox: items waiting for an editor (drafts, and items queueing refused, with the reason)."""
    with db() as s:
        rows = desk.drafts(s, Actor.cli(), feed=feed, statuses=tuple(status or ("draft", "rejected"))).items
    emit(rows, as_json, ITEM_COLUMNS, title="feed items")


@feeds_app.command("promote")
def feeds_promote(item: str, as_json: JsonOpt = False) -> None:
    """Queue a draft (or a rejected item) as a story: each account's next slot (now when none of the
    accounts keeps a posting schedule)."""
    with db() as s:
        found, story = desk.promote(s, Actor.cli(), item, utcnow())
        item_id, story_id = found.id, story.id
    done(as_json, f"item {item_id} queued as story {story_id}", item=item_id, story=story_id)
