"""What the Tracker server holds, read over its HTTP API (the wire contract)."""

from __future__ import annotations

import httpx


def deployments(server_url: str, service: str) -> list[dict]:
    """The deployment events of a service on the server, oldest first."""
    response = httpx.get(
        f"{server_url}/api/v1alpha1/events/search",
        params={"service": service, "type": "deployment"},
        timeout=10,
    )
    response.raise_for_status()
    return sorted(response.json()["events"], key=lambda e: e["metadata"]["createdAt"])


def locks_of(server_url: str, service: str) -> list[dict]:
    """The locks held for a service."""
    response = httpx.get(f"{server_url}/api/v1alpha1/locks/list", timeout=10)
    response.raise_for_status()
    return [lock for lock in response.json()["locks"] if lock["service"] == service]


def changelog(server_url: str, event_id: str) -> list[dict]:
    """An event's changelog."""
    response = httpx.get(f"{server_url}/api/v1alpha1/event/{event_id}/changelog", timeout=10)
    response.raise_for_status()
    return response.json()["changelog"]
