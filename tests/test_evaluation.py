"""The evaluation's metrics and its run: tie-aware NDCG, per-cycle reporting, and the same features everywhere."""

import numpy as np
import pytest

from freshrec.metrics import evaluate, ndcg_at_k, ndcg_per_user


@pytest.mark.unit
def test_tied_scores_give_the_same_ndcg_wherever_the_positive_sits():
    expected = np.mean([1 / np.log2(r + 2) for r in range(4)])  # the gain shared by four tied places
    for position in range(4):
        labels = np.zeros(4)
        labels[position] = 1
        value, users = ndcg_at_k([5] * 4, labels, [0.3] * 4)
        assert users == 1 and value == pytest.approx(expected)


@pytest.mark.unit
def test_ndcg_of_a_perfect_ranking_is_one_and_a_known_ranking_its_hand_computed_value():
    assert ndcg_at_k([1, 1, 1], [1, 1, 0], [0.9, 0.8, 0.1]) == (1.0, 1)
    # positives at places 2 and 3: (1/log2(3) + 1/log2(4)) / (1 + 1/log2(3))
    value, _ = ndcg_at_k([1, 1, 1], [0, 1, 1], [0.9, 0.8, 0.7])
    assert value == pytest.approx((1 / np.log2(3) + 0.5) / (1 + 1 / np.log2(3)))
    # only the top k count: one positive at place 3 of 3 counts nothing at k=2
    assert ndcg_at_k([1, 1, 1], [0, 0, 1], [0.9, 0.8, 0.7], k=2) == (0.0, 1)


@pytest.mark.unit
def test_users_with_one_class_are_not_counted():
    users = [1, 1, 2, 2, 2, 3, 3]
    labels = [1, 1, 0, 0, 0, 1, 0]
    scores = [0.1, 0.2, 0.9, 0.8, 0.7, 0.2, 0.6]  # user 3 ranks its negative first
    per_user = ndcg_per_user(users, labels, scores)
    assert per_user.index.tolist() == [3]
    assert ndcg_at_k(users, labels, scores) == (pytest.approx(1 / np.log2(3)), 1)
    assert ndcg_at_k([1, 1], [0, 0], [0.5, 0.4]) == (None, 0)
    m = evaluate(users, labels, scores)
    assert m["ndcg_users"] == 1 and m["ndcg_at_10"] == pytest.approx(1 / np.log2(3))


# --- the point-in-time features: training, serving and the bench's pandas copies agree ----------------------

def _movielens_folder(path, rng):
    """A small MovieLens-like folder: several genres per film, films without genres, ratings in the same second."""
    import pandas as pd

    pd.DataFrame({"movieId": np.arange(1, 9), "title": [f"Film {i} (2001)" for i in range(1, 9)],
                  "genres": ["Drama", "Comedy|Drama", "Horror", "(no genres listed)", "Comedy",
                             "Drama|Horror|Comedy", "Horror|Drama", "Comedy"]}).to_csv(path / "movies.csv",
                                                                                          index=False)
    n = 240
    pd.DataFrame({"userId": rng.integers(1, 7, n), "movieId": rng.integers(1, 9, n),
                  "rating": rng.choice([1.0, 2.5, 3.5, 4.0, 5.0], n),
                  "timestamp": 1_600_000_000 + np.sort(rng.integers(0, 90, n)) * 60}  # many share a minute
                 ).to_csv(path / "ratings.csv", index=False)


def _stored_rows(engine):
    import pandas as pd
    import sqlalchemy as sa

    with engine.connect() as conn:
        return pd.read_sql(sa.text("SELECT id, user_id, item_id, event_type, label, dwell_ms, occurred_at "
                                   "FROM interactions ORDER BY id"), conn)


