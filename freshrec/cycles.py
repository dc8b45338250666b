"""An update cycle's record and its one commit.

A cycle row is written 'running' when the cycle starts, so a crash leaves a trace. Everything the cycle
decides lands in a single transaction at the end: cursor advance (compare-and-set), batch manifest,
quarantine rows, validation result, model version and champion alias, drift report and the cycle's
figures. A crash before that commit changes nothing a later run depends on; the next run pulls the same
rows again.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from freshrec.drift import DriftReport
from freshrec.errors import ConcurrentCycleError
from freshrec.expectations import SUITE_NAME, SUITE_VERSION
from freshrec.ingest import PulledBatch
from freshrec.locks import CYCLE_LOCK_NAMESPACE
from freshrec.rebase import request_done
from freshrec.quality import ValidatedBatch
from freshrec.quarantine import quarantine_payload
from freshrec.gate import Decision
from freshrec.registry import PublishResult, adopt_reference, insert_version_and_maybe_promote, record_decision
from freshrec.sqlfiles import query
from freshrec.fine_tune import FineTuneOutcome
from freshrec.trainset import write_probe_set

log = logging.getLogger(__name__)

# What to do when training does not keep up with the stream (the log below, `freshrec status`).
FALLING_BEHIND_ADVICE = ("raise FRESHREC_MAX_TRAIN_SECONDS and FRESHREC_MAX_TRAIN_STEPS, or shorten the "
                         "interval")


@dataclass
class CycleSummary:
    """What one cycle did; printed by run-once/demo and stored as the cycle row's summary."""
    cycle_id: int | None
    status: str  # completed | empty | skipped | failed
    consumer: str
    message: str
    rows_pulled: int = 0
    rows_clean: int = 0
    rows_quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    batch: dict = field(default_factory=dict)
    lag: dict = field(default_factory=dict)
    trained: bool = False
    train: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    drift: dict = field(default_factory=dict)
    decision: dict = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


# --- locking and lifecycle -------------------------------------------------------------------------------


def _connection_error(exc: BaseException) -> str:
    """A driver error in one line, every part kept ('terminating connection due to administrator command ...')."""
    text = str(getattr(exc, "orig", None) or exc)
    return " ".join(ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("(Background"))


class CycleLock:
    """The consumer's session advisory lock, held on its own connection for a whole run.

    True while acquired (``with cycle_lock(...) as held: if held: ...``). The lock lives and dies with its
    connection: `still_held()` asks that connection, so a run notices a dropped connection (a restart, an
    outage, pg_terminate_backend) before it takes another cycle without the lock; `lost` says why.
    """

    def __init__(self, conn, params: dict, acquired: bool):
        self._conn = conn
        self._params = params
        self.acquired = acquired
        self.lost: str | None = None

    def __bool__(self) -> bool:
        return self.acquired

    def still_held(self) -> bool:
        """Whether this connection still holds the lock (False once lost; `lost` names the cause)."""
        if not self.acquired or self.lost is not None:
            return False
        try:
            held = bool(self._conn.execute(query("cycle_lock_held"), self._params).scalar_one())
            self._conn.commit()
        except SQLAlchemyError as exc:  # the connection is gone, and the lock with it
            self.lost = f"the connection holding the cycle lock was lost ({_connection_error(exc)})"
        else:
            if not held:
                self.lost = "the cycle lock's connection no longer holds the lock"
        if self.lost:
            log.error("consumer %r: %s", self._params["consumer"], self.lost)
        return self.lost is None

    def release(self) -> None:
        """Unlock; a lock whose connection is gone is already released, and that is no error of the run's."""
        if not self.acquired or self.lost is not None:
            return
        try:
            self._conn.execute(query("cycle_unlock"), self._params)
            self._conn.commit()
        except SQLAlchemyError as exc:
            # The session (and with it the lock) ended; whatever the run did stays as committed. Raising here
            # would replace the run's real outcome, or its real error, by this unlock error.
            self.lost = f"the connection holding the cycle lock was lost ({_connection_error(exc)})"
            log.warning("consumer %r: %s before it was released; it ended with its session",
                        self._params["consumer"], self.lost)


