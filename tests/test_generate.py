"""freshrec.generate: the synthetic stream inserts exactly what it says, shares one catalogue, drifts where asked,
makes every kind of bad row, and streams at a rate."""

import threading
import time

import numpy as np
import sqlalchemy as sa

from freshrec import generate

from conftest import count


def test_generate_inserts_catalogue_and_stream(engine):
    spec = generate.StreamSpec(users=50, items=80, events=1000, drift_at=0.5, seed=3)
    result = generate.insert_stream(engine, spec)
    assert (result.items_created, result.events_inserted, result.drift_event_index) == (80, 1000, 500)
    assert count(engine, "items") == 80
    assert count(engine, "interactions") == 1000
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT min(user_id), max(user_id), min(item_id), max(item_id), count(DISTINCT event_type), "
            "bool_and(label IN (0, 1)), bool_and(occurred_at <= now()), bool_and(dwell_ms >= 0) "
            "FROM interactions")).one()
        # event order is time order
        ordered = conn.execute(sa.text(
            "SELECT bool_and(occurred_at >= prev) FROM (SELECT occurred_at, lag(occurred_at) "
            "OVER (ORDER BY id) AS prev FROM interactions) t")).scalar_one()
    assert rows[0] >= 1 and rows[1] <= 50 and rows[2] >= 1 and rows[3] <= 80
    assert rows[4] >= 2 and rows[5] and rows[6] and rows[7]
    assert ordered


def test_concurrent_generators_share_one_catalogue(engine):
    specs = [generate.StreamSpec(users=30, items=60, events=300, seed=s) for s in (1, 2, 3)]
    threads = [threading.Thread(target=generate.insert_stream, args=(engine, s)) for s in specs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count(engine, "items") == 60
    assert count(engine, "interactions") == 900


def test_drift_point_shifts_interests():
    catalogue = generate.build_catalogue(200)
    cols = generate.generate_events(generate.StreamSpec(users=100, items=200, events=20000, drift_at=0.5, seed=1),
                                    catalogue)
    cats = catalogue.category_index[cols["item_ids"] - 1]
    before = np.bincount(cats[:10000], minlength=8) / 10000
    after = np.bincount(cats[10000:], minlength=8) / 10000
    no_drift = generate.generate_events(generate.StreamSpec(users=100, items=200, events=20000, drift_at=None,
                                                            seed=1), catalogue)
    cats2 = catalogue.category_index[no_drift["item_ids"] - 1]
    stable = np.abs(np.bincount(cats2[:10000], minlength=8) / 10000 - np.bincount(cats2[10000:], minlength=8) / 10000)
    assert np.abs(before - after).sum() > 3 * stable.sum()


def test_noise_produces_each_kind_of_bad_row():
    catalogue = generate.build_catalogue(50)
    cols = generate.generate_events(generate.StreamSpec(users=20, items=50, events=3000, noise=0.05, seed=2),
                                    catalogue)
    assert cols["copy_previous"].sum() > 10
    assert (cols["item_ids"] > 50).sum() > 10
    assert (cols["dwell_ms"] < 0).sum() > 10
    assert (cols["labels"] == 7).sum() > 10
    assert cols["future"].sum() > 10


def test_live_rate_streams_over_time(engine):
    spec = generate.StreamSpec(users=10, items=20, events=60, rate=100.0, seed=1)
    started = time.monotonic()
    result = generate.insert_stream(engine, spec)
    assert result.events_inserted == 60
    assert time.monotonic() - started >= 0.4  # 60 events at 100/s
    with engine.connect() as conn:
        txids = conn.execute(sa.text("SELECT count(DISTINCT txid) FROM interactions")).scalar_one()
    assert txids >= 3  # several small transactions, not one bulk insert
