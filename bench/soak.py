"""A soak run of `freshrec serve`: a live generated stream, a real Prefect server, for N minutes.

    python -m bench.soak --minutes 30 --interval 20 [--model tiny] [--rate 20] [--json]

Afterwards it checks, from the database and from Prefect: that no two cycles overlapped, that every generated
row was taken exactly once (batches add up to the interactions, and the last cycles drained the stream), and
that every flow run that ran left a cycle row. It prints the cycle table and the overhead of empty cycles.
Uses FRESHREC_DATABASE_URL's server (a scratch database `freshrec_soak`) or the embedded one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--interval", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--max-train-seconds", type=float,
                        help="the training budget per cycle (default: half the interval with the tiny model, the "
                        "settings' default with any other)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import sqlalchemy as sa
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from bench.common import scratch_database
    from bench.prefect_server import freshrec_serve, prefect_server
    from freshrec.generate import StreamSpec, insert_stream
    from freshrec.summary import TABLE_HEADER, run_totals, table_row
    from freshrec_cli.serving import deployment_name

    engine, url = scratch_database("freshrec_soak")
    home = Path(tempfile.mkdtemp(prefix="freshrec-soak-"))
    env = {"FRESHREC_DATABASE_URL": url.render_as_string(hide_password=False), "FRESHREC_MODEL": args.model,
           "FRESHREC_TRAIN_MODE": "full" if args.model == "tiny" else "lora", "FRESHREC_DATA_DIR": str(home / "data")}
    budget = args.max_train_seconds or (max(5, args.interval // 2) if args.model == "tiny" else None)
    if budget:
        env["FRESHREC_MAX_TRAIN_SECONDS"] = str(budget)
    stop = threading.Event()
    events = int(args.rate * args.minutes * 60)
    generator = threading.Thread(target=insert_stream, kwargs={
        "engine": engine, "stop": stop, "progress_every_s": 300,
        "spec": StreamSpec(users=300, items=400, events=events, rate=args.rate, drift_at=0.5, noise=0.01, seed=3)})
    started = time.time()
    with prefect_server(home) as api, freshrec_serve(api, home, env, interval=args.interval):
        generator.start()
        time.sleep(args.minutes * 60)
        stop.set()
        generator.join()
        time.sleep(3 * args.interval)  # the last cycles drain what is left
        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=[deployment_name(args.interval)])))
    states: dict[str, int] = {}
    for run in runs:
        states[run.state_name] = states.get(run.state_name, 0) + 1
    with engine.connect() as conn:
        cycles = [dict(r) for r in conn.execute(sa.text(
            "SELECT id, status, started_at, finished_at, rows_pulled, rows_quarantined, trained, published, "
            "summary -> 'stage_seconds' AS stages, flow_run_id, summary FROM update_cycles ORDER BY id")).mappings()]
        interactions = conn.execute(sa.text("SELECT count(*) FROM interactions")).scalar_one()
        consumed = conn.execute(sa.text("SELECT COALESCE(sum(row_count), 0) FROM ingest_batches")).scalar_one()
    summaries = [c["summary"] for c in cycles if c["summary"]]
    overlaps = sum(1 for a, b in zip(cycles, cycles[1:])
                   if a["finished_at"] and b["started_at"] < a["finished_at"] and b["status"] != "skipped")
    run_ids = {str(r.id) for r in runs if r.state_name in ("Completed", "Failed")}
    cycle_runs = {c["flow_run_id"] for c in cycles}
    empty = [sum((c["stages"] or {}).values()) for c in cycles if c["status"] == "empty"]
    empty_runs = [r.total_run_time.total_seconds() for r in runs
                  if r.state_name == "Completed" and str(r.id) in {c["flow_run_id"] for c in cycles
                                                                   if c["status"] == "empty"}]
    result = {
        "minutes": args.minutes, "interval_s": args.interval, "model": args.model, "events_generated": interactions,
        "rows_consumed": int(consumed), "flow_runs": states, "cycles": len(cycles),
        "cycle_statuses": {s: sum(c["status"] == s for c in cycles) for s in {c["status"] for c in cycles}},
        "overlapping_cycles": overlaps, "runs_without_cycle_row": len(run_ids - cycle_runs),
        "published": sum(bool(c["published"]) for c in cycles),
        # the demo's line over a run: candidates published, cycles with dataset drift, fresh-row coverage
        "totals": run_totals(summaries),
        "empty_cycle_stage_s_median": round(statistics.median(empty), 3) if empty else None,
        "empty_flow_run_s_median": round(statistics.median(empty_runs), 3) if empty_runs else None,
        "wall_s": round(time.time() - started),
        "table": [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in c.items()
                   if k not in ("stages", "summary")}
                  for c in cycles],
    }
    ok = overlaps == 0 and consumed == interactions and not result["runs_without_cycle_row"]
    result["ok"] = ok
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print(f"{'cycle':>5} {'status':<10} {'rows':>6} {'quar.':>5} {'trained':>7} {'published':>9} started")
        for c in cycles:
            print(f"{c['id']:>5} {c['status']:<10} {c['rows_pulled'] or 0:>6} {c['rows_quarantined'] or 0:>5} "
                  f"{str(bool(c['trained'])):>7} {str(bool(c['published'])):>9} {c['started_at']:%H:%M:%S}")
        print("\n" + "\n".join([TABLE_HEADER, *(table_row(s) for s in summaries if s.get("trained"))]))
        print(json.dumps({k: v for k, v in result.items() if k != "table"}, indent=1, default=str))
    return result


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:])["ok"] else 1)
