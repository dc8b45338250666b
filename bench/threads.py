"""Training speed on a shared CPU: examples/s alone and beside busy processes, per thread setting.

    python -m bench.threads [--model minilm] [--steps 8] [--competitors 2] [--repeats 3] [--json]

Each setting trains in a fresh process (OpenMP reads OMP_WAIT_POLICY once, when torch loads it) with freshrec's
own `train()` on the same batches: 1 thread; every core with OpenMP's default (active, spinning) wait policy,
which was freshrec's old default; every core with the passive policy; and freshrec's default (freshrec.cpu:
passive, every core but one). "busy" runs --competitors processes that spin on the CPU (as PostgreSQL, Prefect
and serving do on a shared node) for the duration of the measurement; they are stopped afterwards. Settings alternate within each load, --repeats times,
and the medians are reported. The ratio to
the 1-thread figure measured beside it is what matters: training should never fall below single-thread speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETTINGS = {  # name -> (threads, OMP_WAIT_POLICY or None for OpenMP's default)
    "1 thread": (1, "PASSIVE"),
    "all cores, active wait (old default)": (-1, None),
    "all cores, passive wait": (-1, "PASSIVE"),
    "freshrec default": (0, "PASSIVE"),
}


def measure(model: str, threads: int, steps: int, batch: int) -> dict:
    """Runs inside the child process: train `steps` steps with freshrec's loop, return examples/s."""
    import numpy as np
    import pandas as pd

    from bench.training import texts
    from freshrec.cpu import usable_cores
    from freshrec.model import build_model, load_tokenizer, new_model_config
    from freshrec.settings import TrainingSettings
    from freshrec.trainer import train

    threads = usable_cores() if threads < 0 else threads
    cfg = new_model_config(model, "lora" if model != "tiny" else "full", max_item_tokens=64, max_user_tokens=64,
                           history_len=5, seed=0)
    n = batch * (steps + 2)
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"user_text": texts(n, 64, 1), "item_text": texts(n, 64, 2), "label": rng.integers(0, 2, n),
                         "user_rate": rng.random(n), "item_rate": rng.random(n), "user_log_n": rng.random(n),
                         "item_log_n": rng.random(n), "user_category_rate": rng.random(n)})
    tok, net = load_tokenizer(model), build_model(cfg)
    base = dict(model=model, train_mode=cfg.train_mode, device="cpu", batch_size=batch, epochs=1,
                max_train_seconds=1e9, cpu_threads=threads)
    train(net, tok, cfg, data.iloc[:2 * batch], TrainingSettings(**base, max_train_steps=2))  # warm-up
    stats = train(net, tok, cfg, data.iloc[2 * batch:], TrainingSettings(**base, max_train_steps=steps))
    import torch

    return {"examples_per_s": round(stats.examples_per_s, 2), "threads": torch.get_num_threads(),
            "wait_policy": os.environ.get("OMP_WAIT_POLICY", "(OpenMP default)")}


def child(name: str, model: str, steps: int, batch: int) -> dict:
    threads, policy = SETTINGS[name]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    code = (f"import json; from bench.threads import measure; "
            f"print(json.dumps(measure({model!r}, {threads}, {steps}, {batch})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def spinners(count: int) -> list[subprocess.Popen]:
    """Processes that keep a core busy; each ends by itself after 15 minutes at the latest."""
    code = "import time\nend = time.time() + 900\nwhile time.time() < end: pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--competitors", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per setting; medians reported")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from freshrec.cpu import cpu_threads, usable_cores

    result = {"model": args.model, "cores": usable_cores(), "default_threads": cpu_threads(0),
              "competitors": args.competitors, "rows": []}
    for load in ("alone", "busy"):
        procs = spinners(args.competitors) if load == "busy" else []
        try:
            time.sleep(1 if procs else 0)
            runs: dict[str, list[dict]] = {name: [] for name in SETTINGS}
            for _ in range(args.repeats):  # settings alternate, so a change in the machine's load hits all
                for name in SETTINGS:
                    runs[name].append(child(name, args.model, args.steps, args.batch))
            for name, measured in runs.items():
                speeds = [m["examples_per_s"] for m in measured]
                row = {"load": load, "setting": name, **measured[0], "examples_per_s": statistics.median(speeds),
                       "runs": speeds}
                result["rows"].append(row)
                print(f"{load:5} {name:38} {row['threads']} threads {row['examples_per_s']:8.1f} examples/s "
                      f"(runs {speeds})", file=sys.stderr)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    for row in result["rows"]:
        single = next(r for r in result["rows"] if r["load"] == row["load"] and r["setting"] == "1 thread")
        row["ratio_to_1_thread"] = round(row["examples_per_s"] / single["examples_per_s"], 3)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{args.model}, {result['cores']} cores, default {result['default_threads']} thread(s); busy = "
              f"{args.competitors} spinning processes\n\n| load | setting | threads | examples/s | vs 1 thread |\n"
              "|---|---|---|---|---|")
        for r in result["rows"]:
            print(f"| {r['load']} | {r['setting']} | {r['threads']} | {r['examples_per_s']} | "
                  f"{r['ratio_to_1_thread']} |")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
