"""What the benchmarks share: a scratch database on the configured (or embedded) server."""

from __future__ import annotations

from sqlalchemy.engine import URL, Engine


def scratch_database(name: str, settings=None) -> tuple[Engine, URL]:
    """Drop and recreate database `name` next to the configured one (of `settings`, default: the environment's),
    migrated; returns (engine, url)."""
    from freshrec import migrations
    from freshrec.db import create_engine, recreate_database
    from freshrec.settings import load_settings
    from tasks.common import database_url_for

    url = recreate_database(database_url_for(settings or load_settings()), name)
    engine = create_engine(url)
    migrations.upgrade(engine)
    return engine, url
