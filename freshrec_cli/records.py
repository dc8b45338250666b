"""`freshrec quarantine` and `freshrec reports`: what validation set aside, and the drift reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from freshrec_cli.options import JsonOpt, checked_engine, current_settings, db_id
from freshrec_cli.output import emit

quarantine_app = typer.Typer(no_args_is_help=True, help="Rows set aside by validation, with their reasons.")
reports_app = typer.Typer(no_args_is_help=True, help="Evidently drift reports kept in the database.")


@quarantine_app.command("stats")
def quarantine_stats(as_json: JsonOpt = False) -> None:
    """Quarantined rows per reason code."""
    from freshrec.status import quarantine_stats as stats

    settings = current_settings()
    rows = stats(checked_engine(settings), settings.consumer)
    emit({"consumer": settings.consumer, "reasons": rows}, as_json,
         "\n".join(f"{r['reason']:<22} {r['rows']:>9}  last {r['last_seen'][:19]}" for r in rows)
         or "nothing quarantined")


@quarantine_app.command("list")
def quarantine_list(
    reason: Annotated[Optional[str], typer.Option(help="Only rows with this reason code.")] = None,
    batch: Annotated[Optional[int], typer.Option(help="Only rows of this batch id.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Quarantined rows, newest first, with their reasons and the row as it was pulled."""
    import json

    from freshrec.status import quarantine_rows

    settings = current_settings()
    rows = quarantine_rows(checked_engine(settings), settings.consumer, reason=reason, batch_id=db_id(batch, "--batch"),
                           limit=limit)
    emit({"consumer": settings.consumer, "rows": rows}, as_json,
         "\n".join(f"{r['interaction_id']:>10} batch {r['batch_id']:<6} {','.join(r['reasons']):<30} "
                   f"{json.dumps(r['row_data'])[:120]}" for r in rows) or "no quarantined rows match")


@reports_app.command("list")
def reports_list(limit: Annotated[int, typer.Option(min=1)] = 50, as_json: JsonOpt = False) -> None:
    """Drift reports, newest first: dataset drift, share of drifted columns, which ones."""
    from freshrec.reports import list_reports

    rows = list_reports(checked_engine(current_settings()), limit)
    lines = [f"{'cycle':>6} {'drift':>5} {'share':>5} {'champion':>8} {'rows ref/cur':>13}  drifted columns"]
    lines += [f"{r['cycle_id']:>6} {'yes' if r['dataset_drift'] else 'no':>5} {r['drifted_share']:>5.2f} "
              f"{r['champion_version'] or '-':>8} {str(r['reference_rows']) + '/' + str(r['current_rows']):>13}  "
              f"{', '.join(r['drifted_columns']) or '-'}" for r in rows]
    emit({"reports": rows}, as_json, "\n".join(lines) if rows else "no drift reports yet")


@reports_app.command("export")
def reports_export(
    cycle: Annotated[int, typer.Argument(help="Cycle id (see 'freshrec reports list').")],
    path: Annotated[Path, typer.Argument(help="File to write, or a folder for cycle-NNNNNN-drift.html.")],
    as_json: JsonOpt = False,
) -> None:
    """Write a cycle's drift report, as stored in the database, to an HTML file."""
    from freshrec.reports import export_report

    target = export_report(checked_engine(current_settings()), db_id(cycle, "cycle"), path)
    emit({"cycle_id": cycle, "path": str(target)}, as_json, f"wrote {target}")
