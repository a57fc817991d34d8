"""Whether this installation works: the database answers, the broker answers, a beat holds its lock,
and, when deliveries are due, a worker has started one lately (a silent worker turns health red).
The API's /health gives these checks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from config.settings import get_settings
from scheduler.core.db import session_scope
from scheduler.core.models import Account, Attempt, Delivery, ProcessLock

# A delivery due this long without any attempt starting anywhere means no worker is working.
DEAD_MAN_SECONDS = 300


def _database(s: Session) -> dict[str, Any]:
    s.execute(text("SELECT 1"))
    return {"ok": True}


def _broker() -> dict[str, Any]:
    url = get_settings().broker_url
    if url.startswith("redis"):
        import redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
        except redis.RedisError as exc:
            return {"ok": False, "detail": type(exc).__name__}
        return {"ok": True, "kind": "redis"}
    # The embedded broker is a table in a SQLite file beside the database: it answers when that does.
    return {"ok": True, "kind": url.split(":", 1)[0] or "embedded"}


def _beat(s: Session, now: datetime) -> dict[str, Any]:
    lock = s.get(ProcessLock, "beat")
    if lock is None or lock.expires_at < now:
        return {"ok": False, "holder": None, "detail": "no beat holds the lock; nothing claims due work"}
    return {"ok": True, "holder": lock.holder, "until": lock.expires_at.isoformat()}


def worker_check(s: Session, now: datetime) -> dict[str, Any]:
    late = now - timedelta(seconds=DEAD_MAN_SECONDS)
    # Only what a worker would take: a paused account's deliveries wait on purpose.
    oldest = s.scalar(select(func.min(Delivery.due_at))
                      .join(Account, Account.id == Delivery.account_id)
                      .where(Delivery.state.in_(("scheduled", "queued", "retry_wait")),
                             Account.status == "active"))
    last_start = s.scalar(select(func.max(Attempt.started_at)))
    silent = oldest is not None and oldest < late and (last_start is None or last_start < late)
    result: dict[str, Any] = {"ok": not silent, "oldest_due": oldest.isoformat() if oldest else None,
                              "last_attempt_started": last_start.isoformat() if last_start else None}
    if silent:
        result["detail"] = f"deliveries due for over {DEAD_MAN_SECONDS} s and no attempt started since"
    return result


def checks(now: datetime) -> dict[str, dict[str, Any]]:
    try:
        with session_scope() as s:
            found = {"database": _database(s), "beat": _beat(s, now), "worker": worker_check(s, now)}
    except Exception as exc:  # the database is down: say so, never the URL or statement
        found = {"database": {"ok": False, "detail": type(exc).__name__}}
    found["broker"] = _broker()
    return found


def ready(found: dict[str, dict[str, Any]]) -> bool:
    """Ready needs the database and a worker that is not silent; a missing beat is reported but a
    `crosspost serve` process alone (no beat on this host) is still ready to answer."""
    return found["database"]["ok"] and found.get("worker", {"ok": False})["ok"] and found["broker"]["ok"]
