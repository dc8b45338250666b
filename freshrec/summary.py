"""The cycle summary: one object with the cycle's figures, its markdown form and its table row."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

from freshrec.cycles import CycleSummary
from freshrec.drift import DriftReport
from freshrec.escaping import markdown_text as md
from freshrec.ingest import PulledBatch
from freshrec.quality import ValidatedBatch
from freshrec.gate import Decision
from freshrec.fine_tune import FineTuneOutcome


def _auc(metrics: dict, who: str) -> float | None:
    return (metrics.get(who) or {}).get("auc")


def build_summary(*, cycle_id: int, consumer: str, pulled: PulledBatch, validated: ValidatedBatch | None,
                  outcome: FineTuneOutcome | None, drift: DriftReport | None, decision: Decision | None,
                  stage_seconds: dict[str, float], drift_path: Path | None = None) -> CycleSummary:
    lag = {"rows_behind": pulled.lag.rows_behind, "seconds_behind": round(pulled.lag.seconds_behind, 1),
           "horizon_stall": asdict(pulled.lag.stall) if pulled.lag.stall else None}
    seconds = {k: round(v, 3) for k, v in stage_seconds.items()}
    if pulled.rows == 0:
        return CycleSummary(cycle_id, "empty", consumer, "no new rows: nothing to do", lag=lag,
                            stage_seconds=seconds)
    assert validated is not None and decision is not None
    summary = CycleSummary(
        cycle_id, "completed", consumer, "",
        rows_pulled=pulled.rows, rows_clean=len(validated.clean), rows_quarantined=len(validated.quarantined),
        quarantine_reasons=validated.reason_counts,
        batch={"accepted": validated.accepted, "reject_reason": validated.reject_reason,
               "from": {"txid": pulled.from_cursor.txid, "id": pulled.from_cursor.id},
               "to": {"txid": pulled.to_cursor.txid, "id": pulled.to_cursor.id},
               "gx_success": validated.gx_success},
        lag=lag, stage_seconds=seconds,
        decision={**decision.to_json(), "published": False, "version": None,
                  "champion_before": outcome.champion_version if outcome else None},
    )
    if outcome is not None:
        summary.trained = outcome.trained
        summary.metrics = outcome.metrics
        st = outcome.stats
        summary.train = {"skip_reason": outcome.skip_reason, "cold_start": outcome.cold_start,
                         "rows": outcome.train_rows, "backlog_rows": outcome.backlog_rows,
                         "replay_rows": outcome.replay_rows, "holdout_rows": len(outcome.holdout),
                         "queued_for_next_cycle": sum(len(v) for v in outcome.backlog_add.values()),
                         "phase_seconds": {k: round(v, 2) for k, v in outcome.seconds.items()}}
        if st is not None:
            summary.train.update({"steps": st.steps, "seconds": round(st.seconds, 2), "device": st.device,
                                  "learning_rate": st.learning_rate, "examples_per_s": round(st.examples_per_s, 1),
                                  "first_loss": st.first_loss, "last_loss": st.last_loss,
                                  "stopped_by": st.stopped_by, "fresh_rows": st.fresh_rows,
                                  "fresh_rows_trained": st.fresh_rows_trained,
                                  "fresh_coverage": (round(st.fresh_rows_trained / st.fresh_rows, 4)
                                                     if st.fresh_rows else None)})
    if drift is not None:
        r = drift.result
        summary.drift = {"status": r.status, "dataset_drift": r.dataset_drift, "drifted_share": r.drifted_share,
                         "prediction_drift": r.prediction_drift, "label_drift": r.label_drift,
                         "drifted_columns": [c for c, v in r.columns.items() if v.drifted],
                         "reference_rows": r.reference_rows, "current_rows": r.current_rows, "note": r.note,
                         "report_path": str(drift_path) if drift_path else None}
    summary.message = (f"cycle {cycle_id}: {summary.rows_pulled} rows in, {summary.rows_quarantined} quarantined, "
                       + ("trained" if summary.trained else "not trained")
                       + f"; {'publish' if decision.publish else 'keep champion'}: {'; '.join(decision.reasons)}")
    return summary


def _f(x, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def summary_markdown(s: CycleSummary) -> str:
    m = s.metrics
    reasons = "\n".join(f"| {md(k)} | {v} |" for k, v in s.quarantine_reasons.items()) or "| (none) | 0 |"
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in s.stage_seconds.items())
    drift = s.drift or {}
    decision = s.decision or {}
    return (
        f"# freshrec cycle {s.cycle_id}: {md(s.status)}\n\n{md(s.message)}\n\n"
        f"| rows pulled | clean | quarantined | lag (rows) |\n|---|---|---|---|\n"
        f"| {s.rows_pulled} | {s.rows_clean} | {s.rows_quarantined} | {s.lag.get('rows_behind', 0)} |\n\n"
        f"## Quarantine\n\n| reason | rows |\n|---|---|\n{reasons}\n\n"
        f"## Models on the same held-out rows\n\n| model | AUC | log loss | rows |\n|---|---|---|---|\n"
        f"| champion | {_f(_auc(m, 'champion'))} | {_f((m.get('champion') or {}).get('logloss'))} | "
        f"{(m.get('champion') or {}).get('n', '-')} |\n"
        f"| candidate | {_f(_auc(m, 'candidate'))} | {_f((m.get('candidate') or {}).get('logloss'))} | "
        f"{(m.get('candidate') or {}).get('n', '-')} |\n\n"
        f"## Drift\n\n{md(drift.get('status', 'not measured'))}: {md(drift.get('note', ''))}; "
        f"report: {md(drift.get('report_path') or '-')}\n\n"
        f"## Decision\n\n**{'published version ' + str(decision.get('version')) if decision.get('published') else 'not published'}**"
        f": {md('; '.join(decision.get('reasons', [])) or '-')}\n\nStages: {stages}\n"
    )


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~])")


def escape_markdown(text: str) -> str:
    """Text from the data or an error message, shown literally in a Markdown artifact (no links, no HTML)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def run_markdown(status: str, cycle_id: int | None, message: str) -> str:
    """The artifact of a run that committed no cycle: skipped, empty or failed, and why."""
    title = f"freshrec cycle {cycle_id}: {status}" if cycle_id is not None else f"freshrec run: {status}"
    return f"# {title}\n\n{escape_markdown(message)}\n"


