"""What the ingestion side looks like now: totals, lag, horizon stalls, the last cycle; and the quarantine."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy.engine import Engine

from freshrec.ingest import DEFAULT_STALL_S, Cursor, measure_lag, read_cursor
from freshrec.sqlfiles import query


def ingest_status(engine: Engine, consumer: str, stall_after_s: float = DEFAULT_STALL_S,
                  read_only: bool = False) -> dict:
    """read_only: do not create the consumer's cursor (a read-only role; a missing cursor is at the start)."""
    cursor = peek_cursor(engine, consumer) if read_only else read_cursor(engine, consumer)
    lag = measure_lag(engine, cursor, stall_after_s)
    with engine.connect() as conn:
        totals = conn.execute(query("ingest_totals"), {"consumer": consumer}).one()
        last = conn.execute(query("last_cycle"), {"consumer": consumer}).mappings().first()
    return {
        "consumer": consumer,
        "cursor": {"txid": cursor.txid, "id": cursor.id},
        "interactions": int(totals.interactions),
        "rows_consumed": int(totals.consumed),
        "rows_quarantined": int(totals.quarantined),
        "rejected_batches": int(totals.rejected_batches),
        "lag": {"rows": lag.rows_behind, "seconds": round(lag.seconds_behind, 1)},
        "horizon_stall": asdict(lag.stall) if lag.stall else None,
        "last_cycle": ({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in last.items()}
                       if last else None),
    }


def peek_cursor(engine: Engine, consumer: str) -> Cursor:
    with engine.connect() as conn:
        row = conn.execute(query("cursor_read"), {"consumer": consumer}).first()
    return Cursor(row.last_txid, int(row.last_id)) if row else Cursor("0", 0)


def rows_waiting(engine: Engine, consumer: str, cap: int) -> int:
    """Rows inserted past the consumer's cursor, counted up to cap (before validation: some may be quarantined)."""
    cursor = read_cursor(engine, consumer)
    with engine.connect() as conn:
        return int(conn.execute(query("rows_waiting"), {**cursor.as_params(), "cap": cap}).scalar_one())


def quarantine_stats(engine: Engine, consumer: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(query("quarantine_stats"), {"consumer": consumer}).mappings().all()
    return [{"reason": r["reason"], "rows": int(r["row_count"]), "last_seen": r["last_seen"].isoformat()} for r in rows]


def quarantine_rows(engine: Engine, consumer: str, *, reason: str | None = None, batch_id: int | None = None,
                    limit: int = 50) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(query("quarantine_list"), {"consumer": consumer, "reason": reason, "batch_id": batch_id,
                                                       "limit": limit}).mappings().all()
    return [{**dict(r), "created_at": r["created_at"].isoformat()} for r in rows]
