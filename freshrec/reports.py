"""Drift reports kept in the database: list them, and write one back out as HTML anywhere."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from sqlalchemy.engine import Engine

from freshrec.errors import FreshrecError
from freshrec.sqlfiles import query


def list_reports(engine: Engine, limit: int = 50) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(query("reports_list"), {"limit": limit}).mappings().all()
    out = []
    for r in rows:
        columns = r["columns"] or {}
        out.append({**{k: v for k, v in r.items() if k != "columns"}, "created_at": r["created_at"].isoformat(),
                    "drifted_columns": [c for c, v in columns.items() if v.get("drifted")]})
    return out


class ReportNotFound(FreshrecError):
    """The cycle has no stored drift report."""


def report_html(engine: Engine, cycle_id: int) -> bytes:
    """The cycle's drift report as stored in the database (HTML), checked against its sha256."""
    with engine.connect() as conn:
        row = conn.execute(query("report_html"), {"cycle_id": cycle_id}).first()
    if row is None:
        raise ReportNotFound(f"Cycle {cycle_id} has no drift report (no champion or too few rows that cycle): "
                             "run 'freshrec reports list' to see the cycles that have one.")
    html = gzip.decompress(bytes(row.html_gzip))
    if hashlib.sha256(html).hexdigest() != row.html_sha256:
        raise FreshrecError(f"The stored report of cycle {cycle_id} does not match its sha256: the database copy "
                            "is damaged; the file under the reports folder may still be intact.")
    return html


def report_link(public_url: str | None, cycle_id: int, path: Path) -> str:
    """Where a Prefect artifact sends the reader: the freshrec api's page for the cycle when the service has a
    public address (FRESHREC_PUBLIC_URL), else the local file (which browsers open only on this machine)."""
    if public_url:
        return f"{public_url.rstrip('/')}/reports/{int(cycle_id)}"
    return Path(path).resolve().as_uri()


def export_report(engine: Engine, cycle_id: int, path: Path) -> Path:
    """Write cycle's stored HTML report to path (a folder gets the stable per-cycle name)."""
    from freshrec.drift import report_path
    from freshrec.settings_checks import folder_problem

    path = Path(path)
    problem = folder_problem(path if path.is_dir() else path.parent)
    if problem:  # before reading the report: a path mistake is one sentence, not a traceback
        raise FreshrecError(f"Cannot write the report to {str(path)!r}: {problem}; pass a file or folder "
                            "path you can write.")
    html = report_html(engine, cycle_id)
    target = report_path(path, cycle_id) if path.is_dir() else path
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(html)
    except OSError as exc:
        raise FreshrecError(f"Cannot write the report to {str(target)!r} ({exc.strerror or exc}): pass a file "
                            "or folder path you can write.") from None
    return target.resolve()
