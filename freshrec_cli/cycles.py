"""Running the update flow in this process."""

from __future__ import annotations

from freshrec.settings import Settings


def run_cycle(settings: Settings) -> dict:
    """One update cycle through Prefect, in-process. Without PREFECT_API_URL, Prefect starts a temporary
    local server for the run; with it, the run shows up on that server's UI."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.update import freshrec_update

    # Heartbeats let a server spot crashed runs of deployments; an in-process run has no worker to watch,
    # and a sync flow waits up to a second on the heartbeat thread when it ends.
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return freshrec_update(settings=settings, catch_up=False)
