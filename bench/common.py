"""What every benchmark shares: the machine's description and load, one private crosspost environment per
run (its own PostgreSQL database, created and dropped, and a Redis database number of its own that only
FLUSHDB ever clears), stand-ins that note when each publish request arrived, `crosspost` subprocesses,
bulk rows, the RSS of a process tree and percentiles.

The environment of a run holds the production defaults of every setting except where the data lives
(database, broker, data directory, key) and what a benchmark varies on purpose.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import itertools
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis
from celery import Celery
from cryptography.fernet import Fernet
from sqlalchemy import func, insert, select

from adapters.base import Credentials
from adapters.standins import StandIn, standin_class
from adapters.standins.base import Request
from config.settings import reset_settings
from scheduler.cli.main import _worker_argv, setup_logging
from scheduler.core.db import dispose_engines, migrate, session_scope
from scheduler.core.models import Attempt, Delivery, Story, utcnow
from scheduler.matrix import accounts

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("CROSSPOST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# Other engineers use the same Redis: a database number of our own, cleared with FLUSHDB only.
# CROSSPOST_BENCH_REDIS=private starts a redis-server of this run's own on a free port instead, which
# no one else's FLUSHALL can empty halfway through a measurement.
REDIS_WANTED = os.environ.get("CROSSPOST_BENCH_REDIS", "redis://127.0.0.1:6379/11")
_private_redis: list[tuple[subprocess.Popen[bytes], str]] = []
PLATFORMS = ("mastodon", "bluesky", "telegram")
# Every benchmark story carries "bmk<n>x" in its text, so a stand-in can tell which story a request is for.
MARK_RE = re.compile(rb"bmk(\d+)x")


# -- the machine ----------------------------------------------------------------------------------
def redis_url() -> str:
    if REDIS_WANTED != "private":
        return REDIS_WANTED
    if not _private_redis:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        _private_redis.append((proc, f"redis://127.0.0.1:{port}/0"))
        atexit.register(_stop_private_redis)
        url = _private_redis[0][1]
        wait_until(lambda: _pings(url), 10, 0.1, "the private redis-server")
    return _private_redis[0][1]


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _stop_private_redis() -> None:
    for proc, _url in _private_redis:
        proc.terminate()
        proc.wait(10)


def flushalls() -> int:
    """FLUSHALL commands the Redis server has run: one during a measurement empties its queue."""
    stats = redis.Redis.from_url(redis_url(), socket_connect_timeout=2).info("commandstats")
    return int(stats.get("cmdstat_flushall", {}).get("calls", 0))


def load() -> str:
    """The 1, 5 and 15 minute load averages: other engineers share this machine."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    info: dict[str, str] = {"nproc": str(os.cpu_count()), "cpu": cpu,
                            "python": platform.python_version()}
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgresql"] = str(row[0]) if row else "?"
    except psycopg.Error as exc:
        info["postgresql"] = f"unreachable ({exc.__class__.__name__})"
    try:
        info["redis"] = str(redis.Redis.from_url(redis_url(), socket_connect_timeout=2).info("server")
                            ["redis_version"])
    except redis.RedisError as exc:
        info["redis"] = f"unreachable ({exc.__class__.__name__})"
    return info


def print_machine() -> None:
    m = machine()
    where = "a private redis-server" if REDIS_WANTED == "private" else redis_url()
    print(f"machine: nproc {m['nproc']}, {m['cpu']}, Python {m['python']}, PostgreSQL {m['postgresql']}, "
          f"Redis {m['redis']} ({where}); load {load()}", flush=True)


# -- numbers --------------------------------------------------------------------------------------
def percentile(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.5,
               what: str = "condition") -> float:
    """Poll ``predicate`` until it is true; return the seconds waited."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (a prefork worker's children count too)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            # The command name is in parentheses and may hold spaces: split after the last ')'.
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_rss(pids: Iterable[int]) -> int:
    """Resident bytes of the process trees of ``pids``."""
    total = 0
    for pid in pids:
        for member in _tree(pid):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{member}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
    return total


_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu(pids: Iterable[int]) -> float:
    """CPU seconds (user + system) the process trees of ``pids`` have used so far."""
    total = 0
    for pid in pids:
        for member in _tree(pid):
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


# -- stand-ins that note request starts -----------------------------------------------------------
def _marking(base: type[StandIn]) -> type[StandIn]:
    class Marking(base):  # type: ignore[valid-type, misc]
        """The platform's stand-in, also noting when the first request naming each story arrived."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.marks: dict[int, float] = {}
            super().__init__(*args, **kwargs)
            # socketserver listens with a backlog of 5: a burst of new connections overflows it and
            # the dropped SYNs come back a second later, which would be the stand-in's delay, not ours.
            self._server.socket.listen(1024)

        def _note_request(self, req: Request) -> None:
            arrived = time.time()
            super()._note_request(req)
            found = MARK_RE.search(req.body)
            if found:
                with self.lock:
                    self.marks.setdefault(int(found.group(1)), arrived)

    Marking.__name__ = f"Marking{base.__name__}"
    return Marking


