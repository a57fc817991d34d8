"""The floor of bench/burst.py: the least any exactly-once publisher built on this stack must do per
delivery, with none of crosspost's code in the way.

A bare Celery task on crosspost's Celery configuration and worker options (as bench/noop.py) that, for
each delivery id of its message (messages formed by ``ticks.messages``, as the tick forms them):
- starts it with one compare-and-set ``UPDATE ... RETURNING`` in a transaction of its own, on a bare
  psycopg connection kept per thread (no pool, no SQLAlchemy);
- posts it to the Mastodon stand-in with a ``requests.Session`` kept alive per thread (``requests``
  speaks HTTP in crosspost: that is fixed), with its token and an Idempotency-Key;
- records the remote id with one ``UPDATE`` in a second transaction.

Two statements in two transactions: half of what goal 5 of issue 11 allows a publish. No credentials to
unseal, no retry policy, no lease, no log line. The rate this reaches against the no-op on the same
machine bounds what any publisher that records each start and outcome in the database around a
``requests`` call can reach there, crosspost's included.

``python -m bench.floor worker [--pool P] [--concurrency N]`` runs a worker of it.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import requests

from bench.common import worker_main
from config.settings import get_settings
from scheduler.celery_app import create_app

TABLE = """
CREATE TABLE floor_posts (
    id integer PRIMARY KEY,
    url text NOT NULL,
    token text NOT NULL,
    text text NOT NULL,
    state text NOT NULL DEFAULT 'queued',
    remote_id text,
    started_at timestamptz,
    published_at timestamptz
)"""

_START = ("UPDATE floor_posts SET state = 'publishing', started_at = clock_timestamp() "
          "WHERE id = %s AND state = 'queued' RETURNING url, token, text")
_PUBLISHED = ("UPDATE floor_posts SET state = 'published', remote_id = %s, published_at = clock_timestamp() "
              "WHERE id = %s AND state = 'publishing'")

app = create_app(get_settings())
app.conf.include = []  # this app runs the floor task only
_local = threading.local()


def _connections() -> tuple[psycopg.Connection[Any], requests.Session]:
    if not hasattr(_local, "db"):
        _local.db = psycopg.connect(get_settings().database_url.replace("postgresql+psycopg://", "postgresql://"),
                                   autocommit=True)
        _local.http = requests.Session()
    return _local.db, _local.http


@app.task(name="bench.floor", ignore_result=True)
def floor(ids: list[int]) -> None:
    db, http = _connections()
    for delivery_id in ids:
        with db.transaction():
            row = db.execute(_START, (delivery_id,)).fetchone()
        if row is None:  # started already (a redelivered message)
            continue
        url, token, text = row
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"floor{delivery_id}"}
        answer = http.post(f"{url}/api/v1/statuses", json={"status": text}, headers=headers, timeout=30)
        answer.raise_for_status()
        with db.transaction():
            db.execute(_PUBLISHED, (str(answer.json()["id"]), delivery_id))


if __name__ == "__main__":
    worker_main(app, "python -m bench.floor")
