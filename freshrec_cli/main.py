"""`freshrec`: set up the database, feed it data, run update cycles, and look at what they did."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from freshrec.cpu import OPENMP_DEFAULTS
from freshrec_cli.output import emit, progress, setup_logging

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
models_app = typer.Typer(no_args_is_help=True, help="The model registry.")
quarantine_app = typer.Typer(no_args_is_help=True, help="Rows set aside by validation, with their reasons.")
reports_app = typer.Typer(no_args_is_help=True, help="Evidently drift reports kept in the database.")
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(reports_app, name="reports")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="minilm (default), tiny, or a Hugging Face "
                                                 "model folder; overrides FRESHREC_MODEL.")]


def _settings(**overrides):
    from freshrec.settings import load_settings

    return load_settings(**overrides)


def _db_id(value: int | None, option: str) -> int | None:
    """An id the database can hold (bigint): a larger one is a mistake of the caller, said in one sentence."""
    from freshrec.errors import ConfigError

    if value is not None and not 0 < value < 2**63:
        raise ConfigError(f"{option} {value} is not an id freshrec could have made (ids run from 1 to 2^63-1): "
                          "pass one that 'freshrec status', 'reports list' or 'models list' shows.")
    return value


def _engine(settings, migrate_check: bool = True):
    from freshrec import migrations
    from tasks.common import engine_for

    engine = engine_for(settings)
    if migrate_check:
        if settings.database_url is None:
            migrations.upgrade(engine)  # the embedded database is freshrec's own: keep it current
        else:
            migrations.require_current(engine)
    return engine


# --- db ---------------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Apply pending migrations from sql/migrations (idempotent, safe to run concurrently)."""
    from freshrec import migrations

    engine = _engine(_settings(), migrate_check=False)
    applied = migrations.upgrade(engine)
    emit({"applied": applied}, as_json,
         "applied: " + ", ".join(applied) if applied else "schema is up to date; nothing to apply")


@db_app.command("status")
def db_status(as_json: JsonOpt = False) -> None:
    """Show which migrations are applied, pending or edited."""
    from dataclasses import asdict

    from freshrec import migrations

    engine = _engine(_settings(), migrate_check=False)
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

    engine = _engine(_settings())
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

    engine = _engine(_settings())
    result = movielens.load_movielens(engine, directory, limit=limit)
    emit(asdict(result), as_json, f"{result.items_created} new items, {result.events_inserted} ratings loaded "
         f"({result.first_event} .. {result.last_event}) in {result.seconds:.1f} s")


# --- cycles -----------------------------------------------------------------------------------------------


@app.command("run-once")
def run_once(model: ModelOpt = None, as_json: JsonOpt = False) -> None:
    """Run the Prefect update flow once, in this process, and print its summary."""
    from freshrec.summary import TABLE_HEADER, table_row
    from freshrec_cli.cycles import run_cycle

    settings = _settings(model=model)
    _engine(settings)
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

    settings = _settings(model=model)
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

    settings = _settings(model=model)
    _engine(settings)  # a wrong URL or an old schema stops here, in one sentence
    serve_flow(settings, interval or settings.schedule_interval_s, name)


@app.command("watch")
def watch(as_json: JsonOpt = False) -> None:
    """A serving process: load the champion, hot-swap on every publish or rollback, print each swap."""
    from freshrec_cli.serving import watch_champion

    settings = _settings()
    watch_champion(settings, _serving_engine(settings), as_json)


@app.command("api")
def api(
    host: Annotated[Optional[str], typer.Option(help="Address to listen on; default FRESHREC_API_HOST "
                                                "(127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="Port; default FRESHREC_API_PORT "
                                                "(8000).")] = None,
) -> None:
    """HTTP service: rankings from the hot-swapped champion, drift reports, models, status, /metrics."""
    from freshrec_cli.api import serve_api

    settings = _settings(api_host=host, api_port=port)
    serve_api(settings, _serving_engine(settings))


# --- status and quarantine -------------------------------------------------------------------------------


@app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """Ingestion status: interactions, rows consumed and quarantined, lag, horizon stalls, the last cycle."""
    from freshrec.status import ingest_status

    settings = _settings()
    st = ingest_status(_engine(settings), settings.consumer, settings.horizon_stall_s)
    last = st["last_cycle"]
    lines = [f"consumer {st['consumer']}: {st['interactions']} interactions, {st['rows_consumed']} consumed, "
             f"{st['rows_quarantined']} quarantined ({st['rejected_batches']} rejected batches)",
             f"lag: {st['lag']['rows']} rows, {st['lag']['seconds']:.0f} s",
             "last cycle: " + (f"{last['id']} {last['status']} at {last['finished_at'] or last['started_at']}"
                               if last else "none yet")]
    if st["horizon_stall"]:
        from freshrec.ingest import HorizonStall

        lines.append("HORIZON STALL: " + HorizonStall(**st["horizon_stall"]).describe())
    emit(st, as_json, "\n".join(lines))


