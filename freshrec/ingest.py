"""Exactly-once pull of new interactions.

Each row carries the id of the transaction that wrote it (xid8). The reader orders rows by (txid, id)
and takes only rows whose transaction is older than the oldest transaction still running
(pg_snapshot_xmin): those transactions have finished, so a writer that took a lower id but commits
late cannot be skipped, it simply is not taken yet. The cursor, the batch manifest and the quarantine
move in one transaction at the end of the cycle (see freshrec.cycles.commit_cycle); until then the
cursor is untouched and a crashed run's rows are taken again by the next one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd
from sqlalchemy.engine import Engine

from freshrec.sqlfiles import query

log = logging.getLogger(__name__)

# The pandas type of each pulled column when the database gives no value to infer it from (all NULL).
NULL_COLUMN_DTYPES = {"id": "Int64", "user_id": "Int64", "item_id": "Int64", "label": "Int16", "dwell_ms": "Int32",
                      "event_type": "string", "occurred_at": "datetime64[ns, UTC]",
                      "inserted_at": "datetime64[ns, UTC]", "txid": "string"}
INTERACTION_COLUMNS = ["id", "user_id", "item_id", "event_type", "label", "dwell_ms", "occurred_at",
                       "inserted_at", "txid"]


@dataclass(frozen=True)
class Cursor:
    txid: str  # xid8 as text: it does not fit every client's integer type
    id: int

    def as_params(self, prefix: str = "last") -> dict[str, object]:
        return {f"{prefix}_txid": self.txid, f"{prefix}_id": self.id}


@dataclass(frozen=True)
class Lag:
    rows_behind: int
    seconds_behind: float


@dataclass
class PulledBatch:
    consumer: str
    frame: pd.DataFrame  # one row per interaction, in (txid, id) order
    from_cursor: Cursor
    to_cursor: Cursor
    lag: Lag  # what is still waiting after this batch

    @property
    def rows(self) -> int:
        return len(self.frame)


def read_cursor(engine: Engine, consumer: str) -> Cursor:
    with engine.begin() as conn:
        conn.execute(query("cursor_ensure"), {"consumer": consumer})
        row = conn.execute(query("cursor_read"), {"consumer": consumer}).one()
    return Cursor(row.last_txid, int(row.last_id))


def measure_lag(engine: Engine, cursor: Cursor) -> Lag:
    with engine.connect() as conn:
        row = conn.execute(query("ingest_lag"), cursor.as_params()).one()
    return Lag(int(row.rows_behind), float(row.seconds_behind))


def pull_new_interactions(engine: Engine, consumer: str, max_rows: int) -> PulledBatch:
    """Read (without consuming) up to max_rows interactions past the consumer's cursor."""
    start = read_cursor(engine, consumer)
    with engine.connect() as conn:
        frame = pd.read_sql_query(query("pull_batch"), conn, params={**start.as_params(), "max_rows": max_rows},
                                  dtype_backend="numpy_nullable")
    frame = frame[INTERACTION_COLUMNS]
    for column, dtype in NULL_COLUMN_DTYPES.items():
        # An all-NULL column (MovieLens has no dwell times) comes back as object; give it its schema type.
        # A column that holds values keeps its inferred type, so a changed table still fails the schema check.
        if frame[column].isna().all():
            frame[column] = frame[column].astype(dtype)
    end = Cursor(str(frame["txid"].iloc[-1]), int(frame["id"].iloc[-1])) if len(frame) else start
    lag = measure_lag(engine, end)
    log.info("pulled %d new interactions (%d still waiting, %.0f s behind)", len(frame), lag.rows_behind,
             lag.seconds_behind)
    return PulledBatch(consumer, frame, start, end, lag)
