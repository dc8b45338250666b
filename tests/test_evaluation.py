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
