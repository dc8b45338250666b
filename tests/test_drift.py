"""Drift: none within one distribution, found where the distribution moved, too-small batches not judged."""

import numpy as np
import pandas as pd

from freshrec.drift import COLUMNS, measure_drift, reference_records, write_report
from freshrec.settings import DriftSettings


def cfg(share: float, cap: int, **methods) -> DriftSettings:
    return DriftSettings(drift_share=share, drift_sample_cap=cap, drift_min_rows=30, **methods)


def sample(n: int, shifted: bool, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cats = ["sports", "music", "cooking", "travel"]
    p = [0.1, 0.1, 0.4, 0.4] if shifted else [0.4, 0.4, 0.1, 0.1]
    return pd.DataFrame({
        "hour": rng.integers(0, 24, n),
        "dwell_ms": rng.lognormal(9, 1, n),
        "item_text_len": rng.integers(40, 90, n),
        "item_popularity": rng.normal(0, 1.5, n),
        "user_activity": rng.normal(0, 1, n),
        "item_rate": rng.beta(3, 3, n),
        "user_category_rate": rng.beta(2, 4, n) if shifted else rng.beta(4, 3, n),
        "prediction": rng.beta(2, 5 if shifted else 2, n),
        "event_type": rng.choice(["click", "skip"], n),
        "category": rng.choice(cats, n, p=p),
        "label": rng.choice(["0", "1"], n, p=[0.7, 0.3] if shifted else [0.5, 0.5]),
    })[COLUMNS]


def test_same_distribution_shows_no_dataset_drift():
    report = measure_drift(sample(2000, False, 1), sample(2000, False, 2), cfg(0.5, 20_000))
    r = report.result
    assert r.status == "measured" and not r.dataset_drift and not r.prediction_drift
    assert set(r.columns) == set(COLUMNS)


def test_shifted_interests_drift_in_the_expected_columns(tmp_path):
    report = measure_drift(sample(2000, False, 1), sample(2000, True, 2), cfg(0.3, 20_000))
    r = report.result
    assert r.dataset_drift and r.prediction_drift and r.label_drift
    assert r.columns["category"].drifted and not r.columns["hour"].drifted
    path = write_report(report, tmp_path, 7)
    assert path.name == "cycle-000007-drift.html"
    html = path.read_bytes()
    assert html == report.html
    head = html.lstrip()[:500].lower()
    assert head.startswith(b"<!doctype html") or b"<html" in head
    assert html.rstrip().lower().endswith(b"</html>")


def test_sampling_caps_rows():
    report = measure_drift(sample(3000, False, 1), sample(5000, False, 2), cfg(0.5, 500))
    assert (report.result.reference_rows, report.result.current_rows) == (500, 500)


def test_too_small_or_no_reference_is_not_drift():
    small = measure_drift(sample(10, False, 1), sample(2000, True, 2), cfg(0.5, 100))
    assert small.result.status == "too_small" and not small.result.dataset_drift and small.html is None
    none = measure_drift(None, sample(200, True, 2), cfg(0.5, 100))
    assert none.result.status == "no_reference" and not none.result.dataset_drift


def test_methods_and_thresholds_are_configurable():
    report = measure_drift(sample(3000, False, 1), sample(3000, False, 2),
                           cfg(0.5, 20_000, drift_num_method="psi", drift_cat_method="psi", drift_num_threshold=0.3,
                               drift_cat_threshold=0.3))
    cols = report.result.columns
    assert cols["hour"].method.lower().startswith("psi") and cols["hour"].threshold == 0.3
    assert cols["category"].method.lower().startswith("psi")


def test_old_references_without_new_columns_still_compare():
    old = sample(500, False, 1).drop(columns=["item_popularity", "user_activity"])
    report = measure_drift(old, sample(500, False, 2), cfg(0.5, 1000))
    assert report.result.status == "measured" and "user_activity" not in report.result.columns


def test_reference_records_are_bounded_and_json_ready():
    import json

    ex = sample(100, False, 3).rename(columns={"prediction": "score"})
    records = reference_records(ex.assign(label=ex["label"].astype(int)), "score", cap=40)
    assert len(records) == 40 and set(records[0]) == set(COLUMNS)
    json.dumps(records)


def test_generator_drift_point_moves_category_and_prediction(engine):
    """Windows of the real generator's stream; the 'champion' scores by the users' pre-drift interests, as a
    model trained before the drift point would."""
    from freshrec import features, generate, ingest
    from freshrec.drift import drift_frame

    spec = generate.StreamSpec(users=300, items=200, events=6000, drift_at=0.5, seed=7)
    generate.insert_stream(engine, spec)
    catalogue = generate.build_catalogue(spec.items)
    interests = np.random.default_rng(spec.seed).dirichlet(np.full(len(generate.CATEGORY_WORDS), 0.3),
                                                           size=spec.users)  # the generator's first draw
    examples = features.build_examples(engine, ingest.pull_new_interactions(engine, "c", 10_000).frame, 5)
    examples["score"] = interests[examples.user_id - 1, catalogue.category_index[examples.item_id - 1]]
    before, before2, after = examples.iloc[1000:2000], examples.iloc[2000:3000], examples.iloc[4000:5000]

    moved = measure_drift(drift_frame(before2, "score"), drift_frame(after, "score"), cfg(0.5, 20_000)).result
    assert moved.prediction_drift and moved.columns["category"].drifted
    assert not moved.columns["hour"].counted
    still = measure_drift(drift_frame(before, "score"), drift_frame(before2, "score"), cfg(0.5, 20_000)).result
    assert not still.prediction_drift and not still.dataset_drift


PAYLOAD = "</script><script>window.pwned=1</script><!--<script>"


class _Scripts:
    """Collects the text of every <script> element as an HTML parser (a browser's tokenizer) sees it."""

    def __init__(self, html_text: str):
        from html.parser import HTMLParser

        self.scripts: list[str] = []
        outer = self

        class P(HTMLParser):
            def __init__(self):
                super().__init__(convert_charrefs=True)
                self.inside = False

            def handle_starttag(self, tag, attrs):
                if tag == "script":
                    self.inside = True
                    outer.scripts.append("")

            def handle_endtag(self, tag):
                if tag == "script":
                    self.inside = False

            def handle_data(self, data):
                if self.inside:
                    outer.scripts[-1] += data

        P().feed(html_text)


def test_category_from_the_data_runs_no_script_in_the_report():
    reference, current = sample(400, False, 1), sample(400, True, 2)
    current.loc[current.index[:50], "category"] = PAYLOAD
    current.loc[current.index[50:60], "event_type"] = PAYLOAD
    report = measure_drift(reference, current, cfg(0.5, 20_000))
    html_text = report.html.decode("utf-8")
    scripts = _Scripts(html_text).scripts
    assert scripts, "the report keeps its own scripts"
    # Without escaping the parser would close the report's script at the payload and open a new script
    # element whose code is the payload's: the payload may only appear as escaped text inside a JSON string.
    plain = measure_drift(reference, sample(400, True, 2), cfg(0.5, 20_000))
    assert len(scripts) == len(_Scripts(plain.html.decode("utf-8")).scripts)
    assert not any(s.strip().startswith("window.pwned") for s in scripts)
    assert all("window.pwned=1&lt;" in s for s in scripts if "window.pwned" in s)
    assert "</script><script>window.pwned" not in html_text
    assert "&lt;/script&gt;&lt;script&gt;window.pwned" in html_text  # present, escaped, as a category
    assert report.result.columns["category"].drifted  # the escaped category still counts as its own value
