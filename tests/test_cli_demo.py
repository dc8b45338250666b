"""The README's demo command on a fresh machine: no FRESHREC_DATABASE_URL, so the embedded PostgreSQL."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_tiny_demo_on_the_embedded_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHREC_")}
    env["FRESHREC_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run([sys.executable, "-m", "freshrec_cli.main", "demo", "--model", "tiny", "--cycles", "3",
                           "--json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    log = Path(result["log"])
    assert log == tmp_path / "data" / "demo.log"
    # the chatter went to the log file, not the terminal (--verbose would show it there)
    chatter = log.read_text()
    assert "using the embedded PostgreSQL in" in chatter and "Flow run" in chatter and "Task run" in chatter
    assert "Flow run" not in proc.stderr and "Task run" not in proc.stderr
    assert "great_expectations" not in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) < 10, proc.stderr
    assert "freshrec_demo" in result["database"] and "host=" in result["database"]
    cycles = result["cycles"]
    assert [c["status"] for c in cycles] == ["completed"] * 3
    assert cycles[0]["rows_pulled"] >= 1500 and all(c["rows_pulled"] > 0 for c in cycles[1:])
    assert sum(c["rows_quarantined"] for c in cycles) > 0  # the demo stream carries deliberate dirt
    assert all(c["trained"] for c in cycles)
    for path in result["reports"]:
        assert Path(path).is_file() and Path(path).is_relative_to(tmp_path)
    assert (tmp_path / "data" / "pg" / "PG_VERSION").is_file()
    # the progress went to stderr, the cycle table is not mixed into the JSON
    assert "--- cycle 1/3 ---" in proc.stderr
