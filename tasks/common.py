"""What every task needs: an engine for the configured database, and retries on connection trouble."""

from __future__ import annotations

import logging

from sqlalchemy.engine import URL, Engine

from freshrec.db import connect, resolve_database_url
from freshrec.settings import Settings


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


def core_logs_to_run_logs() -> None:
    """Let the core's `freshrec` loggers reach the run's logs, at Prefect's own log level.

    PREFECT_LOGGING_EXTRA_LOGGERS=freshrec gives the `freshrec` logger the handlers of Prefect's `prefect.extra`
    logger but not its level (prefect/logging/configuration.py, setup_logging), so the logger inherits the
    root's WARNING from Prefect's logging.yml and every INFO line of the core is dropped. Here it gets the level
    of `prefect.extra`, which is PREFECT_LOGGING_LEVEL (INFO by default), and Prefect's API handler if the
    extra-loggers setting did not already add it. A level set before (the CLI's --verbose) is kept.
    """
    from prefect.logging.handlers import APILogHandler

    core = logging.getLogger("freshrec")
    if core.level == logging.NOTSET:
        core.setLevel(logging.getLogger("prefect.extra").getEffectiveLevel())
    if not any(isinstance(h, APILogHandler) for h in core.handlers):
        core.addHandler(APILogHandler())


def database_url_for(settings: Settings) -> URL:
    """The configured database URL, or the embedded server's (started if needed)."""
    url = settings.database_url.get_secret_value() if settings.database_url else None
    return resolve_database_url(url, settings.data_dir, settings.embedded_database)


def engine_for(settings: Settings) -> Engine:
    url = settings.database_url.get_secret_value() if settings.database_url else None
    return connect(url, settings.data_dir, settings.embedded_database)
