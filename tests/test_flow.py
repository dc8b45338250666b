"""The update flow under Prefect's test harness, with the tiny model, against the real PostgreSQL: the stages, bad
batches, the lock, crashes, catching up, what a run leaves in Prefect (logs, artifacts), and a lost lock."""

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from freshrec import generate

from conftest import count, publish_everything
from helpers import lock_backend_pid, terminate

pytestmark = pytest.mark.slow


def run(**params):
    """One flow run; a single cycle unless the test asks the run to catch up."""
    from flows.update import freshrec_update

    return freshrec_update(**{"catch_up": False, **params})


def test_cycles_go_through_every_stage(prefect_harness, env, engine, tmp_path):
    publish_everything(env)  # this test is about the stages, not the model's quality
    env.setenv("FRESHREC_MAX_BATCH_ROWS", "500")
    generate.insert_stream(engine, generate.StreamSpec(users=40, items=60, events=1100, drift_at=0.6, noise=0.03,
                                                       seed=5))
    first = run()
    assert first["status"] == "completed" and first["rows_pulled"] == 500
    assert first["rows_pulled"] == first["rows_clean"] + first["rows_quarantined"]
    assert first["rows_quarantined"] > 0 and sum(first["quarantine_reasons"].values()) >= first["rows_quarantined"]
    assert first["trained"] and first["metrics"]["candidate"]["n"] > 0
    assert first["drift"]["status"] == "no_reference"
    assert first["decision"]["published"] and first["decision"]["version"] == 1
    assert set(first["stage_seconds"]) == {"pull", "validate", "fine_tune", "drift", "publish"}

    second = run()
    assert second["rows_pulled"] == 500 and second["decision"]["champion_before"] == 1
    assert second["metrics"]["champion"]["n"] == second["metrics"]["candidate"]["n"]  # same held-out rows
    # a cold start has no drift reference: the first batch it scores becomes it, as it scored it
    assert second["drift"]["status"] == "no_reference" and "becomes its reference" in second["drift"]["note"]
    with engine.connect() as conn:
        reference = conn.execute(sa.text("SELECT reference_sample FROM model_versions WHERE version = 1")).scalar()
    assert reference and len(reference) == second["rows_clean"] and {"prediction", "user_category_rate"} <= set(
        reference[0])
    third = run()
    assert third["rows_pulled"] == 100 and third["drift"]["status"] == "measured"
    assert third["drift"]["reference_rows"] == len(reference)
    report = Path(third["drift"]["report_path"])
    assert report.is_file() and report.stat().st_size > 100_000

    with engine.connect() as conn:
        cycles = conn.execute(sa.text("SELECT status, rows_pulled, trained FROM update_cycles ORDER BY id")).all()
        stored = conn.execute(sa.text("SELECT html_sha256, html_path FROM drift_reports")).one()
        batches = conn.execute(sa.text("SELECT row_count, clean_count, quarantined_count FROM ingest_batches "
                                       "ORDER BY id")).all()
    assert [tuple(c) for c in cycles] == [("completed", 500, True), ("completed", 500, True), ("completed", 100, True)]
    assert stored.html_path == str(report)
    import hashlib
    assert stored.html_sha256 == hashlib.sha256(report.read_bytes()).hexdigest()
    assert sum(b.row_count for b in batches) == 1100 == count(engine, "interactions")
    assert count(engine, "quarantine") == sum(b.quarantined_count for b in batches)
    assert count(engine, "model_versions") == 3 and count(engine, "validation_results") == 3

    started = time.monotonic()
    empty = run()
    assert empty["status"] == "empty" and empty["rows_pulled"] == 0 and "no new rows" in empty["message"]
    assert time.monotonic() - started < 10
    assert count(engine, "update_cycles", "status = 'empty'") == 1
    assert count(engine, "model_versions") == 3


def _good_batch(engine, seed):
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=200, seed=seed))


