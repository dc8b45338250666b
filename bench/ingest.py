"""Ingestion throughput: pull + validate + denoise, side by side with raw COPY of the same rows.

    python -m bench.ingest [--sizes 100000 1000000] [--json]

Builds a scratch database `freshrec_bench_ingest` (FRESHREC_DATABASE_URL's server, or the embedded one) with
a synthetic stream carrying 1% bad rows, lets each consumer take a first small batch (so later batches look up
earlier copies of retried events, as in steady state), then for each size measures in one process:
  copy      COPY (the pull query) TO STDOUT, CSV, into memory: the physical reference;
  pull      freshrec's pull (the same COPY, parsed by Arrow into pandas);
  validate  signal columns + GX suites (lenient verdict, strict gate) + cross-batch duplicate lookup;
  commit    cursor, manifest and quarantine rows in one transaction.
and GX's share: the seconds inside GX's two suite runs over pull + validate + commit (the part of a cycle
before training; a whole cycle also trains and measures drift, so GX's share of it is smaller still):

    python -m bench.ingest --sizes 50000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--database", default="freshrec_bench_ingest", help="scratch database (dropped first)")
    args = parser.parse_args(argv)

    import sqlalchemy as sa

    from bench.common import scratch_database
    from freshrec import ingest, quality
    from freshrec.cycles import begin_cycle, commit_batch
    from freshrec.db import copy_out_csv
    from freshrec.generate import StreamSpec, insert_stream
    from freshrec.settings import load_settings
    from freshrec.sqlfiles import query

    settings = load_settings()
    engine, _ = scratch_database(args.database)
    first = 10_000
    total = sum(args.sizes) + first * len(args.sizes)
    started = time.perf_counter()
    insert_stream(engine, StreamSpec(users=20_000, items=5_000, events=total, noise=0.01, chunk=50_000, seed=1))
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
        conn.commit()
    print(f"inserted {total} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    rules = settings.quality

    def take(consumer: str, n: int, timings: dict | None = None):
        t0 = time.perf_counter()
        pulled = ingest.pull_new_interactions(engine, consumer, n)
        t1 = time.perf_counter()
        validated = quality.check_batch(engine, pulled, rules)
        t2 = time.perf_counter()
        cycle_id = begin_cycle(engine, consumer)
        commit_batch(engine, cycle_id, pulled, validated)
        t3 = time.perf_counter()
        if timings is not None:
            timings.update(pull=t1 - t0, validate=t2 - t1, commit=t3 - t2)
        return pulled, validated

    rows = []
    for i, size in enumerate(args.sizes):
        consumer = f"bench-{i}"
        # Every earlier consumer's rows are skipped first, then a small first batch is taken.
        skip = sum(args.sizes[:i]) + first * i
        if skip:
            take(consumer, skip)
        take(consumer, first)
        cursor = ingest.read_cursor(engine, consumer)
        t0 = time.perf_counter()
        raw = copy_out_csv(engine, query("pull_batch"), {**cursor.as_params(), "max_rows": size,
                                                         "max_field_chars": settings.max_field_chars})
        copy_s = time.perf_counter() - t0
        timings: dict = {}
        pulled, validated = take(consumer, size, timings)
        assert pulled.rows == size
        end_to_end = timings["pull"] + timings["validate"]
        rows.append({
            "rows": size, "copy_mb": round(len(raw) / 1e6, 1),
            "copy_rows_per_s": round(size / copy_s), "pull_rows_per_s": round(size / timings["pull"]),
            "validate_rows_per_s": round(size / timings["validate"]),
            "end_to_end_rows_per_s": round(size / end_to_end),
            "ratio_to_copy": round(copy_s / end_to_end, 3),
            "with_commit_rows_per_s": round(size / (end_to_end + timings["commit"])),
            "quarantined": len(validated.quarantined),
            "gx_s": validated.gx_statistics.get("gx_seconds"),
            "signals_s": validated.gx_statistics.get("signal_seconds"),
            "gx_share_of_ingest": round(validated.gx_statistics.get("gx_seconds", 0.0)
                                        / (end_to_end + timings["commit"]), 3),
            "seconds": {k: round(v, 3) for k, v in {"copy": copy_s, **timings}.items()},
        })
    result = {"sizes": rows}
    if args.json:
        print(json.dumps(result))
    else:
        cols = ["rows", "copy_rows_per_s", "pull_rows_per_s", "validate_rows_per_s", "end_to_end_rows_per_s",
                "ratio_to_copy", "with_commit_rows_per_s", "quarantined", "gx_s", "gx_share_of_ingest"]
        print(" | ".join(cols))
        for r in rows:
            print(" | ".join(str(r[c]) for c in cols))
    return result


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    main(sys.argv[1:])
