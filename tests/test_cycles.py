"""freshrec.cycles: the cycle lock dies with its connection and says so; a process killed before the commit leaves
its rows, one killed after it never repeats them; a cycle another run abandoned cannot commit."""

import os
import signal
import subprocess
import sys

import pytest
import sqlalchemy as sa

from freshrec import ingest, quality
from freshrec.cycles import begin_cycle, commit_batch, cycle_lock, mark_failed, record_skipped
from freshrec.errors import ConcurrentCycleError

from conftest import count
from helpers import RULES, insert_rows, lock_backend_pid, take, terminate


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


CHILD = r"""
import os, sys, time
from freshrec import ingest, quality
from freshrec.cycles import begin_cycle, commit_batch
from freshrec.db import create_engine
engine = create_engine(os.environ["URL"])
rules = quality.QualityRules(event_types=("click", "skip"), duplicate_window_s=0.0, bot_events_per_minute=10_000,
                             batch_reject_share=1.0)
pulled = ingest.pull_new_interactions(engine, "c", 1000)
validated = quality.check_batch(engine, pulled, rules)
if sys.argv[1] == "after":
    commit_batch(engine, begin_cycle(engine, "c"), pulled, validated)
print(",".join(str(i) for i in pulled.frame["id"]), flush=True)
time.sleep(60)  # killed here
"""


def _killed_child(database_url: str, when: str) -> list[int]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, when], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "URL": database_url})
    line = proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return [int(i) for i in line.strip().split(",")]


def test_process_killed_before_commit_leaves_rows_for_the_next_run(engine, database_url):
    ids = insert_rows(engine, 30)
    assert _killed_child(database_url, "before") == ids
    rerun = take(engine, "c", 1000)
    assert sorted(int(i) for i in rerun.frame["id"]) == ids  # the same rows, again
    assert take(engine, "c", 1000).rows == 0  # and only once


def test_process_killed_after_commit_never_repeats_rows(engine, database_url):
    ids = insert_rows(engine, 30)
    assert _killed_child(database_url, "after") == ids
    assert take(engine, "c", 1000).rows == 0
    more = insert_rows(engine, 5)
    assert sorted(int(i) for i in take(engine, "c", 1000).frame["id"]) == more


def test_a_cycle_another_run_abandoned_cannot_commit_and_its_rows_stay(engine):
    ids = insert_rows(engine, 10)
    pulled = ingest.pull_new_interactions(engine, "c", 100)
    validated = quality.check_batch(engine, pulled, RULES)
    stale = begin_cycle(engine, "c")
    begin_cycle(engine, "c")  # the next run (which holds the lock now) marks the stale cycle abandoned
    with pytest.raises(ConcurrentCycleError, match=f"Cycle {stale} was marked failed by another run"):
        commit_batch(engine, stale, pulled, validated)
    assert count(engine, "ingest_batches") == 0  # nothing of the stale cycle was committed ...
    with engine.connect() as conn:
        status, error = conn.execute(sa.text("SELECT status, error FROM update_cycles WHERE id = :i"),
                                     {"i": stale}).one()
    assert status == "failed" and error.startswith("abandoned")
    assert sorted(int(i) for i in take(engine, "c", 1000).frame["id"]) == ids  # ... so its rows are still there


def test_a_skipped_run_is_recorded_beside_the_running_cycle_and_a_failure_keeps_its_error(engine):
    running = begin_cycle(engine, "c")
    skipped = record_skipped(engine, "c", "another cycle of consumer 'c' is running")
    assert skipped.status == "skipped" and skipped.cycle_id not in (None, running)
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.text("SELECT id, status FROM update_cycles")).all())
    assert statuses == {running: "running", skipped.cycle_id: "skipped"}  # the running cycle was left alone
    mark_failed(engine, running, "RuntimeError: " + "x" * 5000)
    with engine.connect() as conn:
        status, error = conn.execute(sa.text("SELECT status, error FROM update_cycles WHERE id = :i"),
                                     {"i": running}).one()
    assert status == "failed" and error.startswith("RuntimeError: ") and len(error) == 4000


def test_the_training_backlog_keeps_its_newest_rows_and_counts_the_rest(engine):
    from freshrec import generate
    from freshrec.cycles import _move_backlog
    from freshrec.fine_tune import FineTuneOutcome

    generate.insert_stream(engine, generate.StreamSpec(users=10, items=20, events=60, seed=9))
    cycle_id = begin_cycle(engine, "default")
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT id FROM interactions ORDER BY occurred_at, id")).scalars().all()
    outcome = FineTuneOutcome(True, None, None, None, None, backlog_add={"not_trained": list(ids)})
    with engine.begin() as conn:
        assert _move_backlog(conn, "default", cycle_id, outcome, keep=25) == len(ids) - 25
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT interaction_id FROM training_backlog")).scalars().all()
    assert sorted(kept) == sorted(ids[-25:])  # the newest 25 by event time stay; the older ones left, counted
    with engine.begin() as conn:  # under the limit nothing leaves
        assert _move_backlog(conn, "default", cycle_id, FineTuneOutcome(True, None, None, None, None), keep=25) == 0
