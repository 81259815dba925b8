"""Deployment locks: automatic and explicit, TTLs, releases, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from tests.server.helpers import API, assert_error, create_event, event_body, update_body

pytestmark = pytest.mark.server


def lock_body(**fields):
    return {
        "service": "api",
        "environment": "production",
        "resource": "deployment",
        "who": "alice",
    } | fields


def take(client, **fields):
    response = client.post(f"{API}/lock", json=lock_body(**fields))
    assert response.status_code == 200, response.text
    return response.json()["lock"]


def test_a_starting_deployment_takes_the_lock_and_a_second_one_is_refused(client):
    first = create_event(client, status="start", service="api", environment="production")
    [lock] = client.get(f"{API}/locks/list").json()["locks"]
    assert (lock["service"], lock["environment"], lock["resource"]) == (
        "api",
        "production",
        "deployment",
    )
    assert lock["who"] == "alice" and lock["eventId"] == first["metadata"]["id"]
    assert [e["changeType"] for e in first["changelog"]] == ["created", "locked"]

    response = client.post(f"{API}/event", json=event_body(status="in_progress"))
    assert_error(response, 409, 6)
    assert response.json()["message"] == (
        "cannot create event: service api is already locked in production. Please unlock it first"
    )
    # The refused event was NOT created.
    assert client.get(f"{API}/events/list").json()["totalCount"] == 1
    # Another environment, or an operation (another resource), is free.
    create_event(client, status="start", environment="UAT")
    create_event(client, status="start", type="operation", owner="")
    operation_lock = [
        lk
        for lk in client.get(f"{API}/locks/list").json()["locks"]
        if lk["resource"] == "operation"
    ]
    assert operation_lock[0]["who"] == "system"


@pytest.mark.parametrize("final", ["success", "failure", "done"])
def test_closing_the_event_releases_its_lock(client, final):
    event = create_event(client, status="start")
    closed = client.put(f"{API}/event", json=update_body(event, status=final)).json()["event"]
    assert client.get(f"{API}/locks/list").json()["totalCount"] == 0
    assert closed["changelog"][-1]["changeType"] == "unlocked"
    create_event(client, status="start")  # free again


def test_a_non_locking_status_takes_no_lock(client):
    create_event(client, status="planned")
    create_event(client, type="incident", status="start")
    assert client.get(f"{API}/locks/list").json()["totalCount"] == 0


def test_a_deployment_event_needs_a_service(client):
    response = client.post(f"{API}/event", json=event_body(service="", status="start"))
    assert_error(response, 400, 3, "attributes.service", "required")


def test_lock_conflict_names_the_holder(client):
    event = create_event(client, type="incident", status="open")
    held = take(client, who="bob", eventId=event["metadata"]["id"])
    response = client.post(f"{API}/lock", json=lock_body(who="carol"))
    assert_error(response, 409, 6)
    assert response.json()["message"] == (
        f"service api is already locked for deployment in production by bob "
        f"(lock_id: {held['id']}, event_id: {event['metadata']['id']})"
    )
    changelog = client.get(f"{API}/event/{event['metadata']['id']}/changelog").json()
    assert changelog["changelog"][-1]["changeType"] == "locked"


def test_lock_read_update_and_release_by_id(client):
    lock = take(client, resource="")
    assert lock["resource"] == "deployment"  # an empty resource means the deployment lock
    assert lock["expiresAt"] is None
    assert client.get(f"{API}/lock/{lock['id']}").json()["lock"] == lock
    updated = client.put(f"{API}/lock/{lock['id']}", json={"who": "bob", "service": ""})
    assert updated.status_code == 200, updated.text
    assert updated.json()["lock"]["who"] == "bob"
    assert updated.json()["lock"]["service"] == "api"  # empty keeps the value
    other = take(client, environment="UAT")
    clash = client.put(f"{API}/lock/{other['id']}", json={"environment": "production"})
    assert_error(clash, 409, 6, "by bob")

    released = client.get(f"{API}/unlock/{lock['id']}")
    assert released.json() == {"message": "lock deleted", "id": lock["id"], "count": "1"}
    again = client.get(f"{API}/unlock/{lock['id']}")
    assert again.json() == {"message": "lock deleted", "id": lock["id"], "count": "0"}
    assert client.delete(f"{API}/lock/{other['id']}").json()["count"] == "1"
    assert_error(client.get(f"{API}/lock/{lock['id']}"), 404, 5)
    assert_error(client.get(f"{API}/unlock/nope"), 400, 3, "UUID")
    assert_error(client.put(f"{API}/lock/{uuid.uuid4()}", json={"who": "x"}), 404, 5)


def test_lock_validation(client):
    assert_error(client.post(f"{API}/lock", json=lock_body(service="")), 400, 3, "service")
    assert_error(client.post(f"{API}/lock", json=lock_body(environment=" ")), 400, 3, "environment")
    assert_error(client.post(f"{API}/lock", json=lock_body(eventId="x")), 400, 3, "eventId")
    assert_error(
        client.post(f"{API}/lock", json=lock_body(eventId=str(uuid.uuid4()))),
        400,
        3,
        "names no event",
    )
    assert_error(client.post(f"{API}/lock", json=lock_body(ttlSeconds=-1)), 400, 3, "ttlSeconds")
    assert client.get(f"{API}/locks/list").json()["totalCount"] == 0


def test_an_expired_lock_is_free(timed, clock):
    client = timed
    lock = take(client, ttlSeconds=60)
    assert lock["expiresAt"] is not None
    clock.advance(timedelta(seconds=59))
    assert_error(client.post(f"{API}/lock", json=lock_body(who="bob")), 409, 6)
    clock.advance(timedelta(seconds=2))
    assert client.get(f"{API}/locks/list").json()["totalCount"] == 0
    assert_error(client.get(f"{API}/lock/{lock['id']}"), 404, 5)
    assert_error(client.post(f"{API}/lock/{lock['id']}/renew", json={"ttlSeconds": 60}), 404, 5)
    newer = take(client, who="bob")
    assert newer["who"] == "bob"


def test_an_expired_automatic_lock_lets_the_next_deployment_start(timed, clock):
    client = timed
    body = event_body(status="start") | {"lockTtlSeconds": 120}
    first = client.post(f"{API}/event", json=body).json()["event"]
    [lock] = client.get(f"{API}/locks/list").json()["locks"]
    assert lock["expiresAt"] is not None and lock["eventId"] == first["metadata"]["id"]
    clock.advance(timedelta(seconds=121))
    second = create_event(client, status="start")
    assert client.get(f"{API}/locks/list").json()["locks"][0]["eventId"] == second["metadata"]["id"]
    # The first event's changelog says its lock went away.
    first_log = client.get(f"{API}/event/{first['metadata']['id']}/changelog").json()
    assert first_log["changelog"][-1]["changeType"] == "unlocked"


def test_renew_moves_the_expiry(client):
    lock = take(client, ttlSeconds=10)
    renewed = client.post(f"{API}/lock/{lock['id']}/renew", json={"ttlSeconds": 3600})
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["lock"]["expiresAt"] > lock["expiresAt"]
    assert_error(
        client.post(f"{API}/lock/{lock['id']}/renew", json={"ttlSeconds": 0}), 400, 3, "ttlSeconds"
    )
    assert_error(client.post(f"{API}/lock/{uuid.uuid4()}/renew", json={"ttlSeconds": 5}), 404, 5)


def test_release_by_key_must_name_the_holder(client):
    lock = take(client, who="alice")
    key = {"service": "api", "environment": "production", "resource": "deployment"}
    assert_error(client.post(f"{API}/unlock", json=key | {"who": "alice"}), 400, 3, "eventId")
    assert_error(
        client.post(f"{API}/unlock", json=key | {"who": "bob", "id": lock["id"]}), 409, 6, "alice"
    )
    assert_error(
        client.post(f"{API}/unlock", json=key | {"who": "alice", "id": str(uuid.uuid4())}), 409, 6
    )
    assert_error(client.post(f"{API}/unlock", json=key | {"who": ""}), 400, 3, "who")
    released = client.post(f"{API}/unlock", json=key | {"who": "alice", "id": lock["id"]})
    assert released.json() == {"message": "lock deleted", "id": lock["id"], "count": "1"}
    gone = client.post(f"{API}/unlock", json=key | {"who": "alice", "id": lock["id"]})
    assert_error(gone, 404, 5)


def test_deleting_an_event_releases_its_lock(client):
    event = create_event(client, status="start")
    assert client.delete(f"{API}/event/{event['metadata']['id']}").status_code == 200
    assert client.get(f"{API}/locks/list").json()["totalCount"] == 0
