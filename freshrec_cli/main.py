"""`freshrec`: set up the database, feed it data, run update cycles, and look at what they did."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from freshrec.cpu import OPENMP_DEFAULTS
from freshrec_cli.options import JsonOpt, ModelOpt, checked_engine, current_settings, read_only_engine
from freshrec_cli.output import emit, progress, setup_logging
from freshrec_cli.records import quarantine_app, reports_app
from freshrec_cli.registry import models_app

# Defaults for Prefect before it is imported anywhere: no telemetry (it also logs spurious 'database is
# locked' errors from the temporary server), freshrec's own loggers forwarded into Prefect's run logs, and more
# than Prefect's 20 s for the temporary server to start (a busy 2-core machine missed that in a test run).
for _key, _value in {"PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                     "PREFECT_LOGGING_EXTRA_LOGGERS": "freshrec",
                     "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
                     "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}.items():
    os.environ.setdefault(_key, _value)
# OpenMP reads its wait policy only from the environment, once, when torch loads it (freshrec/cpu.py).
for _key, _value in OPENMP_DEFAULTS.items():
    os.environ.setdefault(_key, _value)

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="freshrec keeps a recommender's transformer CTR model fresh.")
db_app = typer.Typer(no_args_is_help=True, help="Schema migrations.")
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(reports_app, name="reports")

# --- db ---------------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Apply pending migrations from sql/migrations (idempotent, safe to run concurrently)."""
    from freshrec import migrations

    engine = checked_engine(current_settings(), migrate_check=False)
    applied = migrations.upgrade(engine)
    emit({"applied": applied}, as_json,
         "applied: " + ", ".join(applied) if applied else "schema is up to date; nothing to apply")


@db_app.command("status")
def db_status(as_json: JsonOpt = False) -> None:
    """Show which migrations are applied, pending or edited."""
    from dataclasses import asdict

    from freshrec import migrations

    engine = checked_engine(current_settings(), migrate_check=False)
    states = migrations.status(engine)
    lines = [f"{s.version:04d}_{s.name:<30} {s.status:<8} {s.applied_at or ''}" for s in states]
    emit({"database": engine.url.render_as_string(hide_password=True),
          "migrations": [asdict(s) for s in states]}, as_json,
         f"database: {engine.url.render_as_string(hide_password=True)}\n" + "\n".join(lines))


# --- data in ----------------------------------------------------------------------------------------------


@app.command("generate")
def generate(
    users: Annotated[int, typer.Option(min=1, help="Number of users.")] = 300,
    items: Annotated[int, typer.Option(min=1, help="Number of catalogue items.")] = 400,
    events: Annotated[int, typer.Option(min=0, help="Number of interactions to insert.")] = 5000,
    rate: Annotated[float, typer.Option(min=0, help="Events per second; 0 inserts all at once.")] = 0.0,
    drift_at: Annotated[Optional[float], typer.Option(min=0, max=1, help="Fraction of the stream after which "
                                                      "user interests shift.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Random seed of the users and events.")] = 0,
    noise: Annotated[float, typer.Option(min=0, max=1, help="Share of deliberately bad rows (duplicates, "
                                         "unknown items, bad values) that validation must quarantine.")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Insert a synthetic catalogue and interaction stream (with a drift point) into the database."""
    from dataclasses import asdict

    from freshrec.generate import StreamSpec, insert_stream

    engine = checked_engine(current_settings())
    spec = StreamSpec(users=users, items=items, events=events, rate=rate, drift_at=drift_at, seed=seed,
                      noise=noise)
    if rate > 0:
        progress(f"streaming {events} events at {rate:g}/s (Ctrl-C stops)")
    result = insert_stream(engine, spec)
    emit(asdict(result), as_json, f"{result.items_created} new items, {result.events_inserted} events inserted "
         f"in {result.seconds:.1f} s" + (f"; interests shift at event {result.drift_event_index}"
                                         if result.drift_event_index is not None else ""))


@app.command("load-movielens")
def load_movielens(
    directory: Annotated[Path, typer.Argument(help="Folder of MovieLens ml-latest-small (movies.csv, ratings.csv).")],
    limit: Annotated[Optional[int], typer.Option(min=1, help="Load only the first N ratings in time order.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Load MovieLens: movies as items, ratings (>= 4 is a positive) as a stream in timestamp order."""
    from dataclasses import asdict

    from freshrec import movielens

    engine = checked_engine(current_settings())
    result = movielens.load_movielens(engine, directory, limit=limit)
    emit(asdict(result), as_json, f"{result.items_created} new items, {result.events_inserted} ratings loaded "
         f"({result.first_event} .. {result.last_event}) in {result.seconds:.1f} s")


# --- cycles -----------------------------------------------------------------------------------------------


@app.command("run-once")
def run_once(model: ModelOpt = None, as_json: JsonOpt = False) -> None:
    """Run the Prefect update flow once, in this process, and print its summary."""
    from freshrec.summary import TABLE_HEADER, table_row
    from freshrec_cli.cycles import run_cycle

    settings = current_settings(model=model)
    checked_engine(settings)
    summary = run_cycle(settings)
    human = (f"{summary.get('message')}\n{TABLE_HEADER}\n{table_row(summary)}"
             + (f"\ndrift report: {summary['drift']['report_path']}" if (summary.get("drift") or {}).get("report_path")
                else ""))
    emit(summary, as_json, human)


@app.command("demo")
def demo(
    model: ModelOpt = None,
    cycles: Annotated[Optional[int], typer.Option(min=2, help="Number of update cycles.")] = None,
    as_json: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show Prefect's, Great Expectations' and freshrec's "
                                          "log lines here too (otherwise they go to <data dir>/demo.log).")] = False,
) -> None:
    """Migrate a fresh demo database, stream synthetic data with a drift point, and run update cycles on it."""
    from freshrec_cli.demo import run_demo

    settings = current_settings(model=model)
    result = run_demo(settings, cycles=cycles, as_json=as_json, verbose=verbose)
    if as_json:
        emit(result, as_json)


