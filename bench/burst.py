"""Burst: many deliveries due at the same instant across many accounts, drained by real `crosspost worker`
processes over Redis + PostgreSQL, against the three stand-ins.

Rows it prints (one per run; each with the load average when it ended):
- ``noop``: the same number of bare Celery no-op tasks on the same broker and worker settings
  (bench/noop.py): the ceiling Celery itself puts on the rate;
- ``crosspost``: deliveries per second from the first attempt's start to the last publish's end, and that
  rate divided by the no-op rate of the same run (``vs noop``), with ACCOUNT_MIN_INTERVAL 0 and 1 s;
- with ``--latency`` (stand-ins answering after that many seconds), one row per ``--pools`` entry: the
  rate and the share of the I/O bound it reaches (``overlap`` = rate / (workers x concurrency / latency)),
  which shows whether a pool overlaps the waiting.
Each row also gives the worker processes' CPU milliseconds per delivery and the PostgreSQL sessions
opened per delivery (connection churn), to tell where the time goes.

    python -m bench.burst                                    # the whole set (about 15 minutes)
    python -m bench.burst --deliveries 1000 --accounts 50    # a quick look
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import redis
from sqlalchemy import text

from bench.common import (
    Run,
    add_stories,
    closest_starts,
    duplicates,
    flushalls,
    load,
    make_accounts,
    print_machine,
    published_window,
    redis_url,
    start_standins,
    states,
    stop_standins,
    story_text,
    tree_cpu,
    wait_until,
)
from scheduler.core.db import engine
from scheduler.core.models import utcnow
from scheduler.core.ticks import messages


def redis_commands() -> int:
    """Commands the broker's Redis has served so far (every client: beat, workers, the tick)."""
    stats = redis.Redis.from_url(redis_url()).info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def burst_rows(accounts: list[int], deliveries: int) -> list[tuple[int, object, list[int]]]:
    """Stories that each go to every account, due one second ago, ``deliveries`` in all."""
    due = utcnow() - timedelta(seconds=1)
    per_story = len(accounts)
    stories = []
    for mark in range(0, deliveries, per_story):
        stories.append((mark, due, accounts[: min(per_story, deliveries - mark)]))
    return stories  # type: ignore[return-value]


def run_noop(deliveries: int, workers: int, pool: str, concurrency: int,
             timeout: float) -> tuple[float, float]:
    """The no-op baseline: (tasks per second, worker CPU seconds per task)."""
    with Run("postgres") as run:
        from bench import noop

        for i in range(deliveries):
            noop.noop.apply_async(args=[i])
        procs = run.workers(workers, pool, concurrency, argv=["-m", "bench.noop", "worker"])
        cpu = tree_cpu(p.pid for p in procs)
        done = redis.Redis.from_url(redis_url())
        wait_until(lambda: done.llen(noop.DONE_KEY) >= deliveries, timeout, 0.2, "no-op tasks")
        cpu = tree_cpu(p.pid for p in procs) - cpu
        times = [float(t) for t in done.lrange(noop.DONE_KEY, 0, -1)]
        for proc in procs:
            run.stop(proc)
    rate = deliveries / (max(times) - min(times))
    print(f"| noop | {deliveries} | {workers} x {pool} {concurrency} | - | - | {rate:.0f}/s | - | - | "
          f"{cpu / deliveries * 1000:.2f} | - | {load()} |", flush=True)
    return rate, cpu / deliveries


