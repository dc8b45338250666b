"""Seconds per stage of an update cycle, for a cold start, a warm cycle of N new rows, and an empty cycle.

    python -m bench.cycle_stages --model minilm --rows 1000 [--json]

Runs against a scratch database `freshrec_bench` on FRESHREC_DATABASE_URL's server (or the embedded one),
through the real Prefect flow, in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--train-mode", default="lora", choices=["lora", "full"])
    parser.add_argument("--rows", type=int, default=1000, help="new rows in the warm cycle")
    parser.add_argument("--max-train-seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

    from bench.common import scratch_database
    from freshrec.generate import StreamSpec, insert_stream
    from freshrec.settings import load_settings
    from freshrec_cli.cycles import run_cycle

    engine, url = scratch_database("freshrec_bench")
    os.environ.update({"FRESHREC_DATABASE_URL": url.render_as_string(hide_password=False),
                       "FRESHREC_MODEL": args.model, "FRESHREC_TRAIN_MODE": args.train_mode,
                       "FRESHREC_MAX_TRAIN_SECONDS": str(args.max_train_seconds), "FRESHREC_PUBLISH_THRESHOLDS": '[{"metric": "auc", "value": 0.0}]',
                       "FRESHREC_MAX_PROBE_CHANGE": "1.0"})  # measure every stage, whatever the model's quality
    settings = load_settings()
    spec = StreamSpec(users=300, items=400, events=args.rows, drift_at=None, seed=1)
    rows = []
    insert_stream(engine, spec)
    for label in ("cold start", f"warm, {args.rows} new rows", "empty"):
        if label.startswith("warm"):
            insert_stream(engine, StreamSpec(**{**spec.__dict__, "seed": 2}))
        started = time.perf_counter()
        summary = run_cycle(settings)
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
        keys = ["cycle", "rows", "wall_s", "pull_s", "validate_s", "train_s", "drift_s", "publish_s",
                "train_examples_per_s", "train_rows", "train_stopped_by"]
        print(" | ".join(keys))
        for r in rows:
            print(" | ".join(str(r.get(k, "-")) for k in keys))
        print(f"peak RSS {result['peak_rss_mb']} MB")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
