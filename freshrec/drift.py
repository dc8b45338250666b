"""Drift between the champion's reference sample and the cycle's clean batch, measured with Evidently.

The question asked: has the data the champion now sees moved away from the data it was judged on when it was
published? So the reference is the champion's own publish-time sample: rows of the batch of the cycle that made
it, with its scores on the held-out ones among them, out of sample like the current batch's (kept with its
version; fine_tune.drift_reference). Except for a cold start: its batch's point-in-time features were computed
on an empty (or no) history (every like-rate near its prior, every activity count small), a state the stream
never returns to, so every later batch would look drifted against it. A cold start is published without a
reference and adopts the first batch it scores, as it scored it (steps.commit, registry.adopt_reference): one
cycle goes unmeasured, and the reference is then out of sample in features and scores alike. Columns: the
inputs (event type, hour, dwell, item category, item text length, item popularity and user activity relative to
their batch, the item's like-rate and the user's like-rate in the item's categories), the champion's predicted
score (prediction drift) and the label (a proxy for concept drift). Evidently picks the statistical method
per column from the data size, and with it the direction of the score (distance vs p-value), so the
per-column verdict is read from Evidently's test status, not from the bare score.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from freshrec.escaping import html_safe_category
from freshrec.settings import DriftSettings

log = logging.getLogger(__name__)

# Every input is stationary by construction, so only a change in the world moves it: rates, not counts
# (features.relative_activity: popularity and activity relative to the batch's median item and user;
# item_rate and the user's like-rate in the item's categories are shrunk point-in-time rates). The user's rate
# in the item's categories is what shows a shift of interests that leaves the overall mix of categories alone.
NUMERICAL = ["hour", "dwell_ms", "item_text_len", "item_popularity", "user_activity", "item_rate",
             "user_category_rate", "prediction"]
INPUTS = ["hour", "dwell_ms", "item_text_len", "item_popularity", "user_activity", "item_rate",
          "user_category_rate", "event_type", "category", "label"]
CATEGORICAL = ["event_type", "category", "label"]
COLUMNS = NUMERICAL + CATEGORICAL
PREDICTION = "prediction"
LABEL = "label"


@dataclass
class ColumnDrift:
    method: str
    score: float | None
    threshold: float
    drifted: bool
    counted: bool = True  # False: shown, but not part of the dataset-drift share (a seasonal column)


@dataclass
class DriftResult:
    status: str  # measured | no_reference | too_small
    dataset_drift: bool = False
    drifted_share: float = 0.0
    prediction_drift: bool = False
    label_drift: bool = False
    reference_rows: int = 0
    current_rows: int = 0
    columns: dict[str, ColumnDrift] = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class DriftReport:
    result: DriftResult
    html: bytes | None = None

    @property
    def html_gzip(self) -> bytes | None:
        return gzip.compress(self.html, mtime=0) if self.html is not None else None

    @property
    def html_sha256(self) -> str | None:
        return hashlib.sha256(self.html).hexdigest() if self.html is not None else None


def drift_frame(examples: pd.DataFrame, score_column: str) -> pd.DataFrame:
    """The drift columns of scored examples; ids never enter, only bucketed or derived values."""
    if examples.empty or score_column not in examples:
        return pd.DataFrame(columns=COLUMNS)
    frame = examples[INPUTS].copy()
    frame[PREDICTION] = examples[score_column].astype("float64").to_numpy()
    frame["label"] = frame["label"].astype("int64").astype(str)
    return frame[COLUMNS]


def reference_records(examples: pd.DataFrame, score_column: str, cap: int, seed: int = 0,
                      rows: int | None = None) -> list[dict]:
    """A bounded sample of the drift columns, stored with a model version as its drift reference (`rows`: draw
    that many of the examples first, as fine_tune.drift_reference does for a candidate)."""
    if rows is not None and len(examples) > rows:
        examples = examples.sample(n=rows, random_state=seed)
    frame = drift_frame(examples, score_column)
    if len(frame) > cap:
        frame = frame.sample(n=cap, random_state=seed)
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict(orient="records")


def _html_safe(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    for column in columns:
        frame[column] = frame[column].map(html_safe_category, na_action="ignore")
    return frame


def _sample(frame: pd.DataFrame, cap: int, seed: int) -> pd.DataFrame:
    return frame.sample(n=cap, random_state=seed) if len(frame) > cap else frame


def measure_drift(reference: pd.DataFrame, current: pd.DataFrame, settings: DriftSettings,
                  seed: int = 0) -> DriftReport:
    """Compare current with reference; both are frames of the drift columns. The settings' methods and
    thresholds left unset let Evidently choose by sample size (up to 1000 rows: K-S for numbers, chi-square or
    Z-test for categories, drift when p < 0.05; above: normed Wasserstein and Jensen-Shannon distance, drift
    when the distance > 0.1). Monitor-only columns are measured and shown but not counted: the hour of day
    moves between any two windows a few minutes apart, by design of the day, not because the world changed."""
    drift_share, sample_cap, min_rows = settings.drift_share, settings.drift_sample_cap, settings.drift_min_rows
    num_method, cat_method = settings.drift_num_method, settings.drift_cat_method
    num_threshold, cat_threshold = settings.drift_num_threshold, settings.drift_cat_threshold
    monitor_only = tuple(settings.drift_monitor_only)
    if reference is None or reference.empty:
        return DriftReport(DriftResult("no_reference", current_rows=len(current),
                                       note="no reference sample yet (no champion): drift not measured"))
    if len(reference) < min_rows or len(current) < min_rows:
        return DriftReport(DriftResult(
            "too_small", reference_rows=len(reference), current_rows=len(current),
            note=f"too small to judge: {len(reference)} reference and {len(current)} current rows, "
                 f"fewer than {min_rows}"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.metrics import ValueDrift
        from evidently.presets import DataDriftPreset

    # References stored before a column existed lack it: compare the columns both sides have.
    shared = [c for c in COLUMNS if c in reference.columns and c in current.columns]
    reference = _sample(reference[shared], sample_cap, seed)
    current = _sample(current[shared], sample_cap, seed)
    # Columns constant in both samples carry no signal and make some tests divide by zero.
    numerical = [c for c in NUMERICAL if c in shared and reference[c].notna().any() and current[c].notna().any()]
    categorical = [c for c in CATEGORICAL if c in shared]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    cols = numerical + categorical
    # Evidently 0.7 embeds category values raw inside a <script> block of its HTML: a category such as
    # "</script><script>..." would run when the report is opened. Escape them (one-to-one) before Evidently.
    reference = _html_safe(reference, categorical)
    current = _html_safe(current, categorical)
    ref_ds = Dataset.from_pandas(reference[cols].astype({c: "float64" for c in numerical}), data_definition=definition)
    cur_ds = Dataset.from_pandas(current[cols].astype({c: "float64" for c in numerical}), data_definition=definition)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The preset's headline (share of drifted columns) covers the counted columns only, so the HTML
        # says what the decision used; monitor-only columns get a drift metric and test of their own.
        counted = [c for c in cols if c not in monitor_only]
        preset = DataDriftPreset(columns=counted, drift_share=drift_share, num_method=num_method,
                                 cat_method=cat_method, num_threshold=num_threshold,
                                 cat_threshold=cat_threshold)
        extra = [ValueDrift(column=c, method=num_method if c in numerical else cat_method,
                            threshold=num_threshold if c in numerical else cat_threshold)
                 for c in cols if c in monitor_only]
        snapshot = Report([preset, *extra], include_tests=True).run(
            current_data=cur_ds, reference_data=ref_ds)
    data = snapshot.dict()
    by_metric: dict[str, dict] = {}
    result = DriftResult("measured", reference_rows=len(reference), current_rows=len(current))
    for metric in data["metrics"]:
        cfg = metric["config"]
        if cfg["type"].endswith("DriftedColumnsCount"):
            result.drifted_share = float(metric["value"]["share"])
        elif cfg["type"].endswith("ValueDrift"):
            by_metric[metric["id"]] = metric
    for test in data["tests"]:
        metric = by_metric.get(test.get("metric_config", {}).get("metric_id"))
        if metric is None:
            continue
        cfg = metric["config"]
        score = metric["value"]
        result.columns[cfg["column"]] = ColumnDrift(
            method=str(cfg["method"]), score=float(score) if score is not None and np.isfinite(score) else None,
            threshold=float(cfg["threshold"]), drifted=str(test["status"]).upper().endswith("FAIL"),
            counted=cfg["column"] not in monitor_only)
    counted = [c for c in result.columns.values() if c.counted]
    if counted:
        result.drifted_share = sum(c.drifted for c in counted) / len(counted)
    result.dataset_drift = result.drifted_share >= drift_share
    result.prediction_drift = bool(result.columns.get(PREDICTION) and result.columns[PREDICTION].drifted)
    result.label_drift = bool(result.columns.get(LABEL) and result.columns[LABEL].drifted)
    drifted = [c for c, v in result.columns.items() if v.drifted]
    result.note = (f"{len(drifted)} of {len(result.columns)} columns drifted"
                   + (f" ({', '.join(drifted)})" if drifted else "")
                   + (f"; {', '.join(monitor_only)} shown but not counted" if monitor_only else ""))
    html = snapshot.get_html_str(as_iframe=False)
    log.info("drift: %s, dataset drift %s", result.note, result.dataset_drift)
    return DriftReport(result, html.encode("utf-8"))


def report_path(reports_dir: Path, cycle_id: int) -> Path:
    return Path(reports_dir) / f"cycle-{cycle_id:06d}-drift.html"


def write_report(report: DriftReport, reports_dir: Path, cycle_id: int) -> Path | None:
    """Save the self-contained HTML under a stable per-cycle name."""
    if report.html is None:
        return None
    path = report_path(reports_dir, cycle_id).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_bytes(report.html)
    tmp.replace(path)
    return path
