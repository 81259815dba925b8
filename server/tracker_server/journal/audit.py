"""The audit log: one JSON object per line on stdout, with upstream's field names, so that
Loki or OpenSearch can ingest it like upstream's. The journal writes a line for each
committed entry that has one (:meth:`JournalEntry.audit_line`).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from tracker_ci.models import Event, Lock, format_timestamp, utcnow

__all__ = [
    "AuditLine",
    "JsonLineFormatter",
    "audit_logger",
    "configure_audit_log",
    "event_log_fields",
    "lock_log_fields",
]

audit_logger = logging.getLogger("tracker_server.audit")

AuditLine = tuple[str, dict[str, Any]]


class JsonLineFormatter(logging.Formatter):
    """``{"time", "level", "msg", ...fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        # The time the line is written (a process-wide logger has no app, hence no clock).
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
    created_at = event.metadata.created_at
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
        "created_at": format_timestamp(created_at) if created_at else "",
    }


def lock_log_fields(lock: Lock) -> dict[str, Any]:
    """The fields of a lock's audit lines."""
    return {
        "service": lock.service,
        "environment": lock.environment,
        "resource": lock.resource,
        "who": lock.who,
        "id": lock.id,
        "event_id": lock.event_id,
    }
