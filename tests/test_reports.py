"""freshrec.reports: drift reports kept in the database are listed, checked against their sha256 and exported; the
link a Prefect artifact gives."""

import gzip
import hashlib
import json

import pytest
import sqlalchemy as sa

from freshrec.errors import FreshrecError
from freshrec.reports import ReportNotFound, export_report, list_reports, report_html
from freshrec.sqlfiles import query

from helpers import a_file


@pytest.mark.unit
def test_report_links_point_to_the_service_when_it_has_a_public_url(tmp_path):
    from freshrec.errors import ConfigError
    from freshrec.reports import report_link
    from freshrec.settings import load_settings

    path = tmp_path / "cycle-000007-drift.html"
    assert report_link(None, 7, path) == path.resolve().as_uri()
    public = load_settings(public_url="https://freshrec.example.org/api/").public_url
    assert report_link(public, 7, path) == "https://freshrec.example.org/api/reports/7"
    with pytest.raises(ConfigError, match="FRESHREC_PUBLIC_URL"):
        load_settings(public_url="freshrec.example.org")


HTML = b"<html><body>drift of one cycle</body></html>"


def store_report(engine, html: bytes = HTML, sha256: str | None = None) -> int:
    """A cycle with a stored drift report, written as the cycle's commit writes it."""
    with engine.begin() as conn:
        cycle_id = conn.execute(sa.text("INSERT INTO update_cycles (consumer) VALUES ('default') RETURNING id")
                                ).scalar_one()
        conn.execute(query("drift_insert"), {
            "cycle_id": cycle_id, "batch_id": None, "champion_version": None, "dataset_drift": True,
            "drifted_share": 0.5,
            "columns": json.dumps({"category": {"drifted": True}, "hour": {"drifted": False}}),
            "reference_rows": 100, "current_rows": 80, "html_path": None, "html_gzip": gzip.compress(html),
            "html_sha256": sha256 or hashlib.sha256(html).hexdigest()})
    return cycle_id


def test_stored_reports_are_listed_newest_first_and_exported_as_stored(engine, tmp_path):
    first, second = store_report(engine), store_report(engine, b"<html>the second</html>")
    listed = list_reports(engine)
    assert [r["cycle_id"] for r in listed] == [second, first]
    assert listed[0]["drifted_columns"] == ["category"] and "columns" not in listed[0]
    assert listed[0]["created_at"].startswith("20") and listed[0]["stored_bytes"] > 0
    assert report_html(engine, first) == HTML
    with pytest.raises(ReportNotFound, match="Cycle 999 has no drift report"):
        report_html(engine, 999)
    out = export_report(engine, first, tmp_path)  # a folder: the cycle's stable file name in it
    assert out == (tmp_path / f"cycle-{first:06d}-drift.html").resolve() and out.read_bytes() == HTML
    named = export_report(engine, second, tmp_path / "new" / "copy.html")  # a file: that name, folders made
    assert named.read_bytes() == b"<html>the second</html>"


def test_a_damaged_copy_or_a_path_that_cannot_be_written_is_one_sentence(engine, tmp_path):
    damaged = store_report(engine, sha256="0" * 64)
    with pytest.raises(FreshrecError, match=f"stored report of cycle {damaged} does not match its sha256"):
        report_html(engine, damaged)
    with pytest.raises(FreshrecError, match="Cannot write the report .* is a file, not a folder"):
        export_report(engine, damaged, a_file(tmp_path) / "r.html")  # refused before the report is read
