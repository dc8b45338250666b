"""What a candidate trains on besides the batch, read from PostgreSQL: the training backlog, a uniform replay
sample of older clean rows, and the fixed probe set of the stability guard."""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Connection, Engine

from freshrec.ingest import Cursor
from freshrec.sqlfiles import query


def replay_seed(seed: int, before: Cursor) -> int:
    """A different replay draw every cycle (the cursor moves), reproducible for the same cursor and seed."""
    return (seed * 1_000_003 + before.id) % 2_147_483_647


def replay_sample(engine: Engine, consumer: str, before: Cursor, rows: int, seed: int) -> pd.DataFrame:
    """Up to `rows` older clean rows drawn uniformly from the whole history (a Bernoulli table sample sized to
    the need, then a seeded shuffle)."""
    if rows <= 0:
        return pd.DataFrame()
    with engine.connect() as conn:
        total = int(conn.execute(query("interactions_estimate")).scalar_one() or 0)
        if total <= 0:  # never analysed: count what the cursor has passed (small tables only get here)
            total = int(conn.execute(query("interactions_count_until"), before.as_params()).scalar_one())
        if total <= 0:
            return pd.DataFrame()
        percent = min(100.0, 100.0 * 3 * rows / total)
        return pd.read_sql_query(query("replay_sample"), conn, params={
            **before.as_params(), "consumer": consumer, "percent": percent, "seed": seed, "max_rows": rows},
            dtype_backend="numpy_nullable")


def training_backlog(engine: Engine, consumer: str, max_rows: int, exclude_ids=()) -> pd.DataFrame:
    """The newest `max_rows` rows waiting to be trained on, with why they wait ('reason'), less `exclude_ids` (the
    publish gate's window, gate_window)."""
    with engine.connect() as conn:
        return pd.read_sql_query(query("backlog_rows"), conn, params={
            "consumer": consumer, "max_rows": max_rows, "exclude_ids": [int(i) for i in exclude_ids]},
            dtype_backend="numpy_nullable")


def gate_window(engine: Engine, consumer: str, cycles: int) -> pd.DataFrame:
    """The held-out rows of the newest `cycles` earlier cycles, still untrained: besides this batch's held-out
    rows, what the publish gate judges on (FRESHREC_GATE_WINDOW_CYCLES - 1 earlier cycles)."""
    if cycles <= 0:
        return pd.DataFrame()
    with engine.connect() as conn:
        return pd.read_sql_query(query("gate_window_rows"), conn, params={"consumer": consumer, "cycles": cycles},
                                 dtype_backend="numpy_nullable")


def probe_pairs(engine: Engine, examples: pd.DataFrame, size: int, seed: int
                ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The fixed probe set of the stability guard, and the rows of a new one when none is stored yet (drawn
    from this batch; the cycle's commit stores them with write_probe_set, so a failed cycle leaves none)."""
    from freshrec.features import CATEGORY_RATE, ITEM_QUALITY, RECENT_RATE, SESSION_RATE, SIDE_COLUMNS

    columns = ["user_text", "item_text", *SIDE_COLUMNS, "item_id", "history_item_ids", CATEGORY_RATE, RECENT_RATE,
               ITEM_QUALITY, SESSION_RATE]
    with engine.connect() as conn:
        probe = pd.DataFrame(conn.execute(query("probe_set_read")).all(), columns=columns)
    # older probe sets have no ids: the padding row, so those pairs score without the id term
    probe["item_id"] = probe["item_id"].fillna(-1).astype("int64")
    if probe.empty and len(examples):
        new = examples.sample(n=min(size, len(examples)), random_state=seed)[columns].reset_index(drop=True)
        return new, new
    return probe, None


def write_probe_set(conn: Connection, probe: pd.DataFrame) -> None:
    """Store a new probe set (inside the cycle's transaction); a stored one is never replaced."""
    from freshrec.features import CATEGORY_RATE, ITEM_QUALITY, RECENT_RATE, SESSION_RATE

    conn.execute(query("probe_set_create"), {
        "user_texts": probe["user_text"].tolist(), "item_texts": probe["item_text"].tolist(),
        "user_rates": probe["user_rate"].tolist(), "item_rates": probe["item_rate"].tolist(),
        "user_log_ns": probe["user_log_n"].tolist(), "item_log_ns": probe["item_log_n"].tolist(),
        "item_ids": probe["item_id"].astype("int64").tolist(),
        "histories": [",".join(str(int(i)) for i in h) for h in probe["history_item_ids"]],
        "user_category_rates": probe[CATEGORY_RATE].tolist(), "user_recent_rates": probe[RECENT_RATE].tolist(),
        "user_item_qualities": probe[ITEM_QUALITY].tolist(), "user_session_rates": probe[SESSION_RATE].tolist()})
