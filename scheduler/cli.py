"""The ``crosspost`` command."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from typer.exceptions import TyperException

from config.settings import get_settings
from scheduler import accounts, deliveries, vault
from scheduler.cli_common import JsonOpt, db, emit, out, require_database
from scheduler.cli_followers import followers_app
from scheduler.cli_schedule import schedule_app
from scheduler.db import check_writable, migrate, prepare_data_dir, session_scope
from scheduler.deliveries import IllegalTransition
from scheduler.errors import MAX_ID, StoryRejected, UserError, parse_id, shown, shown_path
from scheduler.models import Account, Attempt, Delivery, Story, utcnow
from scheduler.stories import bulk, drafts, files, media, queueing
from scheduler.vault import VaultError, ensure_key

app = typer.Typer(help="Publish stories to a matrix of social-media accounts.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
accounts_app = typer.Typer(help="The account matrix.", no_args_is_help=True)
keys_app = typer.Typer(help="The credentials key.", no_args_is_help=True)
stories_app = typer.Typer(help="Stories and their queueing.", no_args_is_help=True)
deliveries_app = typer.Typer(help="Deliveries: one story bound for one account.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(stories_app, name="stories")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(followers_app, name="followers")
app.add_typer(schedule_app, name="schedule")


def _version(value: bool) -> None:
    if value:
        print(f"crosspost {package_version('crosspost')}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                   help="Print the version and exit.")] = False) -> None:
    """Publish stories to a matrix of social-media accounts."""

def setup_logging() -> None:
    logging.basicConfig(level=get_settings().log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def read_credentials(path: str) -> Any:
    if path == "-":
        text, source = sys.stdin.read(), "standard input"
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise UserError(f"credentials-file: cannot read {shown_path(path)}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UserError(f"credentials-file: {shown_path(path)} is not UTF-8 text") from None
        except ValueError:  # a NUL in the name
            raise UserError(f"credentials-file: {shown_path(path)} is not a file name") from None
        source = shown_path(path)
    return accounts.parse_credentials(text, source)


# -- set-up and processes -----------------------------------------------------------------------
@app.command()
def init() -> None:
    """Create the data directory (0700), migrate the database and write a credentials key (0600) if
    there is none; never a new key while the database holds credentials sealed under another one."""
    settings = get_settings()
    try:
        prepare_data_dir(settings)
    except OSError as exc:
        raise UserError(f"data directory: cannot prepare {settings.data_dir}: {exc.strerror}") from None
    migrate()
    with session_scope() as s:
        vault.check_before_new_key(s)
        wrote = ensure_key(settings)
        unreadable = [] if wrote else vault.unreadable_accounts(s)
    out.print(f"data directory {settings.data_dir}; database migrated"
              + ("; new credentials key written" if wrote else ""))
    if unreadable:
        print(f"warning: this key cannot decrypt the credentials of {len(unreadable)} account(s) "
              f"({', '.join(unreadable[:3])}); restore the key they were sealed with", file=sys.stderr)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every account's credentials under a new key, then replace the key file with it."""
    require_database()
    count = vault.rotate()
    out.print(f"credentials of {count} account(s) re-encrypted; new key in {get_settings().key_file}")


@app.command()
def tick() -> None:
    """Reap and claim once, handing due deliveries to the workers (for a system crontab)."""
    from scheduler.tasks import send_publish
    from scheduler.ticks import tick as run_tick

    require_database()
    result = run_tick(send_publish)
    r = result.reaped
    out.print(f"claimed {len(result.claimed)}, sent {result.sent}; reaped {r.requeued} lost messages, "
              f"{r.retried} expired leases retried, {r.unknown} unknown, {r.failed} failed")


def _celery(argv: list[str], *, beat_thread: bool = False) -> None:
    from scheduler.celery_app import app as celery
    from scheduler.celery_app import embed_beat

    if beat_thread:
        embed_beat(celery)
    code = celery.start(argv)
    if isinstance(code, int) and code:
        raise typer.Exit(code)


def _preflight() -> None:
    """What every long-running process checks before it starts: a database that exists, and a data
    directory, database and broker it can write. Files it creates are private to this user."""
    require_database()
    os.umask(0o077)
    check_writable(get_settings())


@contextmanager
def _beat_role() -> Iterator[None]:
    """Hold the beat role (one per database and per data directory) while the block runs; a second
    `run` or `beat` is refused, naming the holder. If the role is lost (this process was stopped
    longer than the lease and another beat took over), this process shuts down."""
    from scheduler.db import sqlite_path
    from scheduler.locks import Lease

    settings = get_settings()
    db_file = sqlite_path(settings.database_url)
    here = db_file is not None and db_file.parent.resolve() == settings.data_dir.resolve()
    lease = Lease("beat", settings.data_dir, on_lost=lambda: os.kill(os.getpid(), signal.SIGTERM),
                  database_here=here)
    try:
        yield
    finally:
        lease.release()