@contextlib.contextmanager
def cycle_lock(engine: Engine, consumer: str) -> Iterator[CycleLock]:
    """Hold a session advisory lock for the consumer for the whole run; falsy if another run holds it.

    The lock dies with its connection, so a crashed run never blocks the stream.
    """
    conn = engine.connect()
    try:
        params = {"namespace": CYCLE_LOCK_NAMESPACE, "consumer": consumer}
        got = bool(conn.execute(query("cycle_try_lock"), params).scalar_one())
        conn.commit()
        lock = CycleLock(conn, params, got)
        try:
            yield lock
        finally:
            lock.release()
    finally:
        try:
            conn.close()
        except SQLAlchemyError:  # closing a dead connection: nothing left to release
            log.debug("closing the cycle lock's connection failed", exc_info=True)


def begin_cycle(engine: Engine, consumer: str, flow_run_id: str | None = None) -> int:
    """Open a cycle row (call while holding the consumer's cycle lock: earlier 'running' rows are abandoned)."""
    with engine.begin() as conn:
        abandoned = conn.execute(query("cycles_abandon"), {"consumer": consumer}).scalars().all()
        if abandoned:
            log.warning("marked abandoned cycle(s) %s of consumer %r as failed", abandoned, consumer)
        return int(conn.execute(query("cycle_begin"), {"consumer": consumer,
                                                        "flow_run_id": flow_run_id}).scalar_one())


def record_skipped(engine: Engine, consumer: str, reason: str, flow_run_id: str | None = None) -> CycleSummary:
    """A run that found another cycle running: recorded, without touching that cycle (no lock is held)."""
    summary = CycleSummary(None, "skipped", consumer, reason)
    with engine.begin() as conn:
        summary.cycle_id = int(conn.execute(query("cycle_skipped"), {
            "consumer": consumer, "flow_run_id": flow_run_id,
            "summary": json.dumps(summary.to_json())}).scalar_one())
    return summary


def mark_failed(engine: Engine, cycle_id: int, error: str) -> None:
    with engine.begin() as conn:
        conn.execute(query("cycle_fail"), {"cycle_id": cycle_id, "error": error[:4000]})


def _finish_params(summary: CycleSummary, batch_id: int | None, champion: int | None,
                   candidate: int | None, published: bool | None) -> dict:
    return {"cycle_id": summary.cycle_id, "status": summary.status, "batch_id": batch_id,
            "rows_pulled": summary.rows_pulled, "rows_quarantined": summary.rows_quarantined,
            "trained": summary.trained, "champion_version": champion, "candidate_version": candidate,
            "published": published, "summary": json.dumps(summary.to_json(), default=str)}


def _finish_row(conn, params: dict) -> None:
    """Close the cycle's row; refuse (rolling back the whole commit) if it is no longer 'running'."""
    if conn.execute(query("cycle_finish"), params).rowcount != 1:
        raise ConcurrentCycleError(
            f"Cycle {params['cycle_id']} was marked failed by another run while it worked (its lock was lost): "
            "nothing of it was committed; the next cycle takes its rows.")


def _finish(engine: Engine, cycle_id: int, summary: CycleSummary) -> None:
    with engine.begin() as conn:
        _finish_row(conn, _finish_params(summary, None, None, None, None))


def record_empty(engine: Engine, summary: CycleSummary) -> CycleSummary:
    """An empty cycle: nothing pulled, so only its row changes."""
    _finish(engine, summary.cycle_id, summary)
    return summary


# --- the commit -------------------------------------------------------------------------------------------


