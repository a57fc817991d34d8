"""The baseline of bench/burst.py: a bare Celery task that does nothing but note when it ran, on the
same Celery configuration as crosspost's (``create_app``: broker, JSON, late acks, prefetch 1, transport
options) and started with the same worker options (``_worker_argv``: pool, concurrency, log level, no
gossip/mingle/heartbeat).

``python -m bench.noop worker [--pool P] [--concurrency N]`` runs a worker of it; the environment
(CROSSPOST_BROKER_URL...) is the benchmark run's.
"""

from __future__ import annotations

import time

import redis

from bench.common import worker_main
from config.settings import get_settings
from scheduler.celery_app import create_app

DONE_KEY = "bench:noop:done"

app = create_app(get_settings())
app.conf.include = []  # this app runs the no-op only
_done = redis.Redis.from_url(get_settings().broker_url) if get_settings().broker_url.startswith("redis") \
    else None


@app.task(name="bench.noop", ignore_result=True)
def noop(n: int) -> None:
    # The one thing it does: note when it ran, so the benchmark sees the last one finish.
    if _done is not None:
        _done.rpush(DONE_KEY, time.time())


if __name__ == "__main__":
    worker_main(app, "python -m bench.noop")
