"""Exactly-once pull of new interactions.

Each row carries the id of the transaction that wrote it (xid8). The reader orders rows by (txid, id)
and takes only rows whose transaction is older than the oldest transaction still running in this
database (view read_horizon, migration 0011; transactions of other databases on the same server cannot
write these rows and do not hold the reader back): those transactions have finished, so a writer that
took a lower id but commits late cannot be skipped, it simply is not taken yet. The cursor, the batch manifest and the quarantine
move in one transaction at the end of the cycle (see freshrec.cycles.commit_cycle); until then the
cursor is untouched and a crashed run's rows are taken again by the next one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import pandas as pd
from sqlalchemy.engine import Engine

from freshrec.db import copy_out_csv
from freshrec.sqlfiles import query
from freshrec.settings import IngestionSettings, QualityRules

log = logging.getLogger(__name__)

INTERACTION_COLUMNS = ["id", "user_id", "item_id", "event_type", "label", "dwell_ms", "occurred_at",
                       "inserted_at", "txid"]
# Text longer than this is quarantined as oversized_field; the pull cuts it to one character more, so a
# multi-megabyte value never reaches Python whole.
DEFAULT_MAX_FIELD_CHARS: int = QualityRules.model_fields["max_field_chars"].default  # FRESHREC_MAX_FIELD_CHARS
DEFAULT_STALL_S: float = IngestionSettings.model_fields["horizon_stall_s"].default  # FRESHREC_HORIZON_STALL_S
_TIME_COLUMNS = ("occurred_at", "inserted_at")  # pulled as microseconds since the epoch (pull_batch.sql)


def _arrow_types():
    import pyarrow as pa

    utc = pa.timestamp("us", tz="UTC")
    return {"id": pa.int64(), "user_id": pa.int64(), "item_id": pa.int64(), "event_type": pa.string(),
            "label": pa.int16(), "dwell_ms": pa.int32(), "occurred_at": utc, "inserted_at": utc, "txid": pa.string()}


def parse_interactions_csv(data: bytes, max_field_chars: int = DEFAULT_MAX_FIELD_CHARS) -> pd.DataFrame:
    """PostgreSQL CSV (NULL = empty unquoted field) to a frame with pandas' nullable types.

    Types come from the schema, not from the values, so an all-NULL column keeps its type. Times arrive as
    microseconds since the epoch (pull_batch.sql). The block size fits the longest field the pull lets
    through (quoted, 4 bytes a character), so no single row can straddle two blocks.
    """
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = _arrow_types()
    arrow_types = {**types, **{name: pa.int64() for name in _TIME_COLUMNS}}
    block_size = max(1 << 20, 8 * (max_field_chars + 2) + (1 << 16))
    if not data:
        table = pa.table({name: pa.array([], type=types[name]) for name in INTERACTION_COLUMNS})
    else:
        def read(column_types):
            return pacsv.read_csv(
                io.BytesIO(data),
                read_options=pacsv.ReadOptions(column_names=INTERACTION_COLUMNS, block_size=block_size),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=column_types, null_values=[""], strings_can_be_null=True,
                    quoted_strings_can_be_null=False, timestamp_parsers=["%Y-%m-%d %H:%M:%S%z", pacsv.ISO8601]))

        column_types = dict(arrow_types)
        while True:
            try:
                table = read(column_types)
                break
            except pa.ArrowInvalid as exc:
                # A producer changed a column's type: keep that column as text, so that validation rejects
                # the batch as schema-broken and quarantines its rows, instead of failing every cycle.
                match = re.search(r"CSV column #(\d+)", str(exc))
                name = INTERACTION_COLUMNS[int(match.group(1))] if match else None
                if name is None or name in ("id", "txid") or column_types[name] == pa.string():
                    raise
                log.warning("column %s holds values that are not %s (%s); reading it as text", name,
                            column_types[name], exc)
                column_types[name] = pa.string()
        for name in _TIME_COLUMNS:
            if column_types[name] == pa.int64():
                table = table.set_column(table.schema.get_field_index(name), name,
                                         table.column(name).cast(types[name]))
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
class HorizonStall:
    """An old transaction that keeps the reader from taking committed rows."""
    held_back_rows: int
    pid: int
    transaction_age_s: float
    application_name: str | None
    user: str | None
    client_addr: str | None
    state: str | None
    query: str | None

    def describe(self) -> str:
        return (f"{self.held_back_rows} committed rows wait behind transaction of backend {self.pid} "
                f"({self.application_name or 'no application name'}, user {self.user}, {self.state}) open for "
                f"{self.transaction_age_s:.0f} s: commit or end it (SELECT pg_terminate_backend({self.pid}))")


@dataclass(frozen=True)
class Lag:
    rows_behind: int
    seconds_behind: float
    stall: HorizonStall | None = None


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


def measure_lag(engine: Engine, cursor: Cursor, stall_after_s: float = DEFAULT_STALL_S) -> Lag:
    """Rows and seconds behind the cursor, and a horizon stall when an old transaction holds rows back."""
    with engine.connect() as conn:
        row = conn.execute(query("ingest_lag"), cursor.as_params()).one()
        stall = None
        if row.rows_behind:
            held = int(conn.execute(query("horizon_held_back"), cursor.as_params()).scalar_one())
            oldest = conn.execute(query("oldest_transaction")).first() if held else None
            if oldest is not None and float(oldest.transaction_age_s or 0) >= stall_after_s:
                stall = HorizonStall(held, int(oldest.pid), float(oldest.transaction_age_s),
                                     oldest.application_name, oldest.usename, oldest.client_addr, oldest.state,
                                     oldest.query)
                log.warning("horizon stall: %s", stall.describe())
    return Lag(int(row.rows_behind), float(row.seconds_behind), stall)


def pull_new_interactions(engine: Engine, consumer: str, max_rows: int, stall_after_s: float = DEFAULT_STALL_S, *,
                          max_field_chars: int = DEFAULT_MAX_FIELD_CHARS) -> PulledBatch:
    """Read (without consuming) up to max_rows interactions past the consumer's cursor."""
    start = read_cursor(engine, consumer)
    data = copy_out_csv(engine, query("pull_batch"), {**start.as_params(), "max_rows": max_rows,
                                                      "max_field_chars": max_field_chars})
    frame = parse_interactions_csv(data, max_field_chars)
    end = Cursor(str(frame["txid"].iloc[-1]), int(frame["id"].iloc[-1])) if len(frame) else start
    lag = measure_lag(engine, end, stall_after_s)
    log.info("pulled %d new interactions (%d still waiting, %.0f s behind)", len(frame), lag.rows_behind,
             lag.seconds_behind)
    return PulledBatch(consumer, frame, start, end, lag)
