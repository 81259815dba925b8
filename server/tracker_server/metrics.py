"""Prometheus metrics, exposed through ``prometheus-client`` (its text format 0.0.4).

Upstream's: ``tracker_event_status_total{service,status,environment}`` counts events by
status (on creation and on every status change); ``tracker_event_duration_seconds`` is a
histogram observed when an event moves to success or failure. Ours:
``tracker_deployments_total{service,environment,status}``, the histograms
``tracker_deployment_duration_seconds`` and ``tracker_lead_time_seconds`` (observed when a
deployment ends); these are per server process. The gauges ``tracker_locks_held``,
``tracker_lock_queue_length`` and ``tracker_freezes_active`` are read from the database at
each scrape (:func:`database_gauges`, counted by ``store/gauges.py``), so every replica
answers the same.

The counts are kept here (under one lock) and handed to ``prometheus-client`` as metric
families at each scrape, so the names, the label names and the buckets' ``le`` values stay
exactly what dashboards query. The ``service`` label is bounded: after
``MAX_SERVICES`` distinct services, new ones are counted as ``other`` (a label value per
typo'd service name would grow the series without end).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import Connection

from tracker_server.store import gauges

DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
#: Lead time for changes: an hour to a month (DORA's thresholds are among the bounds).
LEAD_TIME_BUCKETS = (3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400)
#: Distinct ``service`` label values a process keeps; later ones count as ``OTHER``.
MAX_SERVICES = 500
OTHER = "other"


class Histogram:
    """One Prometheus histogram's counts (cumulative buckets, sum, count); not thread-safe
    alone."""

    def __init__(self, name: str, help_text: str, buckets: tuple[int, ...]) -> None:
        self.name = name
        self.help_text = help_text
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Record one value (non-finite values are dropped)."""
        if not math.isfinite(value):
            return
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1
        self.sum += value
        self.count += 1

    def family(self) -> HistogramMetricFamily:
        """Its metric family (``le`` as the bounds are written: ``le="3600"``)."""
        family = HistogramMetricFamily(self.name, self.help_text)
        buckets = [
            (str(bound), count) for bound, count in zip(self.buckets, self.counts, strict=True)
        ]
        family.add_metric([], [*buckets, ("+Inf", self.count)], sum_value=self.sum)
        return family


def _counter(
    name: str, help_text: str, labels: list[str], counts: Iterable[tuple[Any, int]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=labels)
    for values, count in sorted(counts):
        family.add_metric(list(values), count)
    return family


#: The names of every metric this server exposes (examples/grafana uses exactly these).
METRIC_NAMES = (
    "tracker_event_status_total",
    "tracker_event_duration_seconds",
    "tracker_deployments_total",
    "tracker_deployment_duration_seconds",
    "tracker_lead_time_seconds",
    "tracker_locks_held",
    "tracker_lock_queue_length",
    "tracker_freezes_active",
    "tracker_write_group_size",
)
#: Writes per commit (``db.GroupCommit``): concurrent creates sharing one transaction.
WRITE_GROUP_BUCKETS = (1, 2, 4, 8, 16, 24)


class _Families:
    """A prometheus-client collector of metric families made beforehand."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        """The families."""
        yield from self.families


def exposition(families: list[Metric]) -> str:
    """The Prometheus text format (version 0.0.4) of these families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry).decode()


class Metrics:
    """Thread-safe counters of one server process."""

    def __init__(self, max_services: int = MAX_SERVICES) -> None:
        self._lock = threading.Lock()
        self._max_services = max_services
        self._services: set[str] = set()
        self._statuses: Counter[tuple[str, str, str]] = Counter()
        self._duration = Histogram(
            "tracker_event_duration_seconds", "Duration of events that ended.", DURATION_BUCKETS
        )
        self._deployments: Counter[tuple[str, str, str]] = Counter()
        self._deployment_duration = Histogram(
            "tracker_deployment_duration_seconds",
            "Duration of deployments that ended (success or failure).",
            DURATION_BUCKETS,
        )
        self._lead_time = Histogram(
            "tracker_lead_time_seconds",
            "Lead time for changes: a successful deployment's end minus each change's commit.",
            LEAD_TIME_BUCKETS,
        )
        self._write_groups = Histogram(
            "tracker_write_group_size",
            "Writes per commit: concurrent requests of this process sharing one transaction.",
            WRITE_GROUP_BUCKETS,
        )

    def observe_write_group(self, size: int) -> None:
        """Record one commit of ``size`` grouped writes."""
        with self._lock:
            self._write_groups.observe(size)

    def _service(self, service: str) -> str:
        """The label value of a service: itself, or ``other`` once the cap is reached."""
        if service in self._services:
            return service
        if len(self._services) >= self._max_services:
            return OTHER
        self._services.add(service)
        return service

    def count_deployment(self, *, service: str, environment: str, status: str) -> None:
        """Count a deployment reaching this status."""
        with self._lock:
            self._deployments[(self._service(service), environment, status)] += 1

    def observe_deployment_duration(self, seconds: float) -> None:
        """Record the duration of a deployment that ended."""
        with self._lock:
            self._deployment_duration.observe(seconds)

    def observe_lead_time(self, seconds: float) -> None:
        """Record the lead time of one shipped change."""
        with self._lock:
            self._lead_time.observe(seconds)

    def count_status(self, *, service: str, status: str, environment: str) -> None:
        """Count one event with this status."""
        with self._lock:
            self._statuses[(self._service(service), status, environment)] += 1

    def observe_duration(self, seconds: float) -> None:
        """Record one event duration."""
        with self._lock:
            self._duration.observe(seconds)

    def families(self) -> list[Metric]:
        """This process's metric families, as they stand now."""
        with self._lock:
            return [
                _counter(
                    "tracker_event_status_total",
                    "Events by status.",
                    ["service", "status", "environment"],
                    self._statuses.items(),
                ),
                self._duration.family(),
                _counter(
                    "tracker_deployments_total",
                    "Deployments by the status they reached.",
                    ["service", "environment", "status"],
                    self._deployments.items(),
                ),
                self._deployment_duration.family(),
                self._lead_time.family(),
                self._write_groups.family(),
            ]

    def render(self) -> str:
        """The Prometheus text format (version 0.0.4)."""
        return exposition(self.families())


def database_gauges(conn: Connection, now: datetime) -> str:
    """Locks held, waiters per key and freezes in force, read from the database now."""
    queues = GaugeMetricFamily(
        "tracker_lock_queue_length",
        "Deployments waiting for a lock, by key.",
        labels=["service", "environment", "resource"],
    )
    for key, waiting in sorted(gauges.queue_lengths(conn).items()):
        queues.add_metric(list(key), waiting)
    return exposition(
        [
            GaugeMetricFamily(
                "tracker_locks_held", "Locks held now.", value=gauges.locks_held(conn, now)
            ),
            queues,
            GaugeMetricFamily(
                "tracker_freezes_active",
                "Freeze windows in force now.",
                value=gauges.freezes_active(conn, now),
            ),
        ]
    )
