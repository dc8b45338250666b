"""Prometheus metrics of `freshrec api`: the served champion, swaps, the last cycle, ingestion lag, latency.

The champion's figures come from the process; the last cycle and the lag are read from the database at
each scrape (as the read-only role), so they are as fresh as the scrape and need no background thread.
Each app has its own registry (several apps may live in one process, as in the tests).
"""

from __future__ import annotations

import logging
from datetime import datetime

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy.engine import Engine

from freshrec.ranking import RankingService

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


def _timestamp(value: str | None) -> float:
    return datetime.fromisoformat(value).timestamp() if value else 0.0


class _StateCollector:
    """Computes the gauges at scrape time."""

    def __init__(self, service: RankingService, engine: Engine, consumer: str, stall_after_s: float):
        self.service, self.engine, self.consumer, self.stall_after_s = service, engine, consumer, stall_after_s

    def describe(self):
        return []  # the families vary with the database's state: no fixed description

    def collect(self):
        from freshrec.status import ingest_status

        scorer = self.service.scorer
        yield _gauge("freshrec_champion_version", "Model version this process serves (0: none loaded yet).",
                     scorer.version if scorer else 0)
        yield _gauge("freshrec_champion_loaded_timestamp_seconds", "When the served version was loaded.",
                     scorer.loaded_at.timestamp() if scorer else 0)
        yield CounterMetricFamily("freshrec_champion_swaps", "Champion versions swapped in by this process "
                                  "(the first load counts).", value=self.service.swaps)
        yield CounterMetricFamily("freshrec_watcher_reconnects", "Times the champion watcher lost its "
                                  "database connection and reconnected.", value=self.service.watcher.reconnects)
        yield _gauge("freshrec_catalogue_items", "Items in the served catalogue.", self.service.catalogue_size)
        yield _gauge("freshrec_champion_item_embeddings", "Items the served version has embedded so far (each "
                     "once per version, not per request).", scorer.embedded_items if scorer else 0)
        try:
            st = ingest_status(self.engine, self.consumer, self.stall_after_s, read_only=True)
        except Exception as exc:  # the scrape still answers, and says the database is not reachable
            log.warning("metrics: database not reachable: %s", str(exc).strip().splitlines()[0])
            yield _gauge("freshrec_database_up", "1 when the database answered this scrape.", 0)
            return
        yield _gauge("freshrec_database_up", "1 when the database answered this scrape.", 1)
        last = st["last_cycle"]
        if last:
            yield _gauge("freshrec_last_cycle_id", "Id of the consumer's latest update cycle.", last["id"])
            yield _gauge("freshrec_last_cycle_info", "The latest update cycle's status (value always 1).", 1,
                         {"status": str(last["status"])})
            yield _gauge("freshrec_last_cycle_timestamp_seconds", "When the latest update cycle finished (or "
                         "started, while it runs).", _timestamp(last["finished_at"] or last["started_at"]))
            yield _gauge("freshrec_last_cycle_published", "1 when the latest cycle published a champion.",
                         1 if last["published"] else 0)
            if last["fresh_coverage"] is not None:  # falling: training does not keep up with the stream
                yield _gauge("freshrec_last_cycle_fresh_coverage", "Share of the latest cycle's fresh rows (new "
                             "and carried over) that were in a training step.", last["fresh_coverage"])
                yield _gauge("freshrec_last_cycle_rows_carried", "Rows the latest cycle left to the next one "
                             "(held out, or beyond the training budget).", last["queued_for_next_cycle"] or 0)
                yield _gauge("freshrec_last_cycle_backlog_expired", "Rows that left the training backlog "
                             "untrained in the latest cycle (past FRESHREC_MAX_BACKLOG_ROWS).",
                             last["backlog_expired"] or 0)
        yield _gauge("freshrec_lag_rows", "Interactions committed but not consumed yet.", st["lag"]["rows"])
        yield _gauge("freshrec_lag_seconds", "How long the oldest unconsumed interaction has waited.",
                     st["lag"]["seconds"])
        yield _gauge("freshrec_horizon_stall", "1 when an old transaction holds committed rows back.",
                     1 if st["horizon_stall"] else 0)
        yield _gauge("freshrec_rows_quarantined", "Rows validation has set aside, in total.",
                     st["rows_quarantined"])


class ServiceMetrics:
    def __init__(self, service: RankingService, engine: Engine, consumer: str, stall_after_s: float):
        self.registry = CollectorRegistry()
        self.latency = Histogram("freshrec_request_duration_seconds", "HTTP request latency by route.",
                                 ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_StateCollector(service, engine, consumer, stall_after_s))

    def render(self) -> bytes:
        return generate_latest(self.registry)
