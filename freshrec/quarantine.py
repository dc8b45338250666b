"""The quarantine payload: a validated batch's quarantined rows as JSON for one set-based INSERT.

cycles.commit_batch hands it to sql/queries/quarantine_insert.sql in the same transaction as the cursor
move: each row keeps its reason codes and a copy of its values as pulled.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from freshrec.quality import ValidatedBatch


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
