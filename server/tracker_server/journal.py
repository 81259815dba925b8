"""What a request did, announced only after its transaction commits.

Store functions record log lines and metric observations on a :class:`Journal`; the
route flushes it once the write is committed, so a rolled-back request logs nothing.
Log lines are one JSON object each on stdout, with upstream's field names, so that
Loki or OpenSearch can ingest them like upstream's.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from tracker_ci.models import Event, format_timestamp, utcnow
from tracker_server.metrics import Metrics

audit_logger = logging.getLogger("tracker_server.audit")


class JsonLineFormatter(logging.Formatter):
    """``{"time", "level", "msg", ...fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": format_timestamp(utcnow()),
            "level": record.levelname,
            "msg": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        return json.dumps(line, ensure_ascii=False)


def configure_audit_log(level: str) -> None:
    """Send audit lines to stdout as JSON (once per process)."""
    audit_logger.setLevel(level.upper())
    audit_logger.propagate = False
    if not any(getattr(h, "tracker_audit", False) for h in audit_logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonLineFormatter())
        handler.tracker_audit = True  # type: ignore[attr-defined]
        audit_logger.addHandler(handler)


def event_log_fields(event: Event) -> dict[str, Any]:
    """The fields upstream logs for a created event."""
    attributes = event.attributes
    return {
        "title": event.title,
        "message": attributes.message,
        "priority": attributes.priority.value,
        "environment": attributes.environment.value,
        "owner": attributes.owner,
        "impact": attributes.impact,
        "service": attributes.service,
        "status": attributes.status.value,
        "type": attributes.type.value,
        "pull_request": event.links.pull_request_link,
        "id": event.metadata.id,
        "created_at": format_timestamp(event.metadata.created_at or utcnow()),
    }


@dataclass
class Journal:
    """Log lines and metric observations waiting for the commit."""

    metrics: Metrics
    lines: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    statuses: list[tuple[str, str, str]] = field(default_factory=list)
    durations: list[timedelta] = field(default_factory=list)

    def event_created(self, event: Event) -> None:
        """An event was inserted."""
        self.lines.append(("event created", event_log_fields(event)))
        self.event_status(event)

    def event_status(self, event: Event) -> None:
        """An event got a status (on create or on a status change)."""
        attributes = event.attributes
        self.statuses.append(
            (attributes.service, attributes.status.value, attributes.environment.value)
        )

    def event_duration(self, duration: timedelta) -> None:
        """An event moved to success or failure after ``duration``."""
        self.durations.append(duration)

    def lock(self, message: str, lock: dict[str, Any]) -> None:
        """A lock was created or deleted (``message`` is "lock created" / "lock deleted")."""
        fields = {
            name: lock.get(name, "")
            for name in ("service", "environment", "resource", "who", "id", "event_id")
        }
        self.lines.append((message, fields))

    def flush(self) -> None:
        """Write the lines and record the metrics (after the commit)."""
        for message, fields in self.lines:
            audit_logger.info(message, extra={"fields": fields})
        for service, status, environment in self.statuses:
            self.metrics.count_status(service=service, status=status, environment=environment)
        for duration in self.durations:
            self.metrics.observe_duration(duration.total_seconds())
        self.lines.clear()
        self.statuses.clear()
        self.durations.clear()