@app.command("serve")
def serve(
    interval: Annotated[Optional[int], typer.Option(min=1, help="Seconds between cycles; default "
                                                     "FRESHREC_SCHEDULE_INTERVAL_S.")] = None,
    model: ModelOpt = None,
    name: Annotated[Optional[str], typer.Option(help="Deployment name; default serve-every-<interval>, "
                                                "e.g. serve-every-5-min.")] = None,
) -> None:
    """Run the update flow on a schedule as a Prefect deployment (flow.serve): one run at a time, in the UI."""
    from freshrec_cli.serving import serve_flow

    settings = current_settings(model=model)
    checked_engine(settings)  # a wrong URL or an old schema stops here, in one sentence
    serve_flow(settings, interval or settings.schedule_interval_s, name)


@app.command("watch")
def watch(as_json: JsonOpt = False) -> None:
    """A serving process: load the champion, hot-swap on every publish or rollback, print each swap."""
    from freshrec_cli.serving import watch_champion

    settings = current_settings()
    watch_champion(settings, read_only_engine(settings), as_json)


@app.command("api")
def api(
    host: Annotated[Optional[str], typer.Option(help="Address to listen on; default FRESHREC_API_HOST "
                                                "(127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="Port; default FRESHREC_API_PORT "
                                                "(8000).")] = None,
) -> None:
    """HTTP service: rankings from the hot-swapped champion, drift reports, models, status, /metrics."""
    from freshrec_cli.api import serve_api

    settings = current_settings(api_host=host, api_port=port)
    serve_api(settings, read_only_engine(settings))


# --- status and quarantine -------------------------------------------------------------------------------


@app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """Ingestion status: interactions, rows consumed and quarantined, lag, horizon stalls, the last cycle."""
    from freshrec.cycles import FALLING_BEHIND_ADVICE
    from freshrec.status import ingest_status

    settings = current_settings()
    st = ingest_status(checked_engine(settings), settings.consumer, settings.horizon_stall_s)
    last = st["last_cycle"]
    lines = [f"consumer {st['consumer']}: {st['interactions']} interactions, {st['rows_consumed']} consumed, "
             f"{st['rows_quarantined']} quarantined ({st['rejected_batches']} rejected batches)",
             f"lag: {st['lag']['rows']} rows, {st['lag']['seconds']:.0f} s",
             "last cycle: " + (f"{last['id']} {last['status']} at {last['finished_at'] or last['started_at']}"
                               if last else "none yet")]
    if last and last["fresh_coverage"] is not None:
        behind = last["fresh_coverage"] < 0.9 or (last["backlog_expired"] or 0) > 0
        lines.append(f"last cycle trained {last['fresh_coverage']:.0%} of its fresh rows, carried "
                     f"{last['queued_for_next_cycle'] or 0} to the next and let {last['backlog_expired'] or 0} "
                     "expire from the training backlog"
                     + (f": training does not keep up; {FALLING_BEHIND_ADVICE}" if behind else ""))
    if st["horizon_stall"]:
        from freshrec.ingest import HorizonStall

        lines.append("HORIZON STALL: " + HorizonStall(**st["horizon_stall"]).describe())
    emit(st, as_json, "\n".join(lines))


@app.command("score")
def score(
    user: Annotated[int, typer.Option("--user", help="User id.")],
    items: Annotated[Optional[list[int]], typer.Option("--items", help="Item ids to rank (repeat); default: "
                                                        "the catalogue.")] = None,
    top: Annotated[int, typer.Option("--top", min=1)] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Rank items for a user with the champion, as a serving process would (read-only role)."""
    from freshrec.serving import load_scorer, rank_items

    settings = current_settings()
    engine = read_only_engine(settings)
    scorer = load_scorer(engine, allowed_base_models=settings.base_models_allowed)
    ranked = rank_items(engine, scorer, user, items, top)
    emit({"user_id": user, "version": scorer.version, "items": ranked}, as_json,
         f"user {user}, champion version {scorer.version}:\n"
         + "\n".join(f"{r['score']:.3f}  {r['item_id']:>8}  {r['title']}" for r in ranked))


def main() -> None:
    import sqlalchemy.exc

    from freshrec.db import describe_error
    from freshrec.errors import FreshrecError

    setup_logging(verbose=bool(os.environ.get("FRESHREC_VERBOSE")))
    try:
        app()  # usage errors are typer's own: a short message and exit code 2
    except FreshrecError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
    except sqlalchemy.exc.DataError as exc:  # a value PostgreSQL cannot hold or compare (issue 17, item 4)
        sys.stderr.write(f"error: PostgreSQL refused a value of the command ({describe_error(exc)}): check the "
                         "ids and options you passed.\n")
        sys.exit(2)
    except sqlalchemy.exc.OperationalError as exc:  # the database went away in the middle of a command
        sys.stderr.write(f"error: The database connection failed during the command ({describe_error(exc)}): "
                         "check that PostgreSQL is running and FRESHREC_DATABASE_URL is right, then run it again.\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
