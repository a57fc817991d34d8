"""Alembic environment: the URL comes from crosspost's settings unless the caller set one."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from config.settings import get_settings
from scheduler.core.models import Base
from scheduler.desk import models as _desk_models  # noqa: F401 - the desk's tables join Base.metadata
from scheduler.feeds import models as _feeds  # noqa: F401 - registers the feed tables on Base
from scheduler.web import models as _web  # noqa: F401 - the dashboard's preferences table

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run() -> None:
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=Base.metadata, render_as_batch=True, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
