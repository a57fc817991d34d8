"""``crosspost stories``: queue, import, export, list, show, edit, retime, cancel, approve, reject; through
the desk's service functions (as the API), as the operator on this host."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from scheduler.cli.common import JsonOpt, db, done, emit, group, out, require_database
from scheduler.cli.deliveries import DELIVERY_COLUMNS
from scheduler.cli.exports import ExportFormat, OutOpt, SinceOpt, UntilOpt, time_window, write_rows
from scheduler.core.errors import MAX_ID, UserError, shown
from scheduler.core.models import utcnow
from scheduler.desk import approval
from scheduler.desk import stories as desk
from scheduler.desk.access import Actor
from scheduler.desk.pages import MAX_LIMIT
from scheduler.stories import bulk, drafts, files, media

# When a story's deliveries are due (next-slot stories spread over the accounts' slots), not its timing.
STORY_COLUMNS = ["id", "first_due_at", "last_due_at", "deliveries", "text"]
stories_app = group("Stories and their queueing.")


# -- stories ------------------------------------------------------------------------------------
AllowDuplicateOpt = Annotated[bool, typer.Option(
    "--allow-duplicate", help="Queue a story identical to one already queued (same text, link, variants, "
    "media, targets and time).")]


@stories_app.command("queue")
def stories_queue(
    text: Annotated[str | None, typer.Option(help="The story text.")] = None,
    file: Annotated[str | None, typer.Option(help="A story.yaml with text, link, variants, to, at.")] = None,
    link: Annotated[str | None, typer.Option(help="A link to carry with the story.")] = None,
    variant: Annotated[list[str] | None, typer.Option(help="PLATFORM=TEXT override; repeatable.")] = None,
    to: Annotated[list[str] | None, typer.Option(help="Account (id or platform:handle) or tag; repeatable.")]
    = None,
    at: Annotated[str | None, typer.Option(help="ISO-8601 time with offset, e.g. 2026-12-01T09:00Z.")] = None,
    now: Annotated[bool, typer.Option("--now", help="Publish as soon as possible (the default).")] = False,
    next_slot: Annotated[bool, typer.Option("--next-slot", help="Each account's next free posting slot.")]
    = False,
    not_before: Annotated[str | None, typer.Option(help="With --next-slot: no slot before this time.")]
    = None,
    image: Annotated[list[str] | None, typer.Option(help="Image file or URL; repeatable.")] = None,
    alt: Annotated[list[str] | None, typer.Option(help="Alt text of the image in the same position.")] = None,
    video: Annotated[str | None, typer.Option(help="Video file or URL.")] = None,
    thread: Annotated[bool, typer.Option("--thread", help="Too long for one post: a reply chain where the "
                                         "platform has them.")] = False,
    allow_duplicate: AllowDuplicateOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Queue a story for accounts and tags. Every problem is listed and nothing is stored if any."""
    if len(alt or []) > len(image or []):
        raise UserError(f"alt: {len(alt or [])} alt texts for {len(image or [])} images")
    if sum([at is not None, now, next_slot]) > 1:
        raise UserError("at: give one of --at, --now and --next-slot")
    if (text is None) == (file is None):
        raise UserError("text: give exactly one of --text and --file")
    if at is not None and now:
        raise UserError("at: give --at or --now, not both")
    if file is not None:
        draft = files.draft_from_file(files.load_file(file))
        draft.targets += to or []
        draft.link = link or draft.link
    else:
        draft = drafts.Draft(text=text or "", targets=to or [], link=link)
    for item in variant or []:
        platform, body = drafts.parse_variant(item)
        draft.variants[platform] = body
    if at is not None:
        draft.at = drafts.parse_time(at)
    draft.next_slot = draft.next_slot or next_slot
    draft.thread = draft.thread or thread
    if not_before is not None:
        draft.not_before = drafts.parse_time(not_before, "not-before")
    alts = list(alt or [])
    draft.media += [media.ingest(src, alts[i] if i < len(alts) else "") for i, src in enumerate(image or [])]
    if video is not None:
        draft.media.append(media.ingest(video))
    if not draft.targets:
        raise UserError("to: give at least one account or tag with --to")
    with db() as s:
        story = desk.queue(s, Actor.cli(), draft, utcnow(), allow_duplicate=allow_duplicate)
        row = desk.describe(s, story)
    emit([row], as_json, STORY_COLUMNS)


