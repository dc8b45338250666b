"""`freshrec serve` (the update flow on a schedule) and `freshrec watch` (a serving process that hot-swaps)."""

from __future__ import annotations

import json
import signal
import sys
import threading

from freshrec.settings import Settings

DEPLOYMENT_NAME = "freshrec-update-every-5-min"  # the same name as in deploy/prefect.yaml


def serve_flow(settings: Settings, interval_s: int, name: str) -> None:
    """Register the deployment (interval schedule, one run at a time) and run its flow runs until stopped."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    from flows.update import freshrec_update

    freshrec_update.serve(
        name=name,
        interval=interval_s,
        # A run that finds the previous one still going is cancelled, not queued; the advisory lock inside
        # the flow guards the same thing independently of Prefect.
        global_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
        parameters={"model": settings.model, "catch_up": True},
        description="freshrec update cycle on an interval schedule (freshrec serve).",
        tags=["freshrec"],
    )


def watch_champion(settings: Settings, engine, as_json: bool) -> None:
    """Serve the champion in this process: print a line per swap until interrupted."""
    from freshrec.serving import ChampionWatcher

    def report(old, new):
        event = {"event": "swap", "version": new.version, "previous": old.version if old else None,
                 "sha256": new.sha256, "loaded_at": new.loaded_at.isoformat()}
        print(json.dumps(event) if as_json else
              f"{new.loaded_at:%H:%M:%S} serving version {new.version} (was {event['previous']})", flush=True)

    watcher = ChampionWatcher(engine, recheck_s=30, on_swap=report).start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("watching the champion (Ctrl-C stops)", file=sys.stderr, flush=True)
    stop.wait()
    watcher.stop()
