"""Leases that live as long as the work: one thread per worker process renews the lease of every
attempt that process has in flight, so the reaper takes only what dead workers left, never what a
slow upload is still doing. No adapter knows the lease length.

The renewal is a compare-and-set on (delivery, attempt number, ``publishing``): a lease the reaper
or an operator already took is not revived, and the attempt learns so at its next progress save.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import and_, or_, update

from config.settings import get_settings
from scheduler.core.db import session_scope
from scheduler.core.deliveries import Lease
from scheduler.core.models import Delivery, utcnow

log = logging.getLogger("crosspost.heartbeat")


def renew(leases: list[Lease], lease_seconds: float) -> int:
    """Push the leases' expiry ``lease_seconds`` ahead; return how many were still held."""
    if not leases:
        return 0
    now = utcnow()
    with session_scope() as s:
        return s.execute(
            update(Delivery)
            .where(Delivery.state == "publishing",
                   or_(*(and_(Delivery.id == lease.delivery_id, Delivery.attempts == lease.attempt)
                         for lease in leases)))
            .values(lease_until=now + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        ).rowcount or 0


class Heartbeat:
    """The leases this process holds, renewed every third of the lease by a daemon thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[int, int], Lease] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    @contextmanager
    def holding(self, lease: Lease) -> Iterator[None]:
        with self._lock:
            self._held[(lease.delivery_id, lease.attempt)] = lease
            self._ensure_thread()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop((lease.delivery_id, lease.attempt), None)

    def held(self) -> list[Lease]:
        with self._lock:
            return list(self._held.values())

    def _ensure_thread(self) -> None:
        # A forked child (prefork pool) inherits the dict but not the thread: start its own.
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="crosspost-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = 0.0
        while True:
            # Short naps, so a change of the lease length (or a first lease) is seen within a second.
            self._wake.wait(0.5)
            leases = self.held()
            if not leases:
                continue  # idle: not even the settings are read
            lease_seconds = get_settings().lease_seconds
            if time.monotonic() - last < lease_seconds / 3:
                continue
            last = time.monotonic()
            try:
                renew(leases, lease_seconds)
            except Exception as exc:  # the database is away: try again next beat, leases permitting
                log.warning("heartbeat: could not renew %d leases: %s", len(leases), type(exc).__name__)


heartbeat = Heartbeat()
