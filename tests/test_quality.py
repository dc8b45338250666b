"""Validation: GX verdict per batch, freshrec's reason codes per row, and the gate."""

from datetime import timedelta

import pytest

from freshrec.quality import BATCH_REJECTED, row_reasons, validate_batch

from quality_frames import KNOWN, NOW, RULES, frame


CASES = [
    ({"user_id": None}, "null_user_id"),
    ({"item_id": None}, "null_item_id"),
    ({"event_type": None}, "null_event_type"),
    ({"label": None}, "null_label"),
    ({"occurred_at": None}, "null_occurred_at"),
    ({"user_id": -4}, "bad_user_id"),
    ({"event_type": "purchase'); DROP TABLE items;--"}, "unknown_event_type"),
    ({"event_type": "x" * 10_000}, "unknown_event_type"),
    ({"label": 7}, "bad_label"),
    ({"dwell_ms": -1}, "dwell_out_of_range"),
    ({"dwell_ms": 10**9}, "dwell_out_of_range"),
    ({"occurred_at": NOW + timedelta(days=1)}, "future_timestamp"),
    ({"item_id": 999}, "unknown_item"),
    ({"item_id": 2**63 - 1}, "unknown_item"),
]


@pytest.mark.parametrize("bad, reason", CASES)
def test_each_bad_row_gets_its_reason(bad, reason):
    # one clean row (different user) plus the bad one
    df = frame([{"user_id": 2, "item_id": 2}, bad])
    reasons = row_reasons(df, RULES, KNOWN, NOW)
    assert reasons[0] == []
    assert reason in reasons[1]


def test_duplicates_keep_the_first_copy():
    t = NOW - timedelta(minutes=1)
    df = frame([{"occurred_at": t}, {"occurred_at": t}, {"occurred_at": t + timedelta(seconds=1)},
                {"occurred_at": t + timedelta(seconds=30)}, {"occurred_at": t, "event_type": "skip"}])
    reasons = row_reasons(df, RULES, KNOWN, NOW)
    assert reasons == [[], ["duplicate"], ["near_duplicate"], [], []]


def test_bot_users_are_flagged_whole():
    start = NOW - timedelta(minutes=10)
    bot = [{"user_id": 9, "item_id": 1 + i % 3, "occurred_at": start + timedelta(seconds=i)} for i in range(40)]
    human = [{"user_id": 2, "item_id": 1 + i % 3, "occurred_at": start + timedelta(seconds=20 * i)} for i in range(40)]
    reasons = row_reasons(frame(bot + human), RULES, KNOWN, NOW)
    assert all("bot_user" in r for r in reasons[:40])
    assert all(r == [] for r in reasons[40:])


def test_clean_batch_passes_gx_and_gate():
    df = frame([{"user_id": u, "item_id": 1 + u % 3, "occurred_at": NOW - timedelta(seconds=u)} for u in range(1, 30)])
    v = validate_batch(df, RULES, KNOWN, NOW)
    assert v.accepted and v.gx_success and len(v.clean) == 29 and v.quarantined.empty
    assert v.gx_statistics["evaluated_expectations"] >= 10


def test_bad_rows_are_quarantined_not_dropped_and_gx_agrees():
    rows = [{"user_id": u, "item_id": 1 + u % 3, "occurred_at": NOW - timedelta(seconds=u)} for u in range(1, 30)]
    rows += [bad for bad, _ in CASES]
    df = frame(rows)
    v = validate_batch(df, RULES, KNOWN, NOW)
    assert v.accepted  # 14 of 43 bad: under the 50% limit
    assert len(v.clean) + len(v.quarantined) == len(df) == v.rows
    assert sorted(v.quarantined["id"].tolist()) == list(range(30, 44))
    assert v.gx_success  # the lenient suite's verdict is the batch's: accepted
    # Every row's reasons come from GX's unexpected-row reports: GX's counts are the quarantine's counts.
    gx = {r["reason"]: r["unexpected_count"] for r in v.gx_results if r["suite"] == "lenient" and r["unexpected_count"]}
    assert gx == v.reason_counts
    strict = [r for r in v.gx_results if r["suite"] == "strict"]
    assert strict and all(r["success"] for r in strict) and all(r["mostly"] is None for r in strict)


def test_gate_rejects_a_mostly_bad_batch():
    rows = [{"label": 7, "user_id": u} for u in range(1, 7)] + [{"user_id": u + 10} for u in range(1, 5)]
    v = validate_batch(frame(rows), RULES, KNOWN, NOW)
    assert not v.accepted and "60% of the batch failed checks" in v.reject_reason
    assert v.clean.empty and len(v.quarantined) == 10
    assert all(BATCH_REJECTED in r for r in v.quarantined["reasons"])


def test_gate_rejects_a_broken_schema():
    df = frame([{"user_id": u} for u in range(1, 5)])
    df["label"] = df["label"].astype(str)
    v = validate_batch(df, RULES, KNOWN, NOW)
    assert not v.accepted and v.reject_reason.startswith("schema broken: label has type")
