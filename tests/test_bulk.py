"""Bulk import (every row checked first, row numbers in problems, all or nothing) and exports."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scheduler.core.db import session_scope
from scheduler.core.errors import StoryRejected, UserError
from scheduler.core.models import Delivery, Story, utcnow
from scheduler.stories import bulk
from tests.conftest import Env
from tests.factories import make_account


@pytest.fixture
def matrix(db_env: Env) -> dict[str, str]:
    with session_scope() as s:
        m = make_account(s, "mastodon", "desk", tags=["en"])
        t = make_account(s, "telegram", "chan", tags=["en"])
        return {"mastodon": m.label, "telegram": t.label}


def count(model: type) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def write_csv(path: Path, rows: list[dict[str, str]]) -> str:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def test_csv_import_queues_every_row(tmp_path: Path, matrix: dict[str, str]) -> None:
    path = write_csv(
        tmp_path / "s.csv",
        [
            {"text": "One", "to": "en", "link": "https://example.org/1"},
            {
                "text": "Two",
                "to": f"{matrix['mastodon']}; {matrix['telegram']}",
                "variant.telegram": "Two (tg)",
            },
        ],
    )
    with session_scope() as s:
        result = bulk.import_file(s, path, utcnow())
    assert len(result.imported) == 2 and result.skipped == {}
    assert count(Delivery) == 4
    with session_scope() as s:
        assert s.scalar(select(Story).where(Story.text == "Two")).variants == {"telegram": "Two (tg)"}


def test_bad_rows_are_all_reported_by_number_and_nothing_is_stored(
    tmp_path: Path, matrix: dict[str, str]
) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"text": "fine", "to": ["en"]}),
                json.dumps({"text": "x" * 600, "to": [matrix["mastodon"]]}),
                "{not json",
                json.dumps({"text": "who?", "to": ["nobody"]}),
                json.dumps({"text": "when?", "to": ["en"], "at": "tomorrow"}),
                json.dumps({"text": "what?", "to": ["en"], "colour": "red"}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(StoryRejected) as caught, session_scope() as s:
        bulk.import_file(s, str(path), utcnow())
    problems = "\n".join(caught.value.problems)
    for expected in (
        "row 2: mastodon:desk: text: is 600",
        "row 3: not JSON",
        "row 4: to: no account has tag",
        "row 5: at:",
        "row 6: unknown field(s) colour",
    ):
        assert expected in problems
    assert "row 1" not in problems
    assert count(Story) == 0 and count(Delivery) == 0


def test_skip_invalid_stores_the_valid_rows(tmp_path: Path, matrix: dict[str, str]) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(
        json.dumps({"text": "ok", "to": "en"}) + "\n" + json.dumps({"text": "", "to": "en"}) + "\n"
    )
    with session_scope() as s:
        result = bulk.import_file(s, str(path), utcnow(), skip_invalid=True)
    assert len(result.imported) == 1 and list(result.skipped) == [2]
    assert count(Story) == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("s.txt", "text,to\n", "must end in .csv or .jsonl"),
        ("s.csv", "body,to\nx,en\n", "header row"),
        ("s.jsonl", "\n\n", "holds no stories"),
    ],
)
def test_unusable_files(
    tmp_path: Path, matrix: dict[str, str], name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserError, match=message), session_scope() as s:
        bulk.import_file(s, str(path), utcnow())


def test_exports_filter_by_state_and_round_trip(tmp_path: Path, matrix: dict[str, str]) -> None:
    path = write_csv(tmp_path / "s.csv", [{"text": "One", "to": "en"}])
    with session_scope() as s:
        bulk.import_file(s, path, utcnow())
        rows = bulk.delivery_rows(s, state="scheduled", since=None, until=None)
        assert {r["account"] for r in rows} == set(matrix.values())
        assert bulk.delivery_rows(s, state="published", since=None, until=None) == []
        stories = bulk.story_rows(s, status=None, since=None, until=None)
    lines = bulk.render(rows, bulk.DELIVERY_FIELDS, "jsonl").splitlines()
    assert [json.loads(line)["state"] for line in lines] == ["scheduled", "scheduled"]
    table = list(csv.DictReader(io.StringIO(bulk.render(stories, bulk.STORY_FIELDS, "csv"))))
    assert table[0]["text"] == "One" and json.loads(table[0]["targets"]) == ["en"]
