"""Worker memory: the RSS of a `crosspost worker` process tree after 1 k publishes and after many more
(100 k by default), over Redis + PostgreSQL against the stand-ins, with the default pool and concurrency.

Deliveries are fed in waves (stories to every account, due now) so that the backlog stays small and
nothing waits long enough in the broker for the reaper to hand it out twice; the beat claims them.
At each checkpoint it prints the RSS, its ratio to the RSS at the first checkpoint, and how long the
publishes took, so a shorter run (``--publishes``) can be sized from a first one.

    python -m bench.memory                          # 1 k and 100 k (about 20-30 minutes on 2 cores)
    python -m bench.memory --publishes 20000        # checkpoints 1 k, 5 k, 10 k, 20 k
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from bench.common import (
    Run,
    add_stories,
    duplicates,
    load,
    make_accounts,
    print_machine,
    start_standins,
    states,
    stop_standins,
    tree_cpu,
    tree_rss,
)
from scheduler.core.models import utcnow

MIB = 1024 * 1024


def checkpoints(total: int) -> list[int]:
    marks = [n for n in (1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000) if n < total]
    return [*marks, total]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--publishes", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--pool", default=None, help="default: the settings' (threads)")
    parser.add_argument("--concurrency", type=int, default=None, help="default: the settings' (32)")
    parser.add_argument("--backlog", type=int, default=3000, help="most deliveries waiting at once")
    parser.add_argument("--timeout", type=float, default=7200)
    args = parser.parse_args()

    print_machine()
    print("| publishes | worker tree RSS | vs first checkpoint | elapsed | rate | "
          "worker CPU ms per publish | load |")
    print("|---|---|---|---|---|---|---|", flush=True)
    with Run("postgres", account_min_interval=0) as run:
        standins = start_standins()
        try:
            accounts = make_accounts(standins, args.accounts)
            workers = run.workers(1, args.pool, args.concurrency)
            pids = [w.pid for w in workers]
            run.crosspost("beat", name="beat")
            started, cpu0 = time.monotonic(), tree_cpu(pids)
            fed, mark, first_rss = 0, 0, None
            todo = checkpoints(args.publishes)
            while todo:
                counts = states()
                done = counts.get("published", 0)
                if fed < args.publishes and fed - done < args.backlog:
                    wave = min(args.publishes - fed, len(accounts) * 4)
                    due = utcnow() - timedelta(seconds=1)
                    stories = []
                    for n in range(0, wave, len(accounts)):
                        stories.append((mark, due, accounts[: min(len(accounts), wave - n)]))
                        mark += 1
                    add_stories(stories)  # type: ignore[arg-type]
                    fed += wave
                if done >= todo[0]:
                    elapsed = time.monotonic() - started
                    rss = tree_rss(pids)
                    first_rss = first_rss or rss
                    cpu = tree_cpu(pids) - cpu0
                    print(f"| {done} | {rss / MIB:.1f} MiB | {rss / first_rss:.2f} | {elapsed:.0f} s | "
                          f"{done / elapsed:.0f}/s | {cpu / done * 1000:.2f} | {load()} |", flush=True)
                    todo.pop(0)
                if time.monotonic() - started > args.timeout:
                    raise TimeoutError(f"timed out; states {counts}")
                time.sleep(1.0)
            print(f"<!-- final states {states()}, {duplicates(standins)} duplicates -->", flush=True)
        finally:
            stop_standins(standins)


if __name__ == "__main__":
    main()
