"""Engine and sessions. SQLite (embedded default) and PostgreSQL (at scale) behind one interface."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from config.settings import get_settings


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
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
            # Take the write lock up front: a deferred transaction that later writes can fail with
            # "database is locked" instead of waiting for busy_timeout.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # A publish holds a connection only for its short transactions, never across the platform call,
    # so a few connections serve dozens of threads; more would exhaust max_connections with a handful
    # of workers (PostgreSQL's default is 100).
    settings = get_settings()
    return create_engine(url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow,
                         pool_timeout=60, pool_pre_ping=True, pool_recycle=1800)


def engine() -> Engine:
    return engine_for(get_settings().database_url)


def dispose_engines() -> None:
    """Drop every pooled connection (after a fork, or when the settings changed)."""
    for eng in list(_engines()):
        eng.dispose()
    engine_for.cache_clear()
    _sessionmaker.cache_clear()


def _engines() -> list[Engine]:
    # lru_cache keeps no public view of its values; rebuild from the sessionmakers we made.
    return [sm.kw["bind"] for sm in _made]


_made: list[sessionmaker[Session]] = []


@lru_cache(maxsize=8)
def _sessionmaker(url: str) -> sessionmaker[Session]:
    sm = sessionmaker(bind=engine_for(url), expire_on_commit=False)
    _made.append(sm)
    return sm


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with _sessionmaker(get_settings().database_url)() as session, session.begin():
        yield session


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def migrate(url: str | None = None) -> None:
    """Bring the database schema to the newest Alembic revision."""
    import logging

    from alembic import command
    from alembic.config import Config

    logging.getLogger("alembic").setLevel(logging.WARNING)

    here = Path(__file__).resolve().parent.parent / "migrations"
    cfg = Config()
    cfg.set_main_option("script_location", str(here))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    command.upgrade(cfg, "head")
