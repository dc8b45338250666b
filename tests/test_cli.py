"""The command line: every command stops on a bad setting in one line, mistakes with ids and paths and an unreachable
database are one sentence, run-once prints one JSON object, `freshrec api` refuses a taken port."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bench.api_load import wait_until
from freshrec import generate

from conftest import PUBLISH_EVERYTHING
from helpers import a_file


ROOT = Path(__file__).resolve().parents[1]
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x"  # never reached: the settings fail first


def cli(*args: str, env: dict[str, str] | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRESHREC_")}
    return subprocess.run([sys.executable, "-m", "freshrec_cli.main", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**base, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# Every command loads the settings first: one line, exit code 2, no traceback, nothing else happens.
COMMANDS = [["db", "status"], ["status"], ["run-once"], ["serve"], ["demo"], ["models", "list"], ["watch"],
            ["quarantine", "list"], ["reports", "export", "1", "x.html"]]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_command_stops_on_a_bad_setting_in_one_line(command, tmp_path):
    env = {"FRESHREC_DATABASE_URL": UNREACHABLE, "FRESHREC_DATA_DIR": str(tmp_path),
           "FRESHREC_PUBLISH_THRESHOLDS": '[{"metric": "auc", "value": "high"}]'}
    line = one_line_error(cli(*command, env=env))
    assert "FRESHREC_PUBLISH_THRESHOLDS" in line and "valid number" in line


@pytest.mark.parametrize("env", [
    {"FRESHREC_EVENT_TYPES": "click,skip"},
    {"FRESHREC_DRIFT_NUM_METHOD": "chisquare"},
    {"FRESHREC_MODEL": "/nonexistent/model"},
    {"FRESHREC_REPORTS_DIR": "/etc/hostname/reports"},
], ids=["event types", "drift method", "model folder", "reports folder"])
def test_run_once_stops_before_any_work(env, tmp_path):
    line = one_line_error(cli("run-once", env={"FRESHREC_DATABASE_URL": UNREACHABLE,
                                               "FRESHREC_DATA_DIR": str(tmp_path / "data"), **env}))
    assert next(iter(env)) in line
    assert not (tmp_path / "data").exists()


def test_cli_mistakes_with_ids_and_paths_are_one_sentence(database_url, engine, tmp_path):
    env = {"FRESHREC_DATABASE_URL": database_url, "FRESHREC_DATA_DIR": str(tmp_path / "data")}
    line = one_line_error(cli("quarantine", "list", "--batch", "99999999999999999999", env=env))
    assert "--batch 99999999999999999999" in line
    line = one_line_error(cli("reports", "export", "1", str(a_file(tmp_path) / "r.html"), env=env))
    assert "Cannot write the report" in line and "is a file, not a folder" in line
    line = one_line_error(cli("models", "show", "99999999999999999999", env=env))
    assert "version 99999999999999999999" in line


def test_cli_prints_one_line_not_a_traceback():
    env = {"FRESHREC_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "freshrec_cli.main", "db", "status"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: Cannot connect to PostgreSQL at postgresql+psycopg2://postgres@127.0.0.1:1/x")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.slow  # its module's mark (tests/test_flow.py) before it moved here
def test_run_once_cli_prints_json(env, engine, tmp_path):
    import os
    import subprocess
    import sys

    generate.insert_stream(engine, generate.StreamSpec(users=20, items=30, events=200, seed=2))
    proc = subprocess.run([sys.executable, "-m", "freshrec_cli.main", "run-once", "--model", "tiny", "--json"],
                          capture_output=True, text=True, env={**os.environ, **PUBLISH_EVERYTHING}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)  # stdout holds exactly one JSON object
    for key in ["rows_pulled", "rows_quarantined", "trained", "metrics", "drift", "decision", "stage_seconds"]:
        assert key in summary
    assert summary["rows_pulled"] == 200 and summary["decision"]["published"]


def test_cli_serves_and_refuses_a_taken_port(engine, database_url):
    env = {**os.environ, "FRESHREC_DATABASE_URL": database_url}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "freshrec_cli.main", "api", "--port", str(port)],
                              capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: Cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in proc.stderr

    server = subprocess.Popen([sys.executable, "-m", "freshrec_cli.main", "api", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def answers():
            assert server.poll() is None, server.stdout.read()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, what="freshrec api to answer")
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["ready"] is False  # no champion yet
    finally:
        server.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: the exit status is SIGTERM's
        assert server.wait(30) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.stdout.read()
