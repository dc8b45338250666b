"""freshrec.status: horizon stalls, status and the quarantine views after a batch, rows waiting for the trigger."""

import json
import os
import subprocess
import sys

import sqlalchemy as sa

from freshrec import generate, ingest, quality
from freshrec.cycles import begin_cycle, commit_batch
from freshrec.status import ingest_status, quarantine_rows, quarantine_stats, rows_waiting


INSERT = sa.text("INSERT INTO interactions (user_id, item_id, event_type, label, dwell_ms, occurred_at) "
                 "VALUES (1, 1, 'click', 1, 5, now())")


def test_horizon_stall_names_the_blocking_backend(engine):
    blocker = engine.connect()
    tx = blocker.begin()
    blocker.execute(INSERT)
    pid = blocker.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    with engine.begin() as conn:
        conn.execute(INSERT)
    try:
        st = ingest_status(engine, "default", stall_after_s=0)
        assert st["lag"]["rows"] == 1
        stall = st["horizon_stall"]
        assert stall["pid"] == pid and stall["held_back_rows"] == 1
        assert ingest.HorizonStall(**stall).describe().startswith("1 committed rows wait behind transaction of "
                                                                  f"backend {pid}")
        assert ingest_status(engine, "default", stall_after_s=3600)["horizon_stall"] is None  # not yet a stall
    finally:
        tx.rollback()
        blocker.close()
    assert ingest_status(engine, "default", stall_after_s=0)["horizon_stall"] is None


def test_status_and_quarantine_after_a_batch(engine, database_url):
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=400, noise=0.1, seed=4))
    pulled = ingest.pull_new_interactions(engine, "default", 300)
    rules = quality.QualityRules(event_types=("click", "skip", "like", "purchase"), bot_events_per_minute=1000,
                                 batch_reject_share=0.9)
    validated = quality.check_batch(engine, pulled, rules)
    batch_id = commit_batch(engine, begin_cycle(engine, "default"), pulled, validated)
    st = ingest_status(engine, "default")
    assert (st["interactions"], st["rows_consumed"], st["lag"]["rows"]) == (400, 300, 100)
    assert st["rows_quarantined"] == len(validated.quarantined) > 0
    assert st["last_cycle"]["status"] == "completed"
    stats = {r["reason"]: r["rows"] for r in quarantine_stats(engine, "default")}
    assert stats == validated.reason_counts
    rows = quarantine_rows(engine, "default", reason="bad_label", batch_id=batch_id, limit=1000)
    assert len(rows) == validated.reason_counts["bad_label"]
    assert all(r["row_data"]["label"] == 7 for r in rows)

    env = {**os.environ, "FRESHREC_DATABASE_URL": database_url}
    out = subprocess.run([sys.executable, "-m", "freshrec_cli.main", "status", "--json"], capture_output=True,
                         text=True, env=env, timeout=120, check=True)
    assert json.loads(out.stdout)["rows_consumed"] == 300
    out = subprocess.run([sys.executable, "-m", "freshrec_cli.main", "quarantine", "stats", "--json"],
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    assert {r["reason"]: r["rows"] for r in json.loads(out.stdout)["reasons"]} == stats


def test_rows_waiting_counts_past_the_cursor_up_to_the_cap(engine):
    assert rows_waiting(engine, "default", 100) == 0
    generate.insert_stream(engine, generate.StreamSpec(users=10, items=20, events=120, seed=41))
    assert rows_waiting(engine, "default", 100) == 100  # capped: the trigger only asks "at least 100?"
    assert rows_waiting(engine, "default", 1000) == 120
    assert rows_waiting(engine, "another-consumer", 1000) == 120