# drift: share of drifted columns, '*' when that is dataset drift; fresh: share of the fresh rows trained on
TABLE_HEADER = (f"{'cycle':>5} {'rows in':>7} {'quar.':>5} {'AUC champ':>9} {'AUC cand':>8} {'drift':>6} "
                f"{'fresh':>5} {'published':>9} {'seconds':>7}")


def table_row(s: CycleSummary | dict) -> str:
    d = s.to_json() if isinstance(s, CycleSummary) else s
    m = d.get("metrics") or {}
    drift = d.get("drift") or {}
    share = drift.get("drifted_share") if drift.get("status") == "measured" else None
    flag = "*" if drift.get("dataset_drift") else " "
    decision = d.get("decision") or {}
    published = f"v{decision['version']}" if decision.get("published") else "-"
    total = sum((d.get("stage_seconds") or {}).values())
    return (f"{d.get('cycle_id') or '-':>5} {d.get('rows_pulled', 0):>7} {d.get('rows_quarantined', 0):>5} "
            f"{_f(_auc(m, 'champion')):>9} {_f(_auc(m, 'candidate')):>8} {_f(share, '{:.2f}'):>5}{flag} "
            f"{_f((d.get('train') or {}).get('fresh_coverage'), '{:.2f}'):>5} {published:>9} {total:>7.1f}")


def run_totals(summaries: list[dict]) -> str:
    """One line over a run's cycles: the share of candidates published, of cycles with dataset drift, and the
    mean share of fresh rows trained on."""
    trained = [s for s in summaries if s.get("trained")]
    measured = [s for s in summaries if (s.get("drift") or {}).get("status") == "measured"]
    coverage = [(s.get("train") or {}).get("fresh_coverage") for s in trained]
    coverage = [c for c in coverage if c is not None]
    return (f"candidates published: {sum(bool((s.get('decision') or {}).get('published')) for s in trained)} of "
            f"{len(trained)}; dataset drift: {sum(bool(s['drift'].get('dataset_drift')) for s in measured)} of "
            f"{len(measured)} measured cycles; fresh rows trained on: "
            + (f"{sum(coverage) / len(coverage):.0%} on average" if coverage else "-"))
