"""`freshrec serve` against a real Prefect server: schedule, concurrency limit, a triggered run and its artifacts;
a burst of rows (FRESHREC_TRIGGER_ROWS) starts a run long before the interval."""

import time
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from freshrec import generate
from freshrec.status import rows_waiting

from conftest import PUBLISH_EVERYTHING, count
from bench.prefect_server import freshrec_serve, prefect_server

pytestmark = pytest.mark.slow


DEPLOYMENT = "freshrec-update/serve-every-2-min"


def wait_for(fn, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_serve_registers_the_deployment_and_runs_cycles(tmp_path, database_url, engine):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=300, seed=1))
    env = {"FRESHREC_DATABASE_URL": database_url, "FRESHREC_MODEL": "tiny", "FRESHREC_TRAIN_MODE": "full",
           "FRESHREC_DATA_DIR": str(tmp_path / "data"), **PUBLISH_EVERYTHING}
    with prefect_server(tmp_path) as api, freshrec_serve(api, tmp_path, env, interval=120):
        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            deployment = wait_for(lambda: _deployment(client), 120, "the deployment")
            assert deployment.schedules[0].schedule.interval == timedelta(seconds=120)
            assert deployment.global_concurrency_limit.limit == 1
            assert deployment.concurrency_options.collision_strategy.value == "CANCEL_NEW"
            schema = deployment.parameter_openapi_schema["properties"]
            assert "FRESHREC_MODEL" in schema["model"]["description"] and schema["catch_up"]["default"] is True

            def finished(run_id):
                run = client.read_flow_run(run_id)
                return run if run.state and run.state.is_final() else None

            first = client.create_flow_run_from_deployment(deployment.id)
            done = wait_for(lambda: finished(first.id), 300, "the triggered run")
            assert done.state.is_completed(), done.state.message
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[first.id])))
            assert {"data-quality", "cycle-summary"} <= {a.key for a in artifacts}

            empty = client.create_flow_run_from_deployment(deployment.id)
            done = wait_for(lambda: finished(empty.id), 300, "the empty run")
            assert done.state.is_completed()
    with engine.connect() as conn:
        statuses = conn.execute(sa.text("SELECT status FROM update_cycles ORDER BY id")).scalars().all()
    assert statuses == ["completed", "empty"]
    assert count(engine, "ingest_batches") == 1


def _deployment(client):
    try:
        return client.read_deployment_by_name(DEPLOYMENT)
    except Exception:  # not registered yet
        return None


@pytest.mark.slow
def test_a_burst_starts_a_run_long_before_the_interval(tmp_path, database_url, engine):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    generate.insert_stream(engine, generate.StreamSpec(users=5, items=30, events=1, seed=42))  # the catalogue
    with engine.begin() as conn:  # a cursor past that row, as after an earlier cycle
        conn.execute(sa.text("INSERT INTO ingest_cursor (consumer, last_txid, last_id) "
                             "SELECT 'default', txid, id FROM interactions ORDER BY txid DESC, id DESC LIMIT 1"))
    env = {"FRESHREC_DATABASE_URL": database_url, "FRESHREC_MODEL": "tiny", "FRESHREC_TRAIN_MODE": "full",
           "FRESHREC_DATA_DIR": str(tmp_path / "data"), "FRESHREC_TRIGGER_ROWS": "150",
           "FRESHREC_TRIGGER_POLL_S": "1", **PUBLISH_EVERYTHING}
    with prefect_server(tmp_path) as api, freshrec_serve(api, tmp_path, env, interval=3600):
        time.sleep(5)  # quiet: below the threshold nothing runs
        generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=100, seed=43))
        time.sleep(5)
        assert count(engine, "update_cycles") == 0
        generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=200, seed=44))  # the burst
        deadline = time.monotonic() + 300
        while count(engine, "ingest_batches") == 0 or rows_waiting(engine, "default", 1000):
            assert time.monotonic() < deadline, "the burst did not start a run"
            time.sleep(1)
        with engine.connect() as conn:
            cycles = conn.execute(sa.text("SELECT status, flow_run_id FROM update_cycles ORDER BY id")).all()
        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            runs = {c.flow_run_id: client.read_flow_run(uuid.UUID(str(c.flow_run_id))) for c in cycles}
    assert {c.status for c in cycles} == {"completed"}  # one run at a time: nothing skipped, nothing failed
    assert all("rows-trigger" in run.tags for run in runs.values())  # started by the rows, not the clock
    assert count(engine, "interactions") == 301
    with engine.connect() as conn:
        consumed = conn.execute(sa.text("SELECT sum(row_count) FROM ingest_batches")).scalar_one()
    assert consumed == 300  # every waiting row once
