"""The fine-tune task."""

from __future__ import annotations

from contextlib import nullcontext

from prefect import get_run_logger, task
from prefect.concurrency.sync import concurrency
from prefect.cache_policies import NO_CACHE

from freshrec import inference, steps
from freshrec.ingest import PulledBatch
from freshrec.quality import ValidatedBatch
from freshrec.settings import Settings
from freshrec.artifacts import ChampionModel
from freshrec.fine_tune import FineTuneOutcome
from tasks.common import DB_RETRIES, engine_for


@task(name="load-champion", cache_policy=NO_CACHE, timeout_seconds=300, **DB_RETRIES)
def load_champion(settings: Settings) -> ChampionModel | None:
    champion = steps.load_champion(settings, engine_for(settings))
    get_run_logger().info("champion: %s", f"version {champion.version}" if champion else "none yet (cold start)")
    return champion


@task(name="fine-tune", cache_policy=NO_CACHE, timeout_seconds=3600)
def fine_tune(settings: Settings, pulled: PulledBatch, validated: ValidatedBatch,
              champion: ChampionModel | None) -> FineTuneOutcome:
    logger = get_run_logger()
    # One training at a time per GPU: the 'freshrec-gpu' global concurrency limit (create it with
    # `prefect gcl create freshrec-gpu --limit 1`; without it the slot is not enforced).
    slot = concurrency("freshrec-gpu", occupy=1) if inference.cuda_requested(settings.device) else nullcontext()
    with slot:
        outcome = steps.fine_tune(settings, engine_for(settings), pulled, validated, champion, progress=logger.info)
    if outcome.trained:
        m = outcome.metrics
        logger.info("candidate AUC %s vs champion %s on %d held-out rows",
                    m["candidate"].get("auc"), (m.get("champion") or {}).get("auc"), m["candidate"]["n"])
    else:
        logger.info("no training: %s", outcome.skip_reason)
    return outcome
