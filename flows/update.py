"""The update cycle: pull -> validate/denoise -> [fine-tune -> drift] -> decide -> commit."""

from __future__ import annotations

import contextlib
import time
from typing import Annotated

from prefect import flow
from pydantic import Field

from freshrec.settings import load_settings
from tasks.cycle import (begin_cycle, commit_cycle, decide_publication, hold_cycle_lock, mark_cycle_failed,
                         record_empty_cycle, record_skipped_cycle)
from tasks.drift import measure_drift
from tasks.ingest import pull_new_interactions, validate_and_denoise
from tasks.training import fine_tune_candidate, load_champion

FLOW_NAME = "freshrec-update"


@flow(name=FLOW_NAME, description="One freshrec update cycle: every new interaction once, validated, "
      "used to fine-tune the champion, checked for drift, published only if better.")
def freshrec_update(
    model: Annotated[str | None, Field(title="Model", description="minilm, tiny or a Hugging Face model "
                                       "folder; empty: FRESHREC_MODEL")] = None,
    max_batch_rows: Annotated[int | None, Field(title="Max batch rows", gt=0, description="Most rows this "
                                                "cycle takes; empty: FRESHREC_MAX_BATCH_ROWS")] = None,
    consumer: Annotated[str | None, Field(title="Consumer", description="Ingestion cursor name; empty: "
                                          "FRESHREC_CONSUMER")] = None,
) -> dict:
    settings = load_settings(model=model, max_batch_rows=max_batch_rows, consumer=consumer)
    seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            seconds[name] = time.perf_counter() - started

    with hold_cycle_lock(settings) as acquired:
        if not acquired:
            return record_skipped_cycle(settings, "another cycle of this consumer is running").to_json()
        cycle_id = begin_cycle(settings)
        try:
            with stage("pull"):
                pulled = pull_new_interactions(settings)
            if pulled.rows == 0:
                return record_empty_cycle(settings, cycle_id, pulled, seconds).to_json()
            with stage("validate"):
                validated = validate_and_denoise(settings, pulled)
            outcome = drift = None
            if validated.accepted:
                with stage("train"):
                    champion = load_champion(settings)
                    outcome = fine_tune_candidate(settings, pulled, validated, champion)
                with stage("drift"):
                    drift = measure_drift(settings, cycle_id, outcome, champion)
            decision = decide_publication(settings, validated, outcome, drift)
            with stage("publish"):
                summary = commit_cycle(settings, cycle_id, pulled, validated, outcome, drift, decision, seconds)
            summary.stage_seconds = {name: round(s, 3) for name, s in seconds.items()}
            return summary.to_json()
        except Exception as exc:
            mark_cycle_failed(settings, cycle_id, f"{type(exc).__name__}: {exc}")
            raise
