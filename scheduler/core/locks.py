"""Singleton roles (the beat): one holder per database and per data directory, and who it is.

Two locks guard a role. A row in ``process_locks`` is a lease on the database: the holder renews it
while it lives; another process takes it over once it has expired, or at once when the holder is a
process on this machine that no longer exists. A ``flock`` on a file in the data directory guards the
embedded set-up (and the beat's schedule file there): the kernel releases it the moment its holder dies,
however it dies, and the file names the holder for the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from scheduler.core.db import is_postgres, session_scope
from scheduler.core.errors import UserError
from scheduler.core.models import ProcessLock, utcnow

log = logging.getLogger("crosspost.locks")

# A dead holder on another machine blocks the role this long; a live one renews every RENEW_EVERY.
LEASE = timedelta(seconds=30)
RENEW_EVERY = 5.0
_HOLDER_RE = re.compile(r"^(\d+)@(\S+) (\S+)$")


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    since: datetime

    @classmethod
    def me(cls) -> Holder:
        return cls(os.getpid(), socket.gethostname(), utcnow().replace(microsecond=0))

    def text(self) -> str:
        """How the holder is stored (``process_locks.holder`` and the lock file)."""
        return f"{self.pid}@{self.host} {self.since.isoformat()}"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        match = _HOLDER_RE.match(text.strip())
        if match is None:
            return None
        try:
            return cls(int(match[1]), match[2], datetime.fromisoformat(match[3]))
        except ValueError:
            return None

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since:%Y-%m-%d %H:%M:%S} UTC"

    def is_dead_here(self) -> bool:
        """This machine's process ``pid`` is gone (a process on another machine cannot be asked)."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False


class LockHeld(UserError):
    pass


def _described(name: str, stored: str, expires_at: datetime | None = None) -> str:
    holder = Holder.parse(stored)
    who = str(holder) if holder else repr(stored[:100])
    until = f" (lease until {expires_at:%H:%M:%S} UTC)" if expires_at else ""
    return f"{name}: already running: held by {who}{until}"


# -- the database lease ---------------------------------------------------------------------------
def acquire(name: str, me: Holder, now: datetime | None = None, *, stale: bool = False) -> None:
    """Take the role ``name`` for ``me`` or raise LockHeld naming the holder. ``stale``: the caller
    knows any other holder is gone (it holds the directory lock of the embedded database)."""
    now = now or utcnow()
    with session_scope() as s:
        insert = pg_insert if is_postgres(s) else sqlite_insert
        taken = s.execute(insert(ProcessLock).values(name=name, holder=me.text(), expires_at=now + LEASE)
                          .on_conflict_do_nothing(index_elements=["name"])).rowcount
        if taken == 1:
            return
        row = s.scalars(select(ProcessLock).where(ProcessLock.name == name).with_for_update()).one()
        current = Holder.parse(row.holder)
        if (stale or row.holder == me.text() or row.expires_at <= now
                or (current is not None and current.is_dead_here())):
            if row.holder != me.text():
                log.warning("%s: taking over from %s, which is gone", name, current or row.holder)
            row.holder, row.expires_at = me.text(), now + LEASE
            return
        raise LockHeld(_described(name, row.holder, row.expires_at))


def renew(name: str, me: Holder, now: datetime | None = None) -> bool:
    """Extend the lease; False when another process holds the role now."""
    now = now or utcnow()
    with session_scope() as s:
        row = s.scalars(select(ProcessLock).where(ProcessLock.name == name).with_for_update()).one_or_none()
        if row is None or row.holder != me.text():
            return False
        row.expires_at = now + LEASE
        return True


def release(name: str, me: Holder) -> None:
    with session_scope() as s:
        row = s.get(ProcessLock, name)
        if row is not None and row.holder == me.text():
            s.delete(row)


def holder_of(name: str) -> tuple[Holder | None, datetime] | None:
    with session_scope() as s:
        row = s.get(ProcessLock, name)
        return None if row is None else (Holder.parse(row.holder), row.expires_at)


# -- the data directory lock ----------------------------------------------------------------------
def lock_directory(data_dir: Path, name: str, me: Holder) -> int:
    """flock ``<data_dir>/<name>.lock`` for this process's lifetime (the fd is kept open on purpose);
    raise LockHeld naming the holder, or UserError if the directory cannot be written."""
    path = data_dir / f"{name}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise UserError(f"data directory: cannot write {data_dir}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            stored = os.read(fd, 512).decode(errors="replace")
        finally:
            os.close(fd)
        raise LockHeld(_described(name, stored) + f" (lock file {path})") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.text().encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise UserError(f"data directory: cannot write {path}: {exc.strerror}") from None
    return fd


# -- holding a role while the process lives -------------------------------------------------------
class Lease:
    """The role ``name`` held by this process: the directory lock, the database lease, and a thread
    that renews the lease. ``on_lost`` runs (once) if another process took the role over, or the
    lease could not be renewed before it expired; the holder must then stop acting in that role."""

    def __init__(self, name: str, data_dir: Path, on_lost: Callable[[], None], *,
                 database_here: bool = False) -> None:
        self.name, self.me, self.on_lost = name, Holder.me(), on_lost
        self._fd = lock_directory(data_dir, name, self.me)
        try:
            # database_here: the database is a file of this data directory, so whoever holds its row
            # held this directory's lock too, and is gone now that we have it.
            acquire(name, self.me, stale=database_here)
        except BaseException:
            os.close(self._fd)
            raise
        self._valid_until = utcnow() + LEASE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name=f"{name}-lease", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            now = utcnow()
            try:
                held = renew(self.name, self.me, now)
            except Exception as exc:  # whatever it was, this thread must not die of it
                # The database is away (or the pool exhausted): the lease stands until it expires, and
                # then another beat may start, so this one must stop first.
                reason = str(exc.orig if isinstance(exc, DBAPIError) else exc).strip().splitlines()
                log.warning("%s: cannot renew the lease: %s", self.name, reason[0] if reason else exc)
                if utcnow() + timedelta(seconds=RENEW_EVERY) < self._valid_until:
                    continue
                held = False
            if not held:
                log.error("%s: lost the lease (another process holds it now); stopping", self.name)
                self._stop.set()
                self.on_lost()
                return
            self._valid_until = now + LEASE

    def release(self) -> None:
        self._stop.set()
        with contextlib.suppress(DBAPIError):
            release(self.name, self.me)
        with contextlib.suppress(OSError):
            os.close(self._fd)
