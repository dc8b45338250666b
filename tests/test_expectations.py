"""The Great Expectations suite: one expectation per rule with its reason code, lenient and strict runs."""

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from freshrec.expectations import SUITE_VERSION, _jsonable, _validation_definition, run_suite
from freshrec.reasons import BATCH_REJECTED, REASONS
from freshrec.quality_signals import add_signals

from quality_frames import KNOWN, NOW, RULES, frame


@pytest.mark.unit
def test_strict_suite_is_a_hard_gate():
    rows = frame([{"user_id": u, "item_id": 1 + u % 3, "occurred_at": NOW - timedelta(seconds=u)} for u in range(1, 11)])
    checked = add_signals(rows, RULES)
    assert run_suite(checked, RULES, KNOWN, NOW, strict=True).success
    # One bad row among ten is within the lenient suite's mostly, never within the strict one's.
    bad = checked.copy()
    bad.loc[0, "label"] = 7
    assert run_suite(bad, RULES, KNOWN, NOW).success
    strict = run_suite(bad, RULES, KNOWN, NOW, strict=True)
    assert not strict.success and strict.row_reasons == {1: {"bad_label"}}
    # An exact copy whose signal says "no copy" still fails the strict suite's uniqueness check.
    twin = pd.concat([checked, checked.iloc[[3]].assign(id=99)], ignore_index=True)
    failed = [r["reason"] for r in run_suite(twin, RULES, KNOWN, NOW, strict=True).results if not r["success"]]
    assert failed == ["duplicate"]


@pytest.mark.unit
def test_each_rule_is_one_expectation_with_its_reason_code():
    # build_suite's suites as the cached GX contexts hold them. Calling build_suite outside a fresh context
    # would write into GX's current context's suite of the same name and make its cached run fail.
    lenient = _validation_definition(RULES, False).suite
    codes = [e.meta["reason"] for e in lenient.expectations]
    assert sorted(c for c in codes if c != "schema") == sorted(set(REASONS) - {"strict_gate_failed", BATCH_REJECTED})
    assert all(e.mostly == pytest.approx(0.5) for e in lenient.expectations if e.meta["reason"] != "schema")
    assert lenient.meta == {**lenient.meta, "version": SUITE_VERSION, "strict": False}
    assert _validation_definition(RULES, True).suite.meta["strict"] is True


@pytest.mark.unit
def test_one_gx_context_per_rule_set_and_suite():
    # Building a context costs ~0.3 s: equal rules (a new but equal object each cycle) reuse it.
    lenient = _validation_definition(RULES, False)
    assert _validation_definition(RULES.model_copy(), False) is lenient
    assert _validation_definition(RULES, True) is not lenient
    assert _validation_definition(RULES.model_copy(update={"bot_events_per_minute": 31}), False) is not lenient


@pytest.mark.unit
def test_results_are_plain_json():
    # The per-expectation results are stored as jsonb, which has no NaN, Infinity or numpy values.
    assert _jsonable({"a": (np.int64(3), float("inf"), float("nan"), 0.25), 1: [None, True, "x"]}) == \
        {"a": ["3", None, None, 0.25], "1": [None, True, "x"]}
    batch = frame([{"user_id": u, "item_id": 1 + u % 3} for u in range(1, 6)]
                  + [{"label": 7, "item_id": 999}])
    run = run_suite(add_signals(batch, RULES), RULES, KNOWN, NOW)
    json.dumps(run.results, allow_nan=False)
    by_reason = {r["reason"]: r for r in run.results}
    assert by_reason["bad_label"]["unexpected_count"] == by_reason["unknown_item"]["unexpected_count"] == 1
    assert run.row_reasons == {6: {"bad_label", "unknown_item"}}
