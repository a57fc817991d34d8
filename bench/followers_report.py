"""Follower reports and sampling with a year of hourly samples for 500 accounts (4.4 M rows) on PostgreSQL.

It generates the samples with generate_series (one failed try in 211, some accounts losing followers),
builds their daily roll-up, and then measures, each as a ratio against a baseline from the same run:
- the report (``queries.report_rows`` + ``summarise``, 1/7/30-day growth by platform) over the roll-up
  of accounts with a year of history, against the same report for as many accounts with only the 32
  days the report reads (the ratio stays near 1 if the report does not grow with history), and against
  computing the same per-day counts from the raw samples (what the roll-up saves);
- the schedule's due query (every account's last try and last success), a year of history vs. 32 days;
- one sample's write (the sample row plus the roll-up upsert), a year of history vs. 32 days.
It prints the PostgreSQL plans (EXPLAIN ANALYZE) of the queries the report and the schedule run, and
fails if any of them reads the raw samples by a sequential scan or the roll-up without its index.

    python -m bench.followers_report                     # 500 accounts x 365 days (about 2-4 minutes)
    python -m bench.followers_report --accounts 50 --days 30   # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import text, update

from adapters.base import Credentials
from bench.common import Run, load, print_machine
from scheduler.core import vault
from scheduler.core.db import session_scope
from scheduler.core.models import Account, utcnow
from scheduler.followers import queries, reports, sampling, schedule

PLATFORMS = ("mastodon", "bluesky", "telegram")
TAGS = ("en", "es", "culture", "news", "sport")


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(a: Callable[[], object], b: Callable[[], object], rounds: int = 5,
              before_a: Callable[[], object] = lambda: None,
              before_b: Callable[[], object] = lambda: None) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, run in turns (after a warm-up of each), so a change in the
    machine's load during the run weighs on both alike; ``before_*`` run untimed before each."""
    times_a, times_b = [], []
    for i in range(rounds + 1):
        before_a()
        ta = seconds(a)
        before_b()
        tb = seconds(b)
        if i:
            times_a.append(ta)
            times_b.append(tb)
    return statistics.median(times_a), statistics.median(times_b)


def add_accounts(n: int, prefix: str) -> list[int]:
    sealed = vault.seal(Credentials({"access_token": "bench-token-not-used"}))
    rows = [{"platform": PLATFORMS[i % 3], "handle": f"{prefix}{i}", "tags": [TAGS[i % 5], TAGS[(i + 2) % 5]],
             "credentials": sealed, "status": "active"} for i in range(n)]
    with session_scope() as s:
        s.execute(Account.__table__.insert(), rows)
        return list(s.scalars(text("SELECT id FROM accounts WHERE handle LIKE :p ORDER BY id"),
                              {"p": f"{prefix}%"}))


def generate(ids: list[int], start: datetime, hours: int) -> None:
    """Hourly samples of ``ids`` from ``start``, at each account's own offset into the hour; counts grow
    or (for one account in seven... two) fall linearly; one try in 211 failed."""
    sql = """
        INSERT INTO follower_samples (account_id, taken_at, followers, error)
        SELECT a.id,
               :start + make_interval(hours => h) + make_interval(secs => ((a.id * 0.6180339887498949)
                        - floor(a.id * 0.6180339887498949)) * 3600),
               CASE WHEN (h + a.id) % 211 = 0 THEN NULL ELSE 1000 + a.id * 10 + (h * (a.id % 7 - 2)) / 24 END,
               CASE WHEN (h + a.id) % 211 = 0 THEN 'transient: bench: HTTP 503' END
        FROM accounts a CROSS JOIN generate_series(0, :hours - 1) AS h
        WHERE a.id = ANY(:ids)
    """
    rollup = """
        INSERT INTO follower_daily (account_id, day, first_followers, last_followers, min_followers,
                                    max_followers, last_taken_at, samples)
        SELECT account_id, (taken_at AT TIME ZONE 'UTC')::date,
               (array_agg(followers ORDER BY taken_at))[1], (array_agg(followers ORDER BY taken_at DESC))[1],
               min(followers), max(followers), max(taken_at), count(*)
        FROM follower_samples WHERE followers IS NOT NULL AND account_id = ANY(:ids)
        GROUP BY 1, 2
    """
    with session_scope() as s:
        s.execute(text(sql), {"start": start, "hours": hours, "ids": ids})
        s.execute(text(rollup), {"ids": ids})


def set_active(active: list[int], paused: list[int]) -> None:
    """Only ``active`` is sampled by the schedule (the due query reads every active account)."""
    with session_scope() as s:
        s.execute(update(Account).where(Account.id.in_(active)).values(status="active"))
        s.execute(update(Account).where(Account.id.in_(paused)).values(status="paused"))


