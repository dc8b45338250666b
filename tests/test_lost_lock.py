"""A run whose lock connection dies: what it committed stays, it names the cause, it takes no cycle unlocked."""

import threading
import time

import pytest
import sqlalchemy as sa

from freshrec import generate
from freshrec.cycles import cycle_lock
from freshrec.locks import CYCLE_LOCK_NAMESPACE

from conftest import count, publish_everything


def lock_backend_pid(admin_engine, engine) -> int | None:
    """The server process of the connection holding a freshrec cycle lock in the test's database."""
    with admin_engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
            "AND classid = CAST(CAST(:ns AS integer) AS oid) "
            "AND database = (SELECT oid FROM pg_database WHERE datname = :db)"),
            {"ns": CYCLE_LOCK_NAMESPACE, "db": engine.url.database}).scalar()


def terminate(admin_engine, pid: int) -> None:
    with admin_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()


def test_a_lock_whose_connection_died_is_reported_not_raised(admin_engine, engine):
    with cycle_lock(engine, "default") as lock:
        assert lock and lock.still_held()
        terminate(admin_engine, lock_backend_pid(admin_engine, engine))
        assert not lock.still_held()
        assert "connection holding the cycle lock was lost" in lock.lost
        assert "terminat" in lock.lost  # PostgreSQL's own words for what happened
    # leaving the block did not raise an unlock error; the lock died with its session
    with cycle_lock(engine, "default") as again:
        assert again and again.still_held()
    with cycle_lock(engine, "default") as released:  # released normally this time
        assert released


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
