"""Helpers that several test modules share (fixtures live in conftest.py): the model's example data, publishing a
version, scored held-out rows, a MovieLens-like folder, ingestion steps, the lock's backend, /metrics values."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from freshrec import ingest, quality, registry
from freshrec.cycles import begin_cycle, commit_batch
from freshrec.errors import ConcurrentCycleError
from freshrec.gate import Decision
from freshrec.locks import CYCLE_LOCK_NAMESPACE
from freshrec.model import new_model_config


# --- the model's examples (test_model, test_trainer, test_gate, the registry's artifact) -------------------


TOPICS = {"football": "sports", "guitar": "music", "recipe": "cooking", "laptop": "technology"}


def examples(n: int, seed: int) -> pd.DataFrame:
    """Users like items of the topic they liked before: learnable from text alone."""
    rng = np.random.default_rng(seed)
    words = list(TOPICS)
    likes = rng.choice(words, n)
    shown = np.where(rng.random(n) < 0.5, likes, rng.choice(words, n))
    return pd.DataFrame({
        "user_text": [f"liked: {w} review; {w} guide" for w in likes],
        "item_text": [f"{w} special | {TOPICS[w]}" for w in shown],
        "label": (likes == shown).astype(int),
        # no history yet: neutral like-rates, so only the text can tell
        "user_rate": 0.5, "item_rate": 0.5, "user_log_n": 0.0, "item_log_n": 0.0,
    })


def config(mode: str):
    return new_model_config("tiny", mode, max_item_tokens=16, max_user_tokens=24, history_len=2, seed=0)


# --- publishing versions (test_registry, test_serving, test_cli_models) ----------------------------------------


PUBLISH = Decision(True, ["test"])


def publish(engine, artifact, champion_before):
    with engine.begin() as conn:
        return registry.insert_version_and_maybe_promote(
            conn, artifact=artifact, decision=PUBLISH, champion_before=champion_before, metrics={}, batch_ids=[],
            cycle_id=None, reference_sample=None)


def champion(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT version FROM model_aliases WHERE alias = 'champion'")).scalar()


def tamper(engine, version):
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE model_versions SET artifact = overlay(artifact PLACING '\\x00'::bytea "
                             "FROM 200 FOR 1) WHERE version = :v"), {"v": version})


# --- scored held-out rows (test_gate, test_metrics) -----------------------------------------------------------


def scored_holdout(users: int, rows_per_user: int, seed: int):
    rng = np.random.default_rng(seed)
    user_ids = np.repeat(np.arange(users), rows_per_user)
    labels = rng.integers(0, 2, len(user_ids))
    champion = 1 / (1 + np.exp(-(labels - 0.5 + rng.normal(0, 1.2, len(labels)))))
    return user_ids, labels, champion, rng


# --- data files and folders ----------------------------------------------------------------------------------


def movielens_folder(path, rng):
    """A small MovieLens-like folder: several genres per film, films without genres, ratings in the same second."""
    pd.DataFrame({"movieId": np.arange(1, 9), "title": [f"Film {i} (2001)" for i in range(1, 9)],
                  "genres": ["Drama", "Comedy|Drama", "Horror", "(no genres listed)", "Comedy",
                             "Drama|Horror|Comedy", "Horror|Drama", "Comedy"]}).to_csv(path / "movies.csv",
                                                                                          index=False)
    n = 240
    pd.DataFrame({"userId": rng.integers(1, 7, n), "movieId": rng.integers(1, 9, n),
                  "rating": rng.choice([1.0, 2.5, 3.5, 4.0, 5.0], n),
                  "timestamp": 1_600_000_000 + np.sort(rng.integers(0, 90, n)) * 60}  # many share a minute
                 ).to_csv(path / "ratings.csv", index=False)


def a_file(tmp_path: Path) -> Path:
    f = tmp_path / "a-file"
    f.write_text("not a folder")
    return f


# --- ingestion as a cycle does it (test_ingest, test_cycles) -------------------------------------------------


RULES = quality.QualityRules(event_types=("click", "skip"), duplicate_window_s=0.0, bot_events_per_minute=10_000,
                             batch_reject_share=1.0)
INSERT_FOR_USER = sa.text("INSERT INTO interactions (user_id, item_id, event_type, label, dwell_ms, occurred_at) "
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


def insert_rows(engine, n: int) -> list[int]:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id, title) VALUES (1, 'x') ON CONFLICT DO NOTHING"))
        return [conn.execute(INSERT_FOR_USER, {"u": i + 1}).scalar_one() for i in range(n)]


# --- the cycle lock's server process (test_cycles, test_flow) ------------------------------------------------


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


# --- freshrec api's /metrics (test_api, test_api_metrics, test_end_to_end) -----------------------------------


def metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))
