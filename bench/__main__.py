"""All performance figures in one process and one run:  python -m bench [--quick] [--json]

  cycles     seconds per stage of a MiniLM + LoRA cycle of 1k and 10k new rows, and of an empty cycle
  ingestion  pull + validate + denoise rows/s against raw COPY of the same rows (ratio)
  training   freshrec's update step against a bare PyTorch loop, examples/s (ratio)
  drift      seconds for 10k rows per side
  registry   publish-to-swap latency and the champion's load time
  memory     peak RSS of the process (the largest cycle dominates)

--quick uses the tiny model and smaller sizes (a smoke run of the suite itself).
Results also go to bench/results/performance.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/results/performance.json"))
    args = parser.parse_args(argv)
    model = "tiny" if args.quick else "minilm"
    started = time.perf_counter()

    from bench import cycle_stages, drift, ingest, registry, training

    figures: dict = {"model": model, "cycles": {}}
    with contextlib.redirect_stdout(sys.stderr):  # each part's own report goes to stderr, as progress
        for rows in ([500] if args.quick else [1000, 10_000]):
            result = cycle_stages.main(["--model", model, "--rows", str(rows), "--json",
                                        *(["--train-mode", "full"] if args.quick else [])])
            figures["cycles"][rows] = result["cycles"]
        figures["ingestion"] = ingest.main(["--sizes", *(["100000"] if args.quick else ["100000", "1000000"]),
                                            "--json"])["sizes"]
        figures["training"] = training.run_mode(model, "lora", 32, 64, 4 if args.quick else 8, "cpu")
        figures["drift"] = drift.main(["--sizes", "10000", "--json"])
        figures["registry"] = registry.main(["--model", model, "--publishes", "5" if args.quick else "10", "--json"])
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures["wall_s"] = round(time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1, default=str))
    print(json.dumps(figures, default=str) if args.json else table(figures))
    return figures


def table(f: dict) -> str:
    lines = [f"| figure ({f['model']}, this machine) | value |", "|---|---|"]
    for rows, cycles in f["cycles"].items():
        for c in cycles:
            stages = ", ".join(f"{k[:-2]} {v}" for k, v in c.items()
                               if k.endswith("_s") and k not in ("wall_s", "train_examples_per_s"))
            speed = f", training {c['train_examples_per_s']} examples/s" if c.get("train_examples_per_s") else ""
            lines.append(f"| cycle: {c['cycle']} ({c['rows']} rows) | {c['wall_s']} s wall ({stages}{speed}) |")
    for r in f["ingestion"]:
        lines.append(f"| ingestion, {r['rows']} rows: end to end / raw COPY | {r['end_to_end_rows_per_s']:,} / "
                     f"{r['copy_rows_per_s']:,} rows/s, ratio {r['ratio_to_copy']} |")
    t = f["training"]
    lines.append(f"| training ({t['mode']}, batch {t['batch']}, seq {t['seq']}): freshrec / bare loop | "
                 f"{t['freshrec_examples_per_s']} / {t['bare_examples_per_s']} examples/s, ratio {t['ratio']} |")
    for d in f["drift"]:
        if d["rows_compared"] == d["rows_per_side"]:
            lines.append(f"| drift, {d['rows_per_side']} rows per side | {d['seconds']} s |")
    r = f["registry"]
    lines.append(f"| publish to swap (median / max) | {r['publish_to_swap_s_median']} / {r['publish_to_swap_s_max']} s |")
    lines.append(f"| load the champion from the database | {r['load_s_median']} s |")
    lines.append(f"| peak RSS of the process | {f['peak_rss_mb']} MB |")
    lines.append(f"| wall time of the suite | {f['wall_s']} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
