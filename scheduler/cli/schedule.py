"""``crosspost schedule``: posting schedules per account, and what fills the upcoming slots."""

from __future__ import annotations

from typing import Annotated

import typer

from scheduler.cli.common import JsonOpt, db, done, emit, group
from scheduler.core.models import utcnow
from scheduler.desk import accounts as desk
from scheduler.desk.access import Actor

schedule_app = group("Posting schedules (cron slots in each account's time zone).")


@schedule_app.command("set")
def schedule_set(
    account: str,
    cron: Annotated[list[str], typer.Option(help="Cron expression in the account's zone; repeatable.")],
    min_gap: Annotated[int, typer.Option(min=0, help="Least minutes between two posts on the account.")] = 0,
    tz: Annotated[str | None, typer.Option(help="Change the account's IANA time zone too.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace the account's posting schedule."""
    with db() as s:
        row = desk.set_schedule(s, Actor.cli(), account, utcnow(), cron, min_gap, tz)
    done(as_json, f"{row['account']}: {len(row['schedule'])} cron slot(s) in {row['tz']}, at least "
         f"{min_gap} min apart", **row)


@schedule_app.command("clear")
def schedule_clear(account: str, as_json: JsonOpt = False) -> None:
    """Remove the account's schedule (stories can still go out at a fixed time or now)."""
    with db() as s:
        row = desk.set_schedule(s, Actor.cli(), account, utcnow(), [])
    done(as_json, f"{row['account']}: schedule cleared", account=row["account"], schedule=[])


@schedule_app.command("show")
def schedule_show(
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="How many days ahead.")] = 7,
    tz: Annotated[str, typer.Option(help="The operator's time zone, shown beside the account's.")] = "UTC",
    as_json: JsonOpt = False,
) -> None:
    """Upcoming slots and what fills them, in the account's zone and in the operator's."""
    with db() as s:
        rows = desk.upcoming_slots(s, Actor.cli(), utcnow(), ref=account, days=days, tz=tz)
    emit(rows, as_json, ["account", "account_time", "operator_time", "state", "story", "delivery"])