def report(now: datetime, ids: list[int]) -> reports.Report:
    """The report of the CLI, on the accounts ``ids``."""
    wanted = set(ids)
    with session_scope() as s:
        infos = [a for a in queries.account_infos(s) if a.id in wanted]
        rows = queries.report_rows(s, [a.id for a in infos], min(reports.windows(now.date()).values()))
    return reports.summarise(infos, rows, now, "platform")


def raw_daily(start: datetime, ids: list[int]) -> None:
    """The per-day counts the report needs, computed from the raw samples (no roll-up)."""
    with session_scope() as s:
        s.execute(text("""
            SELECT account_id, (taken_at AT TIME ZONE 'UTC')::date,
                   (array_agg(followers ORDER BY taken_at DESC))[1]
            FROM follower_samples
            WHERE account_id = ANY(:ids) AND followers IS NOT NULL AND taken_at >= :start
            GROUP BY 1, 2"""), {"start": start, "ids": ids}).all()


def due(now: datetime) -> None:
    with session_scope() as s:
        schedule.due_for_sampling(s, now, schedule.current())


def write_samples(ids: list[int], at: datetime) -> None:
    with session_scope() as s:
        for account_id in ids:
            sampling.record(s, account_id, at, 5000)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.followers_report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--baseline-hours", type=int, default=32 * 24,
                        help="history of the baseline accounts (88 h x 500 accounts = 44 k samples)")
    args = parser.parse_args()
    base = f"{args.baseline_hours} h" if args.baseline_hours % 24 else f"{args.baseline_hours // 24} days"
    print_machine()
    failures = []
    with Run("postgres") as run:
        now = utcnow().replace(minute=0, second=0, microsecond=0)
        hours = args.days * 24
        big = add_accounts(args.accounts, "year")
        month = add_accounts(args.accounts, "month")
        t0 = time.perf_counter()
        generate(big, now - timedelta(hours=hours), hours)
        generate(month, now - timedelta(hours=args.baseline_hours), args.baseline_hours)
        # VACUUM cannot run inside a transaction: a connection of its own, in autocommit.
        with psycopg.connect(run.database_url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        with session_scope() as s:
            samples = s.scalar(text("SELECT count(*) FROM follower_samples"))
            days = s.scalar(text("SELECT count(*) FROM follower_daily"))
            size = s.scalar(text("SELECT pg_size_pretty(pg_total_relation_size('follower_samples'))"))
        print(f"generated {samples:,} samples ({size} with its index) and {days:,} roll-up rows "
              f"in {time.perf_counter() - t0:.0f} s", flush=True)

        at = now + timedelta(minutes=30)
        check = report(at, big)
        year_report, month_report = alternate(lambda: report(at, big), lambda: report(at, month))
        year_raw, _ = alternate(lambda: raw_daily(at - timedelta(days=31), big), lambda: None, rounds=3)
        year_due, month_due = alternate(lambda: due(at), lambda: due(at),
                                        before_a=lambda: set_active(big, month),
                                        before_b=lambda: set_active(month, big))
        # One sample per account, written the way a worker writes it (sample row + roll-up upsert).
        write_year, write_month = alternate(lambda: write_samples(big, at), lambda: write_samples(month, at),
                                            rounds=3)
        write_year, write_month = write_year / len(big), write_month / len(month)
        set_active(big, month)

        print(f"\nreport over the roll-up: {year_report * 1000:.1f} ms with {args.days} days of history, "
              f"{month_report * 1000:.1f} ms with {base}: ratio {year_report / month_report:.2f}")
        print(f"the same per-day counts from the raw samples (31 days): {year_raw * 1000:.1f} ms: "
              f"{year_raw / year_report:.1f} x the whole report over the roll-up")
        print(f"due query ({args.accounts} accounts): {year_due * 1000:.2f} ms with {args.days} days, "
              f"{month_due * 1000:.2f} ms with {base}: ratio {year_due / month_due:.2f}")
        print(f"one sample's write: {write_year * 1000:.2f} ms with {args.days} days of history, "
              f"{write_month * 1000:.2f} ms with {base}: ratio {write_year / write_month:.2f}")
        print(f"report check: {check.total.accounts} accounts, {check.total.followers:,} followers, "
              f"30d change {check.total.changes['30d'].absolute:+,}, {len(check.fell)} fell, "
              f"{len(check.stale)} without a recent sample")

        today = at.astimezone(UTC).date()
        start = min(reports.windows(today).values())
        with session_scope() as s:
            for name, stmt in (("due query", schedule.due_query()),
                               ("report: roll-up rows in the window", queries.window_query(big, start)),
                               ("report: newest row before the window", queries.before_query(big, start))):
                shown = queries.plan(s, stmt, analyze=True)
                print(f"\n-- plan, {name}:\n{shown}")
                if "Seq Scan on follower_samples" in shown:
                    failures.append(f"{name}: sequential scan of the raw samples")
                if "follower_daily" in shown and "Seq Scan on follower_daily" in shown:
                    failures.append(f"{name}: sequential scan of the roll-up")
        print(f"\nload {load()}")
    if failures:
        print("FAILED: " + "; ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
