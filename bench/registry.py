"""Registry and serving figures: loading a version from the database, and publish-to-swap latency.

    python -m bench.registry [--model minilm] [--publishes 10] [--json]

Builds a MiniLM + LoRA artifact, stores it in a scratch database `freshrec_bench_registry`, then
  load     resolve the alias, read the bytes, verify the sha256, rebuild the model (median of 5);
  swap     a ChampionWatcher serves the champion; each publish (one transaction: version, alias, NOTIFY) is
           timed from just before its commit to the moment the watcher serves the new version, loading
           included (median and max over --publishes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--mode", default="lora", choices=["lora", "full"])
    parser.add_argument("--publishes", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from bench.common import scratch_database
    from freshrec import registry
    from freshrec.gate import Decision
    from freshrec.model import build_model, new_model_config
    from freshrec.artifacts import save_artifact
    from freshrec.serving import ChampionWatcher, load_scorer, serving_engine

    engine, url = scratch_database("freshrec_bench_registry")
    cfg = new_model_config(args.model, args.mode, max_item_tokens=48, max_user_tokens=96, history_len=5, seed=0)
    artifact = save_artifact(build_model(cfg), cfg)
    decision = Decision(True, ["benchmark"])

    def publish(before):
        with engine.begin() as conn:
            result = registry.insert_version_and_maybe_promote(
                conn, artifact=artifact, decision=decision, champion_before=before, metrics={}, batch_ids=[],
                cycle_id=None, reference_sample=None)
            started = time.perf_counter()  # the commit (and with it the NOTIFY) happens on leaving the block
        return result.version, started

    version, _ = publish(None)
    loads = []
    for _ in range(5):
        t0 = time.perf_counter()
        load_scorer(engine)
        loads.append(time.perf_counter() - t0)

    swapped = threading.Event()
    watcher = ChampionWatcher(serving_engine(url.render_as_string(hide_password=False)),
                              on_swap=lambda old, new: swapped.set()).start()
    swapped.wait(60)
    latencies = []
    for _ in range(args.publishes):
        swapped.clear()
        version, started = publish(version)
        if not swapped.wait(60):
            raise SystemExit("the watcher did not swap within 60 s")
        latencies.append(time.perf_counter() - started)
        assert watcher.scorer.version == version
    watcher.stop()
    result = {"model": args.model, "mode": args.mode, "artifact_bytes": artifact.size,
              "load_s_median": round(statistics.median(loads), 3),
              "publish_to_swap_s_median": round(statistics.median(latencies), 3),
              "publish_to_swap_s_max": round(max(latencies), 3), "publishes": len(latencies)}
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
