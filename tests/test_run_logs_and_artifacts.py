"""What a run leaves in Prefect: the core's INFO lines in its logs, and an artifact whatever its outcome."""

import pytest

from freshrec import generate

from conftest import count, publish_everything

pytestmark = pytest.mark.slow


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
    env.setenv("FRESHREC_MAX_BATCH_ROWS", "250")
    generate.insert_stream(engine, generate.StreamSpec(users=30, items=40, events=500, drift_at=0.5, seed=32))
    first = run_state()  # publishes the first champion; no reference yet, so no drift report
    assert first.is_completed()
    assert "cycle-summary" in artifacts(first.state_details.flow_run_id)

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
