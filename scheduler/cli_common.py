"""What every part of the ``crosspost`` command shares: output as a table or JSON, a database session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from config.settings import get_settings
from scheduler.db import session_scope
from scheduler.errors import UserError

out = Console(soft_wrap=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON array with stable field names.")]


def emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str], title: str | None = None) -> None:
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, default=str))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    out.print(table)


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
