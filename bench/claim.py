"""Claim cost: the tick's claim (scheduler.core.deliveries.claim_due) and reap on PostgreSQL with 10 k
and with 1 M delivery rows in the table.

The rows look like a matrix after months of use: most deliveries terminal (published, some failed or
cancelled), a share scheduled for the coming days, a few in flight, and a realistic few due now
(``--due``). Rows go in with COPY. Each claim runs in a transaction that is rolled back, so every
repetition claims the same due rows; the median of ``--repeat`` runs is compared across sizes
(``1M / 10k``), and EXPLAIN (ANALYZE, BUFFERS) of the very statement claim_due sent is printed.

    python -m bench.claim                     # 10 k and 1 M rows (about 2 minutes)
    python -m bench.claim --sizes 10000,100000
    python -m bench.claim --partial-index     # then again with the index proposed in RESULTS.md
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import event, text

from bench.common import PG_ADMIN, Run, load, print_machine
from config.settings import get_settings
from scheduler.core import deliveries
from scheduler.core.db import engine, session_scope
from scheduler.core.publishing import policy

ACCOUNTS = 500
# The fix proposed in RESULTS.md: the planner cannot know that scheduled rows are mostly in the future
# (state and due_at are correlated), so with (state, due_at) it may read every pending row; an index
# holding only the pending rows, ordered by due time, makes the claim read just the due ones.
PARTIAL_INDEX = ("CREATE INDEX ix_deliveries_pending_due ON deliveries (due_at) "
                 "WHERE state IN ('scheduled', 'retry_wait')")
# Shares of the rows that are not due: what months of publishing leave behind.
MIX = (("published", 0.93), ("failed", 0.015), ("cancelled", 0.015), ("scheduled", 0.035),
       ("retry_wait", 0.003), ("queued", 0.001), ("publishing", 0.001))


def fill(run: Run, size: int, due: int, seed: int = 7) -> None:
    """Replace every story and delivery with ``size`` deliveries, ``due`` of them due now."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{run.db_name}"
    stories = -(-size // ACCOUNTS)
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE deliveries, attempts, stories RESTART IDENTITY CASCADE")
        if not conn.execute("SELECT count(*) FROM accounts").fetchone()[0]:  # type: ignore[index]
            with conn.cursor().copy("COPY accounts (platform, handle, tags, tz, credentials, "
                                    "credentials_version, schedule, min_gap_minutes, status, created_at) "
                                    "FROM STDIN") as copy:
                for i in range(ACCOUNTS):
                    copy.write_row(("mastodon", f"bench{i}", "[]", "UTC", b"sealed", 1, "[]", 0,
                                    "active", now))
        with conn.cursor().copy("COPY stories (text, variants, targets, status, timing, due_at, created_at) "
                                "FROM STDIN") as copy:
            for i in range(stories):
                at = now - timedelta(days=90) + timedelta(seconds=i * 90 * 86400 / stories)
                copy.write_row((f"story {i}", "{}", "[]", "approved", "at", at, at))
        kinds = [k for k, _ in MIX]
        weights = [w for _, w in MIX]
        due_rows = set(rng.sample(range(size), due))
        columns = ("story_id, account_id, state, due_at, key, attempts, failures, queued_at, lease_until, "
                   "created_at, updated_at")
        with conn.cursor().copy(f"COPY deliveries ({columns}) FROM STDIN") as copy:
            for i in range(size):
                story, account = i // ACCOUNTS + 1, i % ACCOUNTS + 1
                at = now - timedelta(days=90) + timedelta(seconds=(story - 1) * 90 * 86400 / stories)
                if i in due_rows:
                    state, at = rng.choice(("scheduled", "scheduled", "retry_wait")), now - timedelta(
                        seconds=rng.uniform(0, 5))
                else:
                    state = rng.choices(kinds, weights)[0]
                    if state in ("scheduled", "retry_wait"):
                        at = now + timedelta(seconds=rng.uniform(60, 7 * 86400))  # not due yet
                in_flight = state in ("queued", "publishing")
                copy.write_row((story, account, state, at, uuid.uuid4().hex, 1 if state != "scheduled" else 0,
                                0, now if in_flight else None,
                                now + timedelta(seconds=120) if state == "publishing" else None, at, at))
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # what autovacuum does after a bulk load


def time_claim(repeat: int, batch: int) -> tuple[float, float, int, str, dict[str, Any]]:
    """Median seconds of claim_due and of reap, rows claimed, and the claim's SQL and parameters."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE DELIVERIES"):
            sent.append((statement, parameters))

    claims, reaps, claimed = [], [], 0
    settings = get_settings()
    event.listen(engine(), "before_cursor_execute", capture)
    try:
        for _ in range(repeat):
            now = datetime.now(UTC)
            with session_scope() as s:
                started = time.perf_counter()
                deliveries.reap(s, now, queued_timeout=settings.queued_timeout,
                                max_attempts=settings.max_attempts, policy=policy)
                reaps.append(time.perf_counter() - started)
                s.rollback()
            with session_scope() as s:
                sent.clear()
                started = time.perf_counter()
                claimed = len(deliveries.claim_due(s, now, batch))
                claims.append(time.perf_counter() - started)
                s.rollback()  # the same rows are due for the next repetition
    finally:
        event.remove(engine(), "before_cursor_execute", capture)
    statement, parameters = sent[-1]
    return statistics.median(claims), statistics.median(reaps), claimed, statement, parameters


def explain(statement: str, parameters: Any) -> str:
    with session_scope() as s:
        rows = s.connection().exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).all()
        s.rollback()
    return "\n".join(row[0] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.claim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,1000000", help="delivery rows, smallest first")
    parser.add_argument("--due", type=int, default=50, help="deliveries due now")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--partial-index", action="store_true",
                        help="after the plain runs, add the proposed index of pending deliveries by due time "
                        "and measure the largest size again")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print_machine()
    results = {}
    plans = {}
    with Run("postgres") as run:
        batch = get_settings().claim_batch
        for size in sizes:
            started = time.monotonic()
            fill(run, size, args.due)
            loaded = time.monotonic() - started
            with session_scope() as s:
                count = s.execute(text("SELECT count(*) FROM deliveries")).scalar_one()
            claim, reap, claimed, statement, parameters = time_claim(args.repeat, batch)
            results[size] = (claim, reap, claimed, loaded, count, load())
            plans[size] = explain(statement, parameters)
        if args.partial_index:
            with session_scope() as s:
                s.execute(text(PARTIAL_INDEX))
                s.execute(text("ANALYZE deliveries"))
            claim, reap, claimed, statement, parameters = time_claim(args.repeat, batch)
            with session_scope() as s:
                count = s.execute(text("SELECT count(*) FROM deliveries")).scalar_one()
            indexed = (claim, reap, claimed, count, load())
            indexed_plan = explain(statement, parameters)
    base = sizes[0]
    print("| rows | due | claimed | claim median | reap median | claim vs smallest | reap vs smallest | "
          "load |")
    print("|---|---|---|---|---|---|---|---|")
    for size in sizes:
        claim, reap, claimed, loaded, count, when = results[size]
        print(f"| {count} | {args.due} | {claimed} | {claim * 1000:.2f} ms | {reap * 1000:.2f} ms | "
              f"{claim / results[base][0]:.2f} | {reap / results[base][1]:.2f} | {when} |"
              f"  <!-- loaded in {loaded:.0f} s -->")
    if args.partial_index:
        claim, reap, claimed, count, when = indexed
        print(f"| {count}, with the partial index | {args.due} | {claimed} | {claim * 1000:.2f} ms | "
              f"{reap * 1000:.2f} ms | {claim / results[base][0]:.2f} | {reap / results[base][1]:.2f} | "
              f"{when} |  <!-- {results[sizes[-1]][0] / claim:.1f}x faster than without -->")
    for size in sizes:
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the claim with {size} rows:\n{plans[size]}")
    if args.partial_index:
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the claim with {sizes[-1]} rows and the partial index:\n"
              f"{indexed_plan}")


if __name__ == "__main__":
    main()
