"""freshrec.serving: tamper-proof loading, ranking as the read-only role with the features training gives, the
user-embedding cache, and the champion watcher's hot swap, reconnects and backoff."""

import time

import numpy as np
import pytest
import sqlalchemy as sa

from freshrec.errors import ModelError
from freshrec.model import build_model, new_model_config
from freshrec.serving import ChampionWatcher, load_scorer, rank_items, serving_engine

from helpers import movielens_folder, publish


def test_tampered_artifact_is_refused_when_loading(engine, artifact):
    version = publish(engine, artifact, None).version
    assert load_scorer(engine).version == version
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE model_versions SET artifact = overlay(artifact PLACING '\\x00'::bytea "
                             "FROM 200 FOR 1) WHERE version = :v"), {"v": version})
    with pytest.raises(ModelError, match="altered"):
        load_scorer(engine)


def test_serving_role_reads_but_cannot_write(engine, database_url, artifact):
    publish(engine, artifact, None)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id, title, category) VALUES (1, 'football guide', 'sports'), "
                             "(2, 'guitar review', 'music')"))
    reader = serving_engine(database_url)
    with reader.connect() as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar() == "freshrec_serving"
    ranked = rank_items(reader, load_scorer(reader), user_id=1, top=2)
    assert {r["item_id"] for r in ranked} == {1, 2}
    with reader.connect() as conn:  # what the item-quality input reads: the log and, for rows not logged, the rate
        from freshrec.sqlfiles import query

        conn.execute(query("user_item_quality_now"), {"user_id": 1, "weight": 10.0}).one()
        assert conn.execute(sa.text("SELECT item_rate_before(1, now(), 10.0)")).scalar() == 0.5
    for statement in ("INSERT INTO items (id, title) VALUES (3, 'x')",
                      "UPDATE model_aliases SET version = version",
                      "DELETE FROM model_versions",
                      "INSERT INTO update_cycles (consumer) VALUES ('x')"):
        with reader.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text(statement))
    reader.dispose()


def test_watcher_swaps_on_publish_and_survives_a_reconnect(engine, database_url, artifact):
    v1 = publish(engine, artifact, None).version
    watcher = ChampionWatcher(serving_engine(database_url), recheck_s=60).start()
    try:
        _wait(lambda: watcher.scorer is not None and watcher.scorer.version == v1)
        old = watcher.scorer
        v2 = publish(engine, artifact, v1).version
        _wait(lambda: watcher.scorer.version == v2)
        assert old.version == v1  # the old scorer object was replaced, not modified
        # the database drops the watcher's connection; it reconnects and still sees the next publish
        with engine.begin() as conn:
            killed = conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                          "WHERE application_name = 'freshrec-serving' AND query LIKE 'LISTEN%'"))
            assert any(killed.scalars())
        v3 = publish(engine, artifact, v2).version
        _wait(lambda: watcher.scorer.version == v3)
        assert watcher.reconnects >= 1 and watcher.swaps == 3
    finally:
        watcher.stop()


