"""freshrec.ingest: the cursor takes every committed row exactly once, in bounded batches, whatever order the
writers commit in and however many pullers race."""

import random
import threading
import time

import sqlalchemy as sa

from freshrec import generate, ingest

from helpers import INSERT_FOR_USER, insert_rows, take


INSERT = sa.text("INSERT INTO interactions (user_id, item_id, event_type, label, dwell_ms, occurred_at) "
                 "VALUES (1, 1, 'click', 1, 10, now()) RETURNING id")


def _advance(engine, pulled):
    with engine.begin() as conn:
        conn.execute(sa.text(
            "UPDATE ingest_cursor SET last_txid = CAST(:t AS xid8), last_id = :i WHERE consumer = :c"),
            {"t": pulled.to_cursor.txid, "i": pulled.to_cursor.id, "c": pulled.consumer})


def test_pull_respects_cap_and_cursor(engine):
    generate.insert_stream(engine, generate.StreamSpec(users=5, items=5, events=250, chunk=100))
    first = ingest.pull_new_interactions(engine, "c", 100)
    assert first.rows == 100 and first.lag.rows_behind == 150
    again = ingest.pull_new_interactions(engine, "c", 100)
    assert again.frame["id"].tolist() == first.frame["id"].tolist()  # nothing consumed until the cursor moves
    _advance(engine, first)
    second = ingest.pull_new_interactions(engine, "c", 1000)
    assert second.rows == 150 and second.lag.rows_behind == 0
    assert set(first.frame["id"]).isdisjoint(second.frame["id"])


def test_late_committing_writer_is_not_skipped(engine):
    slow = engine.connect()
    slow_tx = slow.begin()
    slow_id = slow.execute(INSERT).scalar_one()  # takes the lower id and an older transaction id
    with engine.begin() as conn:
        fast_id = conn.execute(INSERT).scalar_one()
    assert fast_id > slow_id
    # The fast row is committed, but an older transaction is still open: the reader must wait for it.
    pulled = ingest.pull_new_interactions(engine, "c", 100)
    assert pulled.rows == 0
    slow_tx.commit()
    slow.close()
    pulled = ingest.pull_new_interactions(engine, "c", 100)
    assert sorted(pulled.frame["id"]) == [slow_id, fast_id]


def test_aborted_writer_leaves_no_gap(engine):
    with engine.connect() as conn:
        tx = conn.begin()
        conn.execute(INSERT)
        tx.rollback()
    with engine.begin() as conn:
        kept = conn.execute(INSERT).scalar_one()
    assert ingest.pull_new_interactions(engine, "c", 100).frame["id"].tolist() == [kept]


def test_cursor_orders_transaction_ids_as_numbers(engine):
    # Explicit txids across decimal digit boundaries: sorted as text, '1000' would come before '999'.
    txids = [8, 9, 10, 11, 99, 100, 101, 999, 1000, 1001]
    with engine.begin() as conn:
        for t in txids:
            conn.execute(sa.text("INSERT INTO interactions (user_id, item_id, event_type, label, dwell_ms, occurred_at,"
                                 " txid) VALUES (1, 1, 'click', 1, 1, now(), CAST(:t AS xid8))"), {"t": str(t)})
    seen = []
    for _ in range(10):
        pulled = ingest.pull_new_interactions(engine, "c", 3)
        if not pulled.rows:
            break
        seen += [int(t) for t in pulled.frame["txid"]]
        _advance(engine, pulled)
    assert seen == txids


