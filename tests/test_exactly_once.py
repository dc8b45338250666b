"""Every committed row is taken exactly once: out-of-order commits, racing pullers, crashes."""

import os
import random
import signal
import subprocess
import sys
import threading
import time

import sqlalchemy as sa

from freshrec import ingest, quality
from freshrec.cycles import begin_cycle, commit_batch
from freshrec.errors import ConcurrentCycleError

RULES = quality.QualityRules(event_types=("click", "skip"), duplicate_window_s=0.0, bot_events_per_minute=10_000,
                             batch_reject_share=1.0)
INSERT = sa.text("INSERT INTO interactions (user_id, item_id, event_type, label, dwell_ms, occurred_at) "
                 "VALUES (:u, 1, 'click', 1, 5, now() - interval '1 minute') RETURNING id")


def take(engine, consumer: str, max_rows: int):
    """One ingestion step as a cycle does it: pull, validate, commit; None when another puller won."""
    pulled = ingest.pull_new_interactions(engine, consumer, max_rows)
    if not pulled.rows:
        return pulled
    validated = quality.check_batch(engine, pulled, RULES)
    try:
        commit_batch(engine, begin_cycle(engine, consumer), pulled, validated)
    except ConcurrentCycleError:
        return None
    return pulled


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
                    ids = [conn.execute(INSERT, {"u": seed * 1000 + rng.randrange(1000)}).scalar_one()
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


def _rows(engine, n: int) -> list[int]:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id, title) VALUES (1, 'x') ON CONFLICT DO NOTHING"))
        return [conn.execute(INSERT, {"u": i + 1}).scalar_one() for i in range(n)]


def test_process_killed_before_commit_leaves_rows_for_the_next_run(engine, database_url):
    ids = _rows(engine, 30)
    assert _killed_child(database_url, "before") == ids
    rerun = take(engine, "c", 1000)
    assert sorted(int(i) for i in rerun.frame["id"]) == ids  # the same rows, again
    assert take(engine, "c", 1000).rows == 0  # and only once


def test_process_killed_after_commit_never_repeats_rows(engine, database_url):
    ids = _rows(engine, 30)
    assert _killed_child(database_url, "after") == ids
    assert take(engine, "c", 1000).rows == 0
    more = _rows(engine, 5)
    assert sorted(int(i) for i in take(engine, "c", 1000).frame["id"]) == more


def test_backlog_is_taken_in_bounded_batches(engine):
    ids = _rows(engine, 250)
    sizes = []
    while (pulled := take(engine, "c", 100)).rows:
        sizes.append(pulled.rows)
    assert sizes == [100, 100, 50]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT sum(row_count) FROM ingest_batches")).scalar_one() == len(ids)