def test_side_features_are_the_same_in_training_and_in_the_benchs_pandas_copies(engine, tmp_path):
    from bench.baselines import UserGenreItemRatesPerEvent
    from bench.evaluate import with_genres
    from bench.replay_sweep import movielens_stream
    from freshrec.features import CATEGORY_RATE, SIDE_COLUMNS, build_examples
    from freshrec.movielens import load_movielens

    _movielens_folder(tmp_path, np.random.default_rng(3))
    load_movielens(engine, tmp_path)
    training = build_examples(engine, _stored_rows(engine), history_len=5, categories=True)
    columns = [*SIDE_COLUMNS, CATEGORY_RATE]
    assert training[CATEGORY_RATE].nunique() > 10 and (training["user_log_n"] > 0).mean() > 0.9  # not trivial

    # bench.priors / bench.replay_sweep: the same ratings from the files, counted with pandas (same row order)
    sweep = movielens_stream(tmp_path, history_len=5).rename(columns={"user_genre_rate": CATEGORY_RATE})
    np.testing.assert_allclose(sweep[columns].to_numpy(float), training[columns].to_numpy(float), atol=1e-9)
    assert sweep["user_text"].tolist() == training["user_text"].tolist()
    assert sweep["history_item_ids"].tolist() == training["history_item_ids"].tolist()

    # bench.evaluate's per-event contenders: their counts, learned event by event from the stored rows
    contender = UserGenreItemRatesPerEvent()
    contender.score(with_genres(engine, training))
    np.testing.assert_allclose(contender.last_inputs[columns].to_numpy(float), training[columns].to_numpy(float),
                               atol=1e-9)


def test_serving_now_sees_the_features_training_gives_a_row_after_all_others(engine, tmp_path):
    import pandas as pd
    from datetime import datetime, timezone

    from freshrec.features import CATEGORY_RATE, build_examples, side_columns, user_text
    from freshrec.model import build_model, load_tokenizer, new_model_config
    from freshrec.movielens import load_movielens
    from freshrec.serving import Scorer, rank_items
    from freshrec.inference import predict

    class RecordingScorer(Scorer):  # the real scorer; it also keeps what rank_items handed it
        def score(self, history_titles, items, side=None, history_item_ids=None, item_emb=None):
            self.seen = (list(history_titles), items["id"].tolist(), side, list(history_item_ids or []))
            self.scores = super().score(history_titles, items, side, history_item_ids, item_emb)
            return self.scores

    _movielens_folder(tmp_path, np.random.default_rng(4))
    load_movielens(engine, tmp_path)
    item_ids = list(range(1, 9))
    for category_rate in (False, True):  # side_columns: the overall user rate, or the rate in the categories
        config = new_model_config("tiny", "full", max_item_tokens=16, max_user_tokens=24, history_len=3, seed=0,
                                  category_rate=category_rate)
        model = build_model(config).eval()
        scorer = RecordingScorer(1, "", model, config, load_tokenizer("tiny"), datetime.now(timezone.utc))
        for user in range(1, 7):
            rank_items(engine, scorer, user, item_ids=item_ids, top=8)
            titles, served_items, side, history_ids = scorer.seen
            # training's features for this user and these items at a moment after every stored row
            probe = pd.DataFrame({"id": -np.arange(1, len(served_items) + 1), "user_id": user,
                                  "item_id": served_items, "event_type": "rating", "label": 0, "dwell_ms": np.nan,
                                  "occurred_at": pd.Timestamp.now(tz="UTC")})
            training = build_examples(engine, probe, config.history_len, categories=category_rate)
            np.testing.assert_allclose(side, training[side_columns(config)].to_numpy(np.float32), rtol=1e-6)
            assert set(training["user_text"]) == {user_text(titles)}
            assert history_ids == training["history_item_ids"].iloc[0]
            # and so the same score: serving and training hand the model the same inputs
            np.testing.assert_allclose(scorer.scores, predict(model, scorer.tokenizer, config, training), atol=1e-5)
        if category_rate:
            assert len(set(side[:, 0])) > 1  # the category rate differs between films for the same user
            assert CATEGORY_RATE == side_columns(config)[0]



