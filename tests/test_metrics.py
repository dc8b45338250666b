"""freshrec.metrics: tie-aware NDCG, AUC and log loss against hand-computed values, users with one class, and the
paired bootstrap's unit."""

import numpy as np
import pytest

from freshrec.metrics import binary_metrics, evaluate, ndcg_at_k, ndcg_per_user, paired_gains, rank_auc

from helpers import scored_holdout


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


def test_ndcg_counts_only_users_with_both_classes():
    users = [1, 1, 1, 2, 2, 3, 3]
    labels = [1, 0, 0, 1, 1, 0, 0]
    perfect = [0.9, 0.1, 0.2, 0.5, 0.6, 0.3, 0.4]
    assert ndcg_at_k(users, labels, perfect) == (1.0, 1)
    worst = [0.1, 0.9, 0.8, 0.5, 0.6, 0.3, 0.4]
    value, n = ndcg_at_k(users, labels, worst)
    assert n == 1 and value == pytest.approx(1 / np.log2(4))
    m = evaluate(users, labels, perfect, min_rows=100)
    assert m["n"] == 7 and not m["significant"] and m["ndcg_users"] == 1


def test_the_evaluations_metrics_know_a_perfect_a_useless_and_a_hand_computed_ranking():
    # freshrec.metrics.evaluate scores every contender of bench.evaluate and bench.replay_sweep
    y, users = np.array([0, 0, 1, 1, 0, 1, 1, 0]), np.array([1, 1, 1, 1, 2, 2, 2, 2])
    perfect = evaluate(users, y, y * 0.8 + 0.1)
    assert perfect["auc"] == 1.0 and perfect["ndcg_at_10"] == 1.0 and perfect["ndcg_users"] == 2
    useless = evaluate(users, y, np.full(len(y), 0.5))
    assert useless["auc"] == 0.5 and useless["logloss"] == pytest.approx(np.log(2))
    # one user, no ties: AUC 3 of 4 pairs; NDCG@10 (1 + 1/log2(4)) / (1 + 1/log2(3)); log loss by hand
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    m = evaluate([7, 7, 7, 7], [0, 0, 1, 1], scores, min_rows=1)
    assert m["auc"] == 0.75
    assert m["ndcg_at_10"] == pytest.approx(1.5 / (1 + 1 / np.log2(3)))
    assert m["logloss"] == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.35, 0.8])))


@pytest.mark.unit
def test_few_users_resample_rows():
    user_ids, labels, champion, _ = scored_holdout(1, 200, 1)
    gains = paired_gains(user_ids, labels, champion * 0.9, champion)
    assert gains["auc"]["unit"] == "rows" and gains["auc"]["units"] == 200
    assert gains["logloss"]["point"] != 0


def test_auc_counts_a_tie_as_half_a_pair_and_log_loss_clips_sure_scores():
    # positives scored 0.5 and 0.8, negatives 0.5 and 0.2: three of the four pairs in order, one tied
    m = binary_metrics([1, 1, 0, 0], [0.5, 0.8, 0.5, 0.2])
    assert m["auc"] == pytest.approx((3 + 0.5) / 4)
    assert m["logloss"] == pytest.approx(-np.mean(np.log([0.5, 0.8, 0.5, 0.8])))
    assert (m["n"], m["positives"], m["significant"]) == (4, 2, False)  # too few rows to decide on
    sure_and_wrong = binary_metrics([1, 0], [0.0, 1.0])  # clipped at 1e-6: a large loss, not infinity
    assert sure_and_wrong["logloss"] == pytest.approx(-np.log(1e-6)) and sure_and_wrong["auc"] == 0.0
    one_class = binary_metrics([1, 1, 1], [0.2, 0.4, 0.9])
    assert one_class["auc"] is None and one_class["logloss"] is not None and not one_class["significant"]
    assert binary_metrics([], [])["logloss"] is None
    enough = binary_metrics([0, 1] * 20, np.linspace(0.01, 0.99, 40))
    assert enough["significant"] and enough["n"] == 40 and enough["positives"] == 20


def test_a_model_against_itself_gains_nothing_and_rows_of_one_class_give_no_gains():
    user_ids, labels, champion, _ = scored_holdout(20, 10, 3)
    gains = paired_gains(user_ids, labels, champion, champion, resamples=50)
    for metric in ("auc", "logloss", "ndcg_at_10"):
        assert gains[metric]["point"] == gains[metric]["lower"] == gains[metric]["upper"] == 0, metric
    assert (gains["auc"]["unit"], gains["auc"]["units"], gains["auc"]["confidence"]) == ("users", 20, 0.9)
    assert paired_gains([1, 2], [1, 1], [0.3, 0.4], [0.5, 0.6]) == {}


def test_the_bootstraps_auc_is_scikit_learns_including_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    for n in (2, 7, 300):
        labels = np.r_[0.0, 1.0, rng.integers(0, 2, n - 2)]
        scores = np.round(rng.random(n), 1)  # many ties
        assert rank_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
