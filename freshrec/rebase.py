"""Rebase: now and then a candidate trained from the base model, not warm-started from the champion.

Warm-start updates accumulate: drift of the weights, a learning rate worn down, inputs fixed when the lineage
began. Production recommenders pair them with periodic retrains from the base; here such a retrain is one more
candidate. Every FRESHREC_REBASE_EVERY-th candidate (0: only when asked, with `freshrec models rebase`) the
cycle's candidate is trained from the base model, with the current model settings, on the newest
FRESHREC_REBASE_ROWS clean rows plus the cycle's own, for up to FRESHREC_REBASE_TRAIN_SECONDS; it meets the
champion through the same gate on the same held-out rows, and its version records its lineage
(config.extra.lineage: kind 'rebase', the champion it challenged). It also starts a new lineage after a change
of model settings, which warm starts never pick up.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Connection, Engine

from freshrec.ingest import Cursor
from freshrec.sqlfiles import query


def rebase_reason(engine: Engine, consumer: str, every: int) -> str | None:
    """Why this cycle's candidate should be a rebase, or None: a request by hand, or the schedule."""
    with engine.connect() as conn:
        requested = conn.execute(query("rebase_requested"), {"consumer": consumer}).scalar()
        if requested is not None:
            return f"requested: {requested}"
        if every > 0:
            since = int(conn.execute(query("versions_since_rebase")).scalar_one())
            if since + 1 >= every:  # this candidate would be the every-th since the lineage began
                return f"scheduled: {since} candidates since the last rebase (FRESHREC_REBASE_EVERY={every})"
    return None


def request_rebase(engine: Engine, consumer: str, reason: str) -> None:
    """Ask for a rebase in the consumer's next cycle that trains."""
    with engine.begin() as conn:
        conn.execute(query("rebase_request"), {"consumer": consumer, "reason": reason})


def request_done(conn: Connection, consumer: str) -> None:
    """Inside a cycle's commit: the rebase that was asked for has been trained (published or not)."""
    conn.execute(query("rebase_request_done"), {"consumer": consumer})


def recent_rows(engine: Engine, consumer: str, before: Cursor, rows: int) -> pd.DataFrame:
    """The newest clean rows up to the cursor: the window a rebase trains on, in time order."""
    if rows <= 0:
        return pd.DataFrame()
    with engine.connect() as conn:
        frame = pd.read_sql_query(query("recent_clean_rows"), conn, params={
            **before.as_params(), "consumer": consumer, "max_rows": rows}, dtype_backend="numpy_nullable")
    return frame.iloc[::-1].reset_index(drop=True)
