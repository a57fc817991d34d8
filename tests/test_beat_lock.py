"""One beat, always: `crosspost run` leaves no beat behind however it dies, and a second `run` or `beat`
on the same data directory or database refuses to start, naming the holder. Real processes, real
SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.core import locks
from scheduler.core.locks import Holder, Lease, LockHeld
from scheduler.core.models import utcnow
from tests.conftest import Env, free_port, wait_for

pytestmark = pytest.mark.workers


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``: everything a `start_new_session` child started,
    whatever its parent is now (an orphaned beat is re-parented to PID 1 but keeps its session)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            found.append(int(entry.name))
    return found


def broker_messages(env: Env) -> int:
    with sqlite3.connect(env.data_dir / "broker.db", timeout=30) as conn:
        try:
            return conn.execute("SELECT count(*) FROM kombu_message").fetchone()[0]
        except sqlite3.OperationalError:  # no table yet
            return 0


@pytest.fixture
def spawned(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        for pid in session_members(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def start(env: Env, spawned: list[subprocess.Popen[bytes]], log: Path, *args: str) \
        -> subprocess.Popen[bytes]:
    proc = env.spawn(*args, log=log)
    spawned.append(proc)
    return proc


def holder_pid() -> int | None:
    held = locks.holder_of("beat")
    return held[0].pid if held and held[0] else None


def wait_ticking(env: Env, proc: subprocess.Popen[bytes], log: Path) -> None:
    try:
        wait_for(lambda: holder_pid() == proc.pid and "beat: Starting" in log.read_text(errors="replace"),
                 90, what="the beat of `run` to start")
    except AssertionError:
        raise AssertionError(log.read_text(errors="replace")[-3000:]) from None


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_kill9_of_run_leaves_no_beat(sqlite_env: Env, spawned: list[subprocess.Popen[bytes]],
                                     tmp_path: Path, pool: str) -> None:
    log = tmp_path / "run.log"
    run = start(sqlite_env, spawned, log, "run", "--pool", pool, "--concurrency", "1")
    wait_ticking(sqlite_env, run, log)
    os.kill(run.pid, signal.SIGKILL)  # the process only, as an OOM killer or `kill -9 PID` would
    run.wait(10)
    # Nothing of it survives: no orphaned beat (or pool child) in its session...
    wait_for(lambda: not session_members(run.pid), 15, what="every process of `run` gone")
    # ...and nothing ticks: with no worker left, every tick a surviving beat sent would pile up.
    before = broker_messages(sqlite_env)
    time.sleep(3)
    assert broker_messages(sqlite_env) == before
    # The role is free at once: a new `run` takes it over from the dead one without waiting for its
    # lease to expire.
    log2 = tmp_path / "run2.log"
    again = start(sqlite_env, spawned, log2, "run", "--concurrency", "1")
    wait_ticking(sqlite_env, again, log2)
    assert "taking over from pid" in log2.read_text(errors="replace")


def test_second_run_or_beat_on_one_data_directory_is_refused(sqlite_env: Env,
                                                             spawned: list[subprocess.Popen[bytes]],
                                                             tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    run = start(sqlite_env, spawned, log, "run", "--concurrency", "1")
    wait_ticking(sqlite_env, run, log)
    for command in (["run"], ["beat"]):
        second = sqlite_env.cli(*command, timeout=60)
        assert second.returncode == 2, second.stderr
        line = second.stderr.strip()
        assert line.count("\n") == 0 and line.startswith("error: beat: already running"), line
        assert f"pid {run.pid}" in line and socket.gethostname() in line and " since " in line, line
    assert run.poll() is None and holder_pid() == run.pid  # the first one is untouched
    # A clean stop hands the role back: the next `beat` starts without waiting for the lease.
    os.kill(run.pid, signal.SIGTERM)
    run.wait(60)
    assert locks.holder_of("beat") is None
    log2 = tmp_path / "beat.log"
    beat = start(sqlite_env, spawned, log2, "beat")
    wait_for(lambda: holder_pid() == beat.pid, 60, what="the new beat to hold the role")


def test_second_beat_on_one_postgres_database_is_refused(pg_env: Env, redis_url: str,
                                                         spawned: list[subprocess.Popen[bytes]],
                                                         tmp_path: Path) -> None:
    """Two machines (here: two data directories) sharing one database: the lease in the database
    decides, and the refusal names the holder."""
    first = start(pg_env, spawned, tmp_path / "beat.log", "beat")
    wait_for(lambda: holder_pid() == first.pid, 60, what="the first beat to hold the role")
    other_dir = tmp_path / "elsewhere"
    other_dir.mkdir()
    other = Env(other_dir, pg_env.database_url, pg_env.vars["CROSSPOST_BROKER_URL"])
    other.vars["CROSSPOST_SECRET_KEY"] = pg_env.vars["CROSSPOST_SECRET_KEY"]
    for command in (["beat"], ["run"]):
        second = other.cli(*command, timeout=60)
        assert second.returncode == 2, second.stderr
        assert f"held by pid {first.pid} on {socket.gethostname()}" in second.stderr, second.stderr
        assert "lease until" in second.stderr
    assert first.poll() is None


# -- the lease itself, on both databases ----------------------------------------------------------
def foreign(pid: int = 4242) -> Holder:
    return Holder(pid, "some-other-machine", utcnow().replace(microsecond=0))


def test_a_live_foreign_holder_is_named_and_an_expired_one_taken_over(db_env: Env) -> None:
    other, me = foreign(), Holder.me()
    now = utcnow()
    locks.acquire("beat", other, now)
    with pytest.raises(LockHeld) as held:
        locks.acquire("beat", me, now + timedelta(seconds=10))
    assert "pid 4242 on some-other-machine since" in str(held.value)
    # Its lease ran out without a renewal: it is gone, and the role changes hands.
    locks.acquire("beat", me, now + locks.LEASE + timedelta(seconds=1))
    assert locks.holder_of("beat")[0] == me  # type: ignore[index]
    assert not locks.renew("beat", other)  # the old holder learns it lost the role
    assert locks.renew("beat", me)


def test_a_dead_holder_on_this_machine_is_replaced_at_once(db_env: Env) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = Holder(gone.pid, socket.gethostname(), utcnow())
    locks.acquire("beat", dead)
    me = Holder.me()
    locks.acquire("beat", me)  # its lease has not expired, but its process is gone
    assert locks.holder_of("beat")[0] == me  # type: ignore[index]


def test_a_lease_that_was_taken_over_stops_its_holder(db_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locks, "RENEW_EVERY", 0.2)
    lost = threading.Event()
    lease = Lease("beat", db_env.data_dir, on_lost=lost.set)
    try:
        assert not lost.wait(1)  # renewing while it holds the role
        # Another holder took the role (this one was stopped for longer than its lease, say). One
        # holder for both uses: built twice, its ``since`` could fall on either side of a second.
        taker = foreign()
        locks.acquire("beat", taker, utcnow() + locks.LEASE + timedelta(seconds=1))
        assert lost.wait(5)
    finally:
        lease.release()
    assert locks.holder_of("beat")[0] == taker  # type: ignore[index] - release never takes others'


# -- an unwritable data directory -----------------------------------------------------------------
def make_unwritable(path: Path) -> None:
    if os.geteuid() != 0:
        path.chmod(0o500)
        return
    # root writes through any mode: the immutable attribute stops it (as a read-only mount would).
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
        pytest.skip("cannot make a directory unwritable for root here (no chattr +i)")


def make_writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=False)
    else:
        path.chmod(0o700)


def test_a_worker_that_cannot_reach_its_database_fails_as_an_outage(pg_env: Env) -> None:
    """A database that is down (restarting) at a worker's start is not a set-up error: exit status 1,
    which a supervisor's restart-on-failure retries, with the driver's words on one line."""
    pg_env.set(database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing")
    result = pg_env.cli("worker", timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("error: database: ") and result.stderr.count("\n") == 1, result.stderr
    assert "refused" in result.stderr and "ready" not in result.stdout + result.stderr


@pytest.mark.parametrize("command", [["run"], ["worker"], ["beat"]], ids=lambda c: c[0])
def test_unwritable_data_directory_fails_at_once(sqlite_env: Env, command: list[str]) -> None:
    make_unwritable(sqlite_env.data_dir)
    try:
        started = time.monotonic()
        result = sqlite_env.cli(*command, timeout=60)
        elapsed = time.monotonic() - started
    finally:
        make_writable(sqlite_env.data_dir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: data directory: cannot write {sqlite_env.data_dir}"), \
        result.stderr
    assert "ready" not in result.stdout + result.stderr
    assert elapsed < 30
