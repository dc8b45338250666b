"""Validation and denoising of a pulled batch: Great Expectations decides.

One expectation suite states every rule. Each expectation carries the quarantine reason code of the rows
it rejects (in its meta); GX's own unexpected-row reports (result_format COMPLETE, with the row id as
unexpected_index_column_names) give every bad row its reason codes. Signals GX cannot compute from one row
(copies of an event earlier in the batch or in earlier batches, a user's peak events per minute) are
computed first as columns of the batch and checked by expectations of the same suite.

The suite runs twice:
  * lenient, on the whole raw batch, every row expectation with mostly = 1 - batch_reject_share: its
    success is the batch verdict (a rule broken by more than that share of the rows rejects the batch);
  * strict (mostly 1.0, plus a uniqueness check), on the clean rows only: a hard gate before anything trains;
    its failure rejects the batch with reason code strict_gate_failed.
A row with any reason goes to quarantine; nothing is dropped silently. See docs/data-quality.md.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from freshrec.ingest import DEFAULT_MAX_FIELD_CHARS, INTERACTION_COLUMNS, Cursor, PulledBatch
from freshrec.sqlfiles import query

log = logging.getLogger(__name__)

SUITE_NAME = "freshrec_interactions"
SUITE_VERSION = "2"  # 2: GX decides (mostly verdict, per-row reasons from GX, signal columns, strict gate)
REQUIRED_COLUMNS = ["user_id", "item_id", "event_type", "label", "occurred_at"]
# Column kinds the pulled frame must have. GX 1.24's type expectations fail on pandas' nullable dtypes
# (Int64, string) whatever the type list, so freshrec checks the kinds itself.
COLUMN_KINDS = {"id": "iu", "user_id": "iu", "item_id": "iu", "label": "iu", "dwell_ms": "iu",
                "event_type": "OSU", "occurred_at": "M", "inserted_at": "M", "txid": "OSU"}
BATCH_REJECTED = "batch_rejected"
STRICT_GATE_FAILED = "strict_gate_failed"


@dataclass(frozen=True)
class QualityRules:
    event_types: tuple[str, ...]
    max_dwell_ms: int
    clock_skew_s: float
    duplicate_window_s: float
    bot_events_per_minute: int
    batch_reject_share: float
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    # Earliest plausible occurred_at: catches the zero-epoch (1970) and 1900 bugs and '-infinity'.
    min_occurred_at: datetime = datetime(1990, 1, 1, tzinfo=timezone.utc)


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
_gx_cache: dict[tuple[QualityRules, bool], object] = {}

# Reason codes, in the order they are reported. Each row code is stated by one expectation below.
REASONS = ["null_user_id", "null_item_id", "null_event_type", "null_label", "null_occurred_at", "bad_user_id",
           "unknown_event_type", "bad_label", "dwell_out_of_range", "future_timestamp", "implausible_timestamp",
           "oversized_field", "unknown_item", "duplicate", "near_duplicate", "bot_user", STRICT_GATE_FAILED,
           BATCH_REJECTED]
# Columns computed before the suite runs (add_signals), checked by its expectations.
SIGNAL_COLUMNS = ["copy_gap_s", "user_peak_events_per_minute"]


def build_suite(rules: QualityRules, strict: bool = False):
    """The expectation suite, versioned with this code (SUITE_VERSION); per-batch values are parameters.

    Lenient (the batch verdict): every row expectation has mostly = 1 - batch_reject_share. GX counts that
    share over the rows the expectation looks at (non-null values; for near_duplicate, the rows with a copy).
    Strict (the gate on the clean rows): mostly 1.0, plus exact uniqueness of (user, item, event, time).
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    mostly = {} if strict else {"mostly": max(0.0, 1.0 - rules.batch_reject_share)}

    def add(expectation_class, reason, **kwargs):
        suite.add_expectation(expectation_class(**kwargs, **mostly, meta={"reason": reason}))

    suite = gx.ExpectationSuite(name=SUITE_NAME + ("_strict" if strict else ""),
                                meta={"version": SUITE_VERSION, "strict": strict})
    suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=INTERACTION_COLUMNS + SIGNAL_COLUMNS,
                                                           exact_match=True, meta={"reason": "schema"}))
    for column in REQUIRED_COLUMNS:
        add(gxe.ExpectColumnValuesToNotBeNull, f"null_{column}", column=column)
    add(gxe.ExpectColumnValuesToBeBetween, "bad_user_id", column="user_id", min_value=1)
    add(gxe.ExpectColumnValuesToBeInSet, "unknown_event_type", column="event_type",
        value_set=list(rules.event_types))
    add(gxe.ExpectColumnValueLengthsToBeBetween, "oversized_field", column="event_type",
        max_value=rules.max_field_chars)
    add(gxe.ExpectColumnValuesToBeInSet, "bad_label", column="label", value_set=[0, 1])
    add(gxe.ExpectColumnValuesToBeBetween, "dwell_out_of_range", column="dwell_ms", min_value=0,
        max_value=rules.max_dwell_ms)
    add(gxe.ExpectColumnValuesToBeBetween, "future_timestamp", column="occurred_at",
        max_value={"$PARAMETER": "latest_occurred_at"})
    add(gxe.ExpectColumnValuesToBeBetween, "implausible_timestamp", column="occurred_at",
        min_value=rules.min_occurred_at)
    # "item_id is in items", phrased over the batch's unknown ids: the parameter stays a handful of values
    # instead of the whole catalogue, which GX would copy many times per run.
    add(gxe.ExpectColumnValuesToNotBeInSet, "unknown_item", column="item_id",
        value_set={"$PARAMETER": "unknown_item_ids"})
    # copy_gap_s: seconds to the closest earlier copy (same user, item, event; in this batch or consumed).
    add(gxe.ExpectColumnValuesToNotBeInSet, "duplicate", column="copy_gap_s", value_set=[0.0])
    add(gxe.ExpectColumnValuesToBeBetween, "near_duplicate", column="copy_gap_s",
        min_value=rules.duplicate_window_s, strict_min=True, row_condition="copy_gap_s > 0",
        condition_parser="pandas")
    add(gxe.ExpectColumnValuesToBeBetween, "bot_user", column="user_peak_events_per_minute",
        max_value=rules.bot_events_per_minute)
    if strict:
        suite.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["user_id", "item_id", "event_type", "occurred_at"], meta={"reason": "duplicate"}))
    return suite