def start_standins(latency: float = 0.0) -> dict[str, StandIn]:
    """One stand-in per platform in this process; ``latency``: seconds each answers after."""
    started: dict[str, StandIn] = {}
    for name in PLATFORMS:
        standin = _marking(standin_class(name))()
        standin.latency = latency
        started[name] = standin.start()
    return started


def stop_standins(standins: dict[str, StandIn]) -> None:
    for standin in standins.values():
        standin.stop()


def marks(standins: dict[str, StandIn]) -> dict[int, float]:
    """Story mark -> when its first publish request arrived (epoch seconds), over every platform."""
    out: dict[int, float] = {}
    for standin in standins.values():
        with standin.lock:
            out.update(standin.marks)  # type: ignore[attr-defined]
    return out


def duplicates(standins: dict[str, StandIn]) -> int:
    return sum(standin.duplicates() for standin in standins.values())


# -- one run's environment ------------------------------------------------------------------------
class Run:
    """A private crosspost environment: data directory, database (PostgreSQL or the embedded SQLite),
    broker (Redis db of our own, or the embedded SQLAlchemy transport), key, and the processes started
    in it, all removed when the block ends."""

    def __init__(self, backend: str = "postgres", **settings: object) -> None:
        if backend not in ("postgres", "sqlite"):
            raise ValueError(f"backend: {backend!r} is neither postgres nor sqlite")
        self.backend = backend
        self.settings = {f"CROSSPOST_{k.upper()}": str(v) for k, v in settings.items()}
        self.dir = Path(tempfile.mkdtemp(prefix=f"crosspost-bench-{backend}-"))
        self.db_name: str | None = None
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.vars: dict[str, str] = {}

    def __enter__(self) -> Run:
        # A plain `kill` of the benchmark must still stop its workers and drop its database.
        signal.signal(signal.SIGTERM, _raise_exit)
        signal.signal(signal.SIGHUP, _raise_exit)
        if self.backend == "postgres":
            self.db_name = f"cp_bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.db_name}"')
            database = f"{PG_ADMIN.rsplit('/', 1)[0]}/{self.db_name}".replace(
                "postgresql://", "postgresql+psycopg://")
            broker = redis_url()
            flush_redis()
        else:
            database = f"sqlite:///{self.dir / 'crosspost.db'}"
            broker = f"sqla+sqlite:///{self.dir / 'broker.db'}"
        self.vars = {
            "CROSSPOST_DATA_DIR": str(self.dir),
            "CROSSPOST_DATABASE_URL": database,
            "CROSSPOST_BROKER_URL": broker,
            "CROSSPOST_SECRET_KEY": Fernet.generate_key().decode(),
            **self.settings,
        }
        # Nothing from the caller's environment may change what is measured.
        for key in [k for k in os.environ if k.startswith("CROSSPOST_")]:
            del os.environ[key]
        os.environ.update(self.vars)
        reset_settings()
        dispose_engines()
        migrate()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        for proc, _log in self.procs:
            self.stop(proc)
        if exc is not None:
            print(self.log_tail(), file=sys.stderr)
        dispose_engines()
        if self.db_name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            flush_redis()
        reset_settings()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def database_url(self) -> str:
        return self.vars["CROSSPOST_DATABASE_URL"]

    def child_env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CROSSPOST_")}
        return {**base, **self.vars, **extra, "PYTHONPATH": str(ROOT)}

    # -- processes --------------------------------------------------------------------------------
    def spawn(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        """``python argv...`` in its own session (so a stop reaches its children), logging to a file."""
        log = self.dir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=self.child_env(), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((proc, log))
        return proc

    def crosspost(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        return self.spawn(["-m", "scheduler.cli", *args], name)

    def workers(self, n: int, pool: str | None = None, concurrency: int | None = None,
                argv: list[str] | None = None) -> list[subprocess.Popen[bytes]]:
        """``n`` worker processes (``crosspost worker`` unless ``argv`` names another command)."""
        options = [*(["--pool", pool] if pool else []),
                   *(["--concurrency", str(concurrency)] if concurrency else [])]
        started = [self.spawn([*(argv or ["-m", "scheduler.cli", "worker"]), *options], f"worker{i}")
                   for i in range(n)]
        self.wait_logged(started, b" ready.", 90)
        return started

    def wait_logged(self, procs: list[subprocess.Popen[bytes]], marker: bytes, timeout: float) -> None:
        logs = [log for proc, log in self.procs if proc in procs]

        def logged() -> bool:
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"process {proc.args} exited with {proc.returncode}")
            return all(marker in log.read_bytes() for log in logs)

        wait_until(logged, timeout, 0.2, f"{marker.decode().strip()} in {', '.join(p.name for p in logs)}")

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
        """Warm shutdown (SIGTERM to the process group we started), then SIGKILL if it hangs."""
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "scheduler.cli", *args], cwd=ROOT, env=self.child_env(),
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"crosspost {' '.join(args)} failed: {done.stderr[-2000:]}")
        return done

    def log_tail(self, chars: int = 2500) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}"
                         for _proc, log in self.procs if log.exists())

    def count_in_logs(self, text: str, prefix: str = "worker") -> int:
        needle = text.encode()
        return sum(log.read_bytes().count(needle) for _proc, log in self.procs
                   if log.name.startswith(prefix) and log.exists())


    def pg_counts(self) -> tuple[int, float]:
        """(transactions committed or rolled back on this run's database so far, CPU seconds used by its
        live server processes): what one publish costs PostgreSQL, for the "at scale" estimate."""
        if not self.db_name:
            return 0, 0.0
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                               (self.db_name,)).fetchone()
            pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                                               (self.db_name,))]
        return (int(row[0]) if row else 0), tree_cpu(pids)

    def pg_sessions(self) -> int:
        """PostgreSQL sessions opened on this run's database so far (a pool too small to hold every
        thread's connection opens one per checkout)."""
        if not self.db_name:
            return 0
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s",
                               (self.db_name,)).fetchone()
        return int(row[0]) if row else 0


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def flush_redis() -> None:
    """Clear our own Redis database number only (never FLUSHALL: the server is shared)."""
    redis.Redis.from_url(redis_url(), socket_connect_timeout=3).flushdb()


