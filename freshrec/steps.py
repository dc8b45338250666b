"""One update cycle's stages as plain functions of the Settings: the flow's tasks and the evaluation
(bench.evaluate) both call these, so the benchmark runs the stages the flow runs, with the same settings.

Each stage takes the Settings and the previous stage's output and makes one call into the core; the mappings
from Settings to the core's configuration objects live here, once. No Prefect (the tasks add logging, artifacts,
retries and the GPU slot around them).

    cycle_id = begin(settings, engine)
    pulled = pull(settings, engine)                      # nothing consumed yet (none: record_empty)
    validated = validate(settings, engine, pulled)
    champion = load_champion(settings, engine)
    outcome = fine_tune(settings, engine, pulled, validated, champion)
    report = drift(settings, outcome, champion)
    decision = decide(settings, validated, outcome, report)
    summary = commit(settings, engine, cycle_id, pulled, validated, outcome, report, decision)  # consumed here
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd
from sqlalchemy.engine import Engine

from freshrec import cycles, gate, ingest, quality, registry
from freshrec import fine_tune as fine_tune_core
from freshrec import drift as drift_core
from freshrec import rebase as rebase_core
from freshrec.cycles import CycleSummary
from freshrec.drift import DriftReport
from freshrec.ingest import PulledBatch
from freshrec.quality import ValidatedBatch
from freshrec.gate import Decision
from freshrec.settings import Settings
from freshrec.summary import build_summary
from freshrec.artifacts import ChampionModel
from freshrec.fine_tune import FineTuneOutcome


# --- the stages ---------------------------------------------------------------------------------------------
def begin(settings: Settings, engine: Engine, run_id: str | None = None) -> int:
    """Open the cycle's row (the caller holds the consumer's cycle lock)."""
    return cycles.begin_cycle(engine, settings.consumer, run_id)


def pull(settings: Settings, engine: Engine) -> PulledBatch:
    """Up to max_batch_rows rows past the consumer's cursor; the cursor moves only in commit()."""
    return ingest.pull_new_interactions(engine, settings.consumer, settings.max_batch_rows,
                                        settings.horizon_stall_s, max_field_chars=settings.max_field_chars)


def record_empty(settings: Settings, engine: Engine, cycle_id: int, pulled: PulledBatch,
                 stage_seconds: dict[str, float] | None = None) -> CycleSummary:
    """Close a cycle that pulled nothing."""
    return cycles.record_empty(engine, build_summary(
        cycle_id=cycle_id, consumer=settings.consumer, pulled=pulled, validated=None, outcome=None, drift=None,
        decision=None, stage_seconds=stage_seconds or {}))


def validate(settings: Settings, engine: Engine, pulled: PulledBatch) -> ValidatedBatch:
    return quality.check_batch(engine, pulled, settings.quality)


def load_champion(settings: Settings, engine: Engine) -> ChampionModel | None:
    return registry.load_champion(engine, allowed_base_models=settings.base_models_allowed)


def fine_tune(settings: Settings, engine: Engine, pulled: PulledBatch, validated: ValidatedBatch,
              champion: ChampionModel | None, progress: Callable[[str], None] | None = None) -> FineTuneOutcome:
    """Score the clean rows with the champion, fine-tune a candidate, evaluate both on the held-out rows."""
    rebase = rebase_core.rebase_reason(engine, settings.consumer, settings.rebase_every) if champion else None
    return fine_tune_core.fine_tune(engine, validated.clean, champion, settings, replay_before=pulled.from_cursor,
                                    progress=progress, rebase=rebase, quarantined_ids=quarantined_ids(validated))


def quarantined_ids(validated: ValidatedBatch) -> list[int]:
    """Ids of the rows this cycle sets aside: the features of its clean rows must not count them."""
    ids = pd.to_numeric(validated.quarantined.get("id", pd.Series(dtype="float64")), errors="coerce").dropna()
    return sorted(set(ids.astype("int64").tolist()))


def drift(settings: Settings, outcome: FineTuneOutcome, champion: ChampionModel | None) -> DriftReport:
    """The batch as the champion scored it, against the champion's stored reference sample. A champion without
    one (a cold start; drift.py says why) adopts this batch as its reference in this cycle's commit."""
    reference = pd.DataFrame(champion.reference_sample) if champion and champion.reference_sample else None
    report = drift_core.measure_drift(reference, drift_core.drift_frame(outcome.examples, "champion_score"),
                                      settings.drift, seed=settings.seed)
    if champion is not None and reference is None:
        report.result.note = (f"champion v{champion.version} has no drift reference yet (a cold start): this batch, "
                              "as it scored it, becomes its reference; drift is measured from the next cycle")
    return report


def decide(settings: Settings, validated: ValidatedBatch, outcome: FineTuneOutcome | None,
           report: DriftReport | None) -> Decision:
    return gate.decide(
        batch_accepted=validated.accepted, reject_reason=validated.reject_reason,
        trained=bool(outcome and outcome.trained), skip_reason=outcome.skip_reason if outcome else None,
        metrics=outcome.metrics if outcome else {}, has_champion=bool(outcome and outcome.champion_version),
        drift=report.result if report else None, policy=gate.PublishPolicy.from_settings(settings.gate))


def commit(settings: Settings, engine: Engine, cycle_id: int, pulled: PulledBatch, validated: ValidatedBatch,
           outcome: FineTuneOutcome | None, report: DriftReport | None, decision: Decision,
           stage_seconds: dict[str, float] | None = None, drift_path: Path | None = None) -> CycleSummary:
    """In one transaction: the batch, its quarantine, the candidate (published or not) with its drift reference
    sample, the decision, and the cursor."""
    summary = build_summary(cycle_id=cycle_id, consumer=settings.consumer, pulled=pulled, validated=validated,
                            outcome=outcome, drift=report, drift_path=drift_path, decision=decision,
                            stage_seconds=stage_seconds or {})
    # a cold start's reference waits for the first batch it scores (drift.py says why)
    reference = (drift_core.reference_records(outcome.reference, "candidate_score", settings.drift_sample_cap,
                                              settings.seed)
                 if outcome is not None and outcome.trained and not outcome.cold_start else None)
    adopts = (report is not None and report.result.status == "no_reference" and outcome is not None
              and outcome.champion_version and "champion_score" in outcome.examples)
    adopted = (drift_core.reference_records(outcome.examples, "champion_score", settings.drift_sample_cap,
                                            settings.seed, rows=settings.drift_reference_rows) if adopts else None)
    summary, _ = cycles.commit_cycle(
        engine, summary=summary, pulled=pulled, validated=validated, outcome=outcome, drift=report,
        drift_path=drift_path, decision=decision, reference_sample=reference, champion_reference=adopted,
        keep_rejected=settings.keep_rejected_artifacts, backlog_keep=settings.max_backlog_rows)
    return summary

