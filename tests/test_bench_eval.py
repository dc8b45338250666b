"""The evaluation's own arithmetic and its run: the paired comparison, the sweep's point-in-time inputs, the
priors and per-event baselines, and bench.evaluate end to end (its metrics: test_metrics.py)."""

import numpy as np
import pandas as pd
import pytest

from bench.evaluate import paired_auc_difference
from bench.replay_sweep import movielens_stream
from freshrec.features import NO_HISTORY


def test_paired_difference_is_zero_for_the_same_scores_and_sure_for_a_clearly_better_model():
    rng = np.random.default_rng(0)
    y, users = rng.integers(0, 2, 3000), rng.integers(0, 60, 3000)
    good, poor = y + rng.normal(0, 0.7, 3000), y + rng.normal(0, 3, 3000)
    same = paired_auc_difference([(y, good, users)], [(y, good, users)], resamples=100)
    assert same["auc_difference"] == 0 and same["ci95"] == [0, 0]
    better = paired_auc_difference([(y, good, users)], [(y, poor, users)], resamples=100)
    assert better["ci95"][0] > 0.1 and better["share_of_resamples_above_zero"] == 1.0
    assert better["users"] == 60


def test_paired_difference_of_a_perfect_and_a_useless_model_is_exactly_one_half_and_antisymmetric():
    rng = np.random.default_rng(1)
    y, users = rng.integers(0, 2, 400), rng.integers(0, 20, 400)
    perfect, useless, noisy = y.astype(float), np.full(400, 0.5), y + rng.normal(0, 1, 400)
    a = paired_auc_difference([(y, perfect, users)], [(y, useless, users)], resamples=50)
    assert a["auc_difference"] == 0.5 and a["ci95"] == [0.5, 0.5] and a["share_of_resamples_above_zero"] == 1.0
    there = paired_auc_difference([(y, noisy, users)], [(y, useless, users)], resamples=50, seed=3)
    back = paired_auc_difference([(y, useless, users)], [(y, noisy, users)], resamples=50, seed=3)
    assert there["auc_difference"] == -back["auc_difference"] and there["ci95"] == [-x for x in back["ci95"][::-1]]


def test_sweep_inputs_only_see_strictly_earlier_events(tmp_path):
    pd.DataFrame({"movieId": [1, 2, 3], "title": ["A (1990)", "B (1991)", "C (1992)"],
                  "genres": ["Drama", "Comedy|Drama", "Horror"]}).to_csv(tmp_path / "movies.csv", index=False)
    pd.DataFrame({"userId": [7, 7, 7, 8], "movieId": [1, 2, 3, 1], "rating": [5.0, 4.0, 1.0, 2.0],
                  "timestamp": [100, 100, 200, 300]}).to_csv(tmp_path / "ratings.csv", index=False)
    s = movielens_stream(tmp_path, history_len=5)
    # the two ratings in the same second see neither each other's label nor each other's title
    assert s["user_text"].tolist()[:2] == [NO_HISTORY, NO_HISTORY]
    assert s["user_text"].iloc[2] == "liked: B (1991); A (1990)"  # most recent first
    assert s["history_item_ids"].tolist() == [[], [], [2, 1], []]  # the same items, as ids for the id term
    assert s["user_log_n"].round(4).tolist()[:3] == [0, 0, round(np.log1p(2), 4)]
    assert s["item_log_n"].iloc[3] == np.log1p(1)  # item 1 was rated once before user 8
    assert s["item_text"].iloc[1] == "B (1991) | Comedy, Drama"  # as freshrec.features.item_text builds it
    # no Horror before: the genre-aware rate is the user's overall rate (two likes, shrunk to 7/12)
    assert s["user_genre_rate"].iloc[2] == s["user_rate"].iloc[2] == (2 + 5) / (2 + 10)


@pytest.mark.train
def test_sweep_runs_every_holdout_mode_and_scores_every_cycle(tmp_path):
    from bench.replay_sweep import main

    rng = np.random.default_rng(0)
    n_movies, n = 40, 900
    pd.DataFrame({"movieId": np.arange(1, n_movies + 1), "title": [f"Film {i} (1999)" for i in range(n_movies)],
                  "genres": rng.choice(["Drama", "Comedy", "Horror|Drama"], n_movies)}
                 ).to_csv(tmp_path / "movies.csv", index=False)
    movies, users = rng.integers(1, n_movies + 1, n), rng.integers(1, 25, n)
    liked = (movies % 3 == 0) | (users % 4 == 0)  # something a model can learn, with noise
    pd.DataFrame({"userId": users, "movieId": movies, "rating": np.where(liked ^ (rng.random(n) < 0.1), 4.5, 2.0),
                  "timestamp": np.sort(rng.integers(0, 10**6, n))}).to_csv(tmp_path / "ratings.csv", index=False)
    rows = main(["--movielens", str(tmp_path), "--model", "tiny", "--id-buckets", "0", "64", "--holdout", "newest",
                 "users", "--user-rate", "overall", "genre", "--seeds", "0", "--cycle-rows", "100",
                 "--score-cycles", "4", "--warmup-rows", "300", "--replay-pool", "200", "--resamples", "20"])
    assert len(rows) == 8 and {(r["id_buckets"], r["holdout"]) for r in rows} == {
        (0, "newest"), (0, "users"), (64, "newest"), (64, "users")}
    assert {r["user_rate"] for r in rows} == {"overall", "genre"}
    for r in rows:
        assert len(r["published"]) == 4  # one verdict per scored cycle
        # the stream is learnable from the like-rates alone (movie % 3, user % 4): scores that lost their rows
        # (misaligned, shuffled, or the wrong pool) would sit near 0.5
        assert min(r["like-rates_auc"], r["frozen_auc"], r["freshrec_auc"]) > 0.8
        if "1" not in r["published"]:  # the champion was never replaced: freshrec scored as the frozen model
            assert r["freshrec_auc"] == r["frozen_auc"]
        assert r["auc_difference"] == round(r["freshrec_auc"] - r["frozen_auc"], 4)
        lo, hi = (float(x) for x in r["ci95_vs_frozen"].split(".."))
        assert lo <= hi


