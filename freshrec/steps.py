"""One update cycle's stages as plain functions of the Settings: the flow's tasks and the evaluation
(bench.evaluate) both call these, so the benchmark runs the stages the flow runs, with the same settings.

Each stage takes the Settings and the previous stage's output and makes one call into the core; the mappings
from Settings to the core's configuration objects live here, once. No Prefect (the tasks add logging, artifacts,
retries and the GPU slot around them).

    cycle_id = begin(settings, engine)
    pulled = pull(settings, engine)                      # nothing consumed yet (none: record_empty)
    validated = validate(settings, engine, pulled)
    champion = load_champion(settings, engine)
    outcome = update(settings, engine, pulled, validated, champion)
    report = drift(settings, outcome, champion)
    decision = decide(settings, validated, outcome, report)
    summary = commit(settings, engine, cycle_id, pulled, validated, outcome, report, decision)  # consumed here
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd
from sqlalchemy.engine import Engine

from freshrec import cycles, gate, ingest, quality, registry, training
from freshrec import drift as drift_core
from freshrec import rebase as rebase_core
from freshrec.cycles import CycleSummary
from freshrec.drift import DriftMethods, DriftReport
from freshrec.ingest import PulledBatch
from freshrec.quality import QualityRules, ValidatedBatch
from freshrec.gate import Decision, PublishPolicy
from freshrec.settings import Settings
from freshrec.summary import build_summary
from freshrec.model import ChampionModel
from freshrec.training import TrainConfig, UpdateOutcome


# --- settings -> the core's configuration objects -----------------------------------------------------------
def quality_rules(settings: Settings) -> QualityRules:
    return QualityRules(
        event_types=tuple(settings.event_types), max_dwell_ms=settings.max_dwell_ms,
        clock_skew_s=settings.clock_skew_s, duplicate_window_s=settings.duplicate_window_s,
        bot_events_per_minute=settings.bot_events_per_minute, batch_reject_share=settings.batch_reject_share,
        max_field_chars=settings.max_field_chars, min_occurred_at=settings.min_occurred_at)


def train_config(settings: Settings) -> TrainConfig:
    return TrainConfig(
        model=settings.model, train_mode=settings.train_mode, device=settings.device, seed=settings.seed,
        learning_rate=settings.learning_rate, batch_size=settings.batch_size, gpu_batch_size=settings.gpu_batch_size,
        grad_accum_steps=settings.grad_accum_steps, max_backlog_rows=settings.max_backlog_rows,
        max_steps=settings.max_train_steps, max_seconds=settings.max_train_seconds, epochs=settings.epochs,
        holdout_share=settings.holdout_share, holdout=settings.holdout, min_train_rows=settings.min_train_rows,
        min_eval_rows=settings.min_eval_rows, replay_ratio=settings.replay_ratio, probe_size=settings.probe_size,
        history_len=settings.history_len, max_item_tokens=settings.max_item_tokens,
        max_user_tokens=settings.max_user_tokens, id_buckets=settings.id_buckets,
        category_rate=settings.category_rate, cpu_threads=settings.cpu_threads,
        drift_reference_rows=settings.drift_reference_rows, gate_confidence=settings.gate_confidence,
        rebase_rows=settings.rebase_rows, rebase_train_seconds=settings.rebase_train_seconds)


def publish_policy(settings: Settings) -> PublishPolicy:
    return PublishPolicy(thresholds=gate.parse_thresholds(settings.publish_thresholds),
                         min_eval_rows=settings.min_eval_rows, max_probe_change=settings.max_probe_change)


def drift_methods(settings: Settings) -> DriftMethods:
    return DriftMethods(settings.drift_num_method, settings.drift_cat_method, settings.drift_num_threshold,
                        settings.drift_cat_threshold, tuple(settings.drift_monitor_only))


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
    return quality.check_batch(engine, pulled, quality_rules(settings))


def load_champion(settings: Settings, engine: Engine) -> ChampionModel | None:
    return registry.load_champion(engine)


def update(settings: Settings, engine: Engine, pulled: PulledBatch, validated: ValidatedBatch,
           champion: ChampionModel | None, progress: Callable[[str], None] | None = None) -> UpdateOutcome:
    """Score the clean rows with the champion, fine-tune a candidate, evaluate both on the held-out rows."""
    rebase = rebase_core.rebase_reason(engine, settings.consumer, settings.rebase_every) if champion else None
    return training.run_update(engine, validated.clean, champion, train_config(settings),
                               consumer=settings.consumer, replay_before=pulled.from_cursor, progress=progress,
                               rebase=rebase, quarantined_ids=quarantined_ids(validated))


def quarantined_ids(validated: ValidatedBatch) -> list[int]:
    """Ids of the rows this cycle sets aside: the features of its clean rows must not count them."""
    ids = pd.to_numeric(validated.quarantined.get("id", pd.Series(dtype="float64")), errors="coerce").dropna()
    return sorted(set(ids.astype("int64").tolist()))


def drift(settings: Settings, outcome: UpdateOutcome, champion: ChampionModel | None) -> DriftReport:
    """The batch as the champion scored it, against the champion's stored reference sample."""
    reference = pd.DataFrame(champion.reference_sample) if champion and champion.reference_sample else None
    return drift_core.measure_drift(reference, drift_core.drift_frame(outcome.examples, "champion_score"),
                                    drift_share=settings.drift_share, sample_cap=settings.drift_sample_cap,
                                    min_rows=settings.drift_min_rows, seed=settings.seed,
                                    methods=drift_methods(settings))


def decide(settings: Settings, validated: ValidatedBatch, outcome: UpdateOutcome | None,
           report: DriftReport | None) -> Decision:
    return gate.decide(
        batch_accepted=validated.accepted, reject_reason=validated.reject_reason,
        trained=bool(outcome and outcome.trained), skip_reason=outcome.skip_reason if outcome else None,
        metrics=outcome.metrics if outcome else {}, has_champion=bool(outcome and outcome.champion_version),
        drift=report.result if report else None, policy=publish_policy(settings))


def commit(settings: Settings, engine: Engine, cycle_id: int, pulled: PulledBatch, validated: ValidatedBatch,
           outcome: UpdateOutcome | None, report: DriftReport | None, decision: Decision,
           stage_seconds: dict[str, float] | None = None, drift_path: Path | None = None) -> CycleSummary:
    """In one transaction: the batch, its quarantine, the candidate (published or not) with its drift reference
    sample, the decision, and the cursor."""
    summary = build_summary(cycle_id=cycle_id, consumer=settings.consumer, pulled=pulled, validated=validated,
                            outcome=outcome, drift=report, drift_path=drift_path, decision=decision,
                            stage_seconds=stage_seconds or {})
    reference = (drift_core.reference_records(outcome.reference, "candidate_score", settings.drift_sample_cap,
                                              settings.seed) if outcome is not None and outcome.trained else None)
    summary, _ = cycles.commit_cycle(
        engine, summary=summary, pulled=pulled, validated=validated, outcome=outcome, drift=report,
        drift_path=drift_path, decision=decision, reference_sample=reference,
        keep_rejected=settings.keep_rejected_artifacts)
    return summary

