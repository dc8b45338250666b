"""Ranking and calibration metrics, computed the same way for every model."""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_CLASS_ROWS = 5


def binary_metrics(labels, scores, min_rows: int = 30) -> dict:
    """AUC and log loss with their sample sizes; 'significant' is False on too few rows or one class."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-6, 1 - 1e-6)
    n, positives = int(len(y)), int(y.sum())
    out = {"n": n, "positives": positives, "auc": None, "logloss": None, "significant": False}
    if n == 0:
        return out
    out["logloss"] = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    if 0 < positives < n:
        from sklearn.metrics import roc_auc_score

        out["auc"] = float(roc_auc_score(y, p))
    out["significant"] = bool(n >= min_rows and min(positives, n - positives) >= MIN_CLASS_ROWS)
    return out


def ndcg_per_user(user_ids, labels, scores, k: int = 10) -> pd.Series:
    """NDCG@k of each user who has both a positive and a negative (scikit-learn's ndcg_score: tied scores share
    their gain, averaged over the tied orderings, so row order never matters); indexed by user."""
    from sklearn.metrics import ndcg_score

    frame = pd.DataFrame({"u": np.asarray(user_ids), "y": np.asarray(labels, dtype=float),
                          "s": np.asarray(scores, dtype=float)})
    values = {}
    for user, group in frame.groupby("u", sort=True):
        y = group["y"].to_numpy()
        if 0 < y.sum() < len(y):
            values[user] = float(ndcg_score(y[None, :], group["s"].to_numpy()[None, :], k=k))
    return pd.Series(values, dtype=float)


def ndcg_at_k(user_ids, labels, scores, k: int = 10) -> tuple[float | None, int]:
    """Mean NDCG@k over users who have both a positive and a negative; returns (ndcg, users counted)."""
    values = ndcg_per_user(user_ids, labels, scores, k)
    return (float(values.mean()), len(values)) if len(values) else (None, 0)


def evaluate(user_ids, labels, scores, min_rows: int = 30) -> dict:
    """Everything reported for one model on one set of rows."""
    out = binary_metrics(labels, scores, min_rows)
    out["ndcg_at_10"], out["ndcg_users"] = ndcg_at_k(user_ids, labels, scores, 10)
    return out
