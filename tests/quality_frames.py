"""Pulled batches built by hand for the validation tests (test_quality, test_expectations, test_quality_signals,
test_quarantine)."""

from datetime import datetime, timedelta, timezone

import pandas as pd

from freshrec.ingest import INTERACTION_COLUMNS
from freshrec.quality import QualityRules

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
RULES = QualityRules(event_types=("click", "skip"), max_dwell_ms=60_000, clock_skew_s=300,
                     duplicate_window_s=2.0, bot_events_per_minute=30, batch_reject_share=0.5)
KNOWN = {1, 2, 3}


def frame(rows):
    """A batch with the pulled frame's columns and dtypes: one good row per dict, overridden by its keys."""
    base = {"user_id": 1, "item_id": 1, "event_type": "click", "label": 1, "dwell_ms": 100,
            "occurred_at": NOW - timedelta(minutes=5), "inserted_at": NOW, "txid": "700"}
    data = [{**base, "id": i + 1, **r} for i, r in enumerate(rows)]
    df = pd.DataFrame(data)[INTERACTION_COLUMNS]
    for col in ["id", "user_id", "item_id", "label", "dwell_ms"]:
        df[col] = pd.array([r[col] for r in data], dtype="Int64")  # exact, even for 2**63 - 1
    df["event_type"] = df["event_type"].astype("string")
    df["occurred_at"] = pd.to_datetime(df["occurred_at"], utc=True)
    df["inserted_at"] = pd.to_datetime(df["inserted_at"], utc=True)
    return df