def run_floor(deliveries: int, n_accounts: int, workers: int, pool: str, concurrency: int,
              latency: float, timeout: float, batch_max: int = 8) -> tuple[float, float]:
    """The same burst through bench/floor.py (the least a publisher on this stack does) to the Mastodon
    stand-in, in messages formed as the tick forms them: (deliveries per second, worker CPU per delivery)."""
    with Run("postgres") as run:
        from bench import floor

        standins = start_standins(latency)
        try:
            mastodon = standins["mastodon"]
            tokens = [mastodon.add_account(f"floor{i}")["access_token"] for i in range(n_accounts)]
            with engine().begin() as c:
                c.execute(text(floor.TABLE))
                c.execute(text("INSERT INTO floor_posts (id, url, token, text) "
                               "VALUES (:id, :url, :token, :text)"),
                          [{"id": i, "url": mastodon.url, "token": tokens[i % n_accounts],
                            "text": story_text(i)} for i in range(deliveries)])
            for ids, _ in messages([(i, utcnow()) for i in range(deliveries)],
                                   slots=workers * concurrency, most=batch_max):
                floor.floor.apply_async(args=[ids])
            before, requests_before = time.process_time(), len(mastodon.requests)
            procs = run.workers(workers, pool, concurrency, argv=["-m", "bench.floor", "worker"])
            cpu = tree_cpu(p.pid for p in procs)

            def published() -> int:
                with engine().connect() as c:
                    return int(c.scalar(text("SELECT count(*) FROM floor_posts WHERE state = 'published'")))

            wait_until(lambda: published() >= deliveries, timeout, 0.5, f"{deliveries} floor posts")
            cpu = tree_cpu(p.pid for p in procs) - cpu
            standins_cpu = time.process_time() - before
            for proc in procs:
                run.stop(proc)
            with engine().connect() as c:
                first, last = c.execute(text("SELECT extract(epoch FROM min(started_at)), "
                                             "extract(epoch FROM max(published_at)) FROM floor_posts")).one()
            posted = len(mastodon.requests) - requests_before
            dups = duplicates(standins)
        finally:
            stop_standins(standins)
    rate = deliveries / float(last - first)
    bound = workers * concurrency / latency if latency else None
    overlap = f"{rate / bound:.2f}" if bound else "-"
    print(f"| floor | {deliveries} | {workers} x {pool} {concurrency} | - | {latency * 1000:.0f} ms | "
          f"{rate:.0f}/s | - | {overlap} | {cpu / deliveries * 1000:.2f} | - | {load()} |"
          f"  <!-- {posted} requests, {dups} duplicates; stand-in's CPU "
          f"{standins_cpu / deliveries * 1000:.2f} ms per delivery -->", flush=True)
    return rate, cpu / deliveries


