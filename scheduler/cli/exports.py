"""What ``stories export`` and ``deliveries export`` share: the format, the window, the file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from scheduler.cli.common import done
from scheduler.core.errors import UserError
from scheduler.stories import bulk, drafts

ExportFormat = Annotated[str, typer.Option("--format", help="csv or jsonl.")]


SinceOpt = Annotated[str | None, typer.Option(help="From this ISO-8601 time (inclusive).")]


UntilOpt = Annotated[str | None, typer.Option(help="Before this ISO-8601 time.")]


OutOpt = Annotated[str | None, typer.Option("--out", help="Write to this file instead of standard output.")]


def write_rows(rows: list[dict[str, Any]], fields: list[str], fmt: str, target: str | None,
               as_json: bool = False) -> None:
    """The rows in ``fmt`` to ``target`` (or standard output). With ``--json`` and no ``--out`` they
    print as one JSON array, like every listing; with ``--out`` the summary does."""
    if fmt not in ("csv", "jsonl"):
        raise UserError(f"format: {fmt!r} is not csv or jsonl")
    if target is None:
        if as_json:
            print(json.dumps([{k: r.get(k) for k in fields} for r in rows], ensure_ascii=False))
        else:
            sys.stdout.write(bulk.render(rows, fields, fmt))
        return
    try:
        Path(target).write_text(bulk.render(rows, fields, fmt), encoding="utf-8")
    except OSError as exc:
        raise UserError(f"out: cannot write {target}: {exc.strerror}") from None
    done(as_json, f"{len(rows)} rows written to {target}", rows=len(rows), out=target, format=fmt)


def time_window(since: str | None, until: str | None) -> tuple[Any, Any]:
    return (drafts.parse_time(since, "since") if since else None,
            drafts.parse_time(until, "until") if until else None)
