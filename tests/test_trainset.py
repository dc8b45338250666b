"""freshrec.trainset: the replay sample is bounded, skips quarantined and waiting rows, draws from the whole
history and changes every cycle; the probe set is drawn once and stored only by the cycle's commit."""

import pytest
import sqlalchemy as sa

from freshrec import features, generate, ingest
from freshrec.trainset import (gate_window, probe_pairs, replay_sample, replay_seed, training_backlog,
                               write_probe_set)


def test_replay_is_bounded_and_skips_quarantined_and_waiting_rows(engine):
    generate.insert_stream(engine, generate.StreamSpec(users=30, items=40, events=2000, seed=3))
    cursor = ingest.Cursor(*engine.connect().execute(sa.text(
        "SELECT CAST(max(txid) AS text), max(id) FROM interactions")).one())
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE interactions"))
        conn.execute(sa.text("INSERT INTO update_cycles (consumer) VALUES ('default')"))
        conn.execute(sa.text("INSERT INTO ingest_batches (consumer, cycle_id, from_txid, from_id, to_txid, to_id, "
                             "row_count, clean_count, quarantined_count, status) VALUES ('default', 1, '0', 0, '0', "
                             "0, 0, 0, 0, 'accepted')"))
        conn.execute(sa.text("INSERT INTO quarantine (consumer, interaction_id, batch_id, reasons, row_data) "
                             "SELECT 'default', g, 1, ARRAY['bad_label'], '{}' FROM generate_series(1, 1000) g"))
        conn.execute(sa.text("INSERT INTO training_backlog (consumer, interaction_id, reason, cycle_id) "
                             "SELECT 'default', g, 'held_out', 1 FROM generate_series(1001, 1500) g"))
    sample = replay_sample(engine, "default", cursor, 120, seed=1)
    assert 0 < len(sample) <= 120
    assert sample["id"].min() > 1500  # neither quarantined nor waiting rows are replayed
    assert replay_sample(engine, "default", cursor, 0, seed=1).empty


def test_replay_draws_from_the_whole_history_and_changes_every_cycle(engine):
    # Regression: a bare LIMIT on the over-drawn table sample kept the oldest stored rows, and a fixed seed
    # replayed the same rows every cycle.
    generate.insert_stream(engine, generate.StreamSpec(users=30, items=40, events=4000, seed=3))
    last_txid, last_id = engine.connect().execute(sa.text(
        "SELECT CAST(max(txid) AS text), max(id) FROM interactions")).one()
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE interactions"))
    cursor = ingest.Cursor(last_txid, last_id)
    first = replay_sample(engine, "default", cursor, 200, seed=replay_seed(0, cursor))
    assert len(first) == 200
    assert first["id"].median() > 0.3 * last_id, "the draw is skewed towards the oldest rows"
    assert first["id"].max() > 0.8 * last_id
    later = ingest.Cursor(last_txid, last_id - 1)
    second = replay_sample(engine, "default", later, 200, seed=replay_seed(0, later))
    assert len(set(first["id"]) & set(second["id"])) < 100, "two cycles replayed mostly the same rows"
    again = replay_sample(engine, "default", cursor, 200, seed=replay_seed(0, cursor))
    assert again["id"].tolist() == first["id"].tolist()  # reproducible for the same cursor


def test_a_new_probe_set_is_drawn_but_stored_only_when_the_cycle_commits(engine):
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=300, seed=5))
    rows = ingest.pull_new_interactions(engine, "default", 1000).frame
    examples = features.build_examples(engine, rows, 3, True)
    probe, new = probe_pairs(engine, examples, 50, seed=0)
    assert new is not None and len(probe) == len(new) == 50
    def stored_rows() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM probe_set")).scalar()

    assert stored_rows() == 0  # drawing wrote nothing: a failed cycle leaves none
    with engine.begin() as conn:  # what commit_cycle does, in its transaction
        write_probe_set(conn, new)
    stored, again = probe_pairs(engine, examples.iloc[::-1], 50, seed=1)
    assert again is None and stored_rows() == 50
    assert sorted(stored["item_text"]) == sorted(new["item_text"])  # the stored set, not a new draw
    assert stored["user_rate"].to_numpy() == pytest.approx(new["user_rate"].to_numpy())


def test_the_gate_window_holds_the_newest_cycles_held_out_rows_back_from_training(engine):
    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=400, seed=6))
    with engine.begin() as conn:
        for cycle in (1, 2, 3):
            conn.execute(sa.text("INSERT INTO update_cycles (consumer) VALUES ('default')"))
        # held-out rows of cycles 1, 2, 3 (100 each), and 50 rows a budget left untrained in cycle 3
        for cycle, lo, reason in ((1, 1, "held_out"), (2, 101, "held_out"), (3, 201, "held_out"),
                                  (3, 301, "not_trained")):
            conn.execute(sa.text(
                "INSERT INTO training_backlog (consumer, interaction_id, reason, cycle_id) SELECT 'default', g, "
                ":reason, :cycle FROM generate_series(:lo, :hi) g"),
                {"reason": reason, "cycle": cycle, "lo": lo, "hi": lo + (99 if reason == "held_out" else 49)})
    # a window of two earlier cycles: the held-out rows of cycles 2 and 3, the newest
    window = gate_window(engine, "default", 2)
    assert sorted(window["id"]) == list(range(101, 301))
    waiting = training_backlog(engine, "default", 10_000, exclude_ids=window["id"])
    assert sorted(waiting["id"]) == [*range(1, 101), *range(301, 351)]  # the window never trains while in it
    # no window (FRESHREC_GATE_WINDOW_CYCLES=1): every waiting row trains, the gate judges this batch alone
    assert gate_window(engine, "default", 0).empty
    assert len(training_backlog(engine, "default", 10_000)) == 350