def _validation_definition(rules: QualityRules, strict: bool):
    """One ephemeral GX context per rule set, suite and process (building one costs ~0.3 s)."""
    with _gx_lock:
        key = (rules, strict)
        if key not in _gx_cache:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            batch_def = (context.data_sources.add_pandas(name="pulled")
                         .add_dataframe_asset(name="interactions")
                         .add_batch_definition_whole_dataframe("batch"))
            suite = context.suites.add(build_suite(rules, strict))
            _gx_cache[key] = context.validation_definitions.add(
                gx.ValidationDefinition(name="interactions_batch", data=batch_def, suite=suite))
        return _gx_cache[key]


@dataclass
class SuiteRun:
    success: bool
    statistics: dict
    results: list[dict]              # one JSON-able summary per expectation
    row_reasons: dict[int, set[str]]  # row id -> reason codes, from GX's unexpected-row reports


def run_suite(frame: pd.DataFrame, rules: QualityRules, known_item_ids: set[int], now: datetime, *,
              strict: bool = False) -> SuiteRun:
    """Run the (lenient or strict) suite on a frame that has the signal columns."""
    vd = _validation_definition(rules, strict)
    batch_items = frame["item_id"].dropna().unique()
    unknown = sorted(int(i) for i in batch_items if int(i) not in known_item_ids)
    with _gx_lock:  # GX contexts are not thread-safe
        res = vd.run(batch_parameters={"dataframe": frame},
                     expectation_parameters={"unknown_item_ids": unknown,
                                             "latest_occurred_at": now + timedelta(seconds=rules.clock_skew_s)},
                     result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["id"],
                                    "return_unexpected_index_query": False})
    results, reasons = [], {}
    for r in res.results:
        cfg = r.expectation_config
        reason = (cfg.meta or {}).get("reason")
        bad_ids = [int(row["id"]) for row in (r.result.get("unexpected_index_list") or [])
                   if isinstance(row, dict) and "id" in row]
        if reason in REASONS:
            for row_id in bad_ids:
                reasons.setdefault(row_id, set()).add(reason)
        results.append({
            "expectation": cfg.type,
            "column": cfg.kwargs.get("column") or cfg.kwargs.get("column_list"),
            "reason": reason,
            "mostly": cfg.kwargs.get("mostly"),
            "success": bool(r.success),
            "unexpected_count": r.result.get("unexpected_count"),
            "unexpected_percent": _jsonable(r.result.get("unexpected_percent")),
            "observed_value": _jsonable(r.result.get("observed_value")),
            "error": (r.exception_info or {}).get("exception_message"),
        })
    return SuiteRun(bool(res.success), dict(res.statistics), results, reasons)


