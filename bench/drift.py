"""Drift cost: seconds to compare N rows per side (report and HTML included), with and without the sample cap.

    python -m bench.drift [--sizes 10000 100000] [--cap 20000] [--json]

The rows are synthetic drift columns with a shift in some of them, as a cycle hands them to Evidently.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def frame(n: int, shifted: bool, seed: int):
    import numpy as np
    import pandas as pd

    from freshrec.drift import COLUMNS

    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "hour": rng.integers(0, 24, n), "dwell_ms": rng.lognormal(9.3 if shifted else 9, 1, n),
        "item_text_len": rng.integers(40, 90, n), "item_popularity": rng.normal(0, 1.5, n),
        "user_activity": rng.normal(0, 1, n), "item_rate": rng.beta(3, 3, n),
        "user_category_rate": rng.beta(2, 4, n) if shifted else rng.beta(4, 3, n),
        "prediction": rng.beta(2, 4 if shifted else 2, n),
        "event_type": rng.choice(["click", "skip", "like"], n),
        "category": rng.choice([f"c{i}" for i in range(8)], n, p=[0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05]
                               if shifted else None),
        "label": rng.choice(["0", "1"], n),
    })[COLUMNS]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--cap", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from freshrec.drift import measure_drift
    from freshrec.settings import DriftSettings

    measure_drift(frame(500, False, 0), frame(500, True, 1), DriftSettings(drift_share=0.5, drift_sample_cap=args.cap, drift_min_rows=30))
    rows = []
    for n in args.sizes:
        ref, cur = frame(n, False, 1), frame(n, True, 2)
        for cap in sorted({args.cap, n}):
            started = time.perf_counter()
            report = measure_drift(ref, cur, DriftSettings(drift_share=0.5, drift_sample_cap=cap, drift_min_rows=30))
            rows.append({"rows_per_side": n, "sample_cap": cap, "rows_compared": report.result.current_rows,
                         "seconds": round(time.perf_counter() - started, 2),
                         "drifted": [c for c, v in report.result.columns.items() if v.drifted],
                         "html_mb": round(len(report.html) / 1e6, 1)})
    if args.json:
        print(json.dumps(rows))
    else:
        print("rows per side | cap | rows compared | seconds | HTML MB | drifted columns")
        for r in rows:
            print(f"{r['rows_per_side']} | {r['sample_cap']} | {r['rows_compared']} | {r['seconds']} | "
                  f"{r['html_mb']} | {', '.join(r['drifted'])}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