def _record_batch(conn, *, cycle_id: int, pulled: PulledBatch, validated: ValidatedBatch) -> int:
    """Inside the commit: advance the cursor (compare-and-set), write the manifest, quarantine, GX result."""
    bounds = {**pulled.from_cursor.as_params("from"), **pulled.to_cursor.as_params("to")}
    moved = conn.execute(query("cursor_advance"), {"consumer": pulled.consumer, **bounds}).rowcount
    if moved != 1:
        raise ConcurrentCycleError(
            f"The ingestion cursor of consumer {pulled.consumer!r} moved while this cycle ran (another cycle "
            "committed first): this cycle's work was rolled back and its rows stay with the other cycle."
        )
    in_bounds = conn.execute(query("batch_row_count"), bounds).scalar_one()
    if in_bounds != pulled.rows:
        # The manifest must describe exactly the rows this cycle took; anything else is a bug, and
        # committing it would lose or repeat rows.
        raise ConcurrentCycleError(
            f"The batch bounds hold {in_bounds} rows but the cycle pulled {pulled.rows}: nothing was "
            "committed; report this as a bug with the cycle's log.")
    # Event-time bounds of the clean rows: a quarantined row dated next year must not stretch them.
    times = validated.clean["occurred_at"].dropna()
    batch_id = int(conn.execute(query("batch_insert"), {
        "consumer": pulled.consumer, "cycle_id": cycle_id, **bounds,
        "row_count": validated.rows, "clean_count": len(validated.clean),
        "quarantined_count": len(validated.quarantined),
        "min_occurred_at": times.min() if len(times) else None,
        "max_occurred_at": times.max() if len(times) else None,
        "status": "accepted" if validated.accepted else "rejected", "reject_reason": validated.reject_reason,
        "reason_counts": json.dumps(validated.reason_counts),
    }).scalar_one())
    if len(validated.quarantined):
        conn.execute(query("quarantine_insert"), {"consumer": pulled.consumer, "batch_id": batch_id,
                                                  "rows": quarantine_payload(validated)})
    conn.execute(query("validation_insert"), {
        "batch_id": batch_id, "suite_name": SUITE_NAME, "suite_version": SUITE_VERSION,
        "success": validated.gx_success, "statistics": json.dumps(validated.gx_statistics),
        "results": json.dumps(validated.gx_results, default=str)})
    return batch_id


def _move_backlog(conn, consumer: str, cycle_id: int, outcome: FineTuneOutcome, keep: int | None) -> int:
    """Rows trained on now leave the training backlog; rows held out, below the minimum or beyond the budget join
    it; past `keep` rows the oldest leave it. Returns how many left that way (expired)."""
    if outcome.backlog_used:
        conn.execute(query("backlog_take"), {"consumer": consumer, "ids": outcome.backlog_used})
    for reason, ids in outcome.backlog_add.items():
        if ids:
            conn.execute(query("backlog_add"), {"consumer": consumer, "reason": reason, "cycle_id": cycle_id,
                                                "ids": ids})
    if keep is None:
        return 0
    return len(conn.execute(query("backlog_expire"), {"consumer": consumer, "keep": keep}).all())


def _keep_champion_scores(conn, consumer: str, outcome: FineTuneOutcome, publish: PublishResult | None) -> None:
    """Queued rows keep the score of the champion after this commit (0013_backlog_champion_scores.sql): the published
    candidate's on the rows the gate judged, else the unchanged champion's on the rows it scored. Later cycles
    with that champion then do not score them again (fine_tune.known_scores)."""
    if publish is not None and publish.status == "published":
        scores, version = outcome.candidate_scores, publish.version
    else:
        scores, version = outcome.champion_scores, outcome.champion_version
    if scores is None or version is None or not len(scores):
        return
    scores = scores[np.isfinite(scores.to_numpy())]
    conn.execute(query("backlog_scores"), {"consumer": consumer, "version": int(version),
                                           "ids": scores.index.astype("int64").tolist(),
                                           "scores": scores.astype("float64").tolist()})


