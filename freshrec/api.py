"""`freshrec api`: the champion's rankings, drift reports, the registry and the loop's state over HTTP.

create_app builds a FastAPI app around an engine that runs as the read-only serving role. The app holds the
champion with the same LISTEN hot swap as `freshrec watch` (freshrec.ranking.RankingService), embeds the
catalogue once per champion version, and reads everything else from the database per request. Errors are
JSON objects {"error": "<one sentence>"}: 404 for what does not exist, 422 for a bad parameter, 503 while
no champion is loaded or the database does not answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import asynccontextmanager
from typing import Annotated

import sqlalchemy as sa
import sqlalchemy.exc
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.engine import Engine

from freshrec.api_metrics import ServiceMetrics
from freshrec.errors import FreshrecError, ModelError
from freshrec.ingest import DEFAULT_STALL_S
from freshrec.ranking import NoChampionYet, RankingService

log = logging.getLogger(__name__)

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _plain(obj):
    """JSON-safe values (datetimes, decimals) as the CLI prints them."""
    return json.loads(json.dumps(obj, default=str))


def create_app(engine: Engine, *, consumer: str = "default", stall_after_s: float = DEFAULT_STALL_S,
               max_candidates: int = 20_000, catalogue_refresh_s: float = 60.0, recheck_s: float = 30.0,
               allowed_base_models: tuple[str, ...] | None = None) -> FastAPI:
    """The service on `engine` (connect it as the serving role: freshrec.serving.serving_engine); artifacts may
    name minilm, tiny and `allowed_base_models` (Settings.base_models_allowed) as their base."""
    service = RankingService(engine, max_candidates=max_candidates, refresh_s=catalogue_refresh_s,
                             recheck_s=recheck_s, allowed_base_models=allowed_base_models)
    metrics = ServiceMetrics(service, engine, consumer, stall_after_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        try:
            yield
        finally:
            service.stop()

    # /docs would load its scripts from a CDN; the OpenAPI description stays at /openapi.json
    app = FastAPI(title="freshrec", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service
    app.state.metrics = metrics

    @app.middleware("http")
    async def measure(request: Request, call_next):
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            metrics.latency.labels(request.method, getattr(route, "path", "unmatched"),
                                   str(status)).observe(time.perf_counter() - started)

    @app.exception_handler(sqlalchemy.exc.OperationalError)
    async def database_down(request: Request, exc: sqlalchemy.exc.OperationalError):
        from freshrec.db import describe_error

        return _error(503, f"The database did not answer ({describe_error(exc)}): check that PostgreSQL is "
                      "running; the service reconnects by itself.")

    @app.exception_handler(sqlalchemy.exc.ProgrammingError)
    async def no_rights(request: Request, exc: sqlalchemy.exc.ProgrammingError):
        from freshrec.db import describe_error

        return _error(500, f"The serving role may not read this ({describe_error(exc)}): run 'freshrec db "
                      "upgrade' (it grants the reads freshrec api needs).")

    # --- health ---------------------------------------------------------------------------------------------

    @app.get("/healthz")
    def healthz():
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        """Readiness: a champion is loaded and the database answers."""
        scorer = service.scorer
        database = True
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sqlalchemy.exc.SQLAlchemyError:
            database = False
        body = {"ready": bool(scorer) and database, "champion_version": scorer.version if scorer else None,
                "database": database}
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/metrics")
    def prometheus():
        return Response(metrics.render(), media_type=PROMETHEUS_TEXT)

    # --- ranking ---------------------------------------------------------------------------------------------

    @app.get("/users/{user_id}/top")
    def top(user_id: int, k: Annotated[int, Query(ge=1, le=1000)] = 10,
            items: Annotated[list[int] | None, Query(description="Candidate item ids (repeat the parameter); "
                                                     "default: the whole catalogue.")] = None):
        """The user's k best items by the champion."""
        try:
            version, ranked = service.rank(user_id, items or None, k)
        except NoChampionYet as exc:
            return _error(503, str(exc))
        except ModelError as exc:  # unknown candidate items
            return _error(422, str(exc))
        return {"user_id": user_id, "version": version, "items": ranked}

    # --- reports ---------------------------------------------------------------------------------------------

    @app.get("/reports")
    def reports(limit: Annotated[int, Query(ge=1, le=1000)] = 50):
        """Drift reports, newest first (JSON); each one's HTML is at /reports/{cycle_id}."""
        from freshrec.reports import list_reports

        rows = list_reports(engine, limit)
        return {"reports": _plain([{**r, "url": f"/reports/{r['cycle_id']}"} for r in rows])}

    @app.get("/reports/{cycle_id}", response_class=HTMLResponse)
    def report(cycle_id: int, request: Request):
        """A cycle's Evidently drift report, as stored in the database (self-contained HTML)."""
        from freshrec.reports import ReportNotFound, report_html

        try:
            html = report_html(engine, cycle_id)
        except ReportNotFound as exc:
            return _error(404, str(exc))
        except FreshrecError as exc:  # the stored copy fails its sha256
            return _error(500, str(exc))
        etag = '"' + hashlib.sha256(html).hexdigest() + '"'
        headers = {"ETag": etag, "Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return HTMLResponse(html, headers=headers)

    # --- registry --------------------------------------------------------------------------------------------

    @app.get("/models")
    def models(limit: Annotated[int, Query(ge=1, le=1000)] = 50):
        """Model versions, newest first, with status, aliases and held-out metrics."""
        from freshrec import registry

        return {"models": _plain(registry.list_models(engine, limit))}

    @app.get("/models/{version}")
    def model(version: int):
        """One version: lineage, config, metrics, every gate decision and alias move."""
        from freshrec import registry

        try:
            return _plain(registry.show_model(engine, version))
        except ModelError as exc:
            return _error(404, str(exc))

    @app.get("/decisions")
    def decisions(limit: Annotated[int, Query(ge=1, le=1000)] = 50):
        """The publish gate's decisions, newest first, with each rule's result."""
        from freshrec import registry

        return {"decisions": _plain(registry.list_decisions(engine, limit))}

    # --- the loop's state ------------------------------------------------------------------------------------

    @app.get("/status")
    def status():
        """Ingestion: totals, lag, a horizon stall, the last cycle (as `freshrec status --json`)."""
        from freshrec.status import ingest_status

        return _plain(ingest_status(engine, consumer, stall_after_s, read_only=True))

    return app