def test_genre_prior_finds_a_taste_the_overall_rates_cannot(tmp_path):
    from sklearn.metrics import roc_auc_score

    from bench.priors import fitted, priors

    rng = np.random.default_rng(1)
    pd.DataFrame({"movieId": np.arange(1, 21), "title": [f"Film {i} (2000)" for i in range(20)],
                  "genres": ["Drama"] * 10 + ["Comedy"] * 10}).to_csv(tmp_path / "movies.csv", index=False)
    users, movies = rng.integers(1, 41, 4000), rng.integers(1, 21, 4000)
    likes_drama = users % 2 == 0  # half the users like dramas only, the other half comedies only
    pd.DataFrame({"userId": users, "movieId": movies, "rating": np.where(likes_drama == (movies <= 10), 5.0, 1.0),
                  "timestamp": np.arange(4000)}).to_csv(tmp_path / "ratings.csv", index=False)
    ratings, scores, inputs = priors(tmp_path)
    y, later = ratings["label"].to_numpy(), slice(2000, None)
    learned = fitted(inputs["genre"], y, 2000, 500)  # refitted on everything before, every 500 ratings
    assert np.isnan(learned[:2000]).all() and roc_auc_score(y[later], learned[later]) > 0.95
    assert roc_auc_score(y[later], scores["user + item rates"][later]) < 0.6  # everyone likes half of everything
    assert roc_auc_score(y[later], scores["user-in-genre + item rates"][later]) > 0.95
    # the first rating of each user sees no earlier rating of theirs: nothing but the neutral prior
    first = ~ratings.duplicated("userId").to_numpy()
    assert np.allclose(scores["user-in-genre + item rates"][first], scores["user + item rates"][first])


