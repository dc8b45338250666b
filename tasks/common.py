"""What every task needs: an engine for the configured database, and settings-to-config mappings."""

from __future__ import annotations

from sqlalchemy.engine import URL, Engine

from freshrec.db import connect, resolve_database_url
from freshrec.settings import Settings
from freshrec.steps import publish_policy, quality_rules, train_config  # noqa: F401  (the tasks' mappings)


def retry_on_database_trouble(task, task_run, state) -> bool:
    """Retry a task only when the database connection failed, not on errors a retry cannot fix."""
    import sqlalchemy.exc

    from freshrec.errors import DatabaseError

    try:
        state.result()
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, DatabaseError):
        return True
    except Exception:
        return False
    return False


# Database I/O: three tries with backoff, only for connection trouble.
DB_RETRIES = {"retries": 2, "retry_delay_seconds": [2, 10], "retry_condition_fn": retry_on_database_trouble}


def database_url_for(settings: Settings) -> URL:
    """The configured database URL, or the embedded server's (started if needed)."""
    url = settings.database_url.get_secret_value() if settings.database_url else None
    return resolve_database_url(url, settings.data_dir, settings.embedded_database)


def engine_for(settings: Settings) -> Engine:
    url = settings.database_url.get_secret_value() if settings.database_url else None
    return connect(url, settings.data_dir, settings.embedded_database)
