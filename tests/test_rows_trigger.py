"""Update frequency that follows the data: `freshrec serve` starts a run when FRESHREC_TRIGGER_ROWS rows wait."""

import time
import uuid

import pytest
import sqlalchemy as sa

from freshrec import generate
from freshrec.status import rows_waiting

from conftest import PUBLISH_EVERYTHING, count
from bench.prefect_server import freshrec_serve, prefect_server


def test_rows_waiting_counts_past_the_cursor_up_to_the_cap(engine):
    assert rows_waiting(engine, "default", 100) == 0
    generate.insert_stream(engine, generate.StreamSpec(users=10, items=20, events=120, seed=41))
    assert rows_waiting(engine, "default", 100) == 100  # capped: the trigger only asks "at least 100?"
    assert rows_waiting(engine, "default", 1000) == 120
    assert rows_waiting(engine, "another-consumer", 1000) == 120


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