@quarantine_app.command("stats")
def quarantine_stats(as_json: JsonOpt = False) -> None:
    """Quarantined rows per reason code."""
    from freshrec.status import quarantine_stats as stats

    settings = _settings()
    rows = stats(_engine(settings), settings.consumer)
    emit({"consumer": settings.consumer, "reasons": rows}, as_json,
         "\n".join(f"{r['reason']:<22} {r['rows']:>9}  last {r['last_seen'][:19]}" for r in rows)
         or "nothing quarantined")


@quarantine_app.command("list")
def quarantine_list(
    reason: Annotated[Optional[str], typer.Option(help="Only rows with this reason code.")] = None,
    batch: Annotated[Optional[int], typer.Option(help="Only rows of this batch id.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Quarantined rows, newest first, with their reasons and the row as it was pulled."""
    import json

    from freshrec.status import quarantine_rows

    settings = _settings()
    rows = quarantine_rows(_engine(settings), settings.consumer, reason=reason, batch_id=_db_id(batch, "--batch"),
                           limit=limit)
    emit({"consumer": settings.consumer, "rows": rows}, as_json,
         "\n".join(f"{r['interaction_id']:>10} batch {r['batch_id']:<6} {','.join(r['reasons']):<30} "
                   f"{json.dumps(r['row_data'])[:120]}" for r in rows) or "no quarantined rows match")


@reports_app.command("list")
def reports_list(limit: Annotated[int, typer.Option(min=1)] = 50, as_json: JsonOpt = False) -> None:
    """Drift reports, newest first: dataset drift, share of drifted columns, which ones."""
    from freshrec.reports import list_reports

    rows = list_reports(_engine(_settings()), limit)
    lines = [f"{'cycle':>6} {'drift':>5} {'share':>5} {'champion':>8} {'rows ref/cur':>13}  drifted columns"]
    lines += [f"{r['cycle_id']:>6} {'yes' if r['dataset_drift'] else 'no':>5} {r['drifted_share']:>5.2f} "
              f"{r['champion_version'] or '-':>8} {str(r['reference_rows']) + '/' + str(r['current_rows']):>13}  "
              f"{', '.join(r['drifted_columns']) or '-'}" for r in rows]
    emit({"reports": rows}, as_json, "\n".join(lines) if rows else "no drift reports yet")


@reports_app.command("export")
def reports_export(
    cycle: Annotated[int, typer.Argument(help="Cycle id (see 'freshrec reports list').")],
    path: Annotated[Path, typer.Argument(help="File to write, or a folder for cycle-NNNNNN-drift.html.")],
    as_json: JsonOpt = False,
) -> None:
    """Write a cycle's drift report, as stored in the database, to an HTML file."""
    from freshrec.reports import export_report

    target = export_report(_engine(_settings()), _db_id(cycle, "cycle"), path)
    emit({"cycle_id": cycle, "path": str(target)}, as_json, f"wrote {target}")


# --- models -----------------------------------------------------------------------------------------------


@models_app.command("list")
def models_list(limit: Annotated[int, typer.Option(min=1)] = 50, as_json: JsonOpt = False) -> None:
    """List model versions, newest first, with their status, aliases and held-out metrics."""
    from freshrec import registry

    rows = registry.list_models(_engine(_settings()), limit)
    lines = [f"{'version':>7} {'status':<10} {'aliases':<10} {'parent':>6} {'base':<8} {'AUC':>6} {'bytes':>9} created"]
    for r in rows:
        auc = (r["metrics"].get("candidate") or {}).get("auc")
        lines.append(f"{r['version']:>7} {r['status']:<10} {','.join(r['aliases']) or '-':<10} "
                     f"{r['parent_version'] or '-':>6} {r['base_model'][:8]:<8} "
                     f"{('%.3f' % auc) if auc is not None else '-':>6} "
                     f"{r['artifact_size'] if r['has_artifact'] else 'pruned':>9} {r['created_at'][:19]}")
    emit({"models": rows}, as_json, "\n".join(lines) if rows else "no model versions yet")


@models_app.command("show")
def models_show(version: Annotated[int, typer.Argument(help="Model version.")], as_json: JsonOpt = False) -> None:
    """One version: lineage, config, metrics on its held-out rows, every gate decision and alias move."""
    import json

    from freshrec import registry

    info = registry.show_model(_engine(_settings()), _db_id(version, "version"))
    m = info["metrics"]
    lines = [f"version {info['version']}: {info['status']}" + (f" ({', '.join(info['aliases'])})" if info["aliases"]
                                                              else ""),
             f"parent {info['parent_version'] or '-'}, base {info['base_model']} ({info['train_mode']}), cycle "
             f"{info['cycle_id']}, batches {info['training_batch_ids']}, created {info['created_at'][:19]}",
             f"sha256 {info['artifact_sha256']} ({info['artifact_size']} bytes"
             + (")" if info["has_artifact"] else ", bytes pruned)")]
    for who in ("candidate", "champion", "prequential"):
        if m.get(who):
            lines.append(f"{who:>11}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                     for k, v in m[who].items()))
    for d in info["decisions"]:
        lines.append(f"decision in cycle {d['cycle_id']}: {d['outcome']} vs champion {d['champion_version']}")
        lines += [f"  {'pass' if r['passed'] else 'FAIL'} {r['rule']}: {r['detail']}" for r in d["rules"]]
    for h in info["alias_history"]:
        lines.append(f"{h['changed_at'][:19]} {h['action']} {h['alias']}: {h['from_version']} -> {h['to_version']}")
    emit(json.loads(json.dumps(info, default=str)), as_json, "\n".join(lines))


@models_app.command("promote")
def models_promote(version: Annotated[int, typer.Argument(help="Model version to make champion.")],
                   reason: Annotated[str, typer.Option(help="Why, for the alias history.")] = "promoted by hand",
                   as_json: JsonOpt = False) -> None:
    """Make a version the champion now (serving processes swap to it)."""
    from freshrec import registry

    settings = _settings()
    result = registry.promote(_engine(settings), _db_id(version, "version"), reason,
                              allowed_base_models=settings.base_models_allowed)
    emit(result, as_json, f"champion is version {version}" + ("" if result["changed"] else " already"))


@models_app.command("rollback")
def models_rollback(reason: Annotated[str, typer.Option(help="Why, for the alias history.")] = "rolled back by hand",
                    as_json: JsonOpt = False) -> None:
    """Back to the previous champion (again: one further back), atomically and recorded."""
    from freshrec import registry

    settings = _settings()
    result = registry.rollback(_engine(settings), reason, allowed_base_models=settings.base_models_allowed)
    emit(result, as_json, f"champion is version {result['champion']} again (was {result['previous']})")


@models_app.command("rebase")
def models_rebase(reason: Annotated[str, typer.Option(help="Why, recorded with the candidate.")] = "asked by hand",
                  as_json: JsonOpt = False) -> None:
    """Train the next cycle's candidate from the base model with the current settings (a new lineage); it
    competes with the champion through the same gate."""
    from freshrec.rebase import request_rebase

    settings = _settings()
    request_rebase(_engine(settings), settings.consumer, reason)
    emit({"consumer": settings.consumer, "rebase": "requested", "reason": reason}, as_json,
         f"the next cycle of consumer {settings.consumer!r} that trains rebases from {settings.model}")


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

    settings = _settings()
    engine = _serving_engine(settings)
    scorer = load_scorer(engine, allowed_base_models=settings.base_models_allowed)
    ranked = rank_items(engine, scorer, user, items, top)
    emit({"user_id": user, "version": scorer.version, "items": ranked}, as_json,
         f"user {user}, champion version {scorer.version}:\n"
         + "\n".join(f"{r['score']:.3f}  {r['item_id']:>8}  {r['title']}" for r in ranked))


def _serving_engine(settings):
    """The read-only engine of the serving commands; one sentence if the role cannot be used."""
    from freshrec.db import check_connection
    from freshrec.errors import DatabaseError
    from freshrec.serving import serving_engine
    from tasks.common import database_url_for

    _engine(settings)  # starts the embedded server if needed and checks the schema
    url = database_url_for(settings)
    engine = serving_engine(url.render_as_string(hide_password=False), settings.serving_role or None)
    try:
        check_connection(engine)
    except DatabaseError as exc:
        if settings.serving_role and "role" in str(exc):
            raise DatabaseError(f"Cannot score as role {settings.serving_role} ({exc}): grant it to your user "
                                f"(GRANT {settings.serving_role} TO you), or set FRESHREC_SERVING_ROLE= to score "
                                "with your user's own rights.") from None
        raise
    return engine


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
