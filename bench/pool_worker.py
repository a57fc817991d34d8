"""``python -m bench.pool_worker worker [--pool P] [--concurrency N]``: `crosspost worker` with the
PostgreSQL connection pool proposed in bench/RESULTS.md instead of scheduler/db.py's (10 + 50 overflow),
to measure what the change gives: a fixed pool of BENCH_POOL_SIZE (10) connections and no overflow, so
threads that want a connection while all are in use wait a moment for one (no transaction is held
across a platform call, so each holds one only for a few milliseconds) instead of opening and closing
connections, and a worker process never holds more than 10."""

from __future__ import annotations

import os
import sys
from functools import lru_cache

from sqlalchemy import Engine, create_engine

import scheduler.core.db as db

_stock = db.engine_for


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        return _stock(url)
    size = int(os.environ.get("BENCH_POOL_SIZE", "10"))
    overflow = int(os.environ.get("BENCH_POOL_OVERFLOW", "0"))
    return create_engine(url, pool_size=size, max_overflow=overflow, pool_timeout=30, pool_pre_ping=True,
                         pool_recycle=1800)


def main() -> None:
    db.engine_for = engine_for  # type: ignore[assignment]
    from scheduler.cli.main import main as crosspost

    crosspost(sys.argv[1:])


if __name__ == "__main__":
    main()
