"""Seconds per stage of an update cycle, for a cold start, a warm cycle of N new rows, and an empty cycle.

    python -m bench.cycle_stages --model minilm --rows 1000 [--json]

Runs against a scratch database `freshrec_bench` on FRESHREC_DATABASE_URL's server (or the embedded one), in one
process, through freshrec.steps: the stage functions the flow's tasks call, with one Settings (the environment's
plus this run's explicit overrides). Prefect's own overhead per task (tens of milliseconds) is not in these figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time


def run_cycle(settings, engine) -> dict:
    """One cycle's stages in the flow's order (flows/update.run_one_cycle), timed; returns the cycle summary."""
    from freshrec import steps

    seconds: dict[str, float] = {}

    def timed(name: str, fn, *args):
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - started, 3)

    cycle_id = steps.begin(settings, engine)
    pulled = timed("pull", steps.pull, settings, engine)
    if pulled.rows == 0:
        return steps.record_empty(settings, engine, cycle_id, pulled, seconds).to_json()
    validated = timed("validate", steps.validate, settings, engine, pulled)
    outcome = report = None
    if validated.accepted:
        champion = timed("fine_tune", steps.load_champion, settings, engine)
        outcome = timed("fine_tune", steps.fine_tune, settings, engine, pulled, validated, champion)
        report = timed("drift", steps.drift, settings, outcome, champion)
    decision = steps.decide(settings, validated, outcome, report)
    summary = timed("publish", steps.commit, settings, engine, cycle_id, pulled, validated, outcome, report,
                    decision, seconds)
    summary.stage_seconds = dict(seconds)
    return summary.to_json()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--train-mode", default="lora", choices=["lora", "full"])
    parser.add_argument("--rows", type=int, default=1000, help="new rows in the warm cycle")
    parser.add_argument("--max-train-seconds", type=float, default=60.0)
    parser.add_argument("--database", default="freshrec_bench",
                        help="scratch database (dropped and recreated) on the configured server")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from bench.common import scratch_database
    from freshrec.generate import StreamSpec, insert_stream
    from freshrec.settings import load_settings

    # measure every stage, whatever the model's quality: a gate that publishes every trained candidate
    settings = load_settings(model=args.model, train_mode=args.train_mode, max_train_seconds=args.max_train_seconds,
                             publish_thresholds=[{"metric": "auc", "value": 0.0}], max_probe_change=1.0)
    engine, _ = scratch_database(args.database, settings)
    spec = StreamSpec(users=300, items=400, events=args.rows, drift_at=None, seed=1)
    rows = []
    insert_stream(engine, spec)
    for label in ("cold start", f"warm, {args.rows} new rows", "empty"):
        if label.startswith("warm"):
            insert_stream(engine, StreamSpec(**{**spec.__dict__, "seed": 2}))
        started = time.perf_counter()
        summary = run_cycle(settings, engine)
        wall = time.perf_counter() - started
        rows.append({"cycle": label, "rows": summary["rows_pulled"], "wall_s": round(wall, 2),
                     **{f"{k}_s": v for k, v in summary["stage_seconds"].items()},
                     "train_examples_per_s": (summary.get("train") or {}).get("examples_per_s"),
                     "train_rows": (summary.get("train") or {}).get("rows"),
                     "train_stopped_by": (summary.get("train") or {}).get("stopped_by")})
    result = {"model": args.model, "train_mode": args.train_mode, "cycles": rows,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if args.json:
        print(json.dumps(result))
    else:
        keys = ["cycle", "rows", "wall_s", "pull_s", "validate_s", "fine_tune_s", "drift_s", "publish_s",
                "train_examples_per_s", "train_rows", "train_stopped_by"]
        print(" | ".join(keys))
        for r in rows:
            print(" | ".join(str(r.get(k, "-")) for k in keys))
        print(f"peak RSS {result['peak_rss_mb']} MB")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
