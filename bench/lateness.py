"""Lateness: how long after its due time each delivery's publish request reaches the platform.

Deliveries fall due evenly over ``--spread`` seconds, one per account (so no account's rate gate holds
one back), while real processes run: ``crosspost worker`` processes and one ``crosspost beat`` over
Redis + PostgreSQL, and the embedded default (``crosspost run``: SQLite and the SQLAlchemy transport).
The request start is the stand-in's own record of when the request arrived; the due time is the row's.
It prints p50 / p99 / max of (request start - due time), each also as a share of the tick interval
(the beat's period, which bounds how late a claim can be), and how many requests came early (must be 0).

    python -m bench.lateness                       # both back ends, a minute each
    python -m bench.lateness --spread 10 --deliveries 100 --backend postgres   # a quick check
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from sqlalchemy import select

from bench.common import (
    Run,
    add_stories,
    duplicates,
    load,
    make_accounts,
    marks,
    percentile,
    print_machine,
    start_standins,
    states,
    stop_standins,
    wait_until,
)
from config.settings import get_settings
from scheduler.core.db import session_scope
from scheduler.core.models import Delivery, Story, utcnow


def due_times() -> dict[int, float]:
    """Story mark -> due time (epoch seconds) as stored."""
    with session_scope() as s:
        rows = s.execute(select(Story.text, Delivery.due_at).join(Delivery, Delivery.story_id == Story.id))
        return {int(text.split("bmk", 1)[1].split("x", 1)[0]): due.timestamp() for text, due in rows}


def run_one(backend: str, deliveries: int, spread: float, workers: int, lead: float, timeout: float,
            tick_interval: float | None) -> None:
    with Run(backend, **({"tick_interval": tick_interval} if tick_interval else {})) as run:
        tick = get_settings().tick_interval
        standins = start_standins()
        try:
            accounts = make_accounts(standins, deliveries)
            if backend == "postgres":
                run.workers(workers)
                beat = run.crosspost("beat", name="beat")
                run.wait_logged([beat], b"beat: Starting", 60)
            else:
                both = run.crosspost("run", name="worker-run")
                run.wait_logged([both], b" ready.", 90)
            start = utcnow() + timedelta(seconds=lead)
            step = spread / max(1, deliveries - 1)
            add_stories([(i, start + timedelta(seconds=i * step), [account])
                         for i, account in enumerate(accounts)])
            wait_until(lambda: states().get("published", 0) >= deliveries, lead + spread + timeout, 1.0,
                       f"{deliveries} published")
            due = due_times()
            started = marks(standins)
            dups = duplicates(standins)
        finally:
            stop_standins(standins)
    late = [started[mark] - due[mark] for mark in due if mark in started]
    missing = len(due) - len(late)
    early = sum(1 for value in late if value < 0)
    p50, p99, worst = percentile(late, 50), percentile(late, 99), max(late)
    print(f"| {backend} | {deliveries} over {spread:g} s | {tick:g} s | {p50:.2f} s | {p99:.2f} s | "
          f"{worst:.2f} s | {p50 / tick:.2f} / {p99 / tick:.2f} / {worst / tick:.2f} | {early} | "
          f"{load()} |  <!-- {missing} without a request, {dups} duplicates -->", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lateness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--deliveries", type=int, default=600)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which they fall due")
    parser.add_argument("--workers", type=int, default=2, help="worker processes on PostgreSQL")
    parser.add_argument("--lead", type=float, default=5.0, help="seconds before the first is due")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds allowed after the last is due")
    parser.add_argument("--tick-interval", type=float, default=None,
                        help="CROSSPOST_TICK_INTERVAL for the run (default: the setting's default, 5 s)")
    args = parser.parse_args()

    print_machine()
    print("| back end | deliveries | tick interval | p50 | p99 | max | p50 / p99 / max in ticks | early | "
          "load |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    for backend in (["postgres", "sqlite"] if args.backend == "both" else [args.backend]):
        run_one(backend, args.deliveries, args.spread, args.workers, args.lead, args.timeout,
                args.tick_interval)


if __name__ == "__main__":
    main()