def run_crosspost(deliveries: int, n_accounts: int, workers: int, pool: str, concurrency: int,
                  min_interval: float, latency: float, timeout: float,
                  proposed_pool: bool = False, batch_max: int = 8) -> tuple[float, float]:
    """One burst through crosspost: (deliveries per second, worker CPU seconds per delivery)."""
    # The tick is told how many publishes the workers run at once (it batches a burst beyond that).
    with Run("postgres", account_min_interval=min_interval, publish_slots=workers * concurrency,
             publish_batch_max=batch_max) as run:
        standins = start_standins(latency)
        try:
            accounts = make_accounts(standins, n_accounts)
            add_stories(burst_rows(accounts, deliveries))  # type: ignore[arg-type]
            flushed = flushalls()
            started = time.monotonic()
            run.cli("tick")  # every delivery claimed and handed to the broker before a worker runs
            tick_seconds = time.monotonic() - started
            procs = run.workers(workers, pool, concurrency,
                                argv=["-m", "bench.pool_worker", "worker"] if proposed_pool else None)
            cpu, sessions = tree_cpu(p.pid for p in procs), run.pg_sessions()
            # The stand-ins answer from this process's threads: what the platforms' side costs here.
            standins_cpu = time.process_time()
            xacts, pg_cpu = run.pg_counts()
            commands = redis_commands()
            beat = run.crosspost("beat", name="beat")  # brings back what a rate gate deferred
            try:
                wait_until(lambda: states().get("published", 0) >= deliveries, timeout, 1.0,
                           f"{deliveries} published")
            except TimeoutError:
                print(f"timed out; states {states()}", flush=True)
                raise
            cpu = tree_cpu(p.pid for p in procs) - cpu
            standins_cpu = time.process_time() - standins_cpu
            sessions = run.pg_sessions() - sessions
            commands = redis_commands() - commands
            xacts_now, pg_cpu_now = run.pg_counts()
            xacts, pg_cpu = xacts_now - xacts, pg_cpu_now - pg_cpu
            first, last, attempts = published_window()
            closest = closest_starts()
            for proc in [*procs, beat]:
                run.stop(proc)
            # Celery logs each task's return value (a list for a batch); publish_delivery returns
            # "deferred" when a rate gate sent the delivery back to wait (no attempt, another task later).
            deferred = run.count_in_logs("'deferred'")
            # A "received" and a "succeeded" line each.
            tasks = (run.count_in_logs("Task crosspost.publish[")
                     + run.count_in_logs("Task crosspost.publish_batch[")) // 2
            flushed = flushalls() - flushed
            dups = duplicates(standins)
        finally:
            stop_standins(standins)
    rate = deliveries / (last - first)
    bound = workers * concurrency / latency if latency else None
    overlap = f"{rate / bound:.2f}" if bound else "-"
    invalid = f" INVALID: {flushed} FLUSHALL by others during the run" if flushed else ""
    label = "crosspost, proposed DB pool" if proposed_pool else "crosspost"
    print(f"| {label} | {deliveries} | {workers} x {pool} {concurrency} | {min_interval:g} s | "
          f"{latency * 1000:.0f} ms | {rate:.0f}/s | - | {overlap} | {cpu / deliveries * 1000:.2f} | "
          f"{sessions / deliveries:.2f} | {load()} |"
          f"  <!-- tick {tick_seconds:.1f} s, {tasks} publish tasks, {attempts} attempts, "
          f"{deferred} deferred, {dups} duplicates; per delivery: {xacts / deliveries:.1f} PG transactions, "
          f"{pg_cpu / deliveries * 1000:.2f} ms PG backend CPU, {standins_cpu / deliveries * 1000:.2f} ms "
          f"stand-ins' CPU, {commands / deliveries:.1f} Redis commands; closest two starts on one account "
          f"{'-' if closest is None else f'{closest:.3f} s'} -->{invalid}", flush=True)
    return rate, cpu / deliveries


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2: one per core)")
    parser.add_argument("--pool", default="threads", help="pool of the no-op / crosspost comparison")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--min-intervals", default="0,1", help="ACCOUNT_MIN_INTERVAL values to run")
    parser.add_argument("--latency", type=float, default=0.2, help="stand-in answer delay for the pool "
                        "comparison; 0 skips it")
    parser.add_argument("--latency-deliveries", type=int, default=4000,
                        help="deliveries per pool in the latency comparison (slow pools take long)")
    parser.add_argument("--pools", default="threads:8,threads:32,threads:64,prefork:2,prefork:8",
                        help="pool:concurrency list for the latency comparison")
    parser.add_argument("--skip-ratio", action="store_true", help="only the latency comparison")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--batch-max", type=int, default=8,
                        help="CROSSPOST_PUBLISH_BATCH_MAX of the crosspost runs (1: a message per delivery)")
    parser.add_argument("--no-floor", action="store_true",
                        help="skip the floor runs (bench/floor.py: the least a publisher on this stack does)")
    parser.add_argument("--ab-pool", action="store_true",
                        help="only: stock workers and workers with the proposed DB pool "
                        "(bench/pool_worker.py), alternately, twice each, latency 0, first --min-intervals")
    args = parser.parse_args()

    print_machine()
    print("| run | deliveries | workers | min interval | latency | rate | vs noop | overlap | "
          "worker CPU ms per delivery | PG sessions per delivery | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    if args.ab_pool:
        rates: dict[bool, list[float]] = {False: [], True: []}
        for proposed in (False, True, False, True):
            rates[proposed].append(run_crosspost(
                args.deliveries, args.accounts, args.workers, args.pool, args.concurrency,
                float(args.min_intervals.split(",")[0]), 0.0, args.timeout, proposed)[0])
        print(f"| proposed pool / stock (mean of two each) | {args.deliveries} | | | | "
              f"{sum(rates[True]) / sum(rates[False]):.2f} | | | | | |", flush=True)
        return
    if not args.skip_ratio:
        # The no-op runs before and after, and the crosspost runs are compared with the mean of the two,
        # so that a change of load on a shared machine while they run shows and partly cancels out.
        before = run_noop(args.deliveries, args.workers, args.pool, args.concurrency, args.timeout)
        results = []
        for value in args.min_intervals.split(","):
            results.append((float(value), run_crosspost(
                args.deliveries, args.accounts, args.workers, args.pool, args.concurrency, float(value), 0.0,
                args.timeout, batch_max=args.batch_max)))
        lowest = None if args.no_floor else run_floor(
            args.deliveries, args.accounts, args.workers, args.pool, args.concurrency, 0.0, args.timeout,
            args.batch_max)
        after = run_noop(args.deliveries, args.workers, args.pool, args.concurrency, args.timeout)
        rate, cpu = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
        if lowest is not None:
            print(f"| floor / noop (mean of both noop runs) | {args.deliveries} | | - | 0 ms | "
                  f"| {lowest[0] / rate:.3f} | | {lowest[1] / cpu:.1f}x | | |", flush=True)
        for value, (crosspost_rate, crosspost_cpu) in results:
            print(f"| crosspost / noop (mean of both noop runs) | {args.deliveries} | | {value:g} s | 0 ms | "
                  f"| {crosspost_rate / rate:.3f} | | {crosspost_cpu / cpu:.1f}x | | |", flush=True)
            if lowest is not None:
                print(f"| crosspost / floor | {args.deliveries} | | {value:g} s | 0 ms | "
                      f"| {crosspost_rate / lowest[0]:.3f} | | {crosspost_cpu / lowest[1]:.1f}x | | |",
                      flush=True)
    if args.latency:
        for entry in args.pools.split(","):
            pool, concurrency = entry.split(":")
            run_crosspost(args.latency_deliveries, args.accounts, args.workers, pool, int(concurrency), 0.0,
                          args.latency, args.timeout, batch_max=args.batch_max)
            if not args.no_floor:
                run_floor(args.latency_deliveries, args.accounts, args.workers, pool, int(concurrency),
                          args.latency, args.timeout, args.batch_max)


if __name__ == "__main__":
    main()
