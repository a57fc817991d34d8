"""What every part of the ``crosspost`` command shares: output as a table or JSON, a database session."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from config.settings import get_settings
from scheduler.core.db import session_scope
from scheduler.core.errors import MAX_ID, UserError

out = Console(soft_wrap=True)


def _words_for(param: Any, ctx: Any) -> str | None:
    """What an option takes, in words (TEXT, N, FILE, a|b), not Python types (``<list[str]>``);
    nothing for a flag."""
    if param.metavar is not None:
        return str(param.metavar)
    desc = param.type_descriptor
    annotation = desc.annotation
    if annotation is bool or getattr(param, "is_flag", False):
        return None
    if desc.is_choice:
        return "|".join(str(c) for c in desc.choices or ())
    element = annotation.__args__[0] if desc.is_list else annotation
    if desc.is_path or element is Path:
        return "FILE"
    if element is int:
        return "N"
    if element is float:
        return "NUMBER"
    return "TEXT"


def _range_in_words(param: Any) -> str | None:
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is None and high is None:
        return None
    if high is None or high >= MAX_ID:  # "no limit" in practice: the id column's own
        return f"at least {low}"
    return f"{low} to {high}" if low is not None else f"at most {high}"


# Typer 0.2x prints each option's Python type and range as code in --help; operators read words.
typer.core.TyperOption.display_type_rich = _words_for  # type: ignore[method-assign]
typer.core.TyperOption._get_number_range_help_str = _range_in_words  # type: ignore[method-assign]
typer.core.TyperArgument.display_type_rich = _words_for  # type: ignore[method-assign]
def group(help: str) -> typer.Typer:
    """A command group: help in Markdown (a docstring's line breaks are not kept), help when bare."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode="markdown")


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON with stable field names.")]


_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)$")
# Free text is cut in tables (the whole of it is in --json); links and errors are kept whole.
TEXT_COLUMNS = {"text": 48, "name": 32, "title": 40}


def cell(column: str, value: Any) -> str:
    """One value as an operator reads it: lists as ``en, news``, counts as ``published 2``, times in
    this machine's zone to the minute, long texts cut with an ellipsis."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return local_minute(value)
    if isinstance(value, list):
        return ", ".join(cell(column, v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {cell(column, v)}" for k, v in value.items())
    text = str(value)
    if isinstance(value, str) and _ISO_TIME.match(value):
        return local_minute(datetime.fromisoformat(value.replace("Z", "+00:00")))
    limit = TEXT_COLUMNS.get(column)
    if limit and len(text) > limit:
        return " ".join(text[: limit - 1].split()) + "…"
    return text


def local_minute(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M %Z")


def emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str], title: str | None = None) -> None:
    """Rows as one JSON array (``--json``) or as a table."""
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, default=str))
        return
    table(rows, columns, title)


def done(as_json: bool, message: str, **result: Any) -> None:
    """What a change did: a line for a person, or (``--json``) one array holding one object."""
    if as_json:
        print(json.dumps([result], ensure_ascii=False, default=str))
    else:
        out.print(message)


def table(rows: list[dict[str, Any]], columns: list[str], title: str | None = None) -> None:
    shown = Table(title=title, title_justify="left")
    for column in columns:
        shown.add_column(column, overflow="fold")
    for row in rows:
        shown.add_row(*(cell(c, row.get(c)) for c in columns))
    out.print(shown)


def require_database() -> None:
    """Refuse to work on an embedded database that was never created: opening it would create an
    empty file, and every command would then fail on a missing table."""
    settings = get_settings()
    if not settings.embedded:
        return
    url = make_url(settings.database_url)
    path = url.database
    if path and path != ":memory:" and "uri" not in url.query and not Path(path).exists():
        raise UserError(f"database: not initialised (there is no {path}); run `crosspost init`")


@contextmanager
def db() -> Iterator[Session]:
    require_database()
    with session_scope() as s:
        yield s
