"""A real Prefect server and a `freshrec serve` process, for the deployment test and the UI screenshot script.

Stop order matters: a serve process whose server goes away first hangs on shutdown (shared/STACK.md), so
serve is stopped before the server, and killed if it does not stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def prefect_server(home: Path):
    """Yields the API URL of a fresh server with its own PREFECT_HOME (SQLite)."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_URL": "", "PREFECT_UI_API_URL": api}  # the UI in a browser calls this port, not 4200
    log = open(home / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                               str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(api + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("prefect server did not start: " + (home / "server.log").read_text()[-2000:])
            time.sleep(0.5)
        yield api
    finally:
        _stop(server)
        log.close()


@contextlib.contextmanager
def freshrec_serve(api: str, home: Path, env: dict, interval: int = 3600):
    """`freshrec serve` against the server at api; yields the process."""
    log = open(home / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "freshrec_cli.main", "serve", "--interval", str(interval)],
                            env={**os.environ, **env, "PREFECT_API_URL": api, "PREFECT_HOME": str(home)},
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        _stop(proc)
        log.close()
