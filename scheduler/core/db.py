"""Engine and sessions. SQLite (embedded default) and PostgreSQL (at scale) behind one interface."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings, get_settings

READ_ONLY = "crosspost_read_only"
DIR_MODE = 0o700
FILE_MODE = 0o600


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    engine = _engine_for(url)
    _made.append(engine)
    return engine


def _engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60},
                               pool_size=20, max_overflow=40)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's BEGIN below be the only transaction control.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # A writer takes the write lock up front: a deferred transaction that later writes can fail
            # with "database is locked" instead of waiting for busy_timeout. A reader (``read_scope``)
            # must not: under WAL it reads its snapshot alongside the writer instead of queueing.
            read_only = conn.get_execution_options().get(READ_ONLY)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    # A publish holds a connection only for its short transactions, never across the platform call,
    # so a few connections serve dozens of threads; more would exhaust max_connections with a handful
    # of workers (PostgreSQL's default is 100).
    settings = get_settings()
    engine = create_engine(url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow,
                           pool_timeout=60, pool_recycle=1800)
    _ping_when_idle(engine)
    return engine


# A connection back in use within this many seconds is not pinged: a publish checks out a connection
# twice, and a round trip for each was a fifth of its database time (bench/RESULTS.md). One idle for
# longer may have been closed by a restart or a firewall, so it is checked first. A connection that
# breaks while in use still fails its transaction, and SQLAlchemy then drops the whole pool.
PING_AFTER_IDLE = 10.0


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return
        try:
            with dbapi_conn.cursor() as cur:
                cur.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError(str(exc)) from exc


def engine() -> Engine:
    return engine_for(get_settings().database_url)


def dispose_engines() -> None:
    """Drop every pooled connection (after a fork, or when the settings changed)."""
    while _made:
        _made.pop().dispose()
    engine_for.cache_clear()
    _sessionmaker.cache_clear()


# lru_cache keeps no public view of its values: every engine made, so that all can be disposed.
_made: list[Engine] = []


@lru_cache(maxsize=16)
def _sessionmaker(url: str, read_only: bool = False) -> sessionmaker[Session]:
    bind = engine_for(url)
    return sessionmaker(bind=bind.execution_options(**{READ_ONLY: True}) if read_only else bind,
                        expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with _sessionmaker(get_settings().database_url)() as session, session.begin():
        yield session


@contextmanager
def connection_scope() -> Iterator[Connection]:
    """One transaction on a bare pooled connection, for the publish path, whose statements are all
    Core: an ORM session and its transaction machinery cost a third of a short transaction's CPU
    (bench/RESULTS.md). Committed when the block ends, rolled back if it raises."""
    with engine().begin() as conn:
        yield conn


@contextmanager
def read_scope() -> Iterator[Session]:
    """One transaction that only reads (listings, reports, the follower tick's look): on SQLite it does
    not take the write lock, so it never waits behind a publish. Writing in it is a mistake that SQLite
    may answer with "database is locked"."""
    with _sessionmaker(get_settings().database_url, read_only=True)() as session, session.begin():
        yield session


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def migrate(url: str | None = None) -> None:
    """Bring the database schema to the newest Alembic revision."""
    import logging

    # Before the import: alembic logs its plugin set-up at INFO as it is imported (noise on `init`).
    logging.getLogger("alembic").setLevel(logging.WARNING)

    from alembic import command
    from alembic.config import Config

    here = Path(__file__).resolve().parents[2] / "migrations"
    cfg = Config()
    cfg.set_main_option("script_location", str(here))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    command.upgrade(cfg, "heads")


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (``sqlite:///`` or kombu's ``sqla+sqlite:///``), if it is one."""
    for prefix in ("sqlite:///", "sqla+sqlite:///"):
        if url.startswith(prefix):
            path = url[len(prefix):].split("?", 1)[0]
            return Path(path) if path and path != ":memory:" else None
    return None


def prepare_data_dir(settings: Settings) -> None:
    """The data directory 0700 and the embedded database and broker files 0600, created empty when
    missing: SQLite would create them (and their -wal and -shm files, which copy the database's mode)
    readable by every user on the machine."""
    settings.data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(settings.data_dir, DIR_MODE)
    for url in (settings.database_url, settings.broker_url):
        path = sqlite_path(url)
        if path is None:
            continue
        if not path.parent.is_dir():
            continue  # SQLite will say so, in its own words
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
        for extra in ("", "-wal", "-shm", "-journal"):
            with_suffix = path.with_name(path.name + extra)
            if with_suffix.exists():
                os.chmod(with_suffix, FILE_MODE)


def check_writable(settings: Settings) -> None:
    """Fail at once, in one line, when this process could not write what a worker or beat writes (the
    data directory, the embedded database and broker files): otherwise it would start, say it is ready,
    and never publish."""
    from sqlalchemy import delete, insert
    from sqlalchemy.exc import DBAPIError

    from scheduler.core.errors import UserError
    from scheduler.core.models import ProcessLock, utcnow

    data_dir = settings.data_dir
    try:
        data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        probe = data_dir / f".write-probe-{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE))
        probe.unlink()
    except OSError as exc:
        raise UserError(f"data directory: cannot write {data_dir}: {exc.strerror}") from None
    for what, url in (("database", settings.database_url), ("broker", settings.broker_url)):
        path = sqlite_path(url)
        if path is None or not path.exists():
            continue
        try:
            with open(path, "r+b"):
                pass
        except OSError as exc:
            raise UserError(f"{what}: cannot write {path}: {exc.strerror}") from None
    name = f"write-probe:{os.getpid()}"
    reached = False
    try:
        with session_scope() as s:
            # A database that cannot be reached (restarting, say) is an outage, not a set-up error: its
            # DBAPIError goes on as it is (exit status 1, so a supervisor restarts the process), while
            # one that is reached but refuses the write is the operator's to fix (status 2).
            s.connection()
            reached = True
            s.execute(insert(ProcessLock).values(name=name, holder=name, expires_at=utcnow()))
            s.execute(delete(ProcessLock).where(ProcessLock.name == name))
    except DBAPIError as exc:
        if not reached:
            raise
        first = (str(exc.orig) if exc.orig is not None else type(exc).__name__).splitlines()[0]
        raise UserError(f"database: cannot write: {first}") from None
