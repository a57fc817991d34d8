"""Private servers and processes for the chaos harness: a Redis and a PostgreSQL cluster that only this
run uses (so FLUSHALL and restarts hurt no one else), and the fleet of `crosspost worker` processes.

Every child is started with a parent-death signal, so a harness that is itself killed leaves no
worker, Redis or PostgreSQL running behind it.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis

PR_SET_PDEATHSIG = 1
# A process that keeps dying by itself is a broken set-up, not chaos: stop the run.
MAX_UNEXPECTED_EXITS = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """A preexec function that asks the kernel to send ``sig`` to the child when the harness dies.
    It runs after the user switch (which would clear the setting), just before exec."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return preexec


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")


# -- Redis ----------------------------------------------------------------------------------------
class PrivateRedis:
    """A redis-server on a free port, without persistence: a restart forgets everything, like a flush
    that also drops every connection."""

    def __init__(self, root: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.binary = binary
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.root / "redis.log", "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.root), "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent(signal.SIGKILL))
        wait_until(self._answers, 20, "redis-server start")

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def flushall(self) -> None:
        redis.Redis.from_url(self.url, socket_connect_timeout=2).flushall()


# -- PostgreSQL -----------------------------------------------------------------------------------
def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(x) for x in Path(p).parts[-3].split(".") if x.isdigit()])
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb into the run's directory, trust auth, a free port).

    The postmaster runs in the foreground as a child of the harness, as ``postgres`` when the harness
    is root (PostgreSQL refuses to run as root), so a restart is: signal it, wait, start it again.
    """

    restartable = True

    def __init__(self, root: Path, dbname: str = "crosspost") -> None:
        bindir = _pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries (initdb) are not installed")
        self.bindir = bindir
        self.dir = root / "pg"
        self.data = self.dir / "data"
        self.port = free_port()
        self.dbname = dbname
        self.proc: subprocess.Popen[bytes] | None = None
        self.owner: dict[str, object] = {}
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root needs a 'postgres' user to own the private cluster") \
                    from None
            self.owner = {"user": "postgres", "group": "postgres", "extra_groups": []}

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.dbname}"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.dbname}"

    def init(self) -> None:
        self.dir.mkdir(parents=True)
        if self.owner:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run([str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True,
                       **self.owner)  # type: ignore[call-overload]
        self.start()
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')

    def start(self) -> None:
        log = open(self.dir / "postgres.log", "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(  # type: ignore[call-overload]
            [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.dir),
             # fsync and full-page writes only guard against the machine crashing, which is not among
             # the faults. synchronous_commit stays on: an immediate shutdown would otherwise lose
             # commits PostgreSQL had already acknowledged, and crosspost (rightly) trusts those.
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off",
             "-c", "max_connections=300", "-c", "shared_buffers=64MB"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent(signal.SIGQUIT), **self.owner)
        wait_until(self._answers, 60, "PostgreSQL start")

    def _answers(self) -> bool:
        try:
            with psycopg.connect(self.admin_dsn, connect_timeout=1):
                return True
        except psycopg.Error:
            return False

    def stop(self, immediate: bool = False) -> None:
        """Fast shutdown (SIGINT: sessions are ended, then a checkpoint) or immediate (SIGQUIT: a crash,
        recovered from the WAL on the next start)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT if immediate else signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def terminate_sessions(self) -> int:
        """pg_terminate_backend on every session of the crosspost database but this one."""
        with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", (self.dbname,)).fetchall()
        return len(rows)

    def cleanup(self) -> None:
        self.stop(immediate=True)


