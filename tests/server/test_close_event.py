"""``POST /event/{id}/close`` (our server; issue 23): a deployment closed in one request
that reads nothing first. The status, the message appended, the end date unless set, then
exactly what ``PUT /event`` with that body does (the duration, the lock released and handed
to the next in line); what changed since the event was opened is kept; a repeat with the
same idempotency key closes once; every refusal changes nothing. On the real app, SQLite
and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.helpers import API, assert_error, event_body, token_headers
from tests.server.test_queue_grant import join, status
from tests.server.test_queue_grant_event import ask

pytestmark = pytest.mark.server

ADMIN = {"Authorization": "Bearer admin-secret"}


def open_deploy(client, owner: str = "alice", headers=None, **attributes: Any) -> dict[str, Any]:
    """A deployment of the queue's key that starts (it takes the lock)."""
    body = event_body(f"deploy by {owner}", status="start", owner=owner, **attributes)
    response = client.post(f"{API}/event", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["event"]


def close(client, event_id: str, headers=None, **body: Any):
    return client.post(f"{API}/event/{event_id}/close", json=body, headers=headers)


def stored(client, event_id: str) -> dict[str, Any]:
    return client.get(f"{API}/event/{event_id}").json()["event"]


def test_close_appends_the_message_sets_the_end_and_releases_the_lock(client) -> None:
    event = open_deploy(client, message="v1.2.3")
    event_id = event["metadata"]["id"]
    assert status(client)["lock"]["eventId"] == event_id

    answer = close(client, event_id, status="success", message="deployed in 42s")
    assert answer.status_code == 200, answer.text
    closed = answer.json()["event"]
    assert closed["attributes"]["status"] == "success"
    assert closed["attributes"]["message"] == "v1.2.3\ndeployed in 42s"
    assert closed["attributes"]["endDate"] is not None
    assert closed["metadata"]["duration"] is not None
    assert status(client)["lock"] is None  # success releases it
    assert stored(client, event_id) == closed  # the answer is the stored event
    # Everything else as it was.
    for field in ("title", "links"):
        assert closed[field] == event[field]
    for name in ("service", "environment", "owner", "type", "priority", "startDate"):
        assert closed["attributes"][name] == event["attributes"][name], name


def test_close_keeps_an_end_date_and_what_changed_since_the_event_opened(client) -> None:
    event = open_deploy(client, message="")
    event_id = event["metadata"]["id"]
    # The deploy command changed the event meanwhile (links, its end date).
    changed = {
        "id": event_id,
        "title": event["title"],
        "attributes": event["attributes"] | {"endDate": "2026-01-02T03:04:05Z"},
        "links": {"pullRequestLink": "https://github.com/o/r/pull/7", "ticket": "OPS-1"},
    }
    assert client.put(f"{API}/event", json=changed).status_code == 200

    closed = close(client, event_id, status="failure").json()["event"]
    assert closed["attributes"]["status"] == "failure"
    assert closed["attributes"]["message"] == ""  # nothing appended
    assert closed["attributes"]["endDate"] == "2026-01-02T03:04:05Z"
    assert closed["links"] == changed["links"]


def test_close_hands_the_lock_to_the_waiter_whose_grant_opens_its_event(client) -> None:
    event_id = open_deploy(client)["metadata"]["id"]
    ticket = join(client, "bob")
    assert ask(client, ticket, "bob").json()["granted"] is None

    assert close(client, event_id, status="success").status_code == 200
    answer = ask(client, ticket, "bob").json()
    assert answer["granted"]["who"] == "bob"
    assert answer["event"]["attributes"]["owner"] == "bob"
    assert status(client)["lock"]["eventId"] == answer["event"]["metadata"]["id"]


@pytest.mark.parametrize("word", ["warning", "error", "close", "done"])
def test_every_finish_status_closes(client, word: str) -> None:
    event_id = open_deploy(client)["metadata"]["id"]
    closed = close(client, event_id, status=word).json()["event"]
    assert closed["attributes"]["status"] == word
    # Only success, failure and done release the automatic lock (as PUT /event).
    assert (status(client)["lock"] is None) == (word == "done")


def test_a_repeat_with_the_same_key_closes_once(client) -> None:
    event_id = open_deploy(client, message="v1")["metadata"]["id"]
    key = {"Idempotency-Key": "close-once-1"}
    first = close(client, event_id, headers=key, status="success", message="done in 3s")
    again = close(client, event_id, headers=key, status="success", message="done in 3s")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert stored(client, event_id)["attributes"]["message"] == "v1\ndone in 3s"
    other = close(client, event_id, headers=key, status="failure", message="done in 3s")
    assert_error(other, 400, 3, "Idempotency-Key")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"status": "start"}, "does not close an event"),
        ({"status": "in_progress"}, "does not close an event"),
        ({}, "does not close an event"),  # unspecified
        ({"status": "nonsense"}, "status"),
        ({"status": "success", "message": 5}, "message"),
        ({"status": "success", "message": "x" * 20_001}, "message"),
        ({"status": "success", "message": "bad\u0000byte"}, "message"),
    ],
)
def test_a_bad_close_is_a_400_and_changes_nothing(client, body, fragment) -> None:
    event = open_deploy(client, message="m" * 19_990)
    event_id = event["metadata"]["id"]
    assert_error(close(client, event_id, **body), 400, 3, fragment)
    assert stored(client, event_id) == event
    assert status(client)["lock"]["eventId"] == event_id


