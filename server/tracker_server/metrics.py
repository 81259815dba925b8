"""Upstream's Prometheus metrics in the text exposition format, with no extra dependency.

``tracker_event_status_total{service,status,environment}`` counts events by status (on
creation and on every status change); ``tracker_event_duration_seconds`` is a histogram
observed when an event moves to success or failure. Values are per server process.
"""

from __future__ import annotations

import math
import threading
from collections import Counter

DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Thread-safe counters of one server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statuses: Counter[tuple[str, str, str]] = Counter()
        self._bucket_counts = [0] * len(DURATION_BUCKETS)
        self._duration_sum = 0.0
        self._duration_count = 0

    def count_status(self, *, service: str, status: str, environment: str) -> None:
        """Count one event with this status."""
        with self._lock:
            self._statuses[(service, status, environment)] += 1

    def observe_duration(self, seconds: float) -> None:
        """Record one event duration."""
        if not math.isfinite(seconds):
            return
        with self._lock:
            for index, bound in enumerate(DURATION_BUCKETS):
                if seconds <= bound:
                    self._bucket_counts[index] += 1
            self._duration_sum += seconds
            self._duration_count += 1

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
            lines += [
                "# HELP tracker_event_duration_seconds Duration of events that ended.",
                "# TYPE tracker_event_duration_seconds histogram",
            ]
            for bound, count in zip(DURATION_BUCKETS, self._bucket_counts, strict=True):
                lines.append(f'tracker_event_duration_seconds_bucket{{le="{bound}"}} {count}')
            lines.append(
                f'tracker_event_duration_seconds_bucket{{le="+Inf"}} {self._duration_count}'
            )
            lines.append(f"tracker_event_duration_seconds_sum {self._duration_sum}")
            lines.append(f"tracker_event_duration_seconds_count {self._duration_count}")
        return "\n".join(lines) + "\n"