def test_mostly_bad_batch_trains_nothing_and_the_next_good_one_trains(prefect_harness, env, engine):
    publish_everything(env)
    generate.ensure_catalogue(engine, generate.build_catalogue(30))
    with engine.begin() as conn:  # 60 % bad labels
        conn.execute(sa.text("INSERT INTO interactions (user_id, item_id, event_type, label, dwell_ms, occurred_at) "
                             "SELECT g, 1 + g % 30, 'click', CASE WHEN g <= 60 THEN 7 ELSE 1 END, 10, "
                             "now() - interval '1 minute' * g FROM generate_series(1, 100) g"))
    summary = run()
    assert summary["batch"]["accepted"] is False and not summary["trained"]
    assert "60% of the batch failed checks" in summary["decision"]["reasons"][0]
    assert count(engine, "quarantine", "'batch_rejected' = ANY(reasons)") == 100
    assert count(engine, "model_versions") == 0
    _good_batch(engine, 1)
    after = run()
    assert after["batch"]["accepted"] and after["trained"] and after["rows_pulled"] == 200
    assert count(engine, "model_versions") == 1


def test_broken_column_trains_nothing_and_the_next_good_batch_trains(prefect_harness, env, engine):
    publish_everything(env)
    generate.ensure_catalogue(engine, generate.build_catalogue(30))
    with engine.begin() as conn:  # a producer deploys a bad schema change ...
        conn.execute(sa.text("ALTER TABLE interactions ALTER COLUMN dwell_ms TYPE text"))
        conn.execute(sa.text("INSERT INTO interactions (user_id, item_id, event_type, label, dwell_ms, occurred_at) "
                             "SELECT g, 1, 'click', 1, 'long', now() - interval '1 minute' FROM generate_series(1, 40) g"))
    summary = run()
    assert summary["batch"]["accepted"] is False and not summary["trained"]
    assert summary["batch"]["reject_reason"].startswith("schema broken: dwell_ms has type")
    assert count(engine, "quarantine", "'batch_rejected' = ANY(reasons)") == 40
    with engine.begin() as conn:  # ... and reverts it
        conn.execute(sa.text("ALTER TABLE interactions ALTER COLUMN dwell_ms TYPE integer "
                             "USING CASE WHEN dwell_ms ~ '^-?[0-9]+$' THEN dwell_ms::integer END"))
    _good_batch(engine, 2)
    after = run()
    assert after["batch"]["accepted"] and after["trained"] and after["rows_pulled"] == 200
    assert count(engine, "interactions") == 240  # nothing deleted


def test_second_cycle_of_a_consumer_is_skipped_while_one_holds_the_lock(prefect_harness, env, engine):
    from freshrec.cycles import cycle_lock

    with cycle_lock(engine, "default") as held:
        assert held
        summary = run()
    assert summary["status"] == "skipped" and "another cycle" in summary["message"]
    assert count(engine, "update_cycles", "status = 'skipped'") == 1


def test_crash_before_commit_leaves_rows_for_the_next_run(prefect_harness, env, engine):
    publish_everything(env)
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=300, seed=1))
    import freshrec.drift

    def boom(*args, **kwargs):
        raise RuntimeError("disk full while writing the report")

    with pytest.MonkeyPatch.context() as patched:  # only the report writer breaks; the environment stays
        patched.setattr(freshrec.drift, "write_report", boom)
        with pytest.raises(RuntimeError, match="disk full"):
            run()
    with engine.connect() as conn:
        failed = conn.execute(sa.text("SELECT status, error FROM update_cycles")).one()
    assert failed.status == "failed" and "disk full" in failed.error
    assert count(engine, "ingest_batches") == 0 and count(engine, "model_versions") == 0
    rerun = run()
    assert rerun["status"] == "completed" and rerun["rows_pulled"] == 300


