"""Prometheus metrics in the text exposition format, with no extra dependency.

Upstream's: ``tracker_event_status_total{service,status,environment}`` counts events by
status (on creation and on every status change); ``tracker_event_duration_seconds`` is a
histogram observed when an event moves to success or failure. Ours:
``tracker_deployments_total{service,environment,status}``, the histograms
``tracker_deployment_duration_seconds`` and ``tracker_lead_time_seconds`` (observed when a
deployment ends); these are per server process. The gauges ``tracker_locks_held``,
``tracker_lock_queue_length`` and ``tracker_freezes_active`` are read from the database at
each scrape (:func:`database_gauges`, counted by ``store/gauges.py``), so every replica
answers the same.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from datetime import datetime

from sqlalchemy import Connection

from tracker_server.store import gauges

DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


#: Lead time for changes: an hour to a month (DORA's thresholds are among the bounds).
LEAD_TIME_BUCKETS = (3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400)


class Histogram:
    """One Prometheus histogram (cumulative buckets, sum, count); not thread-safe alone."""

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

    def lines(self) -> list[str]:
        """Its text exposition."""
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} histogram"]
        for bound, count in zip(self.buckets, self.counts, strict=True):
            lines.append(f'{self.name}_bucket{{le="{bound}"}} {count}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {self.sum}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


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
)


class Metrics:
    """Thread-safe counters of one server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
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

    def count_deployment(self, *, service: str, environment: str, status: str) -> None:
        """Count a deployment reaching this status."""
        with self._lock:
            self._deployments[(service, environment, status)] += 1

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
            self._statuses[(service, status, environment)] += 1

    def observe_duration(self, seconds: float) -> None:
        """Record one event duration."""
        with self._lock:
            self._duration.observe(seconds)

    def render(self) -> str:
        """The Prometheus text format (version 0.0.4)."""
        with self._lock:
            lines = [
                "# HELP tracker_event_status_total Events by status.",
                "# TYPE tracker_event_status_total counter",
            ]
            for (service, status, environment), count in sorted(self._statuses.items()):
                lines.append(
                    f'tracker_event_status_total{{service="{_label(service)}",'
                    f'status="{_label(status)}",environment="{_label(environment)}"}} {count}'
                )
            lines += self._duration.lines()
            lines += [
                "# HELP tracker_deployments_total Deployments by the status they reached.",
                "# TYPE tracker_deployments_total counter",
            ]
            for (service, environment, status), count in sorted(self._deployments.items()):
                lines.append(
                    f'tracker_deployments_total{{service="{_label(service)}",'
                    f'environment="{_label(environment)}",status="{_label(status)}"}} {count}'
                )
            lines += self._deployment_duration.lines()
            lines += self._lead_time.lines()
        return "\n".join(lines) + "\n"


def database_gauges(conn: Connection, now: datetime) -> str:
    """Locks held, waiters per key and freezes in force, read from the database now."""
    lines = [
        "# HELP tracker_locks_held Locks held now.",
        "# TYPE tracker_locks_held gauge",
        f"tracker_locks_held {gauges.locks_held(conn, now)}",
        "# HELP tracker_lock_queue_length Deployments waiting for a lock, by key.",
        "# TYPE tracker_lock_queue_length gauge",
    ]
    for (service, environment, resource), waiting in sorted(gauges.queue_lengths(conn).items()):
        lines.append(
            f'tracker_lock_queue_length{{service="{_label(service)}",'
            f'environment="{_label(environment)}",resource="{_label(resource)}"}} {waiting}'
        )
    lines += [
        "# HELP tracker_freezes_active Freeze windows in force now.",
        "# TYPE tracker_freezes_active gauge",
        f"tracker_freezes_active {gauges.freezes_active(conn, now)}",
    ]
    return "\n".join(lines) + "\n"
