"""Shared fixtures: real SQLite files, a real PostgreSQL database per test module, real Redis.

Redis is a private server started for the run (never the shared one: tests flush it).
When CI=true, a missing Redis or PostgreSQL fails the tests that need them; elsewhere they skip.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
import redis
from cryptography.fernet import Fernet

from config.settings import reset_settings
from scheduler.core.db import dispose_engines, migrate

PG_ADMIN = os.environ.get("CROSSPOST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis_server(server: str, port: int) -> subprocess.Popen[bytes]:
    """``redis-server`` on loopback ``port``, keeping nothing on disk; returned once it answers (or
    after 10 s: whoever uses it then meets the refused connection)."""
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--daemonize", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port, socket_connect_timeout=0.5).ping()
            break
        except redis.RedisError:
            time.sleep(0.05)
    return proc


def _private_redis() -> str:
    """A Redis server of this test run's own on a free loopback port, so the tests may flush it
    without touching whatever else uses the machine's Redis (CROSSPOST_TEST_REDIS overrides).

    Under pytest-xdist every worker starts its own: the workers inherit the controller's environment,
    and two workers flushing one server would lose each other's messages."""
    owner = os.environ.get("PYTEST_XDIST_WORKER", "main")
    given = os.environ.get("CROSSPOST_TEST_REDIS")
    # _CROSSPOST_TEST_REDIS_OWNER marks a URL this file set: a worker does not reuse its controller's.
    if given and os.environ.get("_CROSSPOST_TEST_REDIS_OWNER") in (None, owner):
        return given
    server = shutil.which("redis-server")
    if server is None:
        return "redis://127.0.0.1:1/0"  # nothing listens there: the tests that need Redis say so
    port = free_port()
    atexit.register(start_redis_server(server, port).kill)
    url = f"redis://127.0.0.1:{port}/0"
    # Child processes (workers) and test modules read it from here.
    os.environ["CROSSPOST_TEST_REDIS"] = url
    os.environ["_CROSSPOST_TEST_REDIS_OWNER"] = owner
    return url


REDIS_URL = _private_redis()


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc}); start it or run the README's test command"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