def test_per_event_genre_baseline_learns_each_users_genres_and_never_sees_the_same_instant():
    from sklearn.metrics import roc_auc_score

    from bench.baselines import UserGenreItemRatesPerEvent, UserItemRatesPerEvent

    rng = np.random.default_rng(2)
    users, genre = rng.integers(0, 30, 3000), rng.choice(["Drama", "Comedy"], 3000)
    rows = pd.DataFrame({"user_id": users, "item_id": rng.integers(0, 50, 3000), "genres": [[g] for g in genre],
                         "label": ((users % 2 == 0) == (genre == "Drama")).astype(int),
                         "occurred_at": pd.to_datetime(np.arange(3000) // 2, unit="s", utc=True)})
    plain, by_genre = UserItemRatesPerEvent(), UserGenreItemRatesPerEvent()
    later = slice(1000, None)
    assert roc_auc_score(rows["label"][later], plain.score(rows)[later]) < 0.6
    assert roc_auc_score(rows["label"][later], by_genre.score(rows)[later]) > 0.95
    pair = pd.DataFrame({"user_id": [7, 7], "item_id": [1, 2], "genres": [["Drama"], ["Drama"]], "label": [1, 1],
                         "occurred_at": pd.to_datetime([5000, 5000], unit="s", utc=True)})
    fresh = UserGenreItemRatesPerEvent()
    first = fresh.score(pair)
    assert first[0] == first[1]  # the second row of the same instant does not see the first one's like


@pytest.mark.slow
def test_evaluation_reports_every_contender_per_cycle_and_ndcg_as_the_mean_over_cycles(env, database_url, tmp_path):
    import os
    from collections import Counter

    import sqlalchemy as sa

    from bench.evaluate import COMPARED, CONTENDERS, main

    before = {k: v for k, v in os.environ.items() if k.startswith("FRESHREC_")}
    result = main(["--synthetic", "--model", "tiny", "--synthetic-events", "1300", "--cycle-rows", "150",
                   "--score-cycles", "2", "--warmup-train-rows", "400", "--retrain-rows", "300",
                   "--max-train-seconds", "5", "--retrain-seconds", "7", "--set", "holdout=newest_per_user",
                   "--database", sa.engine.make_url(database_url).database, "--out", str(tmp_path)])
    assert {k: v for k, v in os.environ.items() if k.startswith("FRESHREC_")} == before  # settings, not os.environ
    # one Settings: the environment's (FRESHREC_TRAIN_MODE=full from the fixture), the run's overrides, --set
    assert {k: result["settings"][k] for k in ("model", "train_mode", "epochs", "holdout")} == {
        "model": "tiny", "train_mode": "full", "epochs": 1, "holdout": "newest_per_user"}
    assert "database_url" not in result["settings"]
    assert result["full_retrain"] == {"every_cycles": 5, "rows": 300, "train_seconds": 7}

    assert [c["cycle"] for c in result["cycles"]] == [1, 2]
    for cycle in result["cycles"]:
        assert set(cycle["contenders"]) == set(CONTENDERS)
        for m in cycle["contenders"].values():
            assert m["n"] == 150 and 0 < m["auc"] < 1 and 0 < m["ndcg_at_10"] <= 1 and m["ndcg_users"] > 0
        # the bench's per-event contenders see exactly the side features freshrec's SQL gives these rows
        assert cycle["inputs_max_abs_diff"] < 1e-6
        assert isinstance(cycle["drifted_columns"], list)  # which columns raised the cycle's alarm
    # the cold-start champion adopts the first scored batch as its drift reference: drift is measured from the next
    assert [c["drift_measured"] for c in result["cycles"]] == [False, True]
    assert result["freshrec_cycles"]["drift_measured_cycles"] == 1
    assert result["freshrec_cycles"]["dataset_drift_share"] == float(result["cycles"][1]["dataset_drift"])
    # the model's seconds, and where they went
    phases = result["freshrec_cycles"]["phase_seconds_per_cycle"]
    assert set(phases) == {"score", "train", "evaluate"} and phases["train"] > 0
    assert sum(phases.values()) == pytest.approx(result["freshrec_cycles"]["model_seconds_per_cycle"], abs=0.05)
    assert result["freshrec_cycles"]["replay_rows_per_cycle"] == np.mean([c["replay_rows"] for c in result["cycles"]])
    counted = result["freshrec_cycles"]["drifted_columns"]
    assert counted == dict(Counter(c for cycle in result["cycles"] for c in cycle["drifted_columns"]))
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

    # as served (each user's rows with one user state): the same users counted, the hand-set priors' user terms
    # are then constant within a list, so both genre priors rank alike; the recent rate changes nothing
    from bench.evaluate import SERVED

    for cycle in result["cycles"]:
        served = cycle["ndcg_at_10_as_served"]
        assert set(served) == set(SERVED) and all(0 < v <= 1 for v in served.values())
        assert served["user-in-genre+item rates (per event)"] == pytest.approx(
            served["user-in-genre+recent+item rates (per event)"])
    for other in COMPARED:
        c = result["comparisons_as_served"][f"freshrec - {other}"]
        assert c["ndcg_difference"] == pytest.approx(result["totals"]["freshrec"]["ndcg_at_10_as_served"]
                                                     - result["totals"][other]["ndcg_at_10_as_served"], abs=1e-4)

    report = (tmp_path / "synthetic" / "results.md").read_text()
    assert "NDCG@10 (mean over cycles)" in report and "NDCG@10 difference" in report
    assert "| comparison, as served |" in report
    freshrec_row = next(line for line in report.splitlines() if line.startswith("| freshrec |"))
    assert f"{result['totals']['freshrec']['ndcg_at_10']:.4f}" in freshrec_row
    assert (tmp_path / "synthetic" / "prequential_auc.png").stat().st_size > 10_000


def test_rows_as_served_carry_the_users_state_at_their_first_event_in_the_cycle(engine):
    from bench.evaluate import as_served
    from freshrec import generate, ingest
    from freshrec.features import SIDE_COLUMNS, build_examples

    generate.insert_stream(engine, generate.StreamSpec(users=5, items=30, events=300, seed=2))
    frame = ingest.pull_new_interactions(engine, "default", 10_000).frame
    per_event = build_examples(engine, frame.iloc[200:], 5, categories=True, recent=True)
    served = as_served(engine, per_event, 5)
    assert served["id"].tolist() == per_event["id"].tolist() and served["label"].equals(per_event["label"])
    user_state = ["user_text", "user_rate", "user_log_n", "user_recent_rate"]
    for user, rows in served.groupby("user_id"):
        assert len(rows) > 1 and (rows[user_state].nunique() == 1).all()  # one user state per list
        first = per_event[per_event["user_id"] == user].sort_values(["occurred_at", "id"]).iloc[0]
        # the first event's own features, as the flow computes them (its item too)
        at_first = rows[rows["id"] == first["id"]].iloc[0]
        assert at_first["user_text"] == first["user_text"]
        assert np.allclose(at_first[[*SIDE_COLUMNS, "user_recent_rate"]].to_numpy(float),
                           first[[*SIDE_COLUMNS, "user_recent_rate"]].to_numpy(float))
    # the per-event rows do move within a list: what the as-served rows take out
    assert (per_event.groupby("user_id")["user_text"].nunique() > 1).any()