def test_reports_are_listed_and_exported_from_the_database(prefect_harness, env, engine, tmp_path):
    import gzip
    import os
    import subprocess
    import sys

    from freshrec.errors import FreshrecError
    from freshrec.reports import export_report, list_reports

    publish_everything(env)
    generate.insert_stream(engine, generate.StreamSpec(users=30, items=40, events=500, drift_at=0.5, seed=9))
    env.setenv("FRESHREC_MAX_BATCH_ROWS", "170")
    run()
    run()  # the cold-start champion adopts this batch as its drift reference
    second = run()  # the first cycle with a drift report
    (report,) = list_reports(engine)
    assert report["cycle_id"] == second["cycle_id"] and report["current_rows"] > 0
    Path(second["drift"]["report_path"]).unlink()  # the machine's copy is gone ...
    out = export_report(engine, second["cycle_id"], tmp_path)  # ... the database's is not
    assert out.name == f"cycle-{second['cycle_id']:06d}-drift.html" and b"<html" in out.read_bytes()[:2000].lower()
    with pytest.raises(FreshrecError, match="has no drift report"):
        export_report(engine, 999, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "freshrec_cli.main", "reports", "export", str(second["cycle_id"]),
                           str(tmp_path / "copy.html"), "--json"], capture_output=True, text=True,
                          env={**os.environ}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "copy.html").read_bytes() == out.read_bytes()
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT html_gzip FROM drift_reports")).scalar_one()
    assert gzip.decompress(bytes(stored)) == out.read_bytes()


def test_one_run_catches_up_on_a_backlog_in_bounded_cycles(prefect_harness, env, engine):
    publish_everything(env)
    env.setenv("FRESHREC_MAX_BATCH_ROWS", "150")
    generate.insert_stream(engine, generate.StreamSpec(users=30, items=40, events=400, seed=11))
    result = run(catch_up=True)
    cycles = result["earlier_cycles"] + [result]
    assert [c["rows_pulled"] for c in cycles] == [150, 150, 100]
    assert result["lag"]["rows_behind"] == 0
    assert count(engine, "update_cycles", "status = 'completed'") == 3


def test_two_overlapping_runs_make_one_cycle(prefect_harness, env, engine):
    import threading

    publish_everything(env)
    env.setenv("FRESHREC_EPOCHS", "20")  # a cycle long enough for the second run to arrive in the middle
    generate.insert_stream(engine, generate.StreamSpec(users=30, items=40, events=600, seed=12))
    results = []
    first = threading.Thread(target=lambda: results.append(run()))
    first.start()
    deadline = time.monotonic() + 60
    while not count(engine, "update_cycles", "status = 'running'"):  # the first run is inside its cycle
        assert time.monotonic() < deadline
        time.sleep(0.02)
    results.append(run())
    first.join()
    assert sorted(r["status"] for r in results) == ["completed", "skipped"]
    assert sum(r["rows_pulled"] for r in results) == 600
    assert count(engine, "ingest_batches") == 1
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status FROM update_cycles ORDER BY status")).scalars().all()
    assert rows == ["completed", "skipped"]  # the skipped run left the running one alone


def test_a_killed_run_is_marked_abandoned_by_the_next(prefect_harness, env, engine):
    from freshrec.cycles import begin_cycle

    stale = begin_cycle(engine, "default")  # a run whose process died after opening its cycle
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=100, seed=13))
    publish_everything(env)
    assert run()["status"] == "completed"
    with engine.connect() as conn:
        status, error = conn.execute(sa.text("SELECT status, error FROM update_cycles WHERE id = :i"),
                                     {"i": stale}).one()
    assert status == "failed" and error.startswith("abandoned")


@pytest.mark.slow
def test_killing_the_lock_connection_mid_run_keeps_the_commit_and_stops_catch_up(
        prefect_harness, env, engine, admin_engine):
    from flows.update import freshrec_update

    publish_everything(env)
    env.setenv("FRESHREC_MAX_BATCH_ROWS", "150")
    env.setenv("FRESHREC_EPOCHS", "20")  # cycles long enough to kill the lock in the middle of one
    generate.insert_stream(engine, generate.StreamSpec(users=30, items=40, events=450, seed=21))
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = freshrec_update(catch_up=True)
        except BaseException as exc:  # the test asserts there was none
            outcome["error"] = exc

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 240
    while not count(engine, "update_cycles", "status = 'running'"):
        assert time.monotonic() < deadline and runner.is_alive(), outcome
        time.sleep(0.02)
    with engine.connect() as conn:
        running = conn.execute(sa.text("SELECT max(id) FROM update_cycles")).scalar_one()
    terminate(admin_engine, lock_backend_pid(admin_engine, engine))
    runner.join(300)
    assert not runner.is_alive()

    assert "error" not in outcome, outcome.get("error")  # not the unlock error, nor any other
    result = outcome["result"]
    assert result["cycle_id"] == running and result["status"] == "completed"
    assert "connection holding the cycle lock was lost" in result["lock_lost"]
    with engine.connect() as conn:
        cycles = dict(conn.execute(sa.text("SELECT id, status FROM update_cycles")).all())
        rows_waiting = conn.execute(sa.text("SELECT count(*) FROM interactions")).scalar_one() - conn.execute(
            sa.text("SELECT coalesce(sum(row_count), 0) FROM ingest_batches")).scalar_one()
    assert cycles[running] == "completed"  # the cycle the lock was lost in committed and stays so
    assert max(cycles) == running  # and no cycle started after the lock was gone ...
    assert rows_waiting > 0  # ... though rows were waiting for one
    assert set(cycles.values()) == {"completed"}


