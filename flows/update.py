"""The update flow: pull -> validate (and denoise) -> [fine-tune -> drift] -> publish -> record the cycle."""

# No `from __future__ import annotations` here: Prefect builds the flow's parameter model from these annotations
# in the process a deployment's run executes in, and a string "Settings" would not resolve there.
import contextlib
import time
from prefect import flow, get_run_logger
from freshrec.settings import Settings, load_settings
from tasks.cycle import (begin_cycle, commit_cycle, decide_publication, hold_cycle_lock, mark_cycle_failed,
                         record_empty_cycle, record_skipped_cycle, report_failed_run)
from tasks.common import core_logs_to_run_logs
from tasks.drift import measure_drift
from tasks.ingest import pull_new_interactions, validate_and_denoise
from tasks.fine_tune import fine_tune, load_champion

FLOW_NAME = "freshrec-update"


def run_one_cycle(settings: Settings, current: dict | None = None) -> dict:
    """One cycle's tasks, in order; the caller holds the consumer's lock (current gets the cycle's id)."""
    seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            seconds[name] = round(time.perf_counter() - started, 3)

    cycle_id = begin_cycle(settings)
    if current is not None:
        current["cycle_id"] = cycle_id
    try:
        with stage("pull"):
            pulled = pull_new_interactions(settings)
        if pulled.rows == 0:
            return record_empty_cycle(settings, cycle_id, pulled, seconds).to_json()
        with stage("validate"):
            validated = validate_and_denoise(settings, pulled)
        outcome = drift = None
        if validated.accepted:
            with stage("fine_tune"):
                champion = load_champion(settings)
                outcome = fine_tune(settings, pulled, validated, champion)
            with stage("drift"):
                drift = measure_drift(settings, cycle_id, outcome, champion)
        decision = decide_publication(settings, validated, outcome, drift)
        with stage("publish"):
            summary = commit_cycle(settings, cycle_id, pulled, validated, outcome, drift, decision, seconds)
        summary.stage_seconds = dict(seconds)
        return summary.to_json()
    except Exception as exc:
        try:
            mark_cycle_failed(settings, cycle_id, f"{type(exc).__name__}: {exc}")
        except Exception as also:  # e.g. the database is still away: the run must end on the real cause
            get_run_logger().warning("cycle %d could not be marked failed (%s: %s); the next run marks it "
                                     "abandoned", cycle_id, type(also).__name__, also)
        raise


@flow(name=FLOW_NAME, description="freshrec update: every new interaction once, validated, used to fine-tune "
      "the champion, checked for drift, published only if better. Catches up on a backlog in bounded cycles.")
def freshrec_update(
    model: str | None = None,
    max_batch_rows: int | None = None,
    consumer: str | None = None,
    catch_up: bool = True,
    settings: Settings | None = None,
) -> dict:
    """One update run (Prefect shows these argument descriptions in the UI's run form).

    Args:
        model: The model to train when there is no champion yet: minilm, tiny or a Hugging Face model folder.
            Empty: FRESHREC_MODEL.
        max_batch_rows: The most rows one cycle takes. Empty: FRESHREC_MAX_BATCH_ROWS.
        consumer: The ingestion cursor this run advances. Empty: FRESHREC_CONSUMER.
        catch_up: While rows are still waiting, run further cycles in this run, for up to
            FRESHREC_CATCH_UP_SECONDS (one run takes a backlog instead of late runs piling up).
        settings: The whole configuration, built once by the caller (the command line, the demo, the
            benchmarks). Empty: read from the FRESHREC_* environment of the process the run executes in,
            as a scheduled deployment does. model, max_batch_rows and consumer, when given, override it.
    """
    core_logs_to_run_logs()
    current: dict = {"cycle_id": None}
    try:
        overrides = {k: v for k, v in {"model": model, "max_batch_rows": max_batch_rows,
                                       "consumer": consumer}.items() if v is not None}
        settings = (settings.model_copy(update=overrides) if settings is not None
                    else load_settings(**overrides))
        with hold_cycle_lock(settings) as lock:
            if not lock:
                return record_skipped_cycle(settings, "another cycle of this consumer is running").to_json()
            started = time.monotonic()
            done = [run_one_cycle(settings, current)]
            # After an outage one run takes the backlog, in bounded cycles, instead of late runs piling up;
            # never without the lock: once its connection is gone, another run may already be cycling.
            while (catch_up and done[-1]["status"] == "completed" and done[-1]["lag"].get("rows_behind")
                   and time.monotonic() - started < settings.catch_up_seconds and lock.still_held()):
                done.append(run_one_cycle(settings, current))
    except Exception as exc:  # every run leaves an artifact, a failed one too
        try:
            report_failed_run(current["cycle_id"], f"{type(exc).__name__}: {exc}")
        except Exception as also:
            get_run_logger().warning("the failed run's artifact was not written (%s)", also)
        raise
    result = {**done[-1], "earlier_cycles": done[:-1]} if len(done) > 1 else done[0]
    if lock.lost:  # what was committed stays committed; the run says why it stopped
        result["lock_lost"] = f"{lock.lost}; the committed cycles stand, this run took no further cycle"
        get_run_logger().error(result["lock_lost"])
    return result
