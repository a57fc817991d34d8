"""Which worker processes are alive and how many publishes each runs at once.

The tick hands a burst out several deliveries per message only beyond the fleet's slots
(``ticks.messages``): too few slots assumed would leave threads idle, too many would forgo the
batching. Each worker announces its slots and renews them while it lives, so the tick sizes its
messages to the workers that are actually there, without a setting to keep in step with the fleet
(``PUBLISH_SLOTS`` still overrides). A worker that dies without saying so drops out after ``TTL``.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from scheduler.core.db import is_postgres, session_scope
from scheduler.core.models import WorkerSlots, utcnow

log = logging.getLogger("crosspost.workers")

TTL = timedelta(seconds=60)
RENEW_EVERY = 20.0


def announce(s: Session, name: str, slots: int, now: datetime) -> None:
    insert = pg_insert if is_postgres(s) else sqlite_insert
    stmt = insert(WorkerSlots).values(name=name, slots=slots, expires_at=now + TTL)
    s.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                         set_={"slots": slots, "expires_at": now + TTL}))


def withdraw(s: Session, name: str) -> None:
    s.execute(delete(WorkerSlots).where(WorkerSlots.name == name))


def live_slots(s: Session, now: datetime) -> int:
    """The publish slots of every worker alive within ``TTL``; 0 when none has announced itself."""
    return int(s.scalar(select(func.coalesce(func.sum(WorkerSlots.slots), 0))
                        .where(WorkerSlots.expires_at > now)) or 0)


class Presence:
    """This process's announcement, renewed every ``RENEW_EVERY`` seconds by a daemon thread until
    :meth:`stop` withdraws it."""

    def __init__(self, name: str, slots: int) -> None:
        self.name, self.slots = name, slots
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crosspost-presence", daemon=True)

    def start(self) -> Presence:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            with session_scope() as s:
                withdraw(s, self.name)
        except Exception as exc:  # the database is away: the row expires by itself
            log.warning("workers: could not withdraw %s: %s", self.name, type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with session_scope() as s:
                    announce(s, self.name, self.slots, utcnow())
            except Exception as exc:  # the database is away: try again at the next renewal
                log.warning("workers: could not announce %s: %s", self.name, type(exc).__name__)
            self._stop.wait(RENEW_EVERY)
