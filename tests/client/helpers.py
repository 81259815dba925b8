"""Wire payloads for the client tests: built from the shared models, as a server writes them."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tracker_ci.models import (
    ChangelogEntry,
    ChangeType,
    Environment,
    Event,
    EventAttributes,
    EventLinks,
    EventMetadata,
    EventType,
    Lock,
    Priority,
    Status,
)

BASE = "http://tracker.test:8080"
API = f"{BASE}/api/v1alpha1"
EVENT_ID = "0b7e3f3c-1f43-4c38-9a55-2f4f0b8a7e11"
LOCK_ID = "5d0c3b0e-8d5c-4b7a-9a0e-3c2a1d9e8f77"
#: Headers of an answer from our bundled server (upstream sends no such header).
OURS = {"X-Tracker-Server": "tracker-ci/0.1.0"}


def event(status: Status = Status.start, *, message: str = "deploying", **meta: Any) -> Event:
    """A deployment event as a server stores it."""
    return Event(
        title="Deploy api to production",
        attributes=EventAttributes(
            message=message,
            source="tracker-ci",
            type=EventType.deployment,
            priority=Priority.P2,
            service="api",
            status=status,
            environment=Environment.production,
            start_date="2026-11-23T10:00:00Z",
            owner="alice",
        ),
        links=EventLinks(pull_request_link="https://github.com/o/r/pull/7", ticket="OPS-1"),
        metadata=EventMetadata(id=EVENT_ID, created_at="2026-11-23T10:00:00Z", **meta),
        changelog=[
            ChangelogEntry(
                timestamp="2026-11-23T10:00:00Z",
                user="alice",
                change_type=ChangeType.created,
                comment="Event created",
            )
        ],
    )


def lock(**fields: Any) -> Lock:
    """The automatic lock of ``event()``."""
    values: dict[str, Any] = {
        "id": LOCK_ID,
        "service": "api",
        "who": "alice",
        "created_at": "2026-11-23T10:00:00Z",
        "environment": "production",
        "resource": "deployment",
        "event_id": EVENT_ID,
    }
    values.update(fields)
    return Lock(**values)


def event_answer(value: Event, *, ours: bool = True, status: int = 200) -> httpx.Response:
    """``{"event": ...}`` with or without our server's header."""
    return httpx.Response(status, json={"event": value.to_wire()}, headers=OURS if ours else {})


def lock_answer(value: Lock, *, ours: bool = True) -> httpx.Response:
    """``{"lock": ...}`` with or without our server's header."""
    return httpx.Response(200, json={"lock": value.to_wire()}, headers=OURS if ours else {})


def error_answer(status: int, code: int, message: str, *, ours: bool = True) -> httpx.Response:
    """The one error body, ``{"code", "message", "details": []}``."""
    body = {"code": code, "message": message, "details": []}
    return httpx.Response(status, json=body, headers=OURS if ours else {})


def body(request: httpx.Request) -> Any:
    """The JSON body a request carried."""
    return json.loads(request.content)