def test_quarantined_rows_feed_no_like_rate(engine, tmp_path):
    import pandas as pd

    from freshrec import cycles, steps
    from freshrec.features import build_examples
    from freshrec.movielens import load_movielens
    from freshrec.settings import load_settings

    pd.DataFrame({"movieId": [1, 2], "title": ["A (1990)", "B (1991)"], "genres": ["Drama", "Drama"]}
                 ).to_csv(tmp_path / "movies.csv", index=False)
    pd.DataFrame({"userId": [1, 1, 1], "movieId": [1, 1, 2], "rating": [5.0, 5.0, 1.0],  # a row sent twice
                  "timestamp": [900_000_100, 900_000_100, 900_000_200]}).to_csv(tmp_path / "ratings.csv", index=False)
    load_movielens(engine, tmp_path)
    settings = load_settings()
    pulled = steps.pull(settings, engine)
    validated = steps.validate(settings, engine, pulled)
    cycles.commit_batch(engine, steps.begin(settings, engine), pulled, validated)
    assert validated.reason_counts == {"duplicate": 1} and len(validated.clean) == 2
    later = build_examples(engine, _stored_rows(engine).tail(1), history_len=5)
    assert later["user_text"].iloc[0] == "liked: A (1990)"  # the history has the like once
    assert later["user_log_n"].iloc[0] == pytest.approx(np.log1p(1))  # so should the user's counts

# --- the evaluation run itself ------------------------------------------------------------------------------

@pytest.mark.slow
def test_evaluation_reports_every_contender_per_cycle_and_ndcg_as_the_mean_over_cycles(env, database_url, tmp_path):
    import os

    import sqlalchemy as sa

    from bench.evaluate import COMPARED, CONTENDERS, main

    before = {k: v for k, v in os.environ.items() if k.startswith("FRESHREC_")}
    result = main(["--synthetic", "--model", "tiny", "--synthetic-events", "1300", "--cycle-rows", "150",
                   "--score-cycles", "2", "--warmup-train-rows", "400", "--retrain-rows", "300",
                   "--max-train-seconds", "5", "--set", "holdout=newest_per_user",
                   "--database", sa.engine.make_url(database_url).database, "--out", str(tmp_path)])
    assert {k: v for k, v in os.environ.items() if k.startswith("FRESHREC_")} == before  # settings, not os.environ
    # one Settings: the environment's (FRESHREC_TRAIN_MODE=full from the fixture), the run's overrides, --set
    assert {k: result["settings"][k] for k in ("model", "train_mode", "epochs", "holdout")} == {
        "model": "tiny", "train_mode": "full", "epochs": 1, "holdout": "newest_per_user"}
    assert "database_url" not in result["settings"]

    assert [c["cycle"] for c in result["cycles"]] == [1, 2]
    for cycle in result["cycles"]:
        assert set(cycle["contenders"]) == set(CONTENDERS)
        for m in cycle["contenders"].values():
            assert m["n"] == 150 and 0 < m["auc"] < 1 and 0 < m["ndcg_at_10"] <= 1 and m["ndcg_users"] > 0
        # the bench's per-event contenders see exactly the side features freshrec's SQL gives these rows
        assert cycle["inputs_max_abs_diff"] < 1e-6
    for name in CONTENDERS:
        per_cycle = [c["contenders"][name]["ndcg_at_10"] for c in result["cycles"]]
        assert result["totals"][name]["ndcg_at_10"] == pytest.approx(np.mean(per_cycle))
        assert result["totals"][name]["n"] == 300 and result["totals"][name]["ndcg_cycles"] == 2
    # within a cycle the user's rate is one constant: ranking a user's items by user+item rates is ranking them by
    # the item rate, so per cycle (and so on average) the two rank alike; pooled over cycles they would not
    for cycle in result["cycles"]:
        assert cycle["contenders"]["user+item rates"]["ndcg_at_10"] == pytest.approx(
            cycle["contenders"]["popularity"]["ndcg_at_10"])
    for other in COMPARED:
        c = result["comparisons"][f"freshrec - {other}"]
        assert c["ndcg_difference"] == pytest.approx(
            result["totals"]["freshrec"]["ndcg_at_10"] - result["totals"][other]["ndcg_at_10"], abs=1e-4)
        assert c["ndcg_ci95"][0] <= c["ndcg_ci95"][1] and c["ci95"][0] <= c["ci95"][1]

    report = (tmp_path / "synthetic" / "results.md").read_text()
    assert "NDCG@10 (mean over cycles)" in report and "NDCG@10 difference" in report
    freshrec_row = next(line for line in report.splitlines() if line.startswith("| freshrec |"))
    assert f"{result['totals']['freshrec']['ndcg_at_10']:.4f}" in freshrec_row
    assert (tmp_path / "synthetic" / "prequential_auc.png").stat().st_size > 10_000
