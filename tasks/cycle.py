"""Tasks that open, skip, fail and commit a cycle."""

from __future__ import annotations

import contextlib
from typing import Iterator

from prefect import get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from freshrec import cycles, migrations, steps
from freshrec.cycles import CycleSummary
from freshrec.ingest import PulledBatch
from freshrec.quality import ValidatedBatch
from freshrec.gate import Decision
from freshrec.settings import Settings
from freshrec.summary import build_summary, run_markdown, summary_markdown
from freshrec.fine_tune import FineTuneOutcome
from tasks.common import DB_RETRIES, engine_for
from tasks.drift import DriftOutcome, emit_drift_artifacts



@contextlib.contextmanager
def hold_cycle_lock(settings: Settings) -> Iterator[cycles.CycleLock]:
    """The consumer's advisory lock, held for the whole flow run (a context manager, not a task)."""
    engine = engine_for(settings)
    migrations.require_current(engine)  # an old schema ends in one sentence, not in a failed query
    with cycles.cycle_lock(engine, settings.consumer) as lock:
        yield lock


@task(name="begin-cycle", cache_policy=NO_CACHE, timeout_seconds=60, **DB_RETRIES)
def begin_cycle(settings: Settings) -> int:
    flow_run_id = runtime.flow_run.id
    cycle_id = cycles.begin_cycle(engine_for(settings), settings.consumer, str(flow_run_id) if flow_run_id else None)
    get_run_logger().info("cycle %d started for consumer %r", cycle_id, settings.consumer)
    return cycle_id


@task(name="record-skipped-cycle", cache_policy=NO_CACHE, timeout_seconds=60, **DB_RETRIES)
def record_skipped_cycle(settings: Settings, reason: str) -> CycleSummary:
    flow_run_id = runtime.flow_run.id
    summary = cycles.record_skipped(engine_for(settings), settings.consumer, reason,
                                    str(flow_run_id) if flow_run_id else None)
    get_run_logger().warning("cycle %d skipped: %s", summary.cycle_id, reason)
    create_markdown_artifact(key="cycle-summary", markdown=run_markdown("skipped", summary.cycle_id, reason),
                             description=f"freshrec cycle {summary.cycle_id} (skipped)")
    return summary


@task(name="record-empty-cycle", cache_policy=NO_CACHE, timeout_seconds=60, **DB_RETRIES)
def record_empty_cycle(settings: Settings, cycle_id: int, pulled: PulledBatch,
                       stage_seconds: dict[str, float]) -> CycleSummary:
    summary = build_summary(cycle_id=cycle_id, consumer=settings.consumer, pulled=pulled, validated=None,
                            outcome=None, drift=None, decision=None, stage_seconds=stage_seconds)
    cycles.record_empty(engine_for(settings), summary)
    get_run_logger().info(summary.message)
    create_markdown_artifact(key="cycle-summary", markdown=run_markdown("empty", cycle_id, summary.message),
                             description=f"freshrec cycle {cycle_id} (empty)")
    return summary


@task(name="mark-cycle-failed", cache_policy=NO_CACHE, timeout_seconds=60, **DB_RETRIES)
def mark_cycle_failed(settings: Settings, cycle_id: int, error: str) -> None:
    cycles.mark_failed(engine_for(settings), cycle_id, error)
    get_run_logger().error("cycle %d failed: %s", cycle_id, error)


@task(name="report-failed-run", cache_policy=NO_CACHE, timeout_seconds=60)
def report_failed_run(cycle_id: int | None, error: str) -> None:
    """The artifact of a failed run (the run's state carries the exception itself)."""
    create_markdown_artifact(key="cycle-summary", markdown=run_markdown("failed", cycle_id, error),
                             description=f"freshrec cycle {cycle_id} (failed)" if cycle_id else "freshrec run failed")


@task(name="decide-publication", cache_policy=NO_CACHE, timeout_seconds=60)
def decide_publication(settings: Settings, validated: ValidatedBatch, outcome: FineTuneOutcome | None,
                       drift: DriftOutcome | None) -> Decision:
    decision = steps.decide(settings, validated, outcome, drift.report if drift else None)
    get_run_logger().info("decision: %s (%s)", "publish" if decision.publish else "keep champion",
                          "; ".join(decision.reasons))
    return decision


@task(name="commit-cycle", cache_policy=NO_CACHE, timeout_seconds=600, **DB_RETRIES)
def commit_cycle(settings: Settings, cycle_id: int, pulled: PulledBatch, validated: ValidatedBatch,
                 outcome: FineTuneOutcome | None, drift: DriftOutcome | None, decision: Decision,
                 stage_seconds: dict[str, float]) -> CycleSummary:
    summary = steps.commit(settings, engine_for(settings), cycle_id, pulled, validated, outcome,
                           drift.report if drift else None, decision, stage_seconds,
                           drift_path=drift.path if drift else None)
    get_run_logger().info(summary.message)
    create_markdown_artifact(key="cycle-summary", markdown=summary_markdown(summary),
                             description=f"freshrec cycle {cycle_id}")
    if drift is not None:  # only now: a cycle that failed before its commit shows no drift report
        emit_drift_artifacts(settings, cycle_id, drift)
    return summary
