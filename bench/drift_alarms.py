"""Does dataset drift mean something? False alarms before a known shift, detection after it, alarm share on a
real stream.

    python -m bench.drift_alarms --synthetic [--cycles 20] [--shift-cycle 10] [--cycle-rows 500] [--model tiny]
    python -m bench.drift_alarms --movielens ../shared/data/ml-latest-small [--cycles 30] [--cycle-rows 1000]

freshrec's real cycles (pull, validation, fine-tune, drift against the champion's reference, gate, commit) run
over the stream in a scratch database `freshrec_drift_alarms`. Synthetic: users' interests are redrawn at the
start of cycle --shift-cycle (1-based), after --warmup events of history; the first cycle is the cold start
(no reference, not counted). Reports
per cycle whether Evidently flagged dataset drift and which columns drifted; then the share of flagged cycles
before the shift (false alarms), how many cycles after the shift the first flag came, and for MovieLens the
share of flagged cycles over the last --cycles cycles.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def run(args) -> dict:
    import sqlalchemy as sa

    from bench.common import scratch_database
    from bench.evaluate import Stream
    from freshrec.settings import load_settings

    settings = load_settings(model=args.model, max_train_seconds=args.max_train_seconds,
                             bot_events_per_minute=1_000_000)  # MovieLens users rate dozens of films a minute
    engine, _ = scratch_database("freshrec_drift_alarms")
    if args.movielens:
        from freshrec.movielens import load_movielens

        total = load_movielens(engine, Path(args.movielens)).events_inserted
        shift = None
    else:
        from freshrec.generate import StreamSpec, insert_stream

        total = args.warmup + args.cycles * args.cycle_rows
        shift = args.warmup + (args.shift_cycle - 1) * args.cycle_rows
        insert_stream(engine, StreamSpec(users=300, items=400, events=total, drift_at=shift / total, seed=args.seed))
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
        conn.commit()
    stream = Stream(engine, settings)
    warmup = total - args.cycles * args.cycle_rows  # MovieLens: everything before the last cycles
    if warmup > 0:
        stream.ingest_only(warmup)
    rows = []
    for k in range(1, args.cycles + 1):
        _, summary = stream.cycle(args.cycle_rows)
        drift = summary.drift or {}
        rows.append({"cycle": k, "status": drift.get("status"), "dataset_drift": bool(drift.get("dataset_drift")),
                     "drifted_share": drift.get("drifted_share"), "columns": drift.get("drifted_columns", []),
                     "published": bool(summary.decision.get("published"))})
        print(f"cycle {k}: {drift.get('status')} dataset drift {drift.get('dataset_drift')} "
              f"share {drift.get('drifted_share')} {drift.get('drifted_columns')}", file=sys.stderr)
    measured = [r for r in rows if r["status"] == "measured"]
    result = {"stream": "MovieLens" if args.movielens else f"synthetic, shift at cycle {args.shift_cycle}",
              "model": args.model, "cycle_rows": args.cycle_rows, "cycles": rows,
              "flagged_share": round(sum(r["dataset_drift"] for r in measured) / max(1, len(measured)), 3),
              "published_share": round(sum(r["published"] for r in rows) / len(rows), 3)}
    if shift is not None:
        before = [r for r in measured if r["cycle"] < args.shift_cycle]
        after = [r for r in measured if r["cycle"] >= args.shift_cycle]
        result["false_alarms_before_shift"] = f"{sum(r['dataset_drift'] for r in before)} of {len(before)}"
        first = next((r["cycle"] - args.shift_cycle for r in after if r["dataset_drift"]), None)
        result["cycles_after_shift_to_first_flag"] = first  # 0: the cycle the shift starts in
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--movielens", help="folder of ml-latest-small")
    source.add_argument("--synthetic", action="store_true")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--shift-cycle", type=int, default=11)
    parser.add_argument("--cycle-rows", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=10_000, help="synthetic: events of history before the "
                        "measured cycles (ingested, not trained on), as a running system has; rates and "
                        "relative popularity are still filling in a stream without history")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--max-train-seconds", type=float, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write results.json here")
    args = parser.parse_args(argv)
    result = run(args)
    summary = {k: v for k, v in result.items() if k != "cycles"}
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "drift_alarms.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