def _pg_url(dbname: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{dbname}"


@pytest.fixture(scope="session")
def pg_admin() -> str:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        _unavailable("PostgreSQL", exc)
    return PG_ADMIN


def create_pg_database(admin: str, template: str | None = None) -> str:
    name = f"cp_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


def drop_pg_database(admin: str, name: str) -> None:
    dispose_engines()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- migrated templates ---------------------------------------------------------------------------
# Alembic's eleven revisions cost a quarter of a second per SQLite test and more on PostgreSQL: each
# session (each xdist worker) migrates one database of each kind, and every test gets a copy. migrate()
# is only Alembic's upgrade (no seed rows, no files beside the database), so a copy is what it would
# have made. A test module that must see the migrations run marks itself `fresh_migrate`.
FRESH = "fresh_migrate"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "crosspost.db"
    migrate(f"sqlite:///{path}")
    dispose_engines()
    return path


def copy_sqlite(source: Path, target: Path) -> None:
    # sqlite3's backup API rather than a file copy: it copies a consistent database even if a
    # -wal file held part of it.
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


@pytest.fixture(scope="session")
def pg_template(pg_admin: str) -> Iterator[str]:
    # Unique per run and per worker: the server is shared with other work and other test runs.
    name = f"cp_template_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate(_pg_url(name).replace("postgresql://", "postgresql+psycopg://"))
        # A database with a connection open cannot be a template: Alembic's engine is disposed by
        # migrations/env.py, any other one here.
        dispose_engines()
        yield name
    finally:
        drop_pg_database(pg_admin, name)


class Env:
    """The crosspost environment of one test: variables for this process and its child processes."""

    def __init__(self, data_dir: Path, database_url: str, broker_url: str) -> None:
        self.data_dir = data_dir
        self.monkeypatch: pytest.MonkeyPatch | None = None
        self.vars = {
            "CROSSPOST_DATA_DIR": str(data_dir),
            "CROSSPOST_DATABASE_URL": database_url,
            "CROSSPOST_BROKER_URL": broker_url,
            "CROSSPOST_SECRET_KEY": Fernet.generate_key().decode(),
            "CROSSPOST_TICK_INTERVAL": "0.5",
            "CROSSPOST_LEASE_SECONDS": "6",
            "CROSSPOST_QUEUED_TIMEOUT": "4",
            "CROSSPOST_BACKOFF_BASE": "0.5",
            "CROSSPOST_BACKOFF_MAX": "2",
            "CROSSPOST_ACCOUNT_MIN_INTERVAL": "0",
            "CROSSPOST_HTTP_TIMEOUT": "30",
            "CROSSPOST_LOG_LEVEL": "INFO",
            # Beats started by tests would otherwise sample followers and spend injected faults.
            "CROSSPOST_FOLLOWER_INTERVAL": "1000000000",
        }

    @property
    def database_url(self) -> str:
        return self.vars["CROSSPOST_DATABASE_URL"]

    def activate(self) -> None:
        os.environ.update(self.vars)
        reset_settings()
        dispose_engines()

    def set(self, **changes: str) -> None:
        # Through the test's monkeypatch when there is one, so a setting one test turns on (a private
        # media address, say) is gone for the next test.
        for key, value in ((f"CROSSPOST_{k.upper()}", v) for k, v in changes.items()):
            self.vars[key] = value
            if self.monkeypatch is not None:
                self.monkeypatch.setenv(key, value)
        self.activate()

    def child_env(self) -> dict[str, str]:
        return {**os.environ, **self.vars}

    def cli(self, *args: str, stdin: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "scheduler.cli", *args], env=self.child_env(),
                              input=stdin, capture_output=True, text=True, timeout=timeout)

    def spawn(self, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
        return subprocess.Popen([sys.executable, "-m", "scheduler.cli", *args], env=self.child_env(),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               request: pytest.FixtureRequest) -> Iterator[Env]:
    env = Env(tmp_path, f"sqlite:///{tmp_path / 'crosspost.db'}", f"sqla+sqlite:///{tmp_path / 'broker.db'}")
    env.monkeypatch = monkeypatch
    for key in env.vars:
        monkeypatch.setenv(key, env.vars[key])
    env.activate()
    if request.node.get_closest_marker(FRESH):
        migrate()
    else:
        copy_sqlite(request.getfixturevalue("sqlite_template"), tmp_path / "crosspost.db")
    yield env
    dispose_engines()
    reset_settings()


@pytest.fixture
def pg_env(tmp_path: Path, pg_admin: str, monkeypatch: pytest.MonkeyPatch,
           request: pytest.FixtureRequest) -> Iterator[Env]:
    fresh = request.node.get_closest_marker(FRESH) is not None
    name = create_pg_database(pg_admin, None if fresh else request.getfixturevalue("pg_template"))
    url = _pg_url(name).replace("postgresql://", "postgresql+psycopg://")
    env = Env(tmp_path, url, REDIS_URL)
    env.monkeypatch = monkeypatch
    for key in env.vars:
        monkeypatch.setenv(key, env.vars[key])
    env.activate()
    if fresh:
        migrate()
    yield env
    drop_pg_database(pg_admin, name)
    reset_settings()


@pytest.fixture(params=["sqlite", "postgres"])
def db_env(request: pytest.FixtureRequest) -> Env:
    """The same test on the embedded SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_env" if request.param == "sqlite" else "pg_env")


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.2,
             what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_for_api(base: str, what: str) -> None:
    """Until the HTTP API at ``base`` answers /health (ready or not: it is up either way)."""
    import httpx

    def up() -> bool:
        try:
            return httpx.get(f"{base}/health", timeout=2).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    wait_for(up, 60, what=what)


def _rename(item: pytest.Item, name: str) -> None:
    # pytest 9.1 keeps an item's id as a NodeId in _id (the _nodeid that pytest-xdist 3.8 and earlier
    # pytests use is then ignored); neither is public, and nothing public renames an item.
    if hasattr(item, "_id"):
        item._id = item.parent.id.child(name)  # type: ignore[union-attr]
    else:
        item._nodeid = f"{item.parent.nodeid}::{name}"  # type: ignore[union-attr]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every item its own node id, as pytest-xdist's loadgroup schedules by id. Schemathesis gives all
    of a test's API operations the test's id (their names differ: ``test[GET /health]``): loadgroup
    would run one operation of the 55 and drop the rest without a word. And on pytest 9.1 xdist's own
    ``@group`` suffix is lost (see _rename), so the tests of an xdist_group would be spread over the
    workers: the suffix is added here."""
    seen: dict[str, int] = {}
    for item in items:
        seen[item.nodeid] = seen.get(item.nodeid, 0) + 1
    for item in items:
        if seen[item.nodeid] > 1:
            _rename(item, item.name)
    # Set by pytest-xdist in its workers only (--dist loadgroup): absent in a run without workers.
    if getattr(config.option, "loadgroup", False) and hasattr(items[0] if items else None, "_id"):
        for item in items:
            groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                             for m in item.iter_markers("xdist_group")})
            if groups and "@" not in item.nodeid:
                _rename(item, f"{item.name}@{'_'.join(groups)}")
    ids = [item.nodeid for item in items]
    assert len(set(ids)) == len(ids), "two tests share a node id: pytest-xdist would run only one"


# -- Hypothesis ---------------------------------------------------------------------------------
# The machine is shared and loaded: a per-example deadline would fail property tests for being slow,
# not wrong. print_blob: a failure found in CI prints what replays it (@reproduce_failure).
from hypothesis import settings as hypothesis_settings  # noqa: E402 - kept apart from the fixtures above

hypothesis_settings.register_profile("crosspost", deadline=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "crosspost"))
