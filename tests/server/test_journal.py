"""The typed journal: every write route records its entries in the change's own
transaction (a rolled-back write leaves none); entries read back typed, in id order."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy.exc import OperationalError
from tracker_server.clock import ManualClock
from tracker_server.deps import get_admin_write, get_write
from tracker_server.journal import (
    EventCreated,
    EventUpdated,
    JournalEntry,
    JournalRecord,
    LockReleased,
    read_journal,
)
from tracker_server.routes import events, locks, ops, tokens
from tracker_server.store import idempotency

from tests.server.helpers import API, assert_error, create_event, event_body, update_body

pytestmark = pytest.mark.server

START = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
LOCK = {"service": "api", "environment": "UAT", "resource": "deployment", "who": "ci"}


def journal(client: Any, after: int = 0) -> list[JournalRecord]:
    with client.app.state.database.read() as conn:
        return read_journal(conn, after=after, limit=1000)


def kinds(client: Any, after: int = 0) -> list[str]:
    return [record.entry.KIND for record in journal(client, after)]


def last_id(client: Any) -> int:
    records = journal(client)
    return records[-1].id if records else 0


def _no_setup(_client: Any) -> str:
    return ""


def _open_incident(client: Any) -> str:
    return str(create_event(client, type="incident", status="open")["metadata"]["id"])


def _started_deployment(client: Any) -> Any:
    return create_event(client, status="start")


def _waiting_approval(client: Any) -> str:
    return str(create_event(client, status="waiting_approval")["metadata"]["id"])


def _lock(client: Any) -> str:
    return str(client.post(f"{API}/lock", json=LOCK).json()["lock"]["id"])


def _token(client: Any) -> str:
    return str(client.post(f"{API}/tokens", json={"name": "ci"}).json()["token"]["id"])


Setup = Callable[[Any], Any]
Act = Callable[[Any, Any], Any]

# (method, route path) -> what to set up, the write through that route, and the entries
# that write must record (setting up records entries of its own, not counted).
WRITES: dict[tuple[str, str], tuple[Setup, Act, list[str]]] = {
    ("POST", "/event"): (
        _no_setup,
        lambda c, _: c.post(f"{API}/event", json=event_body(status="start")),
        ["lock_acquired", "event_created"],
    ),
    ("PUT", "/event"): (
        _started_deployment,
        lambda c, event: c.put(f"{API}/event", json=update_body(event, status="success")),
        ["lock_released", "event_updated"],
    ),
    ("POST", "/event/{id}/close"): (
        _started_deployment,
        lambda c, event: c.post(
            f"{API}/event/{event['metadata']['id']}/close", json={"status": "success"}
        ),
        ["lock_released", "event_updated"],
    ),
    ("DELETE", "/event/{id}"): (
        _started_deployment,
        lambda c, event: c.delete(f"{API}/event/{event['metadata']['id']}"),
        ["lock_released", "event_deleted"],
    ),
    ("POST", "/event/{id}/changelog"): (
        _open_incident,
        lambda c, id: c.post(f"{API}/event/{id}/changelog", json={"entry": {"comment": "ok"}}),
        ["changelog_added"],
    ),
    ("POST", "/event/{id}/approve"): (
        _waiting_approval,
        lambda c, id: c.post(f"{API}/event/{id}/approve", json={"comment": "ok"}),
        ["approval_decided"],
    ),
    ("POST", "/event/{id}/reject"): (
        _waiting_approval,
        lambda c, id: c.post(f"{API}/event/{id}/reject", json={}),
        ["approval_decided"],
    ),
    ("POST", "/event/{id}/slack"): (
        _open_incident,
        lambda c, id: c.post(f"{API}/event/{id}/slack", json={"slackId": "C1/123"}),
        ["slack_id_set"],
    ),
    ("POST", "/lock"): (
        _no_setup,
        lambda c, _: c.post(f"{API}/lock", json=LOCK),
        ["lock_acquired"],
    ),
    ("PUT", "/lock/{id}"): (
        _lock,
        lambda c, id: c.put(f"{API}/lock/{id}", json={"who": "bob"}),
        ["lock_updated"],
    ),
    ("POST", "/lock/{id}/renew"): (
        _lock,
        lambda c, id: c.post(f"{API}/lock/{id}/renew", json={"ttlSeconds": 60}),
        ["lock_renewed"],
    ),
    ("GET", "/unlock/{id}"): (
        _lock,
        lambda c, id: c.get(f"{API}/unlock/{id}"),
        ["lock_released"],
    ),
    ("DELETE", "/lock/{id}"): (
        _lock,
        lambda c, id: c.delete(f"{API}/lock/{id}"),
        ["lock_released"],
    ),
    ("POST", "/unlock"): (
        _lock,
        lambda c, id: c.post(f"{API}/unlock", json=LOCK | {"id": id}),
        ["lock_released"],
    ),
    ("POST", "/tokens"): (
        _no_setup,
        lambda c, _: c.post(f"{API}/tokens", json={"name": "ci"}),
        ["token_created"],
    ),
    ("DELETE", "/tokens/{id}"): (
        _token,
        lambda c, id: c.delete(f"{API}/tokens/{id}"),
        ["token_revoked"],
    ),
}


def _api_routes() -> list[APIRoute]:
    return [
        route
        for module in (events, locks, tokens, ops)
        for route in module.router.routes
        if isinstance(route, APIRoute)
    ]


def _write_routes() -> set[tuple[str, str]]:
    """Every route that changes something: POST, PUT, DELETE, and upstream's GET /unlock."""
    found = set()
    for route in _api_routes():
        path = route.path.removeprefix(API)
        for method in route.methods:
            if method in ("POST", "PUT", "DELETE") or path.startswith("/unlock/"):
                found.add((method, path))
    return found