class SharedPostgres(PrivatePostgres):
    """Fallback: a private database on a shared server; it is never restarted, only its own sessions
    are terminated."""

    restartable = False

    def __init__(self, admin_dsn: str) -> None:
        self._admin = admin_dsn
        self.dbname = f"cp_chaos_{uuid.uuid4().hex[:10]}"
        self.proc = None

    @property
    def admin_dsn(self) -> str:
        return self._admin

    @property
    def dsn(self) -> str:
        return f"{self._admin.rsplit('/', 1)[0]}/{self.dbname}"

    @property
    def url(self) -> str:
        return self.dsn.replace("postgresql://", "postgresql+psycopg://", 1)

    def init(self) -> None:
        with psycopg.connect(self._admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')

    def start(self) -> None:
        pass

    def stop(self, immediate: bool = False) -> None:
        self.terminate_sessions()

    def cleanup(self) -> None:
        with contextlib.suppress(psycopg.Error), psycopg.connect(self._admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')


# -- crosspost processes --------------------------------------------------------------------------
class Fleet:
    """N `crosspost worker` processes in fixed slots and one `crosspost beat`.

    A process the harness killed is replaced at once; one that exits on its own is an *unexpected
    exit*: it is recorded (with the tail of its log) and replaced too, so the run goes on.
    """

    def __init__(self, env: dict[str, str], logs: Path, workers: int, concurrency: int) -> None:
        self.env = env
        self.logs = logs
        self.size = workers
        self.concurrency = concurrency
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * workers
        self.beat: subprocess.Popen[bytes] | None = None
        self.started = 0
        self.unexpected: list[dict[str, object]] = []
        # When a worker died (killed, or exited by itself), as Unix time: an attempt whose lease ran
        # out with no death while it ran means a live worker lost its lease.
        self.deaths: list[float] = []
        logs.mkdir(parents=True, exist_ok=True)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen([sys.executable, "-m", "scheduler.cli", *args], env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent(signal.SIGKILL))
        log.close()
        return proc

    def start_worker(self, slot: int) -> None:
        self.started += 1
        self.workers[slot] = self._spawn(f"worker-{slot}", "worker", "--concurrency", str(self.concurrency))

    def start(self) -> None:
        for slot in range(self.size):
            self.start_worker(slot)
        self.beat = self._spawn("beat", "beat")

    def wait_ready(self, timeout: float) -> None:
        """Until every worker has said it is ready (its log's "ready." line)."""
        def ready() -> bool:
            self.check()
            return all("ready." in (self.logs / f"worker-{slot}.log").read_text(errors="replace")
                       for slot in range(self.size))
        wait_until(ready, timeout, "workers ready")

    def pids(self) -> dict[int, int]:
        """Live worker pid -> slot."""
        return {p.pid: slot for slot, p in enumerate(self.workers) if p is not None and p.poll() is None}

    def kill(self, slot: int) -> None:
        """kill -9 the worker in ``slot`` and start a new one in its place."""
        proc = self.workers[slot]
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            self.deaths.append(time.time())
        self.start_worker(slot)

    def kill_beat(self) -> None:
        if self.beat is not None and self.beat.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.beat.pid, signal.SIGKILL)
            self.beat.wait(10)
        self.beat = self._spawn("beat", "beat")

    def check(self) -> None:
        """Replace any process that exited without being killed."""
        for slot, proc in enumerate(self.workers):
            if proc is not None and proc.poll() is not None:
                self.deaths.append(time.time())  # at the latest: it was alive at the last check
                self._note_exit(f"worker-{slot}", proc.returncode)
                self.start_worker(slot)
        if self.beat is not None and self.beat.poll() is not None:
            self._note_exit("beat", self.beat.returncode)
            self.beat = self._spawn("beat", "beat")

    def _note_exit(self, name: str, code: int | None) -> None:
        text = (self.logs / f"{name}.log").read_text(errors="replace")
        self.unexpected.append({"process": name, "exit": code, "log_tail": text[-1500:]})
        if len(self.unexpected) > MAX_UNEXPECTED_EXITS:
            raise RuntimeError(f"{len(self.unexpected)} processes exited by themselves; the last, {name} "
                               f"({code}), logged:\n{text[-1500:]}")

    def stop(self) -> None:
        for proc in [*self.workers, self.beat]:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def pids_connected_to(port: int, pids: list[int]) -> list[int]:
    """Which of ``pids`` hold an established TCP connection to 127.0.0.1:``port`` right now
    (read from /proc: the kernel's socket table, then each process's open descriptors)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f, None)
            for line in f:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01":  # 01: ESTABLISHED
                    inodes.add(fields[9])
    if not inodes:
        return []
    holders = []
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        holders.append(pid)
                        break
    return holders
