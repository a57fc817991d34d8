"""``crosspost schedule``: posting schedules per account, and what fills the upcoming slots."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from sqlalchemy import select

from scheduler.cli.common import JsonOpt, db, done, emit, group
from scheduler.core.errors import UserError
from scheduler.core.models import Account, Delivery, utcnow
from scheduler.matrix import accounts
from scheduler.stories import slots

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
    exprs = [slots.check_cron(expr) for expr in cron]
    with db() as s:
        found = accounts.find(s, account)
        if tz is not None:
            found.tz = accounts.check_tz(tz)
        found.schedule, found.min_gap_minutes = exprs, min_gap
        label, zone = found.label, found.tz
    done(as_json, f"{label}: {len(exprs)} cron slot(s) in {zone}, at least {min_gap} min apart",
         account=label, schedule=exprs, tz=zone, min_gap_minutes=min_gap)


@schedule_app.command("clear")
def schedule_clear(account: str, as_json: JsonOpt = False) -> None:
    """Remove the account's schedule (stories can still go out at a fixed time or now)."""
    with db() as s:
        found = accounts.find(s, account)
        found.schedule, found.min_gap_minutes = [], 0
    done(as_json, f"{found.label}: schedule cleared", account=found.label, schedule=[])


@schedule_app.command("show")
def schedule_show(
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="How many days ahead.")] = 7,
    tz: Annotated[str, typer.Option(help="The operator's time zone, shown beside the account's.")] = "UTC",
    as_json: JsonOpt = False,
) -> None:
    """Upcoming slots and what fills them, in the account's zone and in the operator's."""
    operator_zone = ZoneInfo(accounts.check_tz(tz))
    now = utcnow()
    end = now + timedelta(days=days)
    rows: list[dict[str, Any]] = []
    with db() as s:
        chosen = [accounts.find(s, account)] if account else list(s.scalars(
            select(Account).where(Account.status != "removed").order_by(Account.id)))
        for acct in chosen:
            if not acct.schedule:
                if account:
                    raise UserError(f"{acct.label}: has no posting schedule")
                continue
            filled = {d.slot_at: d for d in s.scalars(select(Delivery).where(
                Delivery.account_id == acct.id, Delivery.slot_at.is_not(None), Delivery.slot_at <= end,
                Delivery.slot_at > now, Delivery.state.in_(slots.LIVE)))}
            zone = ZoneInfo(acct.tz)
            for slot in slots.slots(acct.schedule, acct.tz, now):
                if slot > end:
                    break
                d = filled.get(slot)
                rows.append({
                    "account": acct.label, "slot_at": slot.isoformat(),
                    "account_time": slot.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z"),
                    "operator_time": slot.astimezone(operator_zone).strftime("%a %Y-%m-%d %H:%M %Z"),
                    "delivery": d.id if d else None, "story": d.story_id if d else None,
                    "state": d.state if d else "free",
                })
    emit(rows, as_json, ["account", "account_time", "operator_time", "state", "story", "delivery"])