def _dependencies(dependant: Any) -> set[Any]:
    calls = set()
    for sub in dependant.dependencies:
        calls.add(sub.call)
        calls |= _dependencies(sub)
    return calls


@pytest.mark.unit
def test_the_table_covers_every_write_route_and_each_takes_the_write_dependency():
    assert set(WRITES) == _write_routes()
    for route in _api_routes():
        if any((method, route.path.removeprefix(API)) in WRITES for method in route.methods):
            assert _dependencies(route.dependant) & {get_write, get_admin_write}, route.path


@pytest.mark.parametrize("route", list(WRITES), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_write_route_records_its_entries(make_client, route):
    client = make_client(clock=ManualClock(START))
    setup, act, expected = WRITES[route]
    target = setup(client)
    before = last_id(client)
    response = act(client, target)
    assert response.status_code in (200, 201), response.text
    recorded = journal(client, after=before)
    assert [r.entry.KIND for r in recorded] == expected
    assert all(r.occurred_at == START for r in recorded)


def test_entries_read_back_typed_and_in_order(client):
    event = create_event(client, status="start")
    closed = client.put(f"{API}/event", json=update_body(event, status="success")).json()["event"]
    records = journal(client)
    assert [r.id for r in records] == sorted(r.id for r in records)
    created, released, updated = (r.entry for r in records[1:])
    assert (
        isinstance(created, EventCreated) and created.event.metadata.id == closed["metadata"]["id"]
    )
    assert isinstance(released, LockReleased) and released.lock.event_id == closed["metadata"]["id"]
    assert isinstance(updated, EventUpdated)
    assert (updated.before.attributes.status.value, updated.after.attributes.status.value) == (
        "start",
        "success",
    )
    assert updated.after.metadata.duration is not None
    for record in records:  # the stored payload is the entry, nothing lost
        assert JournalEntry.from_row(record.entry.KIND, record.entry.payload()) == record.entry


def test_a_refused_write_records_nothing(client):
    client.post(f"{API}/lock", json=LOCK)
    before = kinds(client)
    assert_error(client.post(f"{API}/lock", json=LOCK | {"who": "other"}), 409, 6)
    assert_error(client.delete(f"{API}/event/{uuid.uuid4()}"), 404, 5)
    other = {"who": "other", "id": str(uuid.uuid4())}
    assert_error(client.post(f"{API}/unlock", json=LOCK | other), 409, 6)
    assert kinds(client) == before


def test_a_rolled_back_write_records_nothing_and_announces_nothing(client, monkeypatch):
    """The entry was recorded, then the transaction failed: neither the change nor its
    entry is stored, and no metric counts it."""

    def fail(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("UPDATE idempotency_keys", {}, Exception("disk I/O error"))

    monkeypatch.setattr(idempotency, "remember", fail)
    response = client.post(
        f"{API}/event",
        json=event_body(service="rolled-back", status="start"),
        headers={"Idempotency-Key": "k"},
    )
    assert_error(response, 503, 14, "disk I/O error")
    assert journal(client) == []
    assert client.get(f"{API}/events/list").json()["totalCount"] == 0
    assert client.get(f"{API}/locks/list").json()["totalCount"] == 0
    assert "rolled-back" not in client.get("/metrics").text


def test_committed_entries_are_still_announced_as_metrics(client):
    event = create_event(client, service="metered", status="start")
    client.put(f"{API}/event", json=update_body(event, status="success"))
    metrics = client.get("/metrics").text
    # prometheus-client writes labels in name order.
    assert (
        'tracker_event_status_total{environment="production",service="metered",status="start"}'
        in metrics
    )
    assert (
        'tracker_event_status_total{environment="production",service="metered",status="success"}'
        in metrics
    )
    assert "tracker_event_duration_seconds_count 1" in metrics


def test_a_replayed_idempotent_write_records_nothing(client):
    headers = {"Idempotency-Key": "once"}
    assert client.post(f"{API}/lock", json=LOCK, headers=headers).status_code == 200
    before = kinds(client)
    assert client.post(f"{API}/lock", json=LOCK, headers=headers).status_code == 200
    assert kinds(client) == before == ["lock_acquired"]


def test_the_stored_payload_is_the_entrys_json(client):
    # Stored through pydantic's encoder (db.JsonText): the same JSON as payload() gives.
    create_event(client, status="start")
    with client.app.state.database.read() as conn:
        rows = conn.exec_driver_sql("SELECT kind, payload FROM journal ORDER BY id").all()
    records = journal(client)
    assert [row.kind for row in rows] == [r.entry.KIND for r in records] and rows
    for row, record in zip(rows, records, strict=True):
        stored = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
        assert stored == record.entry.payload()