def commit_batch(engine: Engine, cycle_id: int, pulled: PulledBatch, validated: ValidatedBatch) -> int:
    """Commit a batch's ingestion alone (no model work): for tools and benchmarks that only ingest."""
    summary = CycleSummary(cycle_id, "completed", pulled.consumer, f"ingested {pulled.rows} rows",
                           rows_pulled=pulled.rows, rows_clean=len(validated.clean),
                           rows_quarantined=len(validated.quarantined), quarantine_reasons=validated.reason_counts)
    with engine.begin() as conn:
        batch_id = _record_batch(conn, cycle_id=cycle_id, pulled=pulled, validated=validated)
        _finish_row(conn, _finish_params(summary, batch_id, None, None, None))
    return batch_id


def commit_cycle(
    engine: Engine,
    *,
    summary: CycleSummary,
    pulled: PulledBatch,
    validated: ValidatedBatch,
    outcome: FineTuneOutcome | None,
    drift: DriftReport | None,
    drift_path: Path | None,
    decision: Decision,
    reference_sample: list[dict] | None,
    champion_reference: list[dict] | None = None,
    keep_rejected: int = 20,
    backlog_keep: int | None = None,
) -> tuple[CycleSummary, PublishResult | None]:
    """Commit everything the cycle decided, atomically; raises ConcurrentCycleError if the cursor moved.
    champion_reference: the drift reference the champion adopts now (it had none: a cold start)."""
    publish: PublishResult | None = None
    with engine.begin() as conn:
        batch_id = _record_batch(conn, cycle_id=summary.cycle_id, pulled=pulled, validated=validated)
        batch_ids = [batch_id]
        if outcome is not None:
            if outcome.backlog_used:
                batch_ids += [int(b) for b in conn.execute(query("training_batches_of_backlog"), {
                    "consumer": pulled.consumer, "ids": outcome.backlog_used}).scalars() if b != batch_id]
            expired = _move_backlog(conn, pulled.consumer, summary.cycle_id, outcome, backlog_keep)
            if expired:
                log.warning("%d rows waited in the training backlog beyond the newest %d and left it untrained "
                            "(training does not keep up: %s)", expired, backlog_keep, FALLING_BEHIND_ADVICE)
            if summary.train:
                summary.train["backlog_expired"] = expired
            if outcome.trained and outcome.metrics.get("rebase"):
                request_done(conn, pulled.consumer)  # a rebase asked for by hand has been trained
            if outcome.new_probe is not None:
                write_probe_set(conn, outcome.new_probe)
        if outcome is not None and outcome.artifact is not None:
            publish = insert_version_and_maybe_promote(
                conn, artifact=outcome.artifact, decision=decision, champion_before=outcome.champion_version,
                metrics=outcome.metrics, batch_ids=sorted(set(batch_ids)), cycle_id=summary.cycle_id,
                reference_sample=reference_sample, keep_rejected=keep_rejected)
        if outcome is not None:
            _keep_champion_scores(conn, pulled.consumer, outcome, publish)
        if champion_reference is not None and outcome is not None and outcome.champion_version:
            adopt_reference(conn, outcome.champion_version, champion_reference)
        record_decision(conn, cycle_id=summary.cycle_id, decision=decision,
                        champion=outcome.champion_version if outcome else None, publish=publish)
        if drift is not None and drift.html is not None:
            r = drift.result
            conn.execute(query("drift_insert"), {
                "cycle_id": summary.cycle_id, "batch_id": batch_id,
                "champion_version": outcome.champion_version if outcome else None,
                "dataset_drift": r.dataset_drift, "drifted_share": r.drifted_share,
                "columns": json.dumps({k: asdict(v) for k, v in r.columns.items()}),
                "reference_rows": r.reference_rows, "current_rows": r.current_rows,
                "html_path": str(drift_path) if drift_path else None, "html_gzip": drift.html_gzip,
                "html_sha256": drift.html_sha256})
        summary.batch["id"] = batch_id
        summary.decision.update({
            "published": bool(publish and publish.status == "published"),
            "version": publish.version if publish else None,
            "status": publish.status if publish else "no_candidate",
        })
        _finish_row(conn, _finish_params(
            summary, batch_id, outcome.champion_version if outcome else None,
            publish.version if publish else None, summary.decision["published"]))
    return summary, publish
