"""Validation and denoising of a pulled batch, the stage's entry points: Great Expectations decides.

validate_batch adds the signal columns GX cannot compute from one row (freshrec.quality_signals) and runs
the expectation suite (freshrec.expectations), which states every rule (settings.QualityRules) with its
reason code and reports every bad row. The suite runs twice:
  * lenient, on the whole raw batch, every row expectation with mostly = 1 - batch_reject_share: its
    success is the batch verdict (a rule broken by more than that share of the rows rejects the batch);
  * strict (mostly 1.0, plus a uniqueness check), on the clean rows only: a hard gate before anything trains;
    its failure rejects the batch with reason code strict_gate_failed.
A row with any reason goes to quarantine (its payload: freshrec.quarantine); nothing is dropped silently.
check_batch is validate_batch with what it needs from the database. See docs/data-quality.md.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from freshrec.expectations import SuiteRun, run_suite
from freshrec.ingest import INTERACTION_COLUMNS, Cursor, PulledBatch
from freshrec.reasons import BATCH_REJECTED, REASONS, STRICT_GATE_FAILED
from freshrec.settings import QualityRules
from freshrec.quality_signals import add_signals
from freshrec.sqlfiles import query

log = logging.getLogger(__name__)

# Column kinds the pulled frame must have. GX 1.24's type expectations fail on pandas' nullable dtypes
# (Int64, string) whatever the type list, so freshrec checks the kinds itself.
COLUMN_KINDS = {"id": "iu", "user_id": "iu", "item_id": "iu", "label": "iu", "dwell_ms": "iu",
                "event_type": "OSU", "occurred_at": "M", "inserted_at": "M", "txid": "OSU"}


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