def _wait(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_watcher_backoff_grows_while_down_and_starts_again_after_a_reconnect(engine, database_url, artifact):
    down = ChampionWatcher(serving_engine("postgresql://postgres@127.0.0.1:1/nowhere", None)).start()
    try:
        _wait(lambda: len(down.backoffs) >= 3)
    finally:
        down.stop()
    assert down.backoffs[:3] == [0.5, 1.0, 2.0]  # consecutive failures back off

    v1 = publish(engine, artifact, None).version
    watcher = ChampionWatcher(serving_engine(database_url), recheck_s=60).start()
    try:
        for kill in range(3):  # the connection is dropped each time after the watcher reconnected
            _wait(lambda: watcher._listening and watcher.scorer is not None and watcher.scorer.version == v1)
            with engine.begin() as conn:
                killed = conn.execute(sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = 'freshrec-serving' AND query LIKE 'LISTEN%'")).scalars().all()
            assert any(killed)
            _wait(lambda: watcher.reconnects == kill + 1)
        assert watcher.backoffs == [0.5, 0.5, 0.5]  # not 0.5, 1, 2: each reconnect succeeded
    finally:
        watcher.stop()


@pytest.mark.unit
def test_user_embeddings_are_cached_by_the_user_text():
    from datetime import datetime, timezone

    import numpy as np

    from freshrec.features import user_text
    from freshrec.model import load_tokenizer
    from freshrec.serving import Scorer

    cfg = new_model_config("tiny", "full", max_item_tokens=16, max_user_tokens=24, history_len=2, seed=0)
    model = build_model(cfg).eval()
    scorer = Scorer(1, "-", model, cfg, load_tokenizer("tiny"), datetime.now(timezone.utc))
    first = scorer.user_embedding(["football guide"])
    assert scorer.user_embedding(["football guide"]) is first  # the cache's copy
    np.testing.assert_allclose(first, scorer._embed([user_text(["football guide"])], 24), rtol=1e-5, atol=1e-6)
    other = scorer.user_embedding(["pasta recipe", "football guide"])  # a new like: a new text, a new embedding
    assert not np.array_equal(first, other)
    for i in range(5):
        scorer.user_embedding([f"item {i}"], cache_size=3)
    assert len(scorer._user_cache) == 3


def test_serving_now_sees_the_features_training_gives_a_row_after_all_others(engine, tmp_path):
    import pandas as pd
    from datetime import datetime, timezone

    from freshrec.features import (CATEGORY_RATE, ITEM_QUALITY, RECENT_RATE, SESSION_RATE, build_examples,
                                   side_columns, user_text)
    from freshrec.model import build_model, load_tokenizer, new_model_config
    from freshrec.movielens import load_movielens
    from freshrec.serving import Scorer, rank_items
    from freshrec.inference import predict

    class RecordingScorer(Scorer):  # the real scorer; it also keeps what rank_items handed it
        def score(self, history_titles, items, side=None, history_item_ids=None, item_emb=None):
            self.seen = (list(history_titles), items["id"].tolist(), side, list(history_item_ids or []))
            self.scores = super().score(history_titles, items, side, history_item_ids, item_emb)
            return self.scores

    movielens_folder(tmp_path, np.random.default_rng(4))
    load_movielens(engine, tmp_path)
    item_ids = list(range(1, 9))
    # side_columns: the overall user rate or the rate in the categories, with or without the recent rate, the
    # item quality and the session rate
    for category_rate, recent_rate, quality, session in ((False, False, False, False), (True, False, False, False),
                                                         (True, True, False, False), (True, True, True, True)):
        config = new_model_config("tiny", "full", max_item_tokens=16, max_user_tokens=24, history_len=3, seed=0,
                                  category_rate=category_rate, recent_rate=recent_rate, item_quality=quality,
                                  session_rate=session)
        model = build_model(config).eval()
        scorer = RecordingScorer(1, "", model, config, load_tokenizer("tiny"), datetime.now(timezone.utc))
        for user in range(1, 7):
            rank_items(engine, scorer, user, item_ids=item_ids, top=8)
            titles, served_items, side, history_ids = scorer.seen
            # training's features for this user and these items at a moment after every stored row
            probe = pd.DataFrame({"id": -np.arange(1, len(served_items) + 1), "user_id": user,
                                  "item_id": served_items, "event_type": "rating", "label": 0, "dwell_ms": np.nan,
                                  "occurred_at": pd.Timestamp.now(tz="UTC")})
            training = build_examples(engine, probe, config.history_len, categories=category_rate,
                                      recent=recent_rate, quality=quality, session=session)
            np.testing.assert_allclose(side, training[side_columns(config)].to_numpy(np.float32), rtol=1e-6)
            assert set(training["user_text"]) == {user_text(titles)}
            assert history_ids == training["history_item_ids"].iloc[0]
            # and so the same score: serving and training hand the model the same inputs
            np.testing.assert_allclose(scorer.scores, predict(model, scorer.tokenizer, config, training), atol=1e-5)
        if category_rate:
            assert len(set(side[:, 0])) > 1  # the category rate differs between films for the same user
            assert CATEGORY_RATE == side_columns(config)[0]
        if recent_rate and not quality:  # the user's recent rate is not their overall one for every user served
            assert side_columns(config)[-1] == RECENT_RATE and not np.allclose(side[:, -1], side[:, -2])
        if quality:  # read after the recent rate, then the session rate; a new model weighs neither yet
            assert side_columns(config)[-2:] == [ITEM_QUALITY, SESSION_RATE] and side[0, -2] != 0.5
            assert model.wide.weight[0, -2].item() == 0.0
            assert model.wide.weight[0, -1].item() == 0.0 and model.wide.weight.shape[1] == len(side_columns(config))
