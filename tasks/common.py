"""What every task needs: an engine for the configured database, and settings-to-config mappings."""

from __future__ import annotations

import logging

from sqlalchemy.engine import URL, Engine

from freshrec.db import connect, resolve_database_url
from freshrec.quality import QualityRules
from freshrec.registry import PublishPolicy, parse_thresholds
from freshrec.settings import Settings
from freshrec.training import TrainConfig


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


def quality_rules(settings: Settings) -> QualityRules:
    return QualityRules(
        event_types=tuple(settings.event_types), max_dwell_ms=settings.max_dwell_ms,
        clock_skew_s=settings.clock_skew_s, duplicate_window_s=settings.duplicate_window_s,
        bot_events_per_minute=settings.bot_events_per_minute, batch_reject_share=settings.batch_reject_share)


def train_config(settings: Settings) -> TrainConfig:
    return TrainConfig(
        model=settings.model, train_mode=settings.train_mode, device=settings.device, seed=settings.seed,
        learning_rate=settings.learning_rate, batch_size=settings.batch_size, gpu_batch_size=settings.gpu_batch_size,
        grad_accum_steps=settings.grad_accum_steps, max_backlog_rows=settings.max_backlog_rows,
        max_steps=settings.max_train_steps,
        max_seconds=settings.max_train_seconds, epochs=settings.epochs, holdout_share=settings.holdout_share,
        holdout=settings.holdout,
        min_train_rows=settings.min_train_rows, min_eval_rows=settings.min_eval_rows,
        replay_ratio=settings.replay_ratio, probe_size=settings.probe_size, history_len=settings.history_len,
        max_item_tokens=settings.max_item_tokens, max_user_tokens=settings.max_user_tokens,
        id_buckets=settings.id_buckets, category_rate=settings.category_rate)


def publish_policy(settings: Settings) -> PublishPolicy:
    return PublishPolicy(thresholds=parse_thresholds(settings.publish_thresholds),
                         min_eval_rows=settings.min_eval_rows, max_probe_change=settings.max_probe_change)
