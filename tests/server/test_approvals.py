"""The approval gate on the server: POST /event/{id}/approve and /reject, their permission
(no self-approval with auth on), changelog entries and webhook notifications."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.helpers import API, assert_error, event_body
from tests.support.receivers import run_receiver

pytestmark = pytest.mark.server

ADMIN = {"Authorization": "Bearer admin-secret"}


@pytest.fixture
def secured(make_client: Any) -> Any:
    return make_client(auth=True, admin_token="admin-secret", webhook_dispatcher=False)


def _token(client: Any, name: str) -> dict[str, str]:
    response = client.post(f"{API}/tokens", json={"name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['secret']}"}


def _waiting(client: Any, headers: dict[str, str] | None = None) -> str:
    body = event_body(status="waiting_approval")
    response = client.post(f"{API}/event", json=body, headers=headers or {})
    assert response.status_code == 200, response.text
    event = response.json()["event"]
    assert event["attributes"]["status"] == "waiting_approval"
    return str(event["metadata"]["id"])


def _changes(client: Any, event_id: str) -> list[dict[str, Any]]:
    response = client.get(f"{API}/event/{event_id}/changelog")
    assert response.status_code == 200, response.text
    return list(response.json()["changelog"])


def test_another_token_approves_and_the_requester_may_not(secured: Any) -> None:
    requester, reviewer = _token(secured, "ci"), _token(secured, "reviewer")
    event_id = _waiting(secured, requester)
    # A waiting deployment takes no lock: it queues for it once approved.
    assert secured.get(f"{API}/locks/list").json()["totalCount"] == 0
    own = secured.post(f"{API}/event/{event_id}/approve", json={}, headers=requester)
    assert_error(own, 403, 7, "may not approve")
    answer = secured.post(
        f"{API}/event/{event_id}/approve", json={"comment": "LGTM"}, headers=reviewer
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["event"]["attributes"]["status"] == "open"
    approved = [c for c in _changes(secured, event_id) if c["changeType"] == "approved"]
    assert len(approved) == 1
    assert approved[0]["user"] == "reviewer" and "LGTM" in approved[0]["comment"]
    # Decided once: a second decision is refused as not waiting.
    again = secured.post(f"{API}/event/{event_id}/reject", json={}, headers=reviewer)
    assert_error(again, 400, 3, "not waiting_approval")


def test_an_admin_may_decide_its_own_request_and_reject_closes_it(secured: Any) -> None:
    event_id = _waiting(secured, ADMIN)
    answer = secured.post(f"{API}/event/{event_id}/reject", json={"comment": "no"}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    event = answer.json()["event"]
    assert event["attributes"]["status"] == "failure"
    assert event["metadata"]["duration"] is not None
    assert [c["changeType"] for c in _changes(secured, event_id)][-1] == "rejected"


def test_only_a_waiting_event_is_decided(client: Any) -> None:
    response = client.post(f"{API}/event", json=event_body(status="start"))
    event_id = response.json()["event"]["metadata"]["id"]
    refused = client.post(f"{API}/event/{event_id}/approve", json={})
    assert_error(refused, 400, 3, "is start, not waiting_approval")
    missing = client.post(f"{API}/event/00000000-0000-4000-8000-000000000000/approve")
    assert missing.status_code == 404, missing.text


def test_decisions_notify_webhooks(make_client: Any) -> None:
    client = make_client(webhook_dispatcher=False)
    with run_receiver() as receiver:
        hook = {
            "url": receiver.url + "/hook",
            "events": ["deployment.approved", "deployment.rejected"],
        }
        assert client.post(f"{API}/webhooks", json=hook).status_code == 201
        approved, rejected = _waiting(client), _waiting(client)
        assert client.post(f"{API}/event/{approved}/approve", json={}).status_code == 200
        assert (
            client.post(f"{API}/event/{rejected}/reject", json={"comment": "no"}).status_code == 200
        )
        assert client.app.state.dispatcher.run_once() == 2
        received = [request.json() for request in receiver.wait_for(2)]
    by_type = {body["type"]: body for body in received}
    assert by_type["deployment.approved"]["event"]["metadata"]["id"] == approved
    assert by_type["deployment.rejected"]["details"]["comment"] == "no"