@stories_app.command("import")
def stories_import(
    file: str,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Store the valid rows anyway.")]
    = False,
    allow_duplicate: AllowDuplicateOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Queue one story per row of a .csv or .jsonl file (text, link, to, at, next_slot, thread, images,
    video, variant.PLATFORM columns; a `stories export` file too). Every row is checked first; nothing
    is stored if any row is invalid, unless --skip-invalid."""
    from rich.progress import Progress as Bar

    require_database()
    total = sum(1 for _ in bulk.read_rows(file))
    now = utcnow()
    # Media are fetched before the database is opened: a transaction held across downloads would
    # block every other writer of the embedded database for as long as they take.
    with Bar(console=Console(stderr=True), transient=True, disable=as_json) as bar:
        task = bar.add_task("reading rows", total=total)
        prepared = bulk.prepare(file, now, advance=lambda: bar.advance(task))
    with db() as s:
        result = desk.import_prepared(s, Actor.cli(), prepared, now, skip_invalid=skip_invalid,
                                      allow_duplicate=allow_duplicate)
    rows = [{"row": n, "problems": p} for n, p in sorted(result.skipped.items())]
    if as_json:
        print(json.dumps([{"imported": result.imported, "skipped": rows}]))
        return
    for row in rows:
        out.print(f"row {row['row']} skipped: {'; '.join(row['problems'])}")
    out.print(f"{len(result.imported)} stories queued, {len(rows)} rows skipped")


STORY_STATUSES = ("draft", "awaiting_approval", "approved", "rejected", "cancelled")


@stories_app.command("export")
def stories_export(status: Annotated[str | None, typer.Option(
                       help="awaiting_approval, approved, rejected or cancelled.")] = None,
                   since: SinceOpt = None, until: UntilOpt = None, fmt: ExportFormat = "csv",
                   target: OutOpt = None, as_json: JsonOpt = False) -> None:
    """Stories (created in the window) as CSV or JSON Lines; `stories import` reads the file back."""
    if status is not None and status not in STORY_STATUSES:
        raise UserError(f"status: {shown(status)} is not one of {', '.join(STORY_STATUSES)}")
    start, end = time_window(since, until)
    with db() as s:
        rows = bulk.story_rows(s, status=status, since=start, until=end)
    write_rows(rows, bulk.STORY_FIELDS, fmt, target, as_json)


@stories_app.command("retime")
def stories_retime(
    story: str,
    at: Annotated[str | None, typer.Option(help="New ISO-8601 time with offset.")] = None,
    next_slot: Annotated[bool, typer.Option("--next-slot", help="Each account's next free slot.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Move the deliveries that have not started; a delivery already publishing is never moved."""
    when = drafts.parse_time(at) if at is not None else None
    with db() as s:
        moved = desk.retime(s, Actor.cli(), story, utcnow(), at=when, next_slot=next_slot)
    done(as_json, f"story {story}: {moved} deliveries moved", story=story, moved=moved)


@stories_app.command("list")
def stories_list(as_json: JsonOpt = False,
                 limit: Annotated[int, typer.Option(min=1, max=MAX_ID, help="Newest N stories.")] = 50) \
        -> None:
    """The newest stories with their deliveries' states."""
    with db() as s:
        rows = desk.listing(s, Actor.cli(), limit=min(limit, MAX_LIMIT)).items
    emit(rows, as_json, ["id", "status", *STORY_COLUMNS[1:3], "deliveries", "states", "text"])


@stories_app.command("show")
def stories_show(story: str, as_json: JsonOpt = False) -> None:
    """One story and each of its deliveries."""
    with db() as s:
        actor = Actor.cli()
        row = desk.show(s, actor, desk.find(s, actor, story))
    rows = row.pop("delivery_list")
    if as_json:
        print(json.dumps([{**row, "delivery_list": rows}], ensure_ascii=False, default=str))
        return
    emit([row], False, ["id", "status", *STORY_COLUMNS[1:3], "text"])
    emit(rows, False, DELIVERY_COLUMNS)


@stories_app.command("cancel")
def stories_cancel(story: str, as_json: JsonOpt = False) -> None:
    """Cancel every delivery of the story that has not started publishing."""
    with db() as s:
        cancelled = desk.cancel(s, Actor.cli(), story, utcnow())
    done(as_json, f"story {story}: {cancelled} deliveries cancelled", story=story, cancelled=cancelled)


@stories_app.command("edit")
def stories_edit(
    story: str,
    text: Annotated[str | None, typer.Option(help="The new text.")] = None,
    link: Annotated[str | None, typer.Option(help="The new link ('' removes it).")] = None,
    variant: Annotated[list[str] | None, typer.Option(help="PLATFORM=TEXT; replaces every variant.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a story none of whose deliveries has started; a story needing approval waits again."""
    variants = dict(drafts.parse_variant(v) for v in variant) if variant is not None else None
    if text is None and link is None and variants is None:
        raise UserError("edit: give --text, --link or --variant")
    with db() as s:
        found = desk.edit(s, Actor.cli(), story, utcnow(), text=text, link=link, variants=variants)
        row = desk.describe(s, found)
    emit([row], as_json, ["id", "status", *STORY_COLUMNS[1:3], "text"])


@stories_app.command("approve")
def stories_approve(
    story: str,
    now: Annotated[bool, typer.Option("--now", help="Publish now (needed once its time has passed).")]
    = False,
    at: Annotated[str | None, typer.Option(help="Publish at this new ISO-8601 time instead.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Release a story waiting for approval to its accounts (an approver who did not write it)."""
    when = drafts.parse_time(at) if at is not None else None
    with db() as s:
        actor = Actor.cli()
        moved = approval.approve(s, actor, desk.find(s, actor, story, "approver"), utcnow(), at=when,
                                 publish_now=now)
    done(as_json, f"story {story} approved: {moved} deliveries scheduled", story=story, status="approved",
         scheduled=moved)


@stories_app.command("reject")
def stories_reject(
    story: str,
    reason: Annotated[str, typer.Option(help="Why; kept in the audit log.")],
    as_json: JsonOpt = False,
) -> None:
    """Reject a story waiting for approval: its deliveries are cancelled."""
    with db() as s:
        actor = Actor.cli()
        cancelled = approval.reject(s, actor, desk.find(s, actor, story, "approver"), reason, utcnow())
    done(as_json, f"story {story} rejected: {cancelled} deliveries cancelled", story=story,
         status="rejected", cancelled=cancelled)