# --- signals GX cannot compute from one row ----------------------------------------------------------


def _micros(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(microseconds since the epoch, is_null) of a timestamp column, whatever its resolution."""
    null = series.isna().to_numpy()
    values = pd.DatetimeIndex(series).as_unit("us").asi8.copy()
    values[null] = 0
    return values, null


def _rolling_counts(keys: np.ndarray, times: np.ndarray, window: int) -> np.ndarray:
    """For rows sorted by (key, time): how many rows of the same key fall in (t - window, t].

    Exact for any time span: times are replaced by their rank among the batch's distinct times, so the
    sortable (group, time) key never depends on how far apart the batch's events are (late events,
    week-long backlogs, replays of old data).
    """
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new_group = np.r_[True, keys[1:] != keys[:-1]]
    rank = (np.cumsum(new_group) - 1).astype(np.int64)
    group_start = np.flatnonzero(new_group)[rank]
    distinct = np.unique(times)
    time_rank = np.searchsorted(distinct, times).astype(np.int64)
    # First distinct time inside the window (t - window, t]: its rank bounds the window from the left.
    first_inside = np.searchsorted(distinct, times - window, side="right").astype(np.int64)
    combined = (rank << 32) + time_rank  # < 2^31 groups and < 2^32 distinct times: no overlap, no overflow
    left = np.maximum(np.searchsorted(combined, (rank << 32) + first_inside, side="left"), group_start)
    return np.arange(n) - left + 1


def add_signals(frame: pd.DataFrame, rules: QualityRules,
                earlier: dict[int, float] | None = None) -> pd.DataFrame:
    """The batch plus the signal columns its expectations check (SIGNAL_COLUMNS), computed with numpy.

    copy_gap_s: seconds to the closest earlier copy of the same user, item and event: the previous one in
    this batch (time order; exact copies at the same instant: 0), or an already-consumed one (earlier maps
    row id -> that gap: a producer's retry that landed in a later batch). Infinity: no copy. The first copy of a
    run has none, so it stays clean.
    user_peak_events_per_minute: the most events the row's user has in any one-minute window of the batch
    (the same for all the user's rows, so a bot is quarantined whole).
    """
    out = frame.copy()
    n = len(frame)
    ids = frame["id"].to_numpy(dtype="int64", na_value=0)
    users = frame["user_id"].to_numpy(dtype="int64", na_value=0)
    items = frame["item_id"].to_numpy(dtype="int64", na_value=0)
    times, null_time = _micros(frame["occurred_at"])
    events, _ = pd.factorize(frame["event_type"], use_na_sentinel=True)
    null_user = frame["user_id"].isna().to_numpy()
    null_item = frame["item_id"].isna().to_numpy()

    gap = np.full(n, np.inf)  # not NaN: GX leaves nulls out of its mostly share, and every row counts
    keyed = np.flatnonzero(~(null_user | null_item | (events < 0) | null_time))
    if len(keyed) > 1:
        order = keyed[np.lexsort((ids[keyed], times[keyed], events[keyed], items[keyed], users[keyed]))]
        same = np.r_[False, (users[order][1:] == users[order][:-1]) & (items[order][1:] == items[order][:-1])
                     & (events[order][1:] == events[order][:-1])]
        step = np.r_[0, np.diff(times[order])] / 1e6
        gap[order[same]] = step[same]
    if earlier:
        position = pd.Index(ids).get_indexer(list(earlier))
        gaps = np.fromiter(earlier.values(), dtype=float, count=len(earlier))
        keep = position >= 0
        gap[position[keep]] = np.fmin(gap[position[keep]], gaps[keep])
    out["copy_gap_s"] = gap

    peak = np.full(n, np.nan)
    timed = np.flatnonzero(~(null_user | null_time))
    if len(timed):
        order = timed[np.lexsort((times[timed], users[timed]))]
        counts = _rolling_counts(users[order], times[order], 60_000_000)
        per_user = pd.Series(counts, index=users[order]).groupby(level=0).max()
        peak[timed] = per_user.reindex(users[timed]).to_numpy(dtype="float64")
    out["user_peak_events_per_minute"] = peak
    return out


def row_reasons(frame: pd.DataFrame, rules: QualityRules, known_item_ids: set[int], now: datetime,
                earlier: dict[int, float] | None = None) -> list[list[str]]:
    """Reason codes for every row (an empty list means clean), as the lenient suite reports them."""
    run = run_suite(add_signals(frame.reset_index(drop=True), rules, earlier), rules, known_item_ids, now)
    return [_ordered(run.row_reasons.get(int(i), ())) for i in frame["id"]]


def _ordered(codes) -> list[str]:
    return [code for code in REASONS if code in codes]


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


def earlier_copies(engine: Engine, frame: pd.DataFrame, consumed: Cursor, window_s: float,
                   latest_consumed: datetime | None) -> dict[int, float]:
    """Rows of this batch that repeat an already-consumed event: row id -> gap in seconds.

    Only rows that are not newer than everything consumed so far (plus the window) can repeat an earlier
    row, so only those are looked up.
    """
    if frame.empty or latest_consumed is None:
        return {}
    limit = pd.Timestamp(latest_consumed) + pd.Timedelta(seconds=window_s)
    rows = frame[frame["occurred_at"].notna() & (frame["occurred_at"] <= limit) & frame["user_id"].notna()
                 & frame["item_id"].notna() & frame["event_type"].notna()]
    if rows.empty:
        return {}
    params = {"row_ids": rows["id"].astype("int64").tolist(), "user_ids": rows["user_id"].astype("int64").tolist(),
              "item_ids": rows["item_id"].astype("int64").tolist(),
              "event_types": rows["event_type"].astype(str).tolist(),
              "times": [t.to_pydatetime() for t in rows["occurred_at"]], "window_s": window_s,
              **consumed.as_params()}
    with engine.connect() as conn:
        return {int(r.row_id): float(r.gap_s) for r in conn.execute(query("earlier_copies"), params)}


def latest_consumed_time(engine: Engine, consumer: str) -> datetime | None:
    with engine.connect() as conn:
        return conn.execute(query("latest_consumed_time"), {"consumer": consumer}).scalar_one()


def validate_batch(frame: pd.DataFrame, rules: QualityRules, known_item_ids: set[int],
                   now: datetime | None = None, *, earlier: dict[int, float] | None = None) -> ValidatedBatch:
    """Run the suite on the raw batch; split it into clean and quarantined rows; apply the strict gate.

    GX sees every row: its unexpected-row reports give the reasons, its success the batch verdict.
    """
    now = now or datetime.now(timezone.utc)
    frame = frame.reset_index(drop=True)
    started = time.perf_counter()
    schema_broken = schema_problems(frame)
    ids = frame["id"].to_numpy(dtype="int64", na_value=0) if len(frame) else np.zeros(0, dtype="int64")
    reasons: list[set[str]] = [set() for _ in range(len(frame))]
    reject_reason, reject_code = None, None
    gx_seconds = signal_seconds = 0.0
    if schema_broken:
        # Row rules need the schema's types: the batch is rejected whole without running the suite.
        gx_success, statistics, results = False, {}, []
        reject_reason = "schema broken: " + "; ".join(schema_broken)
    else:
        t0 = time.perf_counter()
        checked = add_signals(frame, rules, earlier)
        t1 = time.perf_counter()
        lenient = run_suite(checked, rules, known_item_ids, now)
        t2 = time.perf_counter()
        signal_seconds, gx_seconds = t1 - t0, t2 - t1
        gx_success, statistics = lenient.success, lenient.statistics
        results = [{**r, "suite": "lenient"} for r in lenient.results]
        position = pd.Index(ids)
        for row_id, codes in lenient.row_reasons.items():
            reasons[position.get_loc(row_id)] |= codes
        reject_reason = _verdict(lenient, rules)
        if reject_reason is None:
            bad = np.fromiter((bool(r) for r in reasons), dtype=bool, count=len(frame))
            clean_rows = checked[~bad]
            t3 = time.perf_counter()
            strict = run_suite(clean_rows, rules, known_item_ids, now, strict=True)
            gx_seconds += time.perf_counter() - t3
            results += [{**r, "suite": "strict"} for r in strict.results]
            if not strict.success:
                failed = sorted({f"{r['reason']} ({r['unexpected_count']} rows)" for r in strict.results
                                 if not r["success"]})
                reject_reason = "strict suite failed on the clean rows: " + ", ".join(failed)
                reject_code = STRICT_GATE_FAILED
    if reject_reason:
        for codes in reasons:
            codes.add(BATCH_REJECTED)
            if reject_code:
                codes.add(reject_code)
    bad = np.fromiter((bool(r) for r in reasons), dtype=bool, count=len(frame))
    quarantined = frame[bad].copy()
    quarantined["reasons"] = [_ordered(r) for r, b in zip(reasons, bad) if b]
    tally = Counter(code for r in reasons for code in r)
    counts = {code: tally[code] for code in REASONS if tally[code]}
    clean = frame[~bad].reset_index(drop=True)
    statistics = {**statistics, "rows": len(frame), "gx_seconds": round(gx_seconds, 4),
                  "signal_seconds": round(signal_seconds, 4),
                  "validate_seconds": round(time.perf_counter() - started, 4)}
    if reject_reason:
        log.warning("batch rejected: %s", reject_reason)
    log.info("validated %d rows: %d clean, %d quarantined %s", len(frame), len(clean), len(quarantined), counts)
    return ValidatedBatch(clean, quarantined.reset_index(drop=True), counts, reject_reason is None, reject_reason,
                          gx_success, statistics, results)


def _verdict(run: SuiteRun, rules: QualityRules) -> str | None:
    """The lenient suite's verdict in one sentence (None: accepted)."""
    if run.success:
        return None
    schema = [r for r in run.results if r["reason"] == "schema" and not r["success"]]
    if schema:
        return f"schema broken: columns differ from {INTERACTION_COLUMNS} (observed {schema[0]['observed_value']})"
    errors = [f"{r['reason']}: {r['error']}" for r in run.results if r["error"]]
    if errors:
        return "the suite could not evaluate " + "; ".join(errors)
    failed = [r for r in run.results if not r["success"]]
    worst = max(float(r["unexpected_percent"] or 0) for r in failed) / 100
    return (f"{worst:.0%} of the batch failed checks ("
            + ", ".join(f"{r['reason']} {float(r['unexpected_percent'] or 0) / 100:.0%}" for r in failed)
            + f"), above the {rules.batch_reject_share:.0%} limit")


def check_batch(engine: Engine, pulled: PulledBatch, rules: QualityRules) -> ValidatedBatch:
    """validate_batch with what it needs from the database: the known items, and earlier copies of rows."""
    frame = pulled.frame
    item_ids = frame["item_id"].dropna().astype("int64").unique().tolist()
    earlier = earlier_copies(engine, frame, pulled.from_cursor, rules.duplicate_window_s,
                             latest_consumed_time(engine, pulled.consumer))
    return validate_batch(frame, rules, known_items(engine, item_ids), earlier=earlier)


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