def test_all_null_optional_column_keeps_its_type(engine):
    # MovieLens ratings have no dwell time: a batch whose dwell_ms is all NULL must still validate.
    from freshrec.quality import QualityRules, validate_batch

    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id, title) VALUES (1, 'x')"))
        conn.execute(sa.text("INSERT INTO interactions (user_id, item_id, event_type, label, occurred_at) "
                             "SELECT g, 1, 'rating', g % 2, now() - interval '1 hour' FROM generate_series(1, 20) g"))
    pulled = ingest.pull_new_interactions(engine, "c", 100)
    assert str(pulled.frame["dwell_ms"].dtype) == "Int32"
    rules = QualityRules(event_types=("rating",), max_dwell_ms=1000, clock_skew_s=60, duplicate_window_s=1.0,
                         bot_events_per_minute=100)
    validated = validate_batch(pulled.frame, rules, {1})
    assert validated.accepted and len(validated.clean) == 20


def test_open_transaction_in_another_database_does_not_stall(engine, admin_engine):
    """The horizon is per database: another database's open write transaction holds nothing back."""
    import uuid

    other = f"freshrec_test_other_{uuid.uuid4().hex[:10]}"
    with admin_engine.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE " + other))  # generated name
    other_engine = sa.create_engine(admin_engine.url.set(database=other))
    try:
        with other_engine.connect() as conn:
            tx = conn.begin()
            conn.execute(sa.text("CREATE TABLE t (x int)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))  # holds a transaction id, stays open
            with engine.begin() as ours:
                ids = [ours.execute(INSERT).scalar_one() for _ in range(3)]
            pulled = ingest.pull_new_interactions(engine, "c", 100)
            assert pulled.frame["id"].tolist() == ids
            assert pulled.lag.stall is None
            # Our own database's open writer still holds the horizon, with the other one open beside it.
            slow = engine.connect()
            slow_tx = slow.begin()
            slow_id = slow.execute(INSERT).scalar_one()
            with engine.begin() as ours:
                fast_id = ours.execute(INSERT).scalar_one()
            _advance(engine, pulled)
            assert ingest.pull_new_interactions(engine, "c", 100).rows == 0
            slow_tx.commit()
            slow.close()
            assert sorted(ingest.pull_new_interactions(engine, "c", 100).frame["id"]) == [slow_id, fast_id]
            tx.rollback()
    finally:
        other_engine.dispose()
        with admin_engine.connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS " + other + " WITH (FORCE)"))


def test_out_of_order_writers_and_racing_pullers(engine):
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id, title) VALUES (1, 'x')"))
    stop = threading.Event()
    inserted: list[int] = []
    taken: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(25):
                with engine.connect() as conn:
                    tx = conn.begin()
                    ids = [conn.execute(INSERT_FOR_USER, {"u": seed * 1000 + rng.randrange(1000)}).scalar_one()
                           for _ in range(rng.randint(1, 4))]
                    time.sleep(rng.uniform(0, 0.03))  # commits land out of id order
                    if rng.random() < 0.1:
                        tx.rollback()
                        continue
                    tx.commit()
                with lock:
                    inserted.extend(ids)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def puller() -> None:
        try:
            while not stop.is_set():
                pulled = take(engine, "c", 40)
                if pulled is not None and pulled.rows:
                    with lock:
                        taken.extend(int(i) for i in pulled.frame["id"])
                time.sleep(0.005)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(s,)) for s in range(1, 9)]
    pullers = [threading.Thread(target=puller) for _ in range(2)]
    for t in writers + pullers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in pullers:
        t.join()
    while (pulled := take(engine, "c", 1000)) is None or pulled.rows:  # drain
        if pulled is not None:
            taken.extend(int(i) for i in pulled.frame["id"])
    assert not errors
    assert len(inserted) > 150
    assert len(taken) == len(set(taken)), "a row was taken twice"
    assert sorted(taken) == sorted(inserted)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT sum(row_count) FROM ingest_batches")).scalar_one() == len(inserted)


def test_backlog_is_taken_in_bounded_batches(engine):
    ids = insert_rows(engine, 250)
    sizes = []
    while (pulled := take(engine, "c", 100)).rows:
        sizes.append(pulled.rows)
    assert sizes == [100, 100, 50]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT sum(row_count) FROM ingest_batches")).scalar_one() == len(ids)
