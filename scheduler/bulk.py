"""Bulk work: import many stories from CSV or JSON Lines, export stories and deliveries.

An import checks every row against every target platform first and reports every problem with its
row number; it stores nothing if any row is invalid (unless told to skip those rows), and stores the
valid rows in one transaction.
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

from scheduler import accounts, stories
from scheduler.errors import StoryRejected, UserError
from scheduler.models import Delivery, Story

CSV_LIST_SEPARATORS = (";", ",")


@dataclass
class ImportResult:
    imported: list[int] = field(default_factory=list)
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
        if column.startswith("variant."):
            variants[column.removeprefix("variant.")] = value
        elif column in ("to", "images"):
            sep = next((c for c in CSV_LIST_SEPARATORS if c in value), None)
            row[column] = [v.strip() for v in (value.split(sep) if sep else value.split()) if v.strip()]
        else:
            row[column] = value
    if variants:
        row["variants"] = variants
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


def import_file(s: Session, path: str, now: datetime, *, skip_invalid: bool = False,
                advance: Callable[[], None] = lambda: None) -> ImportResult:
    """Check every row, then store the valid ones together; raise StoryRejected listing every
    problem by row number when any row is invalid and ``skip_invalid`` is false."""
    result = ImportResult()
    drafts: list[tuple[int, stories.Draft, list[Any]]] = []
    for number, row in read_rows(path):
        advance()
        problems: list[str] = []
        if isinstance(row, str):
            result.skipped[number] = [row]
            continue
        unknown = set(row) - stories.FILE_FIELDS
        if unknown:
            result.skipped[number] = [f"unknown field(s) {', '.join(sorted(unknown))}"]
            continue
        try:
            draft = stories.draft_from_file(row)
            problems = stories.check_draft(draft, now)
            targets = accounts.select_targets(s, draft.targets) if not problems else []
            problems += stories.check_targets(draft, targets)
        except UserError as exc:
            problems = [str(exc)]
        if problems:
            result.skipped[number] = problems
        else:
            drafts.append((number, draft, targets))
    if result.skipped and not skip_invalid:
        raise StoryRejected([f"row {n}: {p}" for n, found in sorted(result.skipped.items()) for p in found])
    if not drafts and not result.skipped:
        raise UserError(f"file: {path} holds no stories")
    for _number, draft, _targets in drafts:
        result.imported.append(stories.queue(s, draft, now).id)
    return result


STORY_FIELDS = ["id", "status", "timing", "due_at", "created_at", "text", "link", "targets", "variants",
                "thread", "deliveries", "states"]
DELIVERY_FIELDS = ["id", "story", "account", "platform", "state", "due_at", "slot_at", "attempts",
                   "failures", "remote_id", "published_url", "published_at", "last_error"]


def story_rows(s: Session, *, status: str | None, since: datetime | None,
               until: datetime | None) -> list[dict[str, Any]]:
    query = select(Story).order_by(Story.id)
    if status:
        query = query.where(Story.status == status)
    if since:
        query = query.where(Story.created_at >= since)
    if until:
        query = query.where(Story.created_at < until)
    return [stories.describe(s, story) for story in s.scalars(query)]


def delivery_rows(s: Session, *, state: str | None, since: datetime | None,
                  until: datetime | None) -> list[dict[str, Any]]:
    query = select(Delivery).order_by(Delivery.id)
    if state:
        query = query.where(Delivery.state == state)
    if since:
        query = query.where(Delivery.due_at >= since)
    if until:
        query = query.where(Delivery.due_at < until)
    return [describe_delivery(d) for d in s.scalars(query)]


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def describe_delivery(d: Delivery) -> dict[str, Any]:
    """One delivery with the stable field names of ``--json`` and exports."""
    return {
        "id": d.id, "story": d.story_id, "account": d.account.label, "platform": d.account.platform,
        "state": d.state, "due_at": d.due_at.isoformat(), "slot_at": _iso(d.slot_at), "attempts": d.attempts,
        "failures": d.failures, "remote_id": d.remote_id, "published_url": d.published_url,
        "published_at": _iso(d.published_at), "last_error": d.last_error,
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