# --- what a run leaves in Prefect: the core's INFO lines in its logs, an artifact whatever its outcome ---


def run_state(**params):
    from flows.update import freshrec_update

    return freshrec_update(**{"catch_up": False, **params}, return_state=True)


def run_logs(flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs go to the API in batches
    with get_client(sync_client=True) as client:
        return client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))


def artifacts(flow_run_id) -> dict[str, list]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    out: dict[str, list] = {}
    for a in found:
        out.setdefault(a.key, []).append(a)
    return out


def test_core_info_lines_reach_the_run_logs(prefect_harness, env, engine):
    publish_everything(env)
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=200, seed=31))
    state = run_state()
    assert state.is_completed()
    logs = run_logs(state.state_details.flow_run_id)
    core = [entry for entry in logs if entry.name.startswith("freshrec")]
    names = {entry.name for entry in core}
    assert {"freshrec.fine_tune", "freshrec.registry"} <= names, names
    messages = " | ".join(entry.message for entry in core)
    assert "trained " in messages and "published version 1" in messages
    assert all(entry.level >= 20 for entry in core)  # INFO and above, as PREFECT_LOGGING_LEVEL says


def test_every_run_leaves_an_artifact_and_only_a_committed_cycle_a_drift_report(
        prefect_harness, env, engine, admin_engine):
    import freshrec.cycles
    from freshrec.cycles import cycle_lock

    publish_everything(env)
    env.setenv("FRESHREC_MAX_BATCH_ROWS", "170")
    generate.insert_stream(engine, generate.StreamSpec(users=30, items=40, events=500, drift_at=0.5, seed=32))
    first = run_state()  # publishes the first champion; no reference yet, so no drift report
    assert first.is_completed()
    assert "cycle-summary" in artifacts(first.state_details.flow_run_id)
    adopting = run_state()  # the champion adopts this batch as its reference: still no drift report
    assert adopting.is_completed() and "drift-report" not in artifacts(adopting.state_details.flow_run_id)

    def commit_fails(*args, **kwargs):
        raise RuntimeError("the disk under PostgreSQL is full")

    with pytest.MonkeyPatch.context() as patched:  # drift is measured, then the commit fails
        patched.setattr(freshrec.cycles, "commit_cycle", commit_fails)
        failed = run_state()
    assert failed.is_failed() and "the disk under PostgreSQL is full" in failed.message
    found = artifacts(failed.state_details.flow_run_id)
    assert "failed" in found["cycle-summary"][0].data and "disk under PostgreSQL" in found["cycle-summary"][0].data
    assert not {"drift-report", "drift-headline", "drift-columns"} & set(found)  # no report of a failed cycle
    assert count(engine, "update_cycles", "status = 'failed'") == 1

    measured = run_state()  # the same rows again, committed this time: now the drift report is shown
    assert measured.is_completed()
    found = artifacts(measured.state_details.flow_run_id)
    assert {"cycle-summary", "drift-report", "drift-headline"} <= set(found)

    with cycle_lock(engine, "default") as held:
        assert held
        skipped = run_state()
    assert skipped.is_completed()
    assert "skipped" in artifacts(skipped.state_details.flow_run_id)["cycle-summary"][0].data

    measured_again = run_state()  # the 500 rows are all taken: an empty cycle
    assert measured_again.is_completed() and measured_again.result()["status"] == "empty"
    assert "empty" in artifacts(measured_again.state_details.flow_run_id)["cycle-summary"][0].data
