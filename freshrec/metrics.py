"""Ranking and calibration metrics, computed the same way for every model."""

from __future__ import annotations

import numpy as np

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
