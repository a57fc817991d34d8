"""The followers report as both faces give it: figures per group, accounts that fell, accounts with no
recent sample (``report``), and the daily series per group (``daily``), read and computed in one place."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from scheduler.core.errors import UserError, shown
from scheduler.followers import queries, reports


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def parse_since(value: str | None, today: date) -> date | None:
    if value is None:
        return None
    try:
        since = date.fromisoformat(value)
    except ValueError:
        raise UserError(f"since: {shown(value)} is not a date (YYYY-MM-DD)") from None
    if since > today:
        raise UserError(f"since: {since} is after today ({today}, UTC)")
    return since


def check_by(by: str) -> str:
    if by not in reports.GROUPINGS:
        raise UserError(f"by: {shown(by)} is not one of {', '.join(reports.GROUPINGS)}")
    return by


def change_json(change: reports.Change) -> dict[str, Any]:
    return {"since": change.since.isoformat(), "absolute": change.absolute,
            "percent": None if change.percent is None else round(change.percent, 2)}


def group_json(g: reports.GroupFigures) -> dict[str, Any]:
    return {"group": g.name, "accounts": g.accounts, "sampled": g.sampled, "followers": g.followers,
            "changes": {k: change_json(c) for k, c in g.changes.items()}}


def report(s: Session, now: datetime, by: str, since_day: date | None, interval: float,
           series_from: date | None = None) -> tuple[reports.Report, dict[str, Any], dict[str, Any]]:
    """``(report, its JSON, daily series from series_from)``; the series is empty without a start."""
    check_by(by)
    today = now.astimezone(UTC).date()
    refs = reports.windows(today, since_day)
    start = min(refs.values())
    if series_from is not None:
        start = min(start, series_from)
    infos = queries.account_infos(s)
    rows = queries.report_rows(s, [a.id for a in infos], start)
    result = reports.summarise(infos, rows, now, by, since_day, timedelta(seconds=2 * interval))
    ids = {a.label: a.id for a in infos}
    gaps = queries.gaps(s, [(ids[st.account], st.last_sample) for st in result.stale])
    stale = [{"account": st.account, "status": st.status, "last_sample": _iso(st.last_sample),
              "failed_tries": gaps[ids[st.account]].failed_tries,
              "last_error": gaps[ids[st.account]].last_error} for st in result.stale]
    fell = [{"account": f.account, "platform": f.platform, "followers": f.followers,
             "changes": {k: change_json(c) for k, c in f.changes.items()}} for f in result.fell]
    body = {"as_of": _iso(now), "by": by, "total": group_json(result.total),
            "groups": [group_json(g) for g in result.groups], "fell": fell, "stale": stale}
    daily = reports.series(infos, rows, by, series_from, today) if series_from is not None else {}
    return result, body, daily


def daily_rows(daily: dict[str, Any]) -> list[list[Any]]:
    """The CSV's rows after its header ``day, group, followers, accounts``."""
    return [[d.isoformat(), name, v, n] for name, points in daily.items() for d, v, n in points]


CSV_HEADER = ["day", "group", "followers", "accounts"]
