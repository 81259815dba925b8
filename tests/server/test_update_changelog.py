"""The changelog entries upstream writes on PUT /event (CONTRACT.md, "Changelog entries
upstream writes on PUT /event"): a change of the owner alone is an approval, any other
change without an entry of its own is "updated". Both backends."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.helpers import API, create_event, update_body

pytestmark = pytest.mark.server


def _put(client: Any, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.put(f"{API}/event", json=body)
    assert response.status_code == 200, response.text
    return response.json()["event"]["changelog"]


def _kinds(changelog: list[dict[str, Any]]) -> list[str]:
    return [entry["changeType"] for entry in changelog]


def test_an_owner_change_alone_is_an_approval_by_the_new_owner(client):
    # Upstream's Approve: the UI PUTs the event back with the approver as owner.
    event = create_event(client, type="deployment", status="waiting_approval", owner="alice")
    changelog = _put(client, update_body(event, owner="bob"))
    assert _kinds(changelog) == ["created", "approved"]
    approved = changelog[-1]
    assert approved["user"] == "bob"
    assert approved["comment"] == "Event approved by bob"
    assert approved["timestamp"].endswith("Z")
    read = client.get(f"{API}/event/{event['metadata']['id']}").json()["event"]
    assert read["attributes"]["status"] == "waiting_approval"  # upstream does not move it
    assert read["attributes"]["owner"] == "bob"
    assert _kinds(read["changelog"]) == ["created", "approved"]


def test_any_other_change_without_an_entry_of_its_own_is_updated(client):
    event = create_event(client, type="incident", status="open", owner="alice")
    changelog = _put(client, update_body(event, message="more details", impact=True))
    assert _kinds(changelog) == ["created", "updated"]
    assert changelog[-1]["comment"] == "Event updated"
    assert changelog[-1]["user"] == "alice"
    # The same body again: still an update (upstream writes one per PUT).
    again = _put(client, update_body(event, message="more details", impact=True))
    assert _kinds(again) == ["created", "updated", "updated"]


def test_an_owner_change_with_other_entries_is_no_approval(client):
    event = create_event(client, type="incident", status="open", owner="alice")
    changelog = _put(client, update_body(event, owner="bob", status="close", priority="P1"))
    assert _kinds(changelog) == ["created", "status_changed", "updated"]
    assert changelog[-1]["field"] == "priority"  # the priority's entry, no "Event updated"
    assert "approved" not in _kinds(changelog)
    # A new owner and a new message only: an approval (the message is not looked at).
    event = create_event(client, type="incident", status="open", owner="alice")
    changelog = _put(client, update_body(event, owner="carol", message="looked at it"))
    assert _kinds(changelog)[-1] == "approved"


def test_clearing_the_owner_approves_nothing(client):
    event = create_event(client, type="incident", status="open", owner="alice")
    changelog = _put(client, update_body(event, owner=""))
    assert _kinds(changelog) == ["created", "updated"]
    assert changelog[-1]["user"] == "alice"


def test_closing_a_deployment_writes_no_extra_entry(client):
    event = create_event(client, type="deployment", status="start", owner="alice")
    changelog = _put(client, update_body(event, status="success"))
    assert "updated" not in _kinds(changelog) and "approved" not in _kinds(changelog)
    assert _kinds(changelog)[:3] == ["created", "locked", "status_changed"]
