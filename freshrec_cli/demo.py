"""`freshrec demo`: a fresh database, a live synthetic stream with a drift point, and update cycles on it."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa
from pydantic import SecretStr

from freshrec import migrations
from freshrec.db import check_connection, create_engine, describe, recreate_database
from freshrec.generate import StreamSpec, insert_stream
from freshrec.settings import Settings
from freshrec.summary import TABLE_HEADER, run_totals, table_row
from freshrec_cli.cycles import run_cycle
from freshrec_cli.output import progress
from tasks.common import database_url_for

DEMO_DATABASE = "freshrec_demo"


@dataclass(frozen=True)
class DemoProfile:
    """Sizes that fit the time budget: about 6-7 minutes with MiniLM on 2 CPU cores, 1 minute with tiny."""
    warmup_events: int
    rate: float  # live events per second while cycles run
    cycles: int
    min_interval_s: float  # shortest time between cycle starts
    max_train_seconds: float
    train_mode: str


# The live rate is one the training budget keeps up with: a 28 s budget trains about 850 examples of MiniLM LoRA on
# a 2-core machine (~30/s), three quarters of them fresh in the first pass, so ~600 new rows a cycle; at 15 events/s
# (~870 rows a cycle) the carried-over rows grew every cycle and fresh-row coverage fell from 0.94 to 0.31.
PROFILES = {
    "tiny": DemoProfile(warmup_events=1500, rate=60, cycles=5, min_interval_s=5, max_train_seconds=6,
                        train_mode="full"),  # a random encoder has nothing for LoRA to adapt
    "default": DemoProfile(warmup_events=1200, rate=10, cycles=6, min_interval_s=20, max_train_seconds=28,
                           train_mode="lora"),
}


@contextlib.contextmanager
def chatter_to(log_path, verbose: bool):
    """Everything written to stderr (Prefect's console logs, Great Expectations, warnings, the embedded server,
    freshrec's own log lines) goes to log_path; yields a function that still writes a line to the terminal.
    With verbose, stderr stays where it is."""
    if verbose:
        yield progress
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_path, "ab") as log_file:
        os.dup2(log_file.fileno(), 2)  # the file descriptor: C libraries and child processes included
    terminal = os.fdopen(os.dup(saved), "w", buffering=1)

    def say(message: str) -> None:
        terminal.write(message.rstrip("\n") + "\n")
        progress(message)  # and into the log, for context

    try:
        yield say
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        terminal.close()


def run_demo(settings: Settings, cycles: int | None = None, as_json: bool = False, verbose: bool = False) -> dict:
    log_path = (settings.data_dir / "demo.log").absolute()
    with chatter_to(log_path, verbose) as say:
        result = _run_demo(settings, cycles, as_json, say)
    if not as_json:
        print(f"logs (Prefect, Great Expectations, freshrec): {log_path if not verbose else 'shown above'}"
              + ("" if verbose else "   (--verbose shows them here)"))
    return {**result, "log": None if verbose else str(log_path)}


def _run_demo(settings: Settings, cycles: int | None, as_json: bool, progress) -> dict:
    started = time.monotonic()
    profile = PROFILES["tiny" if settings.model == "tiny" else "default"]
    n_cycles = cycles or profile.cycles
    # A fresh demo database on the configured (or embedded) server, so the demo never touches real data.
    url = recreate_database(database_url_for(settings), DEMO_DATABASE)
    # The demo's choices, in one Settings handed to every flow run (the environment is left alone).
    demo_settings = settings.model_copy(update={
        "database_url": SecretStr(url.render_as_string(hide_password=False)), "train_mode": profile.train_mode,
        "max_train_seconds": profile.max_train_seconds})
    reports_dir = demo_settings.resolved_reports_dir.resolve()
    engine = create_engine(url)
    check_connection(engine)
    migrations.upgrade(engine)
    live_events = int(profile.rate * (n_cycles + 2) * max(profile.min_interval_s, 40))
    total = profile.warmup_events + live_events
    # Interests shift about halfway through the cycles.
    drift_at = (profile.warmup_events + profile.rate * n_cycles * 0.5 * max(profile.min_interval_s, 30)) / total
    spec = StreamSpec(users=120, items=400, events=total, rate=profile.rate, drift_at=min(drift_at, 0.95),
                      seed=demo_settings.seed, noise=0.02, bulk_first=profile.warmup_events)
    progress(f"freshrec demo: model {settings.model} ({profile.train_mode}), {n_cycles} cycles, database "
             f"{describe(url)}, reports in {reports_dir}")
    progress(f"inserting {profile.warmup_events} past events, then streaming {profile.rate:g} events/s "
             f"(2% deliberately bad rows; user interests shift at event {int(spec.drift_at * total)})")
    stop = threading.Event()
    errors: list[BaseException] = []

    def stream() -> None:
        try:
            insert_stream(engine, spec, stop=stop, progress_every_s=30)
        except BaseException as exc:  # surfaced after the cycles
            errors.append(exc)

    generator = threading.Thread(target=stream, name="freshrec-demo-stream", daemon=True)
    generator.start()
    with engine.connect() as conn:
        while conn.execute(sa.text("SELECT count(*) FROM interactions")).scalar_one() < profile.warmup_events:
            if errors or not generator.is_alive():
                break
            time.sleep(0.2)
    summaries = []
    lines = [TABLE_HEADER]
    try:
        for i in range(n_cycles):
            cycle_start = time.monotonic()
            progress(f"--- cycle {i + 1}/{n_cycles} ---")
            summary = run_cycle(demo_settings)
            summaries.append(summary)
            lines.append(table_row(summary))
            if not as_json:
                print(("\n" if i == 0 else "") + (TABLE_HEADER + "\n" if i == 0 else "") + lines[-1], flush=True)
            if errors:
                raise errors[0]
            if i < n_cycles - 1:
                time.sleep(max(0.0, profile.min_interval_s - (time.monotonic() - cycle_start)))
    finally:
        stop.set()
        generator.join(timeout=10)
    reports = [s["drift"]["report_path"] for s in summaries if (s.get("drift") or {}).get("report_path")]
    wall = time.monotonic() - started
    if not as_json:
        print("\n" + "\n".join(lines))
        print(f"\n{len(summaries)} cycles in {wall:.0f} s; published: "
              + (", ".join(f"v{s['decision']['version']} (cycle {s['cycle_id']})" for s in summaries
                           if (s.get("decision") or {}).get("published")) or "none"))
        print(run_totals(summaries))
        print("drift reports (open in a browser):\n  " + ("\n  ".join(reports) if reports else "none yet"))
        print("look at what it did: " + ("FRESHREC_EMBEDDED_DATABASE=freshrec_demo" if settings.database_url is None
                                         else f"FRESHREC_DATABASE_URL=<your URL with database {DEMO_DATABASE}>")
              + " freshrec models list   (also: status, quarantine stats, reports list)")
    return {"cycles": summaries, "wall_seconds": round(wall, 1), "database": describe(url),
            "reports_dir": str(reports_dir), "reports": reports, "model": settings.model}
