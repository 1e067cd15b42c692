"""Prometheus metrics: requests, the delivery outbox, and bridge lag (served by app.api.metrics).

Request metrics are labelled by method, route template (``/api/v1/referrals/{id}``, never the
concrete path; ``unmatched`` when no route matched) and status class (``2xx``), so no label can
carry patient data. The outbox and bridge gauges are read from the database at scrape time, one
cheap indexed query each, so every web process reports the same figures.

Several worker processes: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory, the same for
every process and emptied before they start; the request counters are then summed over the
processes (prometheus_client's multiprocess mode). Without it each process reports only its own
requests.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.db import SQLITE_DEFERRED, utcnow
from app.logs import get_logger
from app.monitors.models import DeviceReading
from referral.models import OutboxMessage, OutboxStatus

log = get_logger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds; from a cached page (5 ms) to a slow export (10 s).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics:
    """The request counter and latency histogram of one application."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("method", "route", "status_class")
        self.requests = Counter(
            "exhale_http_requests",
            "HTTP requests answered, by method, route template and status class.",
            labels,
            registry=registry,
        )
        self.latency = Histogram(
            "exhale_http_request_duration_seconds",
            "Time from request to the end of the response, by method, route template and status "
            "class.",
            labels,
            buckets=BUCKETS,
            registry=registry,
        )

        self.fast_readings = Counter(
            "exhale_reading_posts",
            "POST /api/v1/readings on PostgreSQL by path: 'fast' answered in three or four "
            "statements, 'declined' left to the general path (app.api.fast_readings).",
            ("path",),
            registry=registry,
        )

    def observe(self, *, method: str, route: str, status: int, duration_s: float) -> None:
        labels = (method if method in METHODS else "other", route, f"{status // 100}xx")
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(duration_s)


class DatabaseCollector(Collector):
    """Outbox and bridge gauges, read from the database when Prometheus scrapes."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "exhale_metrics_database_up", "1 if the database answered this scrape's queries."
        )
        try:
            with self.sessions() as session:
                session.connection(execution_options={SQLITE_DEFERRED: True})
                families = [*_outbox_families(session), *_bridge_families(session)]
        except SQLAlchemyError as error:
            log.warning("metrics_database_unreachable", error_type=type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _outbox_families(session: Session) -> list[GaugeMetricFamily]:
    """Pending and failed messages; uses the (status, next_attempt_at) index."""
    statement = (
        select(
            OutboxMessage.status,
            func.count(),
            func.min(OutboxMessage.created_at),
            func.sum(case((OutboxMessage.attempts > 0, 1), else_=0)),
        )
        .where(OutboxMessage.status.in_([OutboxStatus.pending.value, OutboxStatus.failed.value]))
        .group_by(OutboxMessage.status)
    )
    rows = {row[0]: row[1:] for row in session.execute(statement)}
    pending, oldest, retrying = rows.get(OutboxStatus.pending.value, (0, None, 0))
    failed = rows.get(OutboxStatus.failed.value, (0, None, 0))[0]
    oldest_age_s = (utcnow() - _aware(oldest)).total_seconds() if oldest else 0.0
    return [
        _gauge(
            "exhale_outbox_pending_messages",
            "Webhook messages waiting to be delivered (including those being retried).",
            pending,
        ),
        _gauge(
            "exhale_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending webhook message since it was written; 0 when none.",
            max(oldest_age_s, 0.0),
        ),
        _gauge(
            "exhale_outbox_retrying_messages",
            "Pending webhook messages whose earlier delivery attempts failed.",
            retrying or 0,
        ),
        _gauge(
            "exhale_delivery_failed_messages",
            "Webhook messages that gave up after the retry window and wait for a redelivery.",
            failed,
        ),
    ]


def _bridge_families(session: Session) -> list[GaugeMetricFamily]:
    """Bridge lag of the latest monitor result to arrive (the highest id: the primary key)."""
    latest = session.execute(
        select(DeviceReading.received_at, DeviceReading.measured_at)
        .order_by(DeviceReading.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return []
    received_at, measured_at = _aware(latest[0]), _aware(latest[1])
    return [
        _gauge(
            "exhale_bridge_lag_seconds",
            "For the latest monitor result to arrive: its arrival time minus the time the "
            "monitor measured it (negative if the monitor's clock runs ahead).",
            (received_at - measured_at).total_seconds(),
        ),
        _gauge(
            "exhale_bridge_last_received_timestamp_seconds",
            "Unix time the latest monitor result arrived from a bridge.",
            received_at.timestamp(),
        ),
    ]


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def install(registry: CollectorRegistry, sessions: Callable[[], Session]) -> RequestMetrics:
    """Register the request metrics and the database collector on an application's registry."""
    metrics = RequestMetrics(registry)
    registry.register(DatabaseCollector(sessions))
    return metrics


def scrape_registry(
    app_registry: CollectorRegistry, sessions: Callable[[], Session]
) -> CollectorRegistry:
    """What a scrape reports: this process's registry, or every process's in multiprocess mode."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return app_registry
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
    combined.register(DatabaseCollector(sessions))
    return combined
