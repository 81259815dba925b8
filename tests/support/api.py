"""What a running Tracker server holds, read over its HTTP API (the wire contract).

Tests that drive the CLI, the action or a CI pipeline against a server in another process
check the outcome here, from the server itself, rather than each keeping its own copy.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "API",
    "changelog",
    "deployments",
    "event",
    "events_of",
    "heartbeat",
    "locks_of",
    "queue_of",
]

API = "/api/v1alpha1"
#: Seconds per request: generous, for a loaded CI machine.
TIMEOUT = 30.0


def _get(url: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{url}{API}{path}", params=params or None, timeout=TIMEOUT)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return response.json()


def events_of(url: str, service: str, **filters: str) -> list[dict[str, Any]]:
    """The service's events (narrowed by search ``filters``), oldest first."""
    events = _get(url, "/events/search", service=service, **filters)["events"]
    return sorted(events, key=lambda e: e["metadata"]["createdAt"])


def deployments(url: str, service: str) -> list[dict[str, Any]]:
    """The service's deployment events, oldest first."""
    return events_of(url, service, type="deployment")


def event(url: str, event_id: str) -> dict[str, Any]:
    """One event, by id."""
    return _get(url, f"/event/{event_id}")["event"]


def changelog(url: str, event_id: str) -> list[dict[str, Any]]:
    """An event's changelog."""
    return _get(url, f"/event/{event_id}/changelog")["changelog"]


def locks_of(url: str, service: str) -> list[dict[str, Any]]:
    """The locks held for the service, in any environment."""
    return [lock for lock in _get(url, "/locks/list")["locks"] if lock["service"] == service]


def queue_of(
    url: str, service: str, environment: str = "production", resource: str = "deployment"
) -> list[dict[str, Any]]:
    """The waiters in the queue of the service's lock."""
    key = {"service": service, "environment": environment, "resource": resource}
    return _get(url, "/locks/status", **key)["queue"]


def heartbeat(database_url: str, ticket: str) -> object:
    """When the server last heard the ticket's waiter (its long poll looks, then sleeps).

    Read from the database, not over HTTP: the API does not show it.
    """
    from sqlalchemy import create_engine, text
    from tracker_server.db import normalize_database_url

    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as conn:
            query = text("SELECT heartbeat_at FROM lock_queue WHERE id = :id")
            return conn.execute(query, {"id": ticket}).scalar_one()
    finally:
        engine.dispose()
