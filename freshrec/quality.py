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

from freshrec.ingest import DEFAULT_MAX_FIELD_CHARS, INTERACTION_COLUMNS, Cursor, PulledBatch
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
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="occurred_at", min_value=rules.min_occurred_at,
                                                            max_value={"$PARAMETER": "latest_occurred_at"}))
    suite.add_expectation(gxe.ExpectColumnValueLengthsToBeBetween(column="event_type", max_value=rules.max_field_chars))
    # "item_id is in items", phrased over the batch's unknown ids: the parameter stays a handful of values
    # instead of the whole catalogue, which GX would copy many times per run.
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeInSet(column="item_id",
                                                             value_set={"$PARAMETER": "unknown_item_ids"}))
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


def run_expectations(frame: pd.DataFrame, rules: QualityRules, known_item_ids: set[int],
                     now: datetime) -> tuple[bool, dict, list[dict]]:
    vd = _validation_definition(rules)
    batch_items = frame["item_id"].dropna().unique()
    unknown = sorted(int(i) for i in batch_items if int(i) not in known_item_ids)
    with _gx_lock:  # GX contexts are not thread-safe
        res = vd.run(batch_parameters={"dataframe": frame},
                     expectation_parameters={"unknown_item_ids": unknown,
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

# Reason codes, one bit each, in the order they are reported.
REASONS = ["null_user_id", "null_item_id", "null_event_type", "null_label", "null_occurred_at", "bad_user_id",
           "unknown_event_type", "bad_label", "dwell_out_of_range", "future_timestamp", "implausible_timestamp", "oversized_field", "unknown_item",
           "duplicate", "near_duplicate", "bot_user", BATCH_REJECTED]
BIT = {code: np.uint32(1) << np.uint32(i) for i, code in enumerate(REASONS)}


def _ints(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values, is_null) of an integer column; NULL slots hold 0."""
    null = series.isna().to_numpy()
    return series.to_numpy(dtype="int64", na_value=0), null


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


def row_flags(frame: pd.DataFrame, rules: QualityRules, known_item_ids: set[int], now: datetime,
              earlier: dict[int, float] | None = None) -> np.ndarray:
    """A bitmask of reason codes per row (0 = clean), computed with vectorised numpy.

    earlier maps row id -> gap in seconds to the closest already-consumed copy of the same user, item and
    event (a producer's retry that landed in a later batch).
    """
    n = len(frame)
    flags = np.zeros(n, dtype=np.uint32)
    ids, _ = _ints(frame["id"])
    users, null_user = _ints(frame["user_id"])
    items, null_item = _ints(frame["item_id"])
    labels, null_label = _ints(frame["label"])
    dwell, null_dwell = _ints(frame["dwell_ms"])
    times, null_time = _micros(frame["occurred_at"])
    events, event_values = pd.factorize(frame["event_type"], use_na_sentinel=True)
    null_event = events < 0
    for code, mask in (("null_user_id", null_user), ("null_item_id", null_item), ("null_event_type", null_event),
                       ("null_label", null_label), ("null_occurred_at", null_time)):
        flags[mask] |= BIT[code]
    flags[~null_user & (users <= 0)] |= BIT["bad_user_id"]
    allowed_event = np.isin(np.asarray(event_values, dtype=object), list(rules.event_types))
    flags[~null_event & ~allowed_event[np.maximum(events, 0)]] |= BIT["unknown_event_type"]
    flags[~null_label & (labels != 0) & (labels != 1)] |= BIT["bad_label"]
    flags[~null_dwell & ((dwell < 0) | (dwell > rules.max_dwell_ms))] |= BIT["dwell_out_of_range"]
    latest = int((pd.Timestamp(now).timestamp() + rules.clock_skew_s) * 1_000_000)
    flags[~null_time & (times > latest)] |= BIT["future_timestamp"]
    floor = int(pd.Timestamp(rules.min_occurred_at).timestamp() * 1_000_000)
    flags[~null_time & (times < floor)] |= BIT["implausible_timestamp"]
    lengths = frame["event_type"].str.len().to_numpy(dtype="float64", na_value=0)
    flags[lengths > rules.max_field_chars] |= BIT["oversized_field"]
    known = np.fromiter(known_item_ids, dtype=np.int64, count=len(known_item_ids))
    flags[~null_item & ~np.isin(items, known)] |= BIT["unknown_item"]

    # Duplicates: among rows with the same user, item and event, a row at the same instant as the previous
    # one is an exact duplicate, one within the window a near duplicate; the first of each run stays clean.
    keyed = np.flatnonzero(~(null_user | null_item | null_event | null_time))
    if len(keyed) > 1:
        order = keyed[np.lexsort((ids[keyed], times[keyed], events[keyed], items[keyed], users[keyed]))]
        same = np.r_[False, (users[order][1:] == users[order][:-1]) & (items[order][1:] == items[order][:-1])
                     & (events[order][1:] == events[order][:-1])]
        gap = np.r_[0, np.diff(times[order])]
        window = int(rules.duplicate_window_s * 1_000_000)
        flags[order[same & (gap == 0)]] |= BIT["duplicate"]
        flags[order[same & (gap > 0) & (gap <= window)]] |= BIT["near_duplicate"]
    if earlier:
        position = pd.Index(ids).get_indexer(list(earlier))
        gaps = np.fromiter(earlier.values(), dtype=float, count=len(earlier))
        flags[position[gaps == 0]] |= BIT["duplicate"]
        flags[position[gaps > 0]] |= BIT["near_duplicate"]

    # Bots: users with more events in some one-minute window than a person could produce.
    timed = np.flatnonzero(~(null_user | null_time))
    if len(timed):
        order = timed[np.lexsort((times[timed], users[timed]))]
        counts = _rolling_counts(users[order], times[order], 60_000_000)
        bots = np.unique(users[order][counts > rules.bot_events_per_minute])
        if len(bots):
            flags[~null_user & np.isin(users, bots)] |= BIT["bot_user"]
    return flags


def reasons_of(flag: int) -> list[str]:
    return [code for code in REASONS if flag & BIT[code]]


def row_reasons(frame: pd.DataFrame, rules: QualityRules, known_item_ids: set[int], now: datetime,
                earlier: dict[int, float] | None = None) -> list[list[str]]:
    """Reason codes for every row (an empty list means clean)."""
    return [reasons_of(int(f)) for f in row_flags(frame, rules, known_item_ids, now, earlier)]


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
                   now: datetime | None = None, *, earlier: dict[int, float] | None = None,
                   gx_max_rows: int = 50_000, seed: int = 0) -> ValidatedBatch:
    """Run the suite and the row rules; split the batch into clean and quarantined rows; apply the gate.

    GX sees the whole batch up to gx_max_rows and a uniform sample of that size beyond (its statistics
    are then estimates, and say so); the row rules, which decide the quarantine and the gate, see every row.
    """
    now = now or datetime.now(timezone.utc)
    frame = frame.reset_index(drop=True)
    sample = frame.sample(n=gx_max_rows, random_state=seed) if len(frame) > gx_max_rows else frame
    gx_success, statistics, results = run_expectations(sample, rules, known_item_ids, now)
    statistics = {**statistics, "rows": len(frame), "rows_validated_by_gx": len(sample)}
    schema_broken = [f"columns differ from {INTERACTION_COLUMNS} (observed {r['observed_value']})"
                     for r in results if r["expectation"] == "expect_table_columns_to_match_set" and not r["success"]]
    schema_broken += schema_problems(frame)
    # Row rules need the schema's types; a schema-broken batch is rejected whole anyway.
    flags = (np.zeros(len(frame), dtype=np.uint32) if schema_broken
             else row_flags(frame, rules, known_item_ids, now, earlier))
    bad = flags != 0
    bad_share = float(bad.mean()) if len(frame) else 0.0
    reject_reason = None
    if schema_broken:
        reject_reason = "schema broken: " + "; ".join(schema_broken)
    elif bad_share > rules.batch_reject_share:
        reject_reason = (f"{bad_share:.0%} of the batch failed checks, above the "
                         f"{rules.batch_reject_share:.0%} limit")
    if reject_reason:
        flags |= BIT[BATCH_REJECTED]
        bad[:] = True
    quarantined = frame[bad].copy()
    quarantined["reasons"] = [reasons_of(int(f)) for f in flags[bad]]
    counts = {code: int(np.count_nonzero(flags & BIT[code])) for code in REASONS}
    counts = {code: c for code, c in counts.items() if c}
    clean = frame[~bad].reset_index(drop=True)
    if reject_reason:
        log.warning("batch rejected: %s", reject_reason)
    log.info("validated %d rows: %d clean, %d quarantined %s", len(frame), len(clean), len(quarantined), counts)
    return ValidatedBatch(clean, quarantined.reset_index(drop=True), counts, reject_reason is None, reject_reason,
                          gx_success, statistics, results)


def check_batch(engine: Engine, pulled: PulledBatch, rules: QualityRules, *, gx_max_rows: int = 50_000,
                seed: int = 0) -> ValidatedBatch:
    """validate_batch with what it needs from the database: the known items, and earlier copies of rows."""
    frame = pulled.frame
    item_ids = frame["item_id"].dropna().astype("int64").unique().tolist()
    earlier = earlier_copies(engine, frame, pulled.from_cursor, rules.duplicate_window_s,
                             latest_consumed_time(engine, pulled.consumer))
    return validate_batch(frame, rules, known_items(engine, item_ids), earlier=earlier, gx_max_rows=gx_max_rows,
                          seed=seed)


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
