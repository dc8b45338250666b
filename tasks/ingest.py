"""Pull and validate tasks."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from freshrec import steps
from freshrec.escaping import markdown_text
from freshrec.ingest import PulledBatch
from freshrec.quality import ValidatedBatch
from freshrec.settings import Settings
from tasks.common import DB_RETRIES, engine_for


@task(name="pull-new-interactions", cache_policy=NO_CACHE, timeout_seconds=600, **DB_RETRIES)
def pull_new_interactions(settings: Settings) -> PulledBatch:
    pulled = steps.pull(settings, engine_for(settings))
    logger = get_run_logger()
    logger.info("pulled %d rows; %d still waiting (%.0f s behind)", pulled.rows, pulled.lag.rows_behind,
                pulled.lag.seconds_behind)
    if pulled.lag.stall:
        logger.warning("horizon stall: %s", pulled.lag.stall.describe())
    return pulled


@task(name="validate-and-denoise", cache_policy=NO_CACHE, timeout_seconds=900)
def validate_and_denoise(settings: Settings, pulled: PulledBatch) -> ValidatedBatch:
    engine = engine_for(settings)
    validated = steps.validate(settings, engine, pulled)
    logger = get_run_logger()
    logger.info("%d clean, %d quarantined %s; GX suite %s", len(validated.clean), len(validated.quarantined),
                validated.reason_counts, "passed" if validated.gx_success else "failed")
    if not validated.accepted:
        logger.warning("batch rejected: %s", validated.reject_reason)
    rows = ("\n".join(f"| {markdown_text(code)} | {count} |" for code, count in validated.reason_counts.items())
            or "| (none) | 0 |")
    create_markdown_artifact(
        key="data-quality",
        markdown=(f"# Data quality\n\n{validated.rows} rows pulled, {len(validated.clean)} clean, "
                  f"{len(validated.quarantined)} quarantined. Batch "
                  f"{'accepted' if validated.accepted else 'REJECTED: ' + markdown_text(validated.reject_reason)}.\n\n"
                  f"| reason | rows |\n|---|---|\n{rows}\n"),
        description="Great Expectations gate and quarantine reasons")
    return validated
