"""`freshrec serve` against a real Prefect server: schedule, concurrency limit, a triggered run and its artifacts."""

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from freshrec import generate

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
