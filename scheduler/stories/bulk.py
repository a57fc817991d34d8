"""Bulk work: import many stories from CSV or JSON Lines, export stories and deliveries.

An import checks every row against every target platform first and reports every problem with its
row number; it stores nothing if any row is invalid (unless told to skip those rows), and stores the
valid rows in one transaction. It runs in two steps so that no transaction is open while media are
fetched (on SQLite an open write transaction blocks every other writer): :func:`prepare` reads the
rows and brings their media into the store without touching the database, then :func:`store` checks
the targets and queues the stories.

What ``stories export`` writes can be imported again: the export's ``targets``, ``due_at`` and
``timing``, ``images`` and ``video`` columns are read back, and its report-only columns are ignored.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.core import deliveries
from scheduler.core.errors import StoryRejected, UserError, shown
from scheduler.core.models import Delivery, Story
from scheduler.matrix import accounts
from scheduler.stories import checks, drafts, files, queueing

CSV_LIST_SEPARATORS = (";", ",")
# Columns of ``stories export`` that describe what happened, not what to queue.
EXPORT_ONLY = ("id", "status", "created_at", "deliveries", "states", "due_at", "timing")
# Columns whose CSV cells an export writes as JSON.
JSON_COLUMNS = ("to", "targets", "images", "variants")


@dataclass
class ImportResult:
    imported: list[int] = field(default_factory=list)
    skipped: dict[int, list[str]] = field(default_factory=dict)


@dataclass
class Prepared:
    """The rows of an import file read and their media stored, before any database work."""

    path: str
    drafts: list[tuple[int, drafts.Draft]] = field(default_factory=list)
    skipped: dict[int, list[str]] = field(default_factory=dict)


def _csv_row(raw: dict[str, str | None]) -> dict[str, Any]:
    """A CSV row in the shape of a story file: `to` and `images` split on ; or , and `variant.X`
    columns gathered into `variants`."""
    row: dict[str, Any] = {}
    variants: dict[str, str] = {}
    for column, value in raw.items():
        if column is None or value is None or value == "":
            continue
        column = column.strip()
        if column in JSON_COLUMNS and value.lstrip().startswith(("[", "{")):
            try:
                row[column] = json.loads(value)
                continue
            except ValueError:
                pass  # not JSON after all: read it as a plain cell below
        if column.startswith("variant."):
            variants[column.removeprefix("variant.")] = value
        elif column in ("to", "targets", "images"):
            sep = next((c for c in CSV_LIST_SEPARATORS if c in value), None)
            row[column] = [v.strip() for v in (value.split(sep) if sep else value.split()) if v.strip()]
        else:
            row[column] = value
    if variants:
        # variant.X columns, and an export's variants cell (JSON) if there is one too.
        given = row.get("variants")
        row["variants"] = {**given, **variants} if isinstance(given, dict) else variants
    return row


def _from_export(row: dict[str, Any]) -> dict[str, Any] | str:
    """A row in the shape of a story file, reading the columns ``stories export`` writes; or the
    reason it cannot be queued again."""
    row = {k: v for k, v in row.items() if v is not None}
    status = row.get("status")
    if status is not None and status != "approved":
        return f"status: the story is {shown(str(status), 30)}; only approved stories are imported"
    if "targets" in row:
        targets = row.pop("targets")
        row.setdefault("to", targets)
    timing, due = row.get("timing"), row.get("due_at")
    if timing == "at" and due is not None:
        row.setdefault("at", due)
    elif timing == "next_slot":
        row.setdefault("next_slot", True)
        # A next-slot story's due_at is its not-before time, or when it was queued.
        if due is not None and str(due) > str(row.get("created_at") or ""):
            row.setdefault("not_before", due)
    for column in EXPORT_ONLY:
        row.pop(column, None)
    return row


def read_rows(path: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(row number, row or the reason it cannot be read) for each story in a .csv or .jsonl file.
    CSV rows are numbered as a spreadsheet shows them (the header is row 1)."""
    try:
        handle = Path(path).open(encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UserError(f"file: cannot read {path}: {exc.strerror}") from None
    with handle:
        try:
            if path.endswith(".csv"):
                reader = csv.DictReader(handle)
                if not reader.fieldnames or "text" not in reader.fieldnames:
                    raise UserError(f"file: {path} needs a header row with at least text and to")
                for raw in reader:
                    yield reader.line_num, _csv_row(raw)
            elif path.endswith((".jsonl", ".ndjson")):
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    try:
                        data = json.loads(line)
                    except ValueError as exc:
                        yield number, f"not JSON ({exc.msg} at column {exc.colno})"
                        continue
                    yield number, data if isinstance(data, dict) else "must be a JSON object"
            else:
                raise UserError(f"file: {path} must end in .csv or .jsonl")
        except UnicodeDecodeError:
            raise UserError(f"file: {path} is not UTF-8 text") from None
        except csv.Error as exc:
            raise UserError(f"file: {path} is not valid CSV: {exc}") from None


def prepare(path: str, now: datetime, *, advance: Callable[[], None] = lambda: None) -> Prepared:
    """Read every row of ``path``, fetch and store its media, check what needs no database. Opens no
    transaction: media fetches may take minutes."""
    prepared = Prepared(path)
    for number, raw in read_rows(path):
        advance()
        row = _from_export(raw) if isinstance(raw, dict) else raw
        if isinstance(row, str):
            prepared.skipped[number] = [row]
            continue
        unknown = set(row) - files.FILE_FIELDS
        if unknown:
            prepared.skipped[number] = [f"unknown field(s) {', '.join(sorted(map(str, unknown)))}"]
            continue
        try:
            draft = files.draft_from_file(row)
            problems = checks.check_draft(draft, now)
        except UserError as exc:
            problems = [str(exc)]
        if problems:
            prepared.skipped[number] = problems
        else:
            prepared.drafts.append((number, draft))
    return prepared


def store(s: Session, prepared: Prepared, now: datetime, *, skip_invalid: bool = False,
          allow_duplicate: bool = False,
          queue: Callable[[drafts.Draft], Story] | None = None) -> ImportResult:
    """Check every prepared row against its targets and against the stories already queued, then
    store the valid ones together; raise StoryRejected listing every problem by row number when any
    row is invalid and ``skip_invalid`` is false. ``queue`` stores one draft (default: queueing.queue;
    the desk passes its own, which applies roles, the approval policy and the audit log)."""
    result = ImportResult(skipped=dict(prepared.skipped))
    if not allow_duplicate:
        checks.lock_twins(s)  # all at once, in order, before any row takes its own
    valid: list[drafts.Draft] = []
    seen: dict[str, int] = {}
    for number, draft in prepared.drafts:
        try:
            targets = accounts.select_targets(s, draft.targets)
            problems = checks.check_targets(draft, targets)
        except UserError as exc:
            problems = [str(exc)]
        if not problems and not allow_duplicate:
            digest = checks.fingerprint(draft, targets)
            if digest in seen:
                problems = [f"story: identical to row {seen[digest]}; use --allow-duplicate to queue both"]
            elif problem := checks.duplicate_problem(s, digest):
                problems = [problem]
            seen.setdefault(digest, number)
        if problems:
            result.skipped[number] = problems
        else:
            valid.append(draft)
    if result.skipped and not skip_invalid:
        raise StoryRejected([f"row {n}: {p}" for n, found in sorted(result.skipped.items()) for p in found])
    if not valid and not result.skipped:
        raise UserError(f"file: {prepared.path} holds no stories")
    for draft in valid:
        story = queue(draft) if queue else queueing.queue(s, draft, now, allow_duplicate=allow_duplicate)
        result.imported.append(story.id)
    return result


def import_file(s: Session, path: str, now: datetime, *, skip_invalid: bool = False,
                allow_duplicate: bool = False, advance: Callable[[], None] = lambda: None) -> ImportResult:
    """:func:`prepare` then :func:`store`. ``s`` must not have begun its transaction yet (a session
    begins at its first statement), so the media fetches still happen outside it."""
    prepared = prepare(path, now, advance=advance)
    return store(s, prepared, now, skip_invalid=skip_invalid, allow_duplicate=allow_duplicate)


STORY_FIELDS = ["id", "status", "timing", "due_at", "created_at", "text", "link", "targets", "variants",
                "thread", "author", "images", "video", "deliveries", "states"]
DELIVERY_FIELDS = ["id", "story", "account", "platform", "state", "due_at", "slot_at", "attempts",
                   "failures", "remote_id", "published_url", "published_at", "last_error",
                   "possible_duplicates"]


def story_rows(s: Session, *, status: str | None, since: datetime | None,
               until: datetime | None) -> list[dict[str, Any]]:
    query = select(Story).order_by(Story.id)
    if status:
        query = query.where(Story.status == status)
    if since:
        query = query.where(Story.created_at >= since)
    if until:
        query = query.where(Story.created_at < until)
    return [export_story(s, story) for story in s.scalars(query)]


def export_story(s: Session, story: Story) -> dict[str, Any]:
    """A story with what an import needs to queue it again: its author and media (as the story
    file's ``images`` and ``video``, pointing into the media store)."""
    items = story.media or []
    videos = [m["path"] for m in items if m.get("kind") == "video"]
    images = [{"src": m["path"], "alt": m.get("alt") or ""} for m in items if m.get("kind") == "image"]
    return {**queueing.describe(s, story), "author": story.author, "images": images,
            "video": videos[0] if videos else None}


def delivery_rows(s: Session, *, state: str | None, since: datetime | None,
                  until: datetime | None) -> list[dict[str, Any]]:
    query = select(Delivery).order_by(Delivery.id)
    if state:
        query = query.where(Delivery.state == state)
    if since:
        query = query.where(Delivery.due_at >= since)
    if until:
        query = query.where(Delivery.due_at < until)
    return describe_deliveries(s, list(s.scalars(query)))


def describe_deliveries(s: Session, found: list[Delivery]) -> list[dict[str, Any]]:
    """Deliveries as ``describe_delivery`` shows them, with their possible duplicates in one query."""
    duplicates = deliveries.possible_duplicates(s, [d.id for d in found])
    return [describe_delivery(d, duplicates.get(d.id, [])) for d in found]


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def describe_delivery(d: Delivery, duplicates: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One delivery with the stable field names of ``--json`` and exports. ``possible_duplicates``:
    posts an attempt created besides the delivery's own (a success that came after a cancel or after
    a newer attempt began), each with its attempt number, remote id, link and time."""
    return {
        "id": d.id, "story": d.story_id, "account": d.account.label, "platform": d.account.platform,
        "state": d.state, "due_at": d.due_at.isoformat(), "slot_at": _iso(d.slot_at), "attempts": d.attempts,
        "failures": d.failures, "remote_id": d.remote_id, "published_url": d.published_url,
        "published_at": _iso(d.published_at), "last_error": d.last_error, "text": d.text,
        "possible_duplicates": [{**dup, "at": _iso(dup["at"])} for dup in duplicates or []],
    }


def render(rows: list[dict[str, Any]], fields: list[str], fmt: str) -> str:
    """Rows as CSV (lists and mappings as JSON in their cell) or JSON Lines."""
    if fmt == "jsonl":
        return "".join(json.dumps({k: r.get(k) for k in fields}, ensure_ascii=False) + "\n" for r in rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v
                         for k, v in r.items()})
    return buffer.getvalue()
