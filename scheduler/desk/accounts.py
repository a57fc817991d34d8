"""What the desk does to accounts and their posting schedules, for the CLI and the API alike: list and
show within the actor's scopes; pause, resume and schedules by an editor of the account; edit and
remove by an admin; the upcoming slots and what fills them. Changes go to the audit log."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from scheduler.core.errors import UserError
from scheduler.core.models import Account, Delivery
from scheduler.desk import audit
from scheduler.desk.access import Actor, require_accounts, require_everywhere
from scheduler.desk.errors import NotFound
from scheduler.matrix import accounts as matrix
from scheduler.stories import slots


def listing(s: Session, actor: Actor) -> list[dict[str, Any]]:
    live = s.scalars(select(Account).where(Account.status != "removed").order_by(Account.id))
    return [matrix.describe(a) for a in live if actor.may("viewer", a)]


def find(s: Session, actor: Actor, ref: str | int, role: str = "viewer") -> Account:
    """By id (the API's paths: a missing one is NotFound) or as the CLI names it (id or platform:handle)."""
    if isinstance(ref, int):
        found = s.get(Account, ref)
        if found is None or found.status == "removed":
            raise NotFound(f"account: no account {ref}")
        account = found
    else:
        account = matrix.find(s, ref)
    require_accounts(actor, role, [account], "account")
    return account


def set_status(s: Session, actor: Actor, ref: str | int, status: str, now: datetime) -> dict[str, Any]:
    """Pause (``paused``) or resume (``active``) an account: nothing is claimed for a paused one."""
    account = find(s, actor, ref, "editor")
    matrix.set_status(s, account, status)
    audit.record(s, actor, "account.pause" if status == "paused" else "account.resume", "account",
                 account.id, now)
    return matrix.describe(account)


def edit(s: Session, actor: Actor, ref: str | int, now: datetime, *, name: str | None = None,
         tags: list[str] | None = None, tz: str | None = None, language: str | None = None) -> dict[str, Any]:
    """Tags decide scopes, so only an admin changes what describes an account."""
    require_everywhere(actor, "admin", "account edit")
    account = find(s, actor, ref)
    before = matrix.describe(account)
    matrix.edit(s, account, name=name, tags=tags, tz=tz, language=language)
    after = matrix.describe(account)
    audit.record(s, actor, "account.edit", "account", account.id, now,
                 **{k: {"before": before[k], "after": after[k]} for k in after if before[k] != after[k]})
    return after


def remove(s: Session, actor: Actor, ref: str | int, now: datetime) -> int:
    require_everywhere(actor, "admin", "account remove")
    account = find(s, actor, ref)
    cancelled = matrix.remove(s, account, now)
    audit.record(s, actor, "account.remove", "account", account.id, now, cancelled=cancelled)
    return cancelled


def set_schedule(s: Session, actor: Actor, ref: str | int, now: datetime, cron: list[str], min_gap: int = 0,
                 tz: str | None = None) -> dict[str, Any]:
    """Replace the account's posting schedule (an empty ``cron`` clears it)."""
    if min_gap < 0:
        raise UserError(f"min-gap: {min_gap} is negative")
    exprs = [slots.check_cron(expr) for expr in cron]
    account = find(s, actor, ref, "editor")
    if tz is not None:
        account.tz = matrix.check_tz(tz)
    account.schedule, account.min_gap_minutes = exprs, min_gap if exprs else 0
    audit.record(s, actor, "account.schedule", "account", account.id, now, schedule=exprs, tz=account.tz,
                 min_gap_minutes=account.min_gap_minutes)
    return {"account": account.label, "schedule": exprs, "tz": account.tz,
            "min_gap_minutes": account.min_gap_minutes}


def upcoming_slots(s: Session, actor: Actor, now: datetime, *, ref: str | None = None, days: int = 7,
                   tz: str = "UTC") -> list[dict[str, Any]]:
    """Each upcoming slot of the accounts (one, or every one the actor sees) and what fills it, in the
    account's zone and in ``tz`` (the reader's)."""
    if not 1 <= days <= 366:
        raise UserError(f"days: {days} is not between 1 and 366")
    reader = ZoneInfo(matrix.check_tz(tz))
    end = now + timedelta(days=days)
    chosen = [find(s, actor, ref)] if ref else [
        a for a in s.scalars(select(Account).where(Account.status != "removed").order_by(Account.id))
        if actor.may("viewer", a)]
    rows: list[dict[str, Any]] = []
    for acct in chosen:
        if not acct.schedule:
            if ref:
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
                "operator_time": slot.astimezone(reader).strftime("%a %Y-%m-%d %H:%M %Z"),
                "delivery": d.id if d else None, "story": d.story_id if d else None,
                "state": d.state if d else "free",
            })
    return rows


def connect(actor: Actor, platform: str, handle: str, data: Mapping[str, Any], now: datetime,
            **options: Any) -> tuple[Account, bool]:
    """Add an account once the platform says whose the credentials are (``matrix.connect``, which
    asks it outside any transaction); an admin's act, recorded without the credentials."""
    require_everywhere(actor, "admin", "accounts add")
    account, verified = matrix.connect(platform, handle, data, **options)
    audit.note(actor, "account.add", "account", account.id, now, account=account.label, verified=verified,
               tags=account.tags or [])
    return account, verified


def reauthorise(actor: Actor, ref: str, data: Mapping[str, Any], now: datetime,
                **options: Any) -> tuple[Account, int, bool]:
    require_everywhere(actor, "admin", "accounts reauth")
    account, released, verified = matrix.reauthorise(ref, data, now, **options)
    audit.note(actor, "account.reauth", "account", account.id, now, account=account.label,
               verified=verified, released=released)
    return account, released, verified
