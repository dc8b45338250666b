"""freshrec.summary: the cycle table's row, the run's totals, the Markdown of a run that committed nothing."""

import dataclasses
import re

import pandas as pd

from freshrec.cycles import CycleSummary
from freshrec.ingest import Cursor, Lag, PulledBatch
from freshrec.summary import TABLE_HEADER, build_summary, run_markdown, run_totals, table_row

RECORD = CycleSummary(7, "completed", "default", "cycle 7", rows_pulled=700, rows_quarantined=12, trained=True,
                      metrics={"champion": {"auc": 0.7123}, "candidate": {"auc": 0.73149}},
                      drift={"status": "measured", "drifted_share": 0.25, "dataset_drift": True},
                      decision={"published": True, "version": 3}, train={"fresh_coverage": 0.9},
                      stage_seconds={"pull": 0.5, "train": 3.0})





def ends(text: str) -> list[int]:
    return [m.end() for m in re.finditer(r"\S+", text)]


def test_a_cycle_is_one_row_under_the_table_header():
    row = table_row(RECORD)
    assert row.split() == ["7", "700", "12", "0.712", "0.731", "0.25*", "0.90", "v3", "3.5"]
    # each figure ends where its column's title ends: cycle, rows in, quar., AUC champ, AUC cand, drift, ...
    assert len(row) == len(TABLE_HEADER)
    assert ends(row) == [ends(TABLE_HEADER)[i] for i in (0, 2, 3, 5, 7, 8, 9, 10, 11)]
    quiet = dataclasses.replace(RECORD, metrics={}, drift={"status": "no_reference"}, decision={"published": False},
                                train={}).to_json()  # the stored form: a dict
    assert table_row(quiet).split() == ["7", "700", "12", "-", "-", "-", "-", "-", "3.5"]
    assert len(table_row(quiet)) == len(TABLE_HEADER)


def test_the_runs_totals_count_published_candidates_drift_and_fresh_coverage():
    kept = dataclasses.replace(RECORD, decision={"published": False}, train={"fresh_coverage": 0.5},
                               drift={"status": "measured", "dataset_drift": False})
    untrained = dataclasses.replace(RECORD, trained=False, drift={"status": "no_reference"}, train={})
    assert run_totals([s.to_json() for s in (RECORD, kept, untrained)]) == (
        "candidates published: 1 of 2; dataset drift: 1 of 2 measured cycles; fresh rows trained on: 70% on average")
    assert run_totals([]).endswith("fresh rows trained on: -")


def test_a_run_that_committed_nothing_says_why_in_inert_markdown():
    text = run_markdown("failed", 12, "disk full: see [here](http://x) <b>now</b>\n   twice")
    assert text == ("# freshrec cycle 12: failed\n\n"
                    "disk full: see \\[here\\]\\(http://x\\) \\<b\\>now\\</b\\> twice\n")
    assert run_markdown("skipped", None, "another cycle").startswith("# freshrec run: skipped\n")


def test_an_empty_pull_is_an_empty_cycle_with_its_lag():
    pulled = PulledBatch("default", pd.DataFrame(), Cursor("5", 9), Cursor("5", 9), Lag(0, 0.04))
    summary = build_summary(cycle_id=3, consumer="default", pulled=pulled, validated=None, outcome=None, drift=None,
                            decision=None, stage_seconds={"pull": 0.01234})
    assert (summary.status, summary.message, summary.rows_pulled) == ("empty", "no new rows: nothing to do", 0)
    assert summary.lag == {"rows_behind": 0, "seconds_behind": 0.0, "horizon_stall": None}
    assert summary.stage_seconds == {"pull": 0.012}
