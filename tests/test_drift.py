"""Drift: none within one distribution, found where the distribution moved, too-small batches not judged."""

import numpy as np
import pandas as pd

from freshrec.drift import COLUMNS, measure_drift, reference_records, write_report


def sample(n: int, shifted: bool, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cats = ["sports", "music", "cooking", "travel"]
    p = [0.1, 0.1, 0.4, 0.4] if shifted else [0.4, 0.4, 0.1, 0.1]
    return pd.DataFrame({
        "hour": rng.integers(0, 24, n),
        "dwell_ms": rng.lognormal(9, 1, n),
        "item_text_len": rng.integers(40, 90, n),
        "prediction": rng.beta(2, 5 if shifted else 2, n),
        "event_type": rng.choice(["click", "skip"], n),
        "category": rng.choice(cats, n, p=p),
        "label": rng.choice(["0", "1"], n, p=[0.7, 0.3] if shifted else [0.5, 0.5]),
    })[COLUMNS]


def test_same_distribution_shows_no_dataset_drift():
    report = measure_drift(sample(2000, False, 1), sample(2000, False, 2), drift_share=0.5, sample_cap=20_000,
                           min_rows=30)
    r = report.result
    assert r.status == "measured" and not r.dataset_drift and not r.prediction_drift
    assert set(r.columns) == set(COLUMNS)


def test_shifted_interests_drift_in_the_expected_columns(tmp_path):
    report = measure_drift(sample(2000, False, 1), sample(2000, True, 2), drift_share=0.4, sample_cap=20_000,
                           min_rows=30)
    r = report.result
    assert r.dataset_drift and r.prediction_drift and r.label_drift
    assert r.columns["category"].drifted and not r.columns["hour"].drifted
    path = write_report(report, tmp_path, 7)
    assert path.name == "cycle-000007-drift.html"
    html = path.read_bytes()
    assert html == report.html and html.lstrip().lower().startswith(b"<!doctype html") or b"<html" in html[:500]


def test_sampling_caps_rows():
    report = measure_drift(sample(3000, False, 1), sample(5000, False, 2), drift_share=0.5, sample_cap=500,
                           min_rows=30)
    assert (report.result.reference_rows, report.result.current_rows) == (500, 500)


def test_too_small_or_no_reference_is_not_drift():
    small = measure_drift(sample(10, False, 1), sample(2000, True, 2), drift_share=0.5, sample_cap=100, min_rows=30)
    assert small.result.status == "too_small" and not small.result.dataset_drift and small.html is None
    none = measure_drift(None, sample(200, True, 2), drift_share=0.5, sample_cap=100, min_rows=30)
    assert none.result.status == "no_reference" and not none.result.dataset_drift


def test_reference_records_are_bounded_and_json_ready():
    import json

    ex = sample(100, False, 3).rename(columns={"prediction": "score"})
    records = reference_records(ex.assign(label=ex["label"].astype(int)), "score", cap=40)
    assert len(records) == 40 and set(records[0]) == set(COLUMNS)
    json.dumps(records)
