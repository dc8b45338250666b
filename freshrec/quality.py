"""Validation and denoising of a pulled batch.

Great Expectations runs the versioned suite on every batch and gives the batch-level verdict and
statistics that are stored. GX lists only some failing rows, so freshrec computes the row-level reason
codes itself with the same rules (plus the denoising rules GX has no expectation for: near duplicates and
bot-like users). A row with any reason goes to quarantine; nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from freshrec.ingest import INTERACTION_COLUMNS
from freshrec.sqlfiles import query

log = logging.getLogger(__name__)

SUITE_NAME = "freshrec_interactions"
SUITE_VERSION = "1"
REQUIRED_COLUMNS = ["user_id", "item_id", "event_type", "label", "occurred_at"]
# Column kinds the pulled frame must have. GX 1.24's type expectations fail on pandas' nullable dtypes
# (Int64, string) whatever the type list, so freshrec checks the kinds itself.
COLUMN_KINDS = {"id": "iu", "user_id": "iu", "item_id": "iu", "label": "iu", "dwell_ms": "iu",
                "event_type": "OSU", "occurred_at": "M", "inserted_at": "M", "txid": "OSU"}
BATCH_REJECTED = "batch_rejected"


@dataclass(frozen=True)
class QualityRules:
    event_types: tuple[str, ...]
    max_dwell_ms: int
    clock_skew_s: float
    duplicate_window_s: float
    bot_events_per_minute: int
    batch_reject_share: float


@dataclass
class ValidatedBatch:
    clean: pd.DataFrame
    quarantined: pd.DataFrame  # the pulled rows plus a 'reasons' column (list of codes)
    reason_counts: dict[str, int]
    accepted: bool
    reject_reason: str | None
    gx_success: bool
    gx_statistics: dict
    gx_results: list[dict] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.clean) + len(self.quarantined)


# --- Great Expectations --------------------------------------------------------------------------

_gx_lock = threading.Lock()
_gx_cache: dict[QualityRules, object] = {}


def build_suite(rules: QualityRules):
    """The expectation suite, versioned with this code (SUITE_VERSION); per-batch values are parameters."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=SUITE_NAME, meta={"version": SUITE_VERSION})
    suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=INTERACTION_COLUMNS, exact_match=True))
    for column in REQUIRED_COLUMNS:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="user_id", min_value=1))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(rules.event_types)))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="dwell_ms", min_value=0,
                                                            max_value=rules.max_dwell_ms))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="occurred_at",
                                                            max_value={"$PARAMETER": "latest_occurred_at"}))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="item_id",
                                                          value_set={"$PARAMETER": "known_item_ids"}))
    suite.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(
        column_list=["user_id", "item_id", "event_type", "occurred_at"]))
    return suite


def _validation_definition(rules: QualityRules):
    """One ephemeral GX context per rule set and process (building one costs ~0.3 s)."""
    with _gx_lock:
        if rules not in _gx_cache:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            batch_def = (context.data_sources.add_pandas(name="pulled")
                         .add_dataframe_asset(name="interactions")
                         .add_batch_definition_whole_dataframe("batch"))
            suite = context.suites.add(build_suite(rules))
            _gx_cache[rules] = context.validation_definitions.add(
                gx.ValidationDefinition(name="interactions_batch", data=batch_def, suite=suite))
        return _gx_cache[rules]


def run_expectations(frame: pd.DataFrame, rules: QualityRules, known_item_ids: list[int],
                     now: datetime) -> tuple[bool, dict, list[dict]]:
    vd = _validation_definition(rules)
    with _gx_lock:  # GX contexts are not thread-safe
        res = vd.run(batch_parameters={"dataframe": frame},
                     expectation_parameters={"known_item_ids": known_item_ids,
                                             "latest_occurred_at": now + timedelta(seconds=rules.clock_skew_s)},
                     result_format="SUMMARY")
    results = []
    for r in res.results:
        cfg = r.expectation_config
        results.append({
            "expectation": cfg.type,
            "column": cfg.kwargs.get("column") or cfg.kwargs.get("column_list"),
            "success": bool(r.success),
            "unexpected_count": r.result.get("unexpected_count"),
            "unexpected_percent": r.result.get("unexpected_percent"),
            "observed_value": _jsonable(r.result.get("observed_value")),
            "error": (r.exception_info or {}).get("exception_message"),
        })
    return bool(res.success), dict(res.statistics), results


