"""The Great Expectations suite: every rule stated once, and running it on a batch.

Each expectation carries the quarantine reason code of the rows it rejects (in its meta); GX's own
unexpected-row reports (result_format COMPLETE, with the row id as unexpected_index_column_names) give every
bad row its reason codes. The suite comes lenient (the batch verdict) or strict (the gate on the clean rows);
freshrec.quality decides what each run means for the batch. See docs/data-quality.md.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from freshrec.ingest import INTERACTION_COLUMNS
from freshrec.reasons import REASONS
from freshrec.settings import QualityRules
from freshrec.quality_signals import SIGNAL_COLUMNS

SUITE_NAME = "freshrec_interactions"
SUITE_VERSION = "2"  # 2: GX decides (mostly verdict, per-row reasons from GX, signal columns, strict gate)
REQUIRED_COLUMNS = ["user_id", "item_id", "event_type", "label", "occurred_at"]

_gx_lock = threading.Lock()
_gx_cache: dict[tuple[QualityRules, bool], object] = {}


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
