"""The quarantine payload: every quarantined row as plain JSON, its values as pulled and its reason codes."""

import json
from datetime import timedelta

import pandas as pd
import pytest

from freshrec.quality import validate_batch
from freshrec.quarantine import quarantine_payload, row_record

from quality_frames import KNOWN, NOW, RULES, frame


@pytest.mark.unit
def test_row_record_is_plain_json_values():
    row = frame([{"user_id": None, "event_type": None, "item_id": 2**63 - 1, "occurred_at": None}]).iloc[0]
    row["reasons"] = ["null_user_id"]
    record = row_record(pd.concat([row, pd.Series({"score": pd.NA, "share": 0.25})]))
    assert record == {"id": 1, "user_id": None, "item_id": 2**63 - 1, "event_type": None, "label": 1,
                      "dwell_ms": 100, "occurred_at": None, "inserted_at": NOW.isoformat(), "txid": "700",
                      "score": None, "share": 0.25}  # no reasons: they have a column of their own
    assert json.loads(json.dumps(record, allow_nan=False)) == record


@pytest.mark.unit
def test_payload_holds_every_quarantined_row_with_its_reasons():
    rows = [{"user_id": u, "item_id": 1 + u % 3, "occurred_at": NOW - timedelta(seconds=u)}
            for u in range(1, 9)]
    rows += [{"label": 7, "user_id": 20}, {"item_id": 999, "dwell_ms": -1, "user_id": 21},
             {"event_type": "click'); DROP TABLE items;--\n\u202e", "user_id": 22}]
    validated = validate_batch(frame(rows), RULES, KNOWN, NOW)
    payload = json.loads(quarantine_payload(validated))
    assert [p["interaction_id"] for p in payload] == [9, 10, 11]
    assert [p["reasons"] for p in payload] == [["bad_label"], ["dwell_out_of_range", "unknown_item"],
                                               ["unknown_event_type"]]
    assert payload[2]["row_data"]["event_type"] == "click'); DROP TABLE items;--\n\u202e"
    assert payload[1]["row_data"] == {"id": 10, "user_id": 21, "item_id": 999, "event_type": "click", "label": 1,
                                      "dwell_ms": -1, "occurred_at": pd.Timestamp(NOW - timedelta(minutes=5)).isoformat(),
                                      "inserted_at": NOW.isoformat(), "txid": "700"}


@pytest.mark.unit
def test_payload_of_a_clean_batch_is_empty():
    validated = validate_batch(frame([{"user_id": u} for u in range(1, 4)]), RULES, KNOWN, NOW)
    assert validated.quarantined.empty and json.loads(quarantine_payload(validated)) == []