# --- freshrec's row-level rules ---------------------------------------------------------------------


def _rolling_counts(keys: np.ndarray, times_ms: np.ndarray, window_ms: int) -> np.ndarray:
    """For rows sorted by (key, time): how many rows of the same key fall in (t - window, t]."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new_group = np.r_[True, keys[1:] != keys[:-1]]
    rank = np.cumsum(new_group) - 1
    group_start = np.flatnonzero(new_group)[rank]
    # One sortable int64 per row: group rank in the high bits, milliseconds since the batch start below.
    combined = (rank.astype(np.int64) << 41) + (times_ms - times_ms.min())
    left = np.maximum(np.searchsorted(combined, combined - window_ms, side="right"), group_start)
    return np.arange(n) - left + 1


def row_reasons(frame: pd.DataFrame, rules: QualityRules, known_item_ids: set[int],
                now: datetime) -> list[list[str]]:
    """Reason codes for every row (an empty list means clean), computed vectorised."""
    n = len(frame)
    flags: dict[str, np.ndarray] = {}

    def flag(code: str, mask) -> None:
        mask = np.asarray(pd.Series(mask).fillna(False).to_numpy(dtype=bool))
        if mask.any():
            flags[code] = flags.get(code, np.zeros(n, dtype=bool)) | mask

    for column in REQUIRED_COLUMNS:
        flag(f"null_{column}", frame[column].isna())
    flag("bad_user_id", frame["user_id"] <= 0)
    flag("unknown_event_type", frame["event_type"].notna() & ~frame["event_type"].isin(rules.event_types))
    flag("bad_label", frame["label"].notna() & ~frame["label"].isin([0, 1]))
    flag("dwell_out_of_range", (frame["dwell_ms"] < 0) | (frame["dwell_ms"] > rules.max_dwell_ms))
    flag("future_timestamp", frame["occurred_at"] > pd.Timestamp(now) + pd.Timedelta(seconds=rules.clock_skew_s))
    flag("unknown_item", frame["item_id"].notna() & ~frame["item_id"].isin(list(known_item_ids)))

    # Duplicates: among rows with the same user, item and event, a row at the same instant as the previous
    # one is an exact duplicate, one within the window a near duplicate; the first of each run stays clean.
    keyed = frame[["user_id", "item_id", "event_type", "occurred_at", "id"]].dropna()
    if len(keyed):
        ordered = keyed.sort_values(["user_id", "item_id", "event_type", "occurred_at", "id"], kind="stable")
        same = ((ordered["user_id"] == ordered["user_id"].shift())
                & (ordered["item_id"] == ordered["item_id"].shift())
                & (ordered["event_type"] == ordered["event_type"].shift())).to_numpy(dtype=bool, na_value=False)
        gap = (ordered["occurred_at"] - ordered["occurred_at"].shift()).dt.total_seconds().to_numpy(dtype=float, na_value=np.nan)
        exact = same & (gap == 0)
        near = same & (gap > 0) & (gap <= rules.duplicate_window_s)
        position = frame.index.get_indexer(ordered.index)
        for code, mask in (("duplicate", exact), ("near_duplicate", near)):
            full = np.zeros(n, dtype=bool)
            full[position[mask]] = True
            flag(code, full)

    # Bots: users with more events in some one-minute window than a person could produce.
    timed = frame[["user_id", "occurred_at"]].dropna()
    if len(timed):
        ordered = timed.sort_values(["user_id", "occurred_at"], kind="stable")
        times_ms = (ordered["occurred_at"].astype("int64") // 1_000_000).to_numpy()
        counts = _rolling_counts(ordered["user_id"].to_numpy(dtype=np.int64), times_ms, 60_000)
        bots = set(ordered["user_id"].to_numpy()[counts > rules.bot_events_per_minute].tolist())
        if bots:
            flag("bot_user", frame["user_id"].isin(list(bots)))

    reasons: list[list[str]] = [[] for _ in range(n)]
    for code, mask in flags.items():
        for i in np.flatnonzero(mask):
            reasons[i].append(code)
    return reasons


def schema_problems(frame: pd.DataFrame) -> list[str]:
    """Columns whose pandas kind is not what the interactions schema promises."""
    problems = []
    for column, kinds in COLUMN_KINDS.items():
        if column in frame and frame[column].dtype.kind not in kinds:
            problems.append(f"{column} has type {frame[column].dtype}")
    return problems


def known_items(engine: Engine, item_ids: list[int]) -> set[int]:
    with engine.connect() as conn:
        return {int(r.id) for r in conn.execute(query("known_items"), {"ids": item_ids})}


def validate_batch(frame: pd.DataFrame, rules: QualityRules, known_item_ids: set[int],
                   now: datetime | None = None) -> ValidatedBatch:
    """Run the suite and the row rules; split the batch into clean and quarantined rows; apply the gate."""
    now = now or datetime.now(timezone.utc)
    frame = frame.reset_index(drop=True)
    gx_success, statistics, results = run_expectations(frame, rules, sorted(known_item_ids), now)
    reasons = row_reasons(frame, rules, known_item_ids, now)
    bad = np.array([bool(r) for r in reasons], dtype=bool)
    schema_broken = [f"columns differ from {INTERACTION_COLUMNS} (observed {r['observed_value']})"
                     for r in results if r["expectation"] == "expect_table_columns_to_match_set" and not r["success"]]
    schema_broken += schema_problems(frame)
    bad_share = float(bad.mean()) if len(frame) else 0.0
    reject_reason = None
    if schema_broken:
        reject_reason = "schema broken: " + "; ".join(schema_broken)
    elif bad_share > rules.batch_reject_share:
        reject_reason = (f"{bad_share:.0%} of the batch failed checks, above the "
                         f"{rules.batch_reject_share:.0%} limit")
    if reject_reason:
        reasons = [r + [BATCH_REJECTED] for r in reasons]
        bad[:] = True
    quarantined = frame[bad].copy()
    quarantined["reasons"] = [reasons[i] for i in np.flatnonzero(bad)]
    counts: dict[str, int] = {}
    for r in quarantined["reasons"]:
        for code in r:
            counts[code] = counts.get(code, 0) + 1
    clean = frame[~bad].reset_index(drop=True)
    if reject_reason:
        log.warning("batch rejected: %s", reject_reason)
    log.info("validated %d rows: %d clean, %d quarantined %s", len(frame), len(clean), len(quarantined), counts)
    return ValidatedBatch(clean, quarantined.reset_index(drop=True), dict(sorted(counts.items())),
                          reject_reason is None, reject_reason, gx_success, statistics, results)


# --- helpers -----------------------------------------------------------------------------------------


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def row_record(row: pd.Series) -> dict:
    """A quarantined row as JSON-able values (timestamps ISO, NA as null)."""
    out = {}
    for key, value in row.items():
        if key == "reasons":
            continue
        if value is None or (not isinstance(value, (list, str)) and pd.isna(value)):
            out[key] = None
        elif isinstance(value, pd.Timestamp):
            out[key] = value.isoformat()
        elif isinstance(value, (np.integer,)):
            out[key] = int(value)
        elif isinstance(value, (np.floating,)):
            out[key] = float(value)
        else:
            out[key] = value
    return out


def quarantine_payload(validated: ValidatedBatch) -> str:
    """The quarantined rows as one JSON document for a single set-based INSERT."""
    return json.dumps([
        {"interaction_id": int(row["id"]), "reasons": list(row["reasons"]), "row_data": row_record(row)}
        for _, row in validated.quarantined.iterrows()
    ])
