"""Every migration applies on SQLite and PostgreSQL, keeps existing rows, and matches the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from tests.conftest import Env

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
# The fixtures migrate each database from empty rather than copy the session's migrated template.
pytestmark = pytest.mark.fresh_migrate


def config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


@pytest.fixture
def empty_db(db_env: Env) -> str:
    """A database at no revision: the fixtures migrate to head, so step back to base first."""
    env = db_env
    command.downgrade(config(env.database_url), "base")
    return env.database_url


def test_upgrade_step_by_step_keeps_rows_and_matches_models(empty_db: str) -> None:
    cfg = config(empty_db)
    revisions = [r.revision for r in reversed(list(ScriptDirectory.from_config(cfg).walk_revisions()))]
    command.upgrade(cfg, revisions[0])
    engine = create_engine(empty_db)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO accounts (platform, handle, tags, tz, credentials, "
                          "credentials_version, status, created_at) VALUES ('mastodon', 'old', '[]', 'UTC', "
                          ":c, 1, 'active', CURRENT_TIMESTAMP)"), {"c": b"sealed"})
    for revision in revisions[1:]:
        command.upgrade(cfg, revision)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT handle, schedule, min_gap_minutes FROM accounts")).one()
    engine.dispose()
    assert row[0] == "old" and row[2] == 0
    command.check(cfg)  # the models and the newest migration agree


def test_downgrade_to_base_and_back(empty_db: str) -> None:
    cfg = config(empty_db)
    command.upgrade(cfg, "heads")
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "heads")
