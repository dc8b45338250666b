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

from freshrec.db import copy_out_csv
from freshrec.sqlfiles import query

log = logging.getLogger(__name__)

INTERACTION_COLUMNS = ["id", "user_id", "item_id", "event_type", "label", "dwell_ms", "occurred_at",
                       "inserted_at", "txid"]


def _arrow_types():
    import pyarrow as pa

    utc = pa.timestamp("us", tz="UTC")
    return {"id": pa.int64(), "user_id": pa.int64(), "item_id": pa.int64(), "event_type": pa.string(),
            "label": pa.int16(), "dwell_ms": pa.int32(), "occurred_at": utc, "inserted_at": utc, "txid": pa.string()}


def parse_interactions_csv(data: bytes) -> pd.DataFrame:
    """PostgreSQL CSV (NULL = empty unquoted field) to a frame with pandas' nullable types.

    Types come from the schema, not from the values, so an all-NULL column keeps its type.
    """
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = _arrow_types()
    if not data:
        table = pa.table({name: pa.array([], type=types[name]) for name in INTERACTION_COLUMNS})
    else:
        def read(column_types):
            return pacsv.read_csv(
                io.BytesIO(data),
                read_options=pacsv.ReadOptions(column_names=INTERACTION_COLUMNS),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=column_types, null_values=[""], strings_can_be_null=True,
                    quoted_strings_can_be_null=False, timestamp_parsers=["%Y-%m-%d %H:%M:%S%z", pacsv.ISO8601]))

        try:
            table = read(types)
        except pa.ArrowInvalid as exc:
            # A producer changed a column's type: keep the values as text so that validation rejects the
            # batch as schema-broken and quarantines its rows, instead of the cycle failing on every run.
            log.warning("pulled values do not fit the schema's types (%s); reading them as text", exc)
            table = read({name: (types[name] if name in ("id", "txid") else pa.string())
                          for name in INTERACTION_COLUMNS})
    nullable = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype(), pa.int16(): pd.Int16Dtype(),
                pa.string(): pd.StringDtype("pyarrow")}  # no Python string objects per row
    return table.to_pandas(types_mapper=nullable.get)


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
    data = copy_out_csv(engine, query("pull_batch"), {**start.as_params(), "max_rows": max_rows})
    frame = parse_interactions_csv(data)
    end = Cursor(str(frame["txid"].iloc[-1]), int(frame["id"].iloc[-1])) if len(frame) else start
    lag = measure_lag(engine, end)
    log.info("pulled %d new interactions (%d still waiting, %.0f s behind)", len(frame), lag.rows_behind,
             lag.seconds_behind)
    return PulledBatch(consumer, frame, start, end, lag)
