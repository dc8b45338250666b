"""The drift task: Evidently report, stored HTML, and artifacts in the Prefect run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from freshrec import drift, steps
from freshrec.escaping import markdown_text
from freshrec.drift import DriftReport
from freshrec.reports import report_link
from freshrec.settings import Settings
from freshrec.artifacts import ChampionModel
from freshrec.fine_tune import FineTuneOutcome


@dataclass
class DriftOutcome:
    report: DriftReport
    path: Path | None


@task(name="measure-drift", cache_policy=NO_CACHE, timeout_seconds=900)
def measure_drift(settings: Settings, cycle_id: int, outcome: FineTuneOutcome,
                  champion: ChampionModel | None) -> DriftOutcome:
    report = steps.drift(settings, outcome, champion)
    path = drift.write_report(report, settings.resolved_reports_dir, cycle_id)
    r = report.result
    get_run_logger().info("drift %s: %s%s", r.status, r.note, f"; report {path}" if path else "")
    return DriftOutcome(report, path)


def emit_drift_artifacts(settings: Settings, cycle_id: int, outcome: DriftOutcome) -> None:
    """The drift artifacts of a cycle; called once the cycle committed (its report is in the database)."""
    report, path = outcome.report, outcome.path
    r = report.result
    if r.columns:
        create_table_artifact(
            key="drift-columns",
            table=[{"column": c, "method": v.method, "score": v.score, "threshold": v.threshold,
                    "drifted": v.drifted, "counted": v.counted} for c, v in r.columns.items()],
            description=f"Per-column drift, cycle {cycle_id}")
    create_markdown_artifact(
        key="drift-headline",
        markdown=(f"# Drift, cycle {cycle_id}\n\n**{r.status}**: {markdown_text(r.note)}.\n\n"
                  f"Dataset drift: **{r.dataset_drift}** (share {r.drifted_share:.2f}); prediction drift: "
                  f"{r.prediction_drift}; label drift: {r.label_drift}.\n\n"
                  + (f"HTML report: [{markdown_text(path.name)}]({report_link(settings.public_url, cycle_id, path)})\n"
                     if path else "")),
        description="Evidently drift headline")
    if path:
        create_link_artifact(key="drift-report", link=report_link(settings.public_url, cycle_id, path),
                             link_text=path.name,
                             description=f"Evidently HTML report, cycle {cycle_id} (also: freshrec reports export "
                             f"{cycle_id} PATH)")