POOLS = ("threads", "prefork", "solo")


def _worker_argv(pool: str | None, concurrency: int | None) -> list[str]:
    if pool is not None and pool not in POOLS:
        raise UserError(f"pool: {shown(pool)} is not one of {', '.join(POOLS)}")
    _preflight()
    settings = get_settings()
    return ["worker", "--pool", pool or settings.worker_pool,
            "--concurrency", str(concurrency or settings.worker_concurrency),
            "--loglevel", settings.log_level, "--hostname", f"crosspost-{os.getpid()}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]


PoolOpt = Annotated[str | None, typer.Option(help="threads (default), prefork or solo.")]
ConcOpt = Annotated[int | None, typer.Option(min=1, help="Concurrent publishes in this process.")]


@app.command()
def worker(pool: PoolOpt = None, concurrency: ConcOpt = None) -> None:
    """Run a Celery worker that publishes deliveries."""
    _celery(_worker_argv(pool, concurrency))


@app.command()
def beat() -> None:
    """Run Celery beat: one tick every few seconds. Only one beat runs per database: a second one
    refuses to start and names the holder."""
    _preflight()
    with _beat_role():
        _celery(["beat", "--loglevel", get_settings().log_level])


@app.command()
def run(pool: PoolOpt = None, concurrency: ConcOpt = None) -> None:
    """A worker with its beat in one process (a thread, so it dies with the process however the
    process dies): the embedded, single-machine way to run."""
    argv = _worker_argv(pool, concurrency)
    with _beat_role():
        _celery(argv, beat_thread=True)


@app.command()
def demo(keep: Annotated[bool, typer.Option(help="Keep the demo data directory afterwards.")] = False) \
        -> None:
    """Start the stand-ins, create a demo matrix, queue stories, publish them all with a real worker."""
    from scheduler.demo import run_demo

    raise typer.Exit(run_demo(out, keep=keep))


# -- accounts -----------------------------------------------------------------------------------
@accounts_app.command("add")
def accounts_add(
    platform: str, handle: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A group such as en or culture; repeatable.")] = None,
    tz: Annotated[str, typer.Option(help="IANA time zone of the audience.")] = "UTC",
    base_url: Annotated[str | None, typer.Option(help="API base URL: required for self-hosted platforms "
                                                 "(Mastodon); a stand-in's address.")] = None,
    language: Annotated[str | None, typer.Option(help="BCP-47 tag of what it posts in (en, pt-BR).")]
    = None,
    credentials_file: Annotated[str | None, typer.Option(help="JSON file of credentials, or - for stdin.")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Add an account. Credentials come from a file or standard input, never the command line; they are
    checked against the platform's model, then the platform is asked whose they are."""
    if credentials_file is None:
        raise UserError("credentials-file: required (a JSON file, or - to read standard input)")
    creds = read_credentials(credentials_file)
    require_database()
    account, verified = accounts.connect(platform, handle, creds.reveal(), name=name, tags=tag or [], tz=tz,
                                         base_url=base_url, language=language)
    _unverified(account.label, verified)
    emit([accounts.describe(account)], as_json, ["id", "account", "name", "tags", "tz", "language", "status"])


def _unverified(label: str, verified: bool) -> None:
    if not verified:
        print(f"warning: {label}: this platform cannot be asked whose the credentials are yet; their "
              "shape was checked, their owner was not", file=sys.stderr)


@accounts_app.command("list")
def accounts_list(as_json: JsonOpt = False) -> None:
    """Every account with its status and token expiry."""
    with db() as s:
        rows = [accounts.describe(a) for a in s.scalars(
            select(Account).where(Account.status != "removed").order_by(Account.id))]
    emit(rows, as_json, ["id", "account", "name", "tags", "tz", "status", "token_expires_at"])


@accounts_app.command("show")
def accounts_show(account: str, as_json: JsonOpt = False) -> None:
    with db() as s:
        row = accounts.describe(accounts.find(s, account))
    emit([row], as_json, list(row))


def _set_status(account: str, status: str, as_json: bool) -> None:
    with db() as s:
        found = accounts.find(s, account)
        accounts.set_status(s, found, status)
        row = accounts.describe(found)
    emit([row], as_json, ["id", "account", "status"])


@accounts_app.command("pause")
def accounts_pause(account: str, as_json: JsonOpt = False) -> None:
    """Hold the account's deliveries until it is resumed."""
    _set_status(account, "paused", as_json)


@accounts_app.command("resume")
def accounts_resume(account: str, as_json: JsonOpt = False) -> None:
    _set_status(account, "active", as_json)


@accounts_app.command("remove")
def accounts_remove(account: str) -> None:
    """Remove an account; its pending deliveries are cancelled, its history is kept."""
    with db() as s:
        found = accounts.find(s, account)
        cancelled = accounts.remove(s, found, utcnow())
    out.print(f"removed {found.label}; {cancelled} pending deliveries cancelled")


@accounts_app.command("reauth")
def accounts_reauth(
    account: str, credentials_file: Annotated[str, typer.Option(help="JSON file, or -.")],
    base_url: Annotated[str | None, typer.Option(help="A new API base URL for the account.")] = None,
) -> None:
    """Store new credentials once the platform confirms they are this account's; the account's
    deliveries waiting in blocked_auth are due again."""
    creds = read_credentials(credentials_file)
    require_database()
    found, released, verified = accounts.reauthorise(account, creds.reveal(), utcnow(), base_url=base_url)
    _unverified(found.label, verified)
    out.print(f"{found.label} re-authorised; {released} blocked deliveries are due again")


@accounts_app.command("edit")
def accounts_edit(
    account: str,
    name: Annotated[str | None, typer.Option(help="Display name (empty to clear).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Replaces the tags; repeatable.")] = None,
    no_tags: Annotated[bool, typer.Option("--no-tags", help="Remove every tag.")] = False,
    tz: Annotated[str | None, typer.Option(help="IANA time zone of the audience.")] = None,
    language: Annotated[str | None, typer.Option(help="BCP-47 tag (empty to clear).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change an account's name, tags, time zone or language."""
    if no_tags and tag:
        raise UserError("tag: give --tag or --no-tags, not both")
    if name is None and tag is None and not no_tags and tz is None and language is None:
        raise UserError("edit: nothing to change; give --name, --tag, --no-tags, --tz or --language")
    with db() as s:
        found = accounts.edit(s, accounts.find(s, account), name=name, tags=[] if no_tags else tag, tz=tz,
                              language=language)
        row = accounts.describe(found)
    emit([row], as_json, ["id", "account", "name", "tags", "tz", "language", "status"])


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
        story = queueing.queue(s, draft, utcnow(), allow_duplicate=allow_duplicate)
        row = queueing.describe(s, story)
    emit([row], as_json, ["id", "due_at", "deliveries", "text"])


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
        result = bulk.store(s, prepared, now, skip_invalid=skip_invalid, allow_duplicate=allow_duplicate)
    rows = [{"row": n, "problems": p} for n, p in sorted(result.skipped.items())]
    if as_json:
        print(json.dumps([{"imported": result.imported, "skipped": rows}]))
        return
    for row in rows:
        out.print(f"row {row['row']} skipped: {'; '.join(row['problems'])}")
    out.print(f"{len(result.imported)} stories queued, {len(rows)} rows skipped")


ExportFormat = Annotated[str, typer.Option("--format", help="csv or jsonl.")]
SinceOpt = Annotated[str | None, typer.Option(help="From this ISO-8601 time (inclusive).")]
UntilOpt = Annotated[str | None, typer.Option(help="Before this ISO-8601 time.")]
OutOpt = Annotated[str | None, typer.Option("--out", help="Write to this file instead of standard output.")]


def _export(rows: list[dict[str, Any]], fields: list[str], fmt: str, target: str | None) -> None:
    if fmt not in ("csv", "jsonl"):
        raise UserError(f"format: {fmt!r} is not csv or jsonl")
    text = bulk.render(rows, fields, fmt)
    if target is None:
        sys.stdout.write(text)
        return
    try:
        Path(target).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"out: cannot write {target}: {exc.strerror}") from None
    out.print(f"{len(rows)} rows written to {target}")


def _window(since: str | None, until: str | None) -> tuple[Any, Any]:
    return (drafts.parse_time(since, "since") if since else None,
            drafts.parse_time(until, "until") if until else None)


STORY_STATUSES = ("draft", "awaiting_approval", "approved", "cancelled")


@stories_app.command("export")
def stories_export(status: Annotated[str | None, typer.Option(help="approved or cancelled.")] = None,
                   since: SinceOpt = None, until: UntilOpt = None, fmt: ExportFormat = "csv",
                   target: OutOpt = None) -> None:
    """Stories (created in the window) as CSV or JSON Lines; `stories import` reads the file back."""
    if status is not None and status not in STORY_STATUSES:
        raise UserError(f"status: {shown(status)} is not one of {', '.join(STORY_STATUSES)}")
    start, end = _window(since, until)
    with db() as s:
        rows = bulk.story_rows(s, status=status, since=start, until=end)
    _export(rows, bulk.STORY_FIELDS, fmt, target)


@deliveries_app.command("export")
def deliveries_export(state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
                      since: SinceOpt = None, until: UntilOpt = None, fmt: ExportFormat = "csv",
                      target: OutOpt = None) -> None:
    """Deliveries (due in the window) as CSV or JSON Lines."""
    if state is not None and state not in deliveries.STATES:
        raise UserError(f"state: {state!r} is not one of {', '.join(deliveries.STATES)}")
    start, end = _window(since, until)
    with db() as s:
        rows = bulk.delivery_rows(s, state=state, since=start, until=end)
    _export(rows, bulk.DELIVERY_FIELDS, fmt, target)


@stories_app.command("retime")
def stories_retime(
    story: str,
    at: Annotated[str | None, typer.Option(help="New ISO-8601 time with offset.")] = None,
    next_slot: Annotated[bool, typer.Option("--next-slot", help="Each account's next free slot.")] = False,
) -> None:
    """Move the deliveries that have not started; a delivery already publishing is never moved."""
    when = drafts.parse_time(at) if at is not None else None
    with db() as s:
        moved = queueing.retime(s, queueing.find(s, story), utcnow(), at=when, next_slot=next_slot)
    out.print(f"story {story}: {moved} deliveries moved")


@stories_app.command("list")
def stories_list(as_json: JsonOpt = False,
                 limit: Annotated[int, typer.Option(min=1, max=MAX_ID, help="Newest N stories.")] = 50) \
        -> None:
    with db() as s:
        newest = s.scalars(select(Story).order_by(Story.id.desc()).limit(limit))
        rows = [queueing.describe(s, st) for st in newest]
    emit(rows, as_json, ["id", "status", "due_at", "deliveries", "states", "text"])


@stories_app.command("show")
def stories_show(story: str, as_json: JsonOpt = False) -> None:
    with db() as s:
        found = queueing.find(s, story)
        row = queueing.describe(s, found)
        rows = bulk.describe_deliveries(s, list(found.deliveries))
    if as_json:
        print(json.dumps([{**row, "delivery_list": rows}], ensure_ascii=False, default=str))
        return
    emit([row], False, ["id", "status", "due_at", "text"])
    emit(rows, False, DELIVERY_COLUMNS)


@stories_app.command("cancel")
def stories_cancel(story: str) -> None:
    """Cancel every delivery of the story that has not started publishing."""
    with db() as s:
        cancelled = queueing.cancel(s, queueing.find(s, story), utcnow())
    out.print(f"story {story}: {cancelled} deliveries cancelled")


# -- deliveries ---------------------------------------------------------------------------------
DELIVERY_COLUMNS = ["id", "story", "account", "state", "due_at", "attempts", "published_url", "last_error"]


@deliveries_app.command("list")
def deliveries_list(
    state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    story: Annotated[int | None, typer.Option(min=1, max=MAX_ID, help="Only this story's deliveries.")]
    = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_ID)] = 200,
    as_json: JsonOpt = False,
) -> None:
    if state is not None and state not in deliveries.STATES:
        raise UserError(f"state: {state!r} is not one of {', '.join(deliveries.STATES)}")
    query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if state:
        query = query.where(Delivery.state == state)
    if story is not None:
        query = query.where(Delivery.story_id == story)
    with db() as s:
        rows = bulk.describe_deliveries(s, list(s.scalars(query)))
    emit([_flag_duplicates(r) for r in rows] if not as_json else rows, as_json, DELIVERY_COLUMNS)


def _flag_duplicates(row: dict[str, Any]) -> dict[str, Any]:
    # In a table the possible duplicates' links go where the operator looks: next to the error.
    links = [d["url"] or d["remote_id"] for d in row["possible_duplicates"]]
    if links:
        note = "possible duplicate: " + ", ".join(links)
        row = {**row, "last_error": f"{row['last_error']}; {note}" if row["last_error"] else note}
    return row


ATTEMPT_COLUMNS = ["number", "started_at", "ended_at", "outcome", "http_status", "url", "error"]


@deliveries_app.command("show")
def deliveries_show(delivery: str, as_json: JsonOpt = False) -> None:
    """One delivery with every attempt: outcome, HTTP status, error, and any post it created."""
    delivery_id = _delivery_id(delivery)
    with db() as s:
        found = s.get(Delivery, delivery_id)
        if found is None:
            raise UserError(f"delivery: no delivery {delivery_id}")
        row = bulk.describe_deliveries(s, [found])[0]
        tries = [{"number": a.number, "started_at": a.started_at.isoformat(),
                  "ended_at": a.ended_at.isoformat() if a.ended_at else None, "outcome": a.outcome,
                  "http_status": a.http_status, "remote_id": a.remote_id, "url": a.url, "error": a.error}
                 for a in s.scalars(select(Attempt).where(Attempt.delivery_id == delivery_id)
                                    .order_by(Attempt.number))]
    if as_json:
        print(json.dumps([{**row, "attempt_list": tries}], ensure_ascii=False))
        return
    emit([_flag_duplicates(row)], False, DELIVERY_COLUMNS)
    emit(tries, False, ATTEMPT_COLUMNS, title="attempts")


def _delivery_id(value: str) -> int:
    number = parse_id(value)
    if number is None:
        raise UserError(f"delivery: {shown(value)} is not a delivery id")
    if number == 0:
        raise UserError(f"delivery: no delivery {shown(value.strip())}")
    return number


@deliveries_app.command("retry")
def deliveries_retry(delivery: str) -> None:
    """Publish a failed delivery again, with a fresh attempt budget."""
    with db() as s:
        deliveries.retry_failed(s, _delivery_id(delivery), utcnow())
    out.print(f"delivery {delivery} is due again")


@deliveries_app.command("resolve")
def deliveries_resolve(
    delivery: str,
    published: Annotated[str | None, typer.Option(help="It did go out, at this URL.")] = None,
    republish: Annotated[bool, typer.Option("--republish", help="It did not go out; publish again.")] = False,
) -> None:
    """Decide an `unknown` delivery after checking the platform."""
    if (published is None) == (not republish):
        raise UserError("resolve: give exactly one of --published URL and --republish")
    with db() as s:
        if published is not None:
            deliveries.resolve_published(s, _delivery_id(delivery), utcnow(),
                                         accounts.check_url(published, "published"))
        else:
            deliveries.resolve_republish(s, _delivery_id(delivery), utcnow())
    out.print(f"delivery {delivery} resolved")


def _rejected(exc: StoryRejected) -> str:
    if len(exc.problems) == 1:
        return f"story not queued: {exc.problems[0]}"
    return "\n".join([f"story not queued, {len(exc.problems)} problems:", *(f"  {p}" for p in exc.problems)])


def _database_problem(exc: DBAPIError) -> str:
    # The driver's own words, first line only: SQLAlchemy's text would add the statement and its
    # parameters (sealed credentials among them).
    text = str(exc.orig).strip() if exc.orig is not None else type(exc).__name__
    first = text.splitlines()[0] if text else type(exc).__name__
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return "database: not initialised; run `crosspost init`"
    if "no such column" in text or ("column" in text and "does not exist" in text):
        return "database: the schema is older than this crosspost; run `crosspost init` to migrate it"
    return f"database: {first}"


def _settings_problem(exc: ValidationError) -> str:
    # The message only: pydantic's full text repeats the value, which may be a secret.
    first = exc.errors()[0]
    name = "CROSSPOST_" + "__".join(str(part) for part in first["loc"]).upper()
    return f"settings: {name}: {first['msg']}"


def _fail(message: str, code: int) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Run the command; every expected failure ends in ``error: ...`` on standard error (one line
    per problem, never a traceback) and a non-zero exit code."""
    try:
        setup_logging()
        # Not standalone: Click's usage errors come here, to be printed like every other error.
        code = app(args=argv, standalone_mode=False)
    except StoryRejected as exc:
        _fail(_rejected(exc), 2)
    except (UserError, IllegalTransition, VaultError) as exc:
        _fail(" ".join(str(exc).splitlines()), 2)
    except TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help is already printed (Typer checks by name)
            sys.exit(2)
        _fail(" ".join(exc.format_message().split()), getattr(exc, "exit_code", 2))
    except typer.Abort:
        _fail("aborted", 1)
    except ValidationError as exc:
        _fail(_settings_problem(exc), 2)
    except (ArgumentError, NoSuchModuleError):
        # Never echo the URL: it may carry a password.
        _fail("settings: CROSSPOST_DATABASE_URL is not a database URL SQLAlchemy can use", 2)
    except DBAPIError as exc:
        _fail(_database_problem(exc), 1)
    except OSError as exc:
        # The last net for the file system (a read-only or full disk the checks did not foresee): the
        # operating system's words and the file, on one line.
        where = f"{shown_path(str(exc.filename))}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or type(exc).__name__}", 1)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
