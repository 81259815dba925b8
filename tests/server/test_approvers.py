"""``--approvers catalog-owner``: only a token named as the service's catalog owner (or
``OWNER/...``), or an admin, may approve or reject its deployments (403 otherwise); the
default ``any`` keeps the no-self-approval rule only."""

from __future__ import annotations

from typing import Any

import pytest
from tracker_server.operations import is_owner_token

from tests.server.helpers import API, assert_error, event_body

pytestmark = pytest.mark.server

ADMIN = {"Authorization": "Bearer admin-secret"}


def _token(client: Any, name: str) -> dict[str, str]:
    response = client.post(f"{API}/tokens", json={"name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['secret']}"}


def _waiting(client: Any, service: str, headers: dict[str, str]) -> str:
    body = event_body(status="waiting_approval", service=service)
    response = client.post(f"{API}/event", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["event"]["metadata"]["id"])


def test_the_owner_rule_on_names() -> None:
    assert is_owner_token("team-payments", "team-payments")
    assert is_owner_token("Team-Payments/alice", "team-payments")
    assert not is_owner_token("team-payments-bot", "team-payments")
    assert not is_owner_token("anyone", "")


def test_only_the_catalog_owner_or_an_admin_decides(make_client: Any) -> None:
    client = make_client(
        auth=True, admin_token="admin-secret", approvers="catalog-owner", webhook_dispatcher=False
    )
    ci, stranger = _token(client, "ci"), _token(client, "someone-else")
    owner_member = _token(client, "team-a/bob")
    entry = {"name": "api", "owner": "team-a", "version": "1.0"}
    assert client.put(f"{API}/catalog", json=entry, headers=ADMIN).status_code == 200
    event_id = _waiting(client, "api", ci)
    refused = client.post(f"{API}/event/{event_id}/approve", json={}, headers=stranger)
    body = assert_error(refused, 403, 7, "only the catalog owner of api (team-a)")
    assert "'someone-else'" in body["message"]
    approved = client.post(f"{API}/event/{event_id}/approve", json={}, headers=owner_member)
    assert approved.status_code == 200, approved.text
    # A service without an entry has no owner: only an admin decides.
    orphan = _waiting(client, "web", ci)
    assert_error(
        client.post(f"{API}/event/{orphan}/reject", json={}, headers=stranger),
        403,
        7,
        "web has no catalog entry",
    )
    rejected = client.post(f"{API}/event/{orphan}/reject", json={}, headers=ADMIN)
    assert rejected.status_code == 200, rejected.text


def test_by_default_any_other_token_decides(make_client: Any) -> None:
    client = make_client(auth=True, admin_token="admin-secret", webhook_dispatcher=False)
    ci, stranger = _token(client, "ci"), _token(client, "someone-else")
    event_id = _waiting(client, "api", ci)
    approved = client.post(f"{API}/event/{event_id}/approve", json={}, headers=stranger)
    assert approved.status_code == 200, approved.text