# -- rows -----------------------------------------------------------------------------------------
def make_accounts(standins: dict[str, StandIn], n: int) -> list[int]:
    """``n`` accounts, platforms in turn, each created on its platform's stand-in first."""
    ids = []
    with session_scope() as s:
        for i in range(n):
            name = PLATFORMS[i % len(PLATFORMS)]
            handle = f"@bench{i}" if name == "telegram" else f"bench{i}"
            creds = Credentials(standins[name].add_account(handle, followers=i))
            ids.append(accounts.add(s, name, handle, creds, base_url=standins[name].url).id)
    return ids


def story_text(mark: int) -> str:
    return f"Bench story bmk{mark}x: the council votes on the budget tonight, live updates to follow."


def add_stories(stories: list[tuple[int, datetime, list[int]]], chunk: int = 5000) -> None:
    """Stories ``(mark, due, account ids)``, each with one scheduled delivery per account, in bulk."""
    now = utcnow()
    with session_scope() as s:
        story_ids = s.scalars(
            insert(Story).returning(Story.id, sort_by_parameter_order=True),
            [{"text": story_text(mark), "due_at": due, "created_at": now, "targets": ["bench"],
              "variants": {}} for mark, due, _ in stories],
        ).all()
        rows = [{"story_id": sid, "account_id": account, "state": "scheduled", "due_at": due,
                 "created_at": now, "updated_at": now}
                for sid, (_, due, account_ids) in zip(story_ids, stories, strict=True)
                for account in account_ids]
        for start in range(0, len(rows), chunk):
            s.execute(insert(Delivery), rows[start:start + chunk])


def states() -> dict[str, int]:
    with session_scope() as s:
        return dict(s.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).tuples().all())


def published_window() -> tuple[float, float, int]:
    """(first attempt start, last published attempt end, attempts) as epoch seconds."""
    with session_scope() as s:
        first, attempts = s.execute(select(func.min(Attempt.started_at), func.count())).one()
        last = s.scalar(select(func.max(Attempt.ended_at)).where(Attempt.outcome == "published"))
    if first is None or last is None:
        raise RuntimeError("no attempt was recorded")
    return _epoch(first), _epoch(last), attempts


def closest_starts() -> float | None:
    """The shortest time between two attempts' starts on one account (seconds), to check the spacing
    that ACCOUNT_MIN_INTERVAL promises; None with fewer than two attempts on every account."""
    with session_scope() as s:
        rows = s.execute(select(Delivery.account_id, Attempt.started_at)
                         .join(Delivery, Delivery.id == Attempt.delivery_id)
                         .order_by(Delivery.account_id, Attempt.started_at)).all()
    gaps = [_epoch(b) - _epoch(a) for (x, a), (y, b) in itertools.pairwise(rows) if x == y]
    return min(gaps) if gaps else None


def _epoch(value: datetime) -> float:
    # An aggregate may come back without the column type's conversion: naive, but UTC.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def worker_main(celery: Celery, prog: str) -> None:
    """``prog worker [--pool P] [--concurrency N]``: a worker of ``celery`` with crosspost's options."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("command", choices=["worker"])
    parser.add_argument("--pool")
    parser.add_argument("--concurrency", type=int)
    args = parser.parse_args()
    setup_logging()
    celery.start(_worker_argv(args.pool, args.concurrency))
