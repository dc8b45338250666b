"""`freshrec serve` (the update flow on a schedule) and `freshrec watch` (a serving process that hot-swaps)."""

from __future__ import annotations

import json
import signal
import sys
import threading

from freshrec.settings import Settings

def deployment_name(interval_s: int, runner: str = "serve") -> str:
    """A deployment's name says who runs it and how often: serve-every-30s, worker-every-5-min, ...

    `freshrec serve` registers 'serve-every-...', deploy/prefect.yaml 'worker-every-...': the two never
    overwrite each other, and a name never claims a schedule the deployment does not have.
    """
    if interval_s % 3600 == 0:
        every = f"{interval_s // 3600}-h"
    elif interval_s % 60 == 0:
        every = f"{interval_s // 60}-min"
    else:
        every = f"{interval_s}s"
    return f"{runner}-every-{every}"


def _deployment_busy(client, deployment_id) -> bool:
    """A run of the deployment is running, starting, or due (scheduled for now or earlier)."""
    from datetime import datetime, timezone

    from prefect.client.schemas.filters import (DeploymentFilter, DeploymentFilterId, FlowRunFilter,
                                                FlowRunFilterExpectedStartTime, FlowRunFilterState,
                                                FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType

    deployments = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
    active = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
        any_=[StateType.RUNNING, StateType.PENDING, StateType.CANCELLING])))
    due = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                        expected_start_time=FlowRunFilterExpectedStartTime(before_=datetime.now(timezone.utc)))
    return any(client.read_flow_runs(deployment_filter=deployments, flow_run_filter=f, limit=1)
               for f in (active, due))


def trigger_on_rows(settings: Settings, full_name: str, stop: threading.Event) -> None:
    """Start a run of the deployment as soon as settings.trigger_rows rows wait, unless one is running or due.

    A cheap count (capped at the threshold) every trigger_poll_s; the run itself is an ordinary run of the
    deployment (one at a time: its concurrency limit and the consumer's advisory lock still hold).
    """
    import logging

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from freshrec.status import rows_waiting
    from tasks.common import engine_for

    log = logging.getLogger("freshrec.trigger")
    engine = engine_for(settings)
    deployment_id = None
    while not stop.wait(settings.trigger_poll_s):
        try:
            waiting = rows_waiting(engine, settings.consumer, settings.trigger_rows)
            if waiting < settings.trigger_rows:
                continue
            with get_client(sync_client=True) as client:
                if deployment_id is None:
                    deployment_id = client.read_deployment_by_name(full_name).id
                if _deployment_busy(client, deployment_id):
                    continue
            run = run_deployment(full_name, timeout=0, tags=["freshrec", "rows-trigger"])
            log.info("%d rows wait (FRESHREC_TRIGGER_ROWS=%d): started run %s", waiting, settings.trigger_rows,
                     run.name)
        except Exception as exc:  # the database or the API is away: try again at the next poll
            log.warning("rows trigger: %s", str(exc).strip().splitlines()[0] if str(exc).strip() else exc)


def serve_flow(settings: Settings, interval_s: int, name: str | None = None) -> None:
    """Register the deployment (interval schedule, one run at a time) and run its flow runs until stopped.

    With FRESHREC_TRIGGER_ROWS set, a thread also starts a run as soon as that many rows wait.
    """
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    from flows.update import FLOW_NAME, freshrec_update

    name = name or deployment_name(interval_s)
    stop = threading.Event()
    if settings.trigger_rows:
        threading.Thread(target=trigger_on_rows, args=(settings, f"{FLOW_NAME}/{name}", stop), daemon=True,
                         name="freshrec-rows-trigger").start()
    try:
        freshrec_update.serve(
            name=name,
            interval=interval_s,
            # A run that finds the previous one still going is cancelled, not queued; the advisory lock inside
            # the flow guards the same thing independently of Prefect.
            global_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
            parameters={"model": settings.model, "catch_up": True},
            description=f"freshrec update cycle every {interval_s} s"
            + (f" and when {settings.trigger_rows} rows wait" if settings.trigger_rows else "") + " (freshrec serve).",
            tags=["freshrec"],
        )
    finally:
        stop.set()


def watch_champion(settings: Settings, engine, as_json: bool) -> None:
    """Serve the champion in this process: print a line per swap until interrupted."""
    from freshrec.serving import ChampionWatcher

    def report(old, new):
        event = {"event": "swap", "version": new.version, "previous": old.version if old else None,
                 "sha256": new.sha256, "loaded_at": new.loaded_at.isoformat()}
        print(json.dumps(event) if as_json else
              f"{new.loaded_at:%H:%M:%S} serving version {new.version} (was {event['previous']})", flush=True)

    watcher = ChampionWatcher(engine, recheck_s=30, on_swap=report,
                              allowed_base_models=settings.base_models_allowed).start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("watching the champion (Ctrl-C stops)", file=sys.stderr, flush=True)
    stop.wait()
    watcher.stop()
