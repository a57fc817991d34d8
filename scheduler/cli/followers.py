"""``crosspost followers``: sample follower counts now, enqueue the due samples, and report."""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select

from config.settings import get_settings
from scheduler.cli.common import JsonOpt, db, done, group, out, table
from scheduler.core.errors import UserError
from scheduler.core.models import Account, utcnow
from scheduler.followers import reports, sampling, schedule, summary
from scheduler.matrix import accounts

followers_app = group("Follower counts over time.")
# The CLI waits for a rate gate that opens this soon rather than report the account as deferred.
GATE_WAIT = 10.0
SAMPLE_THREADS = 8


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


# -- sample ---------------------------------------------------------------------------------------
def _sample_waiting(account_id: int) -> sampling.Sampled:
    for _ in range(3):
        result = sampling.sample_account(account_id)
        if result.outcome != "deferred" or result.until is None:
            return result
        wait = (result.until - utcnow()).total_seconds()
        if wait > GATE_WAIT:
            return result
        time.sleep(max(wait, 0.05))
    return result


@followers_app.command("sample")
def sample(
    account: Annotated[str | None, typer.Option(help="Only this account (id or platform:handle).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sample follower counts now: one account, or every active account."""
    with db() as s:
        if account is not None:
            found = accounts.find(s, account)
            targets = [(found.id, found.label)]
        else:
            targets = list(s.execute(select(Account.id, Account.platform + ":" + Account.handle)
                                     .where(Account.status == "active").order_by(Account.id)))
    if not targets:
        raise UserError("account: no active account to sample; add one with `crosspost accounts add`")
    labels = dict(targets)
    with ThreadPoolExecutor(min(SAMPLE_THREADS, len(targets))) as pool:
        results = list(pool.map(_sample_waiting, [t[0] for t in targets]))
    rows = [{"id": r.account_id, "account": labels[r.account_id], "outcome": r.outcome,
             "followers": r.followers, "error": r.error, "until": _iso(r.until)} for r in results]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        table(rows, ["id", "account", "outcome", "followers", "error"])
    if any(r.outcome != "sampled" for r in results):
        raise typer.Exit(1)


@followers_app.command("tick")
def tick(as_json: JsonOpt = False) -> None:
    """Enqueue the samples due now, once (for a system crontab instead of `crosspost beat`)."""
    from scheduler.tasks import send_sample

    sent = schedule.tick(send_sample)
    done(as_json, f"sent {len(sent)} follower samples to the workers", sent=sent)


# -- report ---------------------------------------------------------------------------------------
def _output_path(value: str | None, field: str, suffixes: tuple[str, ...]) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if path.suffix.lower() not in suffixes:
        raise UserError(f"{field}: {path.name} must end with {' or '.join(suffixes)}")
    if not path.parent.is_dir():
        raise UserError(f"{field}: directory {path.parent} does not exist")
    if path.is_dir():
        raise UserError(f"{field}: {path} is a directory; give a file name")
    if (path.exists() and not os.access(path, os.W_OK)) or not os.access(path.parent, os.W_OK):
        raise UserError(f"{field}: cannot write {path} (permission denied)")
    return path


@contextmanager
def _writing(field: str, path: Path) -> Iterator[None]:
    """Turn a failed write (read-only file system, full disk, a path the kernel refuses) into one
    line naming the option; the checks above cannot foresee every case."""
    try:
        yield
    except OSError as exc:
        raise UserError(f"{field}: cannot write {path}: {exc.strerror or type(exc).__name__}") from None


def _cell(change: reports.Change) -> str:
    pct = "n/a" if change.percent is None else f"{change.percent:+.1f}%"
    return f"{change.absolute:+,} ({pct})"


@followers_app.command("report")
def report(
    since: Annotated[str | None, typer.Option(help="Start of the chart and CSV, and an extra growth column "
                                                  "(YYYY-MM-DD, UTC); default: 90 days ago.")] = None,
    by: Annotated[str, typer.Option(help="Group by platform, tag or account.")] = "platform",
    csv_file: Annotated[str | None, typer.Option("--csv", help="Write the daily series per group here.")]
    = None,
    chart: Annotated[str | None, typer.Option(help="Draw followers over time, one line per group "
                                                   "(FILE.png or FILE.svg).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Totals, per group, growth over 1/7/30 days, accounts that fell, accounts with no recent sample."""
    now = utcnow()
    today = now.astimezone(UTC).date()
    summary.check_by(by)
    since_day = summary.parse_since(since, today)
    csv_path = _output_path(csv_file, "csv", (".csv",))
    chart_path = _output_path(chart, "chart", (".png", ".svg"))
    series_from = since_day or today - timedelta(days=90)
    with db() as s:
        result, body, daily = summary.report(s, now, by, since_day, get_settings().follower_interval,
                                             series_from if csv_path or chart_path else None)
    if csv_path:
        with _writing("csv", csv_path), open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(summary.CSV_HEADER)
            writer.writerows(summary.daily_rows(daily))
    if chart_path:
        if not daily:
            raise UserError(f"chart: no follower samples since {series_from}; nothing to draw")
        from scheduler.followers.charts import render

        with _writing("chart", chart_path):
            render({name: [(d, v) for d, v, _ in points] for name, points in daily.items()}, chart_path,
                   f"Followers by {by}, {series_from} to {today}")
    if as_json:
        print(json.dumps(body, ensure_ascii=False))
        return
    stale = body["stale"]
    _print_report(result, stale, csv_path, chart_path)


def _print_report(result: reports.Report, stale: list[dict[str, Any]], csv_path: Path | None,
                  chart_path: Path | None) -> None:
    keys = list(result.total.changes)
    heads = {k: (f"since {c.since}" if k == "since" else k) for k, c in result.total.changes.items()}
    total = result.total
    refs = ", ".join(f"{k}: {c.since}" for k, c in total.changes.items())
    out.print(f"Followers as of {_iso(result.as_of)}: {total.followers:,} across {total.accounts} accounts "
              f"({total.sampled} sampled). Growth compares the newest count with the last count before "
              f"the UTC day it names began ({refs}).")
    rows = [{"group": g.name, "accounts": g.accounts, "followers": f"{g.followers:,}",
             **{heads[k]: _cell(g.changes[k]) for k in keys}} for g in [*result.groups, total]]
    table(rows, ["group", "accounts", "followers", *heads.values()], f"By {result.by}")
    if result.fell:
        table([{"account": f.account, "followers": f"{f.followers:,}",
                 **{heads[k]: _cell(f.changes[k]) for k in keys}} for f in result.fell],
               ["account", "followers", *heads.values()], "Accounts whose count fell")
    else:
        out.print("No account's count fell.")
    if stale:
        table(stale, ["account", "status", "last_sample", "failed_tries", "last_error"],
               "No recent sample")
    else:
        out.print("Every account has a recent sample.")
    for what, path in (("CSV", csv_path), ("chart", chart_path)):
        if path:
            out.print(f"{what} written to {path}")
