"""``crosspost deliveries``: list, show with attempts, export, retry, resolve."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from scheduler.cli.common import JsonOpt, db, done, emit, group
from scheduler.cli.exports import ExportFormat, OutOpt, SinceOpt, UntilOpt, time_window, write_rows
from scheduler.core import deliveries
from scheduler.core.errors import MAX_ID, UserError, parse_id, shown
from scheduler.core.models import utcnow
from scheduler.desk import deliveries as desk
from scheduler.desk.access import Actor
from scheduler.desk.pages import MAX_LIMIT
from scheduler.stories import bulk

deliveries_app = group("Deliveries: one story bound for one account.")


@deliveries_app.command("export")
def deliveries_export(state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
                      since: SinceOpt = None, until: UntilOpt = None, fmt: ExportFormat = "csv",
                      target: OutOpt = None, as_json: JsonOpt = False) -> None:
    """Deliveries (due in the window) as CSV or JSON Lines."""
    if state is not None and state not in deliveries.STATES:
        raise UserError(f"state: {state!r} is not one of {', '.join(deliveries.STATES)}")
    start, end = time_window(since, until)
    with db() as s:
        rows = bulk.delivery_rows(s, state=state, since=start, until=end)
    write_rows(rows, bulk.DELIVERY_FIELDS, fmt, target, as_json)


# -- deliveries ---------------------------------------------------------------------------------
DELIVERY_COLUMNS = ["id", "story", "account", "state", "due_at", "attempts", "published_url", "last_error"]


@deliveries_app.command("list")
def deliveries_list(
    state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    story: Annotated[int | None, typer.Option(min=1, max=MAX_ID, help="Only this story's deliveries.")]
    = None,
    account: Annotated[str | None, typer.Option(help="Only this account (id or platform:handle).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIMIT)] = 200,
    as_json: JsonOpt = False,
) -> None:
    """The newest deliveries, filtered by state or story; possible duplicates are named beside the error."""
    with db() as s:
        rows = desk.listing(s, Actor.cli(), state=state, story=story, account=account, limit=limit).items
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
    with db() as s:
        row = desk.show(s, Actor.cli(), _delivery_id(delivery))
    tries = row.pop("attempt_list")
    if as_json:
        print(json.dumps([{**row, "attempt_list": tries}], ensure_ascii=False))
        return
    emit([_flag_duplicates(row)], False, DELIVERY_COLUMNS)
    if row["text"] is not None:
        print(f"its own text (not the story's): {row['text']}")
    emit(tries, False, ATTEMPT_COLUMNS, title="attempts")


def _delivery_id(value: str) -> int:
    number = parse_id(value)
    if number is None:
        raise UserError(f"delivery: {shown(value)} is not a delivery id")
    if number == 0:
        raise UserError(f"delivery: no delivery {shown(value.strip())}")
    return number


@deliveries_app.command("edit")
def deliveries_edit(
    delivery: str,
    text: Annotated[str | None, typer.Option(help="This account's own text, checked as its platform "
                                                  "counts it.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Back to the story's text.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Give one account its own text for a story, before the delivery's first attempt."""
    if (text is None) == (not clear):
        raise UserError("edit: give exactly one of --text and --clear")
    number = _delivery_id(delivery)
    with db() as s:
        desk.edit_text(s, Actor.cli(), number, text, utcnow())
    done(as_json, f"delivery {delivery}: {'its own text' if text is not None else 'the story text'}",
         id=number, text=text)


@deliveries_app.command("retry")
def deliveries_retry(delivery: str, as_json: JsonOpt = False) -> None:
    """Publish a failed delivery again, with a fresh attempt budget."""
    with db() as s:
        desk.retry(s, Actor.cli(), _delivery_id(delivery), utcnow())
    done(as_json, f"delivery {delivery} is due again", id=_delivery_id(delivery), state="scheduled")


@deliveries_app.command("resolve")
def deliveries_resolve(
    delivery: str,
    published: Annotated[str | None, typer.Option(help="It did go out, at this URL.")] = None,
    republish: Annotated[bool, typer.Option("--republish", help="It did not go out; publish again.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Decide an `unknown` delivery after checking the platform."""
    with db() as s:
        state = desk.resolve(s, Actor.cli(), _delivery_id(delivery), utcnow(), published=published,
                             republish=republish)
    done(as_json, f"delivery {delivery} resolved", id=_delivery_id(delivery),
         state=state, published_url=published)
