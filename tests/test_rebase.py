"""freshrec.rebase: why a cycle rebases (asked by hand, or the schedule), and the recent window it trains on."""

import dataclasses

import sqlalchemy as sa

from freshrec import generate, ingest
from freshrec.model import build_model
from freshrec.artifacts import save_artifact
from freshrec.rebase import rebase_reason, recent_rows, request_done, request_rebase

from helpers import champion, config, publish





def test_a_rebase_is_asked_for_by_hand_or_comes_on_the_schedule(engine, artifact):
    assert rebase_reason(engine, "default", every=0) is None  # 0: only when asked
    assert rebase_reason(engine, "default", every=2) is None  # the lineage's first candidate
    publish(engine, artifact, None)  # one candidate of the lineage
    assert rebase_reason(engine, "default", every=2).startswith("scheduled: 1 candidates since the last rebase")
    cfg = config("full")
    rebased = save_artifact(build_model(cfg), dataclasses.replace(cfg, extra={"lineage": {"kind": "rebase"}}))
    publish(engine, rebased, champion(engine))
    assert rebase_reason(engine, "default", every=2) is None  # the schedule counts from the newest rebase
    request_rebase(engine, "default", "new settings")
    request_rebase(engine, "default", "newer settings")  # one request per consumer: the latest reason
    assert rebase_reason(engine, "default", every=0) == "requested: newer settings"
    assert rebase_reason(engine, "another", every=0) is None
    with engine.begin() as conn:
        request_done(conn, "default")
    assert rebase_reason(engine, "default", every=0) is None


def test_the_window_is_the_newest_clean_rows_up_to_the_cursor_in_time_order(engine):
    generate.insert_stream(engine, generate.StreamSpec(users=10, items=20, events=200, seed=8))
    with engine.connect() as conn:
        cursor = ingest.Cursor(*conn.execute(sa.text(
            "SELECT CAST(max(txid) AS text), max(id) FROM interactions")).one())
        newest = conn.execute(sa.text("SELECT id FROM interactions ORDER BY occurred_at DESC, id DESC LIMIT 30")
                              ).scalars().all()
        middle = ingest.Cursor(*conn.execute(sa.text(
            "SELECT CAST(txid AS text), id FROM interactions WHERE id = 100")).one())
    window = recent_rows(engine, "default", cursor, 30)
    assert sorted(window["id"]) == sorted(newest)
    assert window["occurred_at"].is_monotonic_increasing  # oldest first, as training reads a stream
    assert recent_rows(engine, "default", middle, 500)["id"].max() == 100  # nothing past the cursor
    with engine.begin() as conn:  # a row waiting in the training backlog is trained on there, not in the window
        conn.execute(sa.text("INSERT INTO update_cycles (consumer) VALUES ('default')"))
        conn.execute(sa.text("INSERT INTO training_backlog (consumer, interaction_id, reason, cycle_id) "
                             "VALUES ('default', :i, 'held_out', 1)"), {"i": newest[0]})
    assert newest[0] not in set(recent_rows(engine, "default", cursor, 30)["id"])
    assert recent_rows(engine, "default", cursor, 0).empty
