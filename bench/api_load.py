"""Load on `freshrec api`: requests/s and p50/p99 latency of top-k over the whole catalogue, alone and during a swap.

    python -m bench.api_load [--model tiny|minilm] [--items 400] [--seconds 10] [--clients 4] [--k 10]

Builds a scratch database (freshrec_bench_api) next to the configured one, inserts a synthetic catalogue
and stream, publishes one champion, and serves the app with uvicorn on a free 127.0.0.1 port in this
process (the service runs as the serving role). Then `clients` threads call GET /users/{u}/top?k=K for
random users, first for `seconds` alone, then for `seconds` while a second version is published (the
service loads it, embeds the catalogue and swaps). Bounded by --seconds and --max-requests; loopback only.
Prints one JSON object per phase.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import socket
import sys
import threading
import time

import numpy as np


@contextlib.contextmanager
def background_server(app, host: str = "127.0.0.1"):
    """Serve `app` with uvicorn in a thread on a free port of host; yields the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind((host, 0))
    sock.listen(512)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def wait_until(condition, timeout: float = 120.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def load(base: str, users: list[int], *, seconds: float, clients: int, k: int, max_requests: int) -> dict:
    """`clients` threads calling top-k until `seconds` or `max_requests` pass; latencies of 200 answers."""
    import httpx

    latencies: list[float] = []
    versions: set[int] = set()
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=base, timeout=60) as http:
            while time.monotonic() < stop_at:
                with lock:
                    if len(latencies) + errors[0] >= max_requests:
                        return
                started = time.perf_counter()
                r = http.get(f"/users/{rng.choice(users)}/top", params={"k": k})
                elapsed = time.perf_counter() - started
                with lock:
                    if r.status_code == 200:
                        latencies.append(elapsed)
                        versions.add(r.json()["version"])
                    else:
                        errors[0] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    ms = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": errors[0], "seconds": round(wall, 2),
            "requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
            "versions_seen": sorted(versions)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny (random) or minilm")
    parser.add_argument("--items", type=int, default=400, help="catalogue size")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase (at most 60)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-requests", type=int, default=5000, help="per phase")
    args = parser.parse_args(argv)
    args.seconds = min(args.seconds, 60.0)

    import torch

    from bench.common import scratch_database
    from freshrec import generate, registry
    from freshrec.gate import Decision
    from freshrec.api import create_app
    from freshrec.model import build_model, new_model_config
    from freshrec.artifacts import save_artifact
    from freshrec.serving import serving_engine
    from freshrec.settings import TrainingSettings

    engine, url = scratch_database("freshrec_bench_api")
    generate.insert_stream(engine, generate.StreamSpec(users=args.users, items=args.items, events=args.events,
                                                       seed=0))

    defaults = TrainingSettings()  # the inputs new models read by default

    def publish(seed: int, champion_before: int | None) -> int:
        cfg = new_model_config(args.model, "lora", max_item_tokens=48, max_user_tokens=96, history_len=5,
                               seed=seed, category_rate=defaults.category_rate,
                               recent_rate=defaults.recent_rate, item_quality=defaults.item_quality,
                               session_rate=defaults.session_rate)
        model = build_model(cfg)
        with torch.no_grad():  # an untrained head ranks by the like-rates alone: give each version its own
            generator = torch.Generator().manual_seed(seed)
            for p in model.head.parameters():
                p.add_(torch.randn(p.shape, generator=generator) * 0.5)
        artifact = save_artifact(model, cfg)
        with engine.begin() as conn:
            return registry.insert_version_and_maybe_promote(
                conn, artifact=artifact, decision=Decision(True, ["bench"]), champion_before=champion_before,
                metrics={}, batch_ids=[], cycle_id=None, reference_sample=None).version

    v1 = publish(0, None)
    reader = serving_engine(url.render_as_string(hide_password=False))
    app = create_app(reader, max_candidates=max(args.items, 1))
    users = list(range(1, args.users + 1))
    with background_server(app) as base:
        import httpx

        started = time.monotonic()
        wait_until(lambda: httpx.get(base + "/readyz").status_code == 200, what="the first champion")
        print(json.dumps({"phase": "first load (model + catalogue embeddings)", "model": args.model,
                          "items": args.items, "seconds": round(time.monotonic() - started, 2)}), flush=True)
        load(base, users, seconds=min(2.0, args.seconds), clients=args.clients, k=args.k, max_requests=50)  # warm-up
        alone = load(base, users, seconds=args.seconds, clients=args.clients, k=args.k,
                     max_requests=args.max_requests)
        print(json.dumps({"phase": "alone", "model": args.model, "items": args.items, "clients": args.clients,
                          "k": args.k, **alone}), flush=True)
        swap_seconds: list[float] = []

        def swap():  # publish a second version shortly after the load starts; time until the service serves it
            time.sleep(min(1.0, args.seconds / 4))
            v2 = publish(1, v1)  # builds the model here, then commits: the clock starts at the commit
            published = time.monotonic()
            wait_until(lambda: httpx.get(base + "/readyz").json()["champion_version"] == v2, what="the swap")
            swap_seconds.append(time.monotonic() - published)

        publisher = threading.Thread(target=swap)
        publisher.start()
        during = load(base, users, seconds=args.seconds, clients=args.clients, k=args.k,
                      max_requests=args.max_requests)
        publisher.join()
        print(json.dumps({"phase": "during a swap", "model": args.model, "items": args.items,
                          "clients": args.clients, "k": args.k, **during,
                          "swap_seconds_after_publish": round(swap_seconds[0], 2) if swap_seconds else None}),
              flush=True)
    reader.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