def test_a_message_that_would_grow_past_the_limit_is_a_400(client) -> None:
    event = open_deploy(client, message="m" * 19_990)
    event_id = event["metadata"]["id"]
    answer = close(client, event_id, status="success", message="twenty characters!!!")
    assert_error(answer, 400, 3, "attributes.message")
    assert stored(client, event_id) == event


def test_closing_a_missing_event_is_its_404_not_a_missing_route(client) -> None:
    missing = "0d6e9160-fdf3-448c-8bcb-7eee98c6ca1d"
    body = assert_error(close(client, missing, status="success"), 404, 5, missing)
    assert not body["message"].startswith("no such route")
    assert_error(close(client, "not-a-uuid", status="success"), 400, 3, "id")


def test_only_the_lock_owner_or_an_admin_with_a_reason_closes_a_locked_event(
    make_client,
) -> None:
    client = make_client(auth=True, admin_token="admin-secret")
    alice = token_headers(client, "alice", ADMIN)
    bob = token_headers(client, "bob", ADMIN)
    read_only = client.post(f"{API}/tokens", json={"name": "ro", "readOnly": True}, headers=ADMIN)
    assert read_only.status_code == 201, read_only.text
    reader = {"Authorization": f"Bearer {read_only.json()['secret']}"}
    other_service = token_headers(client, "web-only", ADMIN, "web")
    event = open_deploy(client, headers=alice)
    event_id = event["metadata"]["id"]

    assert_error(close(client, event_id, status="success"), 401, 16)
    assert_error(close(client, event_id, headers=reader, status="success"), 403, 7)
    assert_error(close(client, event_id, headers=other_service, status="success"), 403, 7)
    assert_error(close(client, event_id, headers=bob, status="success"), 403, 7, "another token")
    assert_error(close(client, event_id, headers=ADMIN, status="success"), 403, 7, "say why")
    assert stored(client, event_id) == event

    by_admin = close(
        client, event_id, headers=ADMIN | {"X-Tracker-Reason": "stuck"}, status="failure"
    )
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json()["event"]["attributes"]["status"] == "failure"


def test_hostile_text_is_stored_as_given(client) -> None:
    event_id = open_deploy(client)["metadata"]["id"]
    hostile = "<script>alert(1)</script> ' OR 1=1; -- \u202e ${{ secrets.X }}"
    closed = close(client, event_id, status="failure", message=hostile).json()["event"]
    assert closed["attributes"]["message"].endswith(hostile)
    assert stored(client, event_id)["attributes"]["message"] == closed["attributes"]["message"]


def test_close_is_in_the_openapi_document(client) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"][f"{API}/event/{{id}}/close"]["post"]
    assert {"200", "400", "404"} <= set(operation["responses"])
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/CloseEventRequest")
