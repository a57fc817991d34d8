"""What every part of the ``crosspost`` command shares: output as a table or JSON, a database session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from scheduler.db import session_scope

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


@contextmanager
def db() -> Iterator[Session]:
    with session_scope() as s:
        yield s
