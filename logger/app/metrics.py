"""The service's own Prometheus metrics (GET /metrics), with prometheus_client.

An owned registry per app (no global state, so tests can build many apps).
Counters are incremented where things happen; everything that is state (the
database's size and records, live-page clients, when each host's records last
arrived) is read at scrape time by a collector, so no series outlives what it
describes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import __version__

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No `*_created` series next to every counter: Prometheus does not need them.
disable_created_metrics()

NAMESPACE = "gestor_logger"
REJECT_REASONS = (
    "unauthorized",
    "unsupported_media_type",
    "too_large",
    "bad_request",
    "invalid_json",
    "invalid_record",
    "invalid_alert",
    "storage_error",
)
ALERT_STATUSES = ("firing", "resolved")
GRAPH_RESULTS = ("rendered", "shared", "cached", "busy")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Long-lived streams and the scrape itself are not request latencies.
UNTIMED_ROUTES = frozenset({"/events", "/metrics"})


def disk_free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


class StateCollector(Collector):
    """Gauges read at scrape time from the running app's state."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        db = getattr(self.state, "db", None)
        broadcaster = getattr(self.state, "broadcaster", None)
        if db is None or broadcaster is None:  # not started yet, or shut down
            return
        yield GaugeMetricFamily(
            f"{NAMESPACE}_database_bytes",
            "Size of the database: SQLite's file, WAL and shared-memory files, or"
            " PostgreSQL's pg_database_size.",
            value=db.size_bytes(),
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_disk_free_bytes",
            "Bytes available to the service on the data directory's file system.",
            value=disk_free_bytes(self.state.settings.data_dir),
        )
        records = GaugeMetricFamily(
            f"{NAMESPACE}_database_records", "Records in the database, per event.", labels=["event"]
        )
        for event, n in sorted(db.counters.by_event.items()):
            records.add_metric([event], n)
        yield records
        first, _ = db.time_bounds()
        if first is not None:
            yield GaugeMetricFamily(
                f"{NAMESPACE}_oldest_record_timestamp_seconds",
                "Time of the oldest record kept (retention deletes older ones).",
                value=first / 1000,
            )
        received = GaugeMetricFamily(
            f"{NAMESPACE}_last_record_received_timestamp_seconds",
            "When the newest record of each host was received (a host that stopped"
            " sending keeps its series until retention drops it).",
            labels=["host"],
        )
        for host, ms in db.hosts():
            received.add_metric([host], ms / 1000)
        yield received
        yield GaugeMetricFamily(
            f"{NAMESPACE}_live_clients",
            "Open live-page streams (GET /events).",
            value=broadcaster.subscribers,
        )


class Metrics:
    """Every metric of one app."""

    def __init__(self, state: Any) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records_stored = Counter(
            f"{NAMESPACE}_records_stored",
            "gestor's records newly stored (acknowledged) by POST /logs; alerts are counted"
            " apart (gestor_logger_alerts_stored_total).",
            registry=r,
        )
        self.records_duplicate = Counter(
            f"{NAMESPACE}_records_duplicate",
            "Records received again (a retried batch) and not stored twice.",
            registry=r,
        )
        self.rejected = Counter(
            f"{NAMESPACE}_rejected_requests",
            "POST /logs and POST /alerts requests refused, by reason (none of their records"
            " is stored).",
            ["reason"],
            registry=r,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self.alerts_stored = Counter(
            f"{NAMESPACE}_alerts_stored",
            "Alert records newly stored from Alertmanager's notifications (POST /alerts), by"
            " status; repeated notifications of the same alert are not counted again.",
            ["status"],
            registry=r,
        )
        for key in ALERT_STATUSES:
            self.alerts_stored.labels(key)
        self.request_duration = Histogram(
            f"{NAMESPACE}_request_duration_seconds",
            "Time to answer a request, by route template, method and status code.",
            ["method", "route", "code"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.graph_requests = Counter(
            f"{NAMESPACE}_graph_requests",
            "Graph requests by result: rendered, shared (waited for an identical render),"
            " cached, busy (503).",
            ["kind", "result"],
            registry=r,
        )
        self.retention_deleted = Counter(
            f"{NAMESPACE}_retention_deleted_records",
            "Records deleted because they were older than LOGGER_RETENTION.",
            registry=r,
        )
        self.retention_batches = Counter(
            f"{NAMESPACE}_retention_batches",
            "Transactions retention used to delete them (one small batch each).",
            registry=r,
        )
        self.build_info = Gauge(
            f"{NAMESPACE}_build_info", "The service's version.", ["version"], registry=r
        )
        self.build_info.labels(__version__).set(1)
        r.register(StateCollector(state))


class LatencyMiddleware:
    """Observes each request's duration under its route template (so paths
    with ids or junk do not make new series)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "<unmatched>"
            if path not in UNTIMED_ROUTES:
                self.metrics.request_duration.labels(scope["method"], path, str(status)).observe(
                    time.perf_counter() - started
                )
