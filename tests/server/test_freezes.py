"""Freeze windows on the real app (SQLite and PostgreSQL): upstream's wire shape, bad
windows answer 400, hard windows refuse opening a deployment (nothing left behind), soft
windows warn, break glass (an admin token with auth on) is stored on the event, cron
recurrence in a time zone, and a queued turn held back by a hard freeze."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tracker_server.clock import ManualClock

from tests.server.helpers import API, assert_error, event_body

pytestmark = pytest.mark.server

ADMIN = "admin-secret"
# A Friday 17:00 in Paris (16:00 UTC), an hour before the weekend freeze.
FRIDAY = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)


def window(**fields):
    return {
        "title": "Xmas",
        "type": "FREEZE_TYPE_HARD",
        "scopeType": "FREEZE_SCOPE_ENVIRONMENT",
        "scopeIds": ["production"],
        "endsAt": "2099-01-01T00:00:00Z",
    } | fields


def add(client, headers=None, **fields):
    response = client.post(f"{API}/freeze-window", json=window(**fields), headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["freezeWindow"]


def start(client, headers=None, **attributes):
    body = event_body(**({"status": "start"} | attributes))
    return client.post(f"{API}/event", json=body, headers=headers)


def test_windows_have_upstreams_wire_shape_and_crud(client):
    created = add(client, description="no deploys")
    assert set(created) == {
        "id",
        "title",
        "description",
        "type",
        "scopeType",
        "scopeIds",
        "startsAt",
        "endsAt",
        "timezone",
        "createdBy",
        "createdAt",
        "updatedAt",
        "active",
        "cronStart",
        "cronEnd",
    }
    assert created["type"] == "FREEZE_TYPE_HARD" and created["timezone"] == "UTC"
    assert created["active"] is True and created["createdBy"] == "anonymous"
    path = f"{API}/freeze-window/{created['id']}"
    assert client.get(path).json()["freezeWindow"] == created
    replaced = client.put(path, json=window(title="New year", type=2, id=created["id"]))
    assert replaced.json()["freezeWindow"]["title"] == "New year"
    assert replaced.json()["freezeWindow"]["type"] == "FREEZE_TYPE_SOFT"
    listed = client.get(f"{API}/freeze-windows/list").json()
    assert listed["totalCount"] == 1 and listed["freezeWindows"][0]["title"] == "New year"
    gone = client.delete(path).json()
    assert gone == {"message": "freeze window deleted", "id": created["id"], "count": "1"}
    assert_error(client.get(path), 404, 5, "not found")


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"startsAt": "2099-02-01T00:00:00Z"}, "is not after startsAt"),
        ({"cronStart": "0 99 * * *", "cronEnd": "0 8 * * 1"}, "cronStart"),
        ({"cronStart": "every friday", "cronEnd": "0 8 * * 1"}, "5-field cron"),
        ({"cronStart": "0 18 * * 5"}, "go together"),
        ({"timezone": "Mars/Olympus"}, "IANA time zone"),
        ({"title": ""}, "title is required"),
        ({"endsAt": None}, "needs endsAt or cronStart/cronEnd"),
        ({"scopeIds": []}, "needs scopeIds"),
    ],
)
def test_bad_windows_answer_400(client, fields, fragment):
    response = client.post(f"{API}/freeze-window", json=window(**fields))
    assert_error(response, 400, 3, fragment)
    assert client.get(f"{API}/freeze-windows/list").json()["totalCount"] == 0


def test_a_hard_window_refuses_a_deployment_and_leaves_nothing(client):
    add(client)
    response = start(client)
    assert_error(response, 400, 9)
    assert response.json()["message"] == (
        'Blocked by hard freeze: "Xmas" until 2099-01-01T00:00:00Z'
    )
    assert client.get(f"{API}/events/list").json()["totalCount"] == 0
    assert client.get(f"{API}/locks/list").json()["locks"] == []
    # A deployment lock is refused too; another environment, an incident, are not.
    lock = {"service": "api", "environment": "production", "who": "x"}
    assert_error(client.post(f"{API}/lock", json=lock), 400, 9, "Xmas")
    assert start(client, environment="UAT").status_code == 200
    incident = event_body(type="incident", status="start")
    assert client.post(f"{API}/event", json=incident).status_code == 200


def test_a_soft_window_warns_and_lets_it_through(client):
    add(client, type="FREEZE_TYPE_SOFT", title="Marketing launch")
    response = start(client)
    assert response.status_code == 200, response.text
    assert response.json()["warnings"] == ['overlaps soft freeze "Marketing launch"']


def test_breaking_glass_passes_and_is_stored_on_the_event(client):
    frozen = add(client)
    response = start(client)
    assert response.status_code == 400
    body = event_body(status="start") | {"breakGlass": "hotfix INC-42"}
    response = client.post(f"{API}/event", json=body)
    assert response.status_code == 200, response.text
    event = response.json()["event"]
    [entry] = [e for e in event["changelog"] if e["field"] == "freeze"]
    assert entry["comment"] == 'Broke glass through hard freeze "Xmas": hotfix INC-42'
    assert entry["oldValue"] == frozen["id"] and entry["user"] == "alice"
    assert response.json()["warnings"] == ['broke glass through hard freeze "Xmas": hotfix INC-42']
    stored = client.get(f"{API}/event/{event['metadata']['id']}/changelog").json()
    assert any("hotfix INC-42" in e["comment"] for e in stored["changelog"])


def test_with_auth_only_an_admin_token_breaks_glass(make_client):
    client = make_client(auth=True, admin_token=ADMIN)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    add(client, headers=admin)
    # Managing windows needs the admin token.
    scoped_secret = client.post(
        f"{API}/tokens", json={"name": "ci-api", "services": ["api"]}, headers=admin
    ).json()["secret"]
    scoped = {"Authorization": f"Bearer {scoped_secret}"}
    assert_error(client.post(f"{API}/freeze-window", json=window(), headers=scoped), 403, 7)
    body = event_body(status="start") | {"breakGlass": "hotfix"}
    refused = client.post(f"{API}/event", json=body, headers=scoped)
    assert_error(refused, 400, 9, "Xmas", "breaking glass needs an admin token")
    assert client.post(f"{API}/event", json=body, headers=admin).status_code == 200


def test_a_weekly_window_recurs_in_its_time_zone(make_client):
    clock = ManualClock(FRIDAY)
    client = make_client(clock=clock)
    add(
        client,
        title="Weekend",
        endsAt=None,
        cronStart="0 18 * * 5",
        cronEnd="0 8 * * 1",
        timezone="Europe/Paris",
    )
    assert start(client).status_code == 200  # Friday 17:00 Paris: not yet
    client.get(f"{API}/unlock/{client.get(f'{API}/locks/list').json()['locks'][0]['id']}")
    clock.advance(timedelta(hours=1, minutes=30))  # Friday 18:30 Paris
    refused = start(client)
    assert_error(refused, 400, 9, '"Weekend" until 2026-12-07T07:00:00Z')  # Monday 08:00 CET
    clock.advance(timedelta(days=2, hours=14))  # Monday 09:00 Paris
    assert start(client).status_code == 200


def test_a_queued_turn_waits_out_a_hard_freeze(client):
    lock = {"service": "api", "environment": "production", "who": "holder"}
    holder = client.post(f"{API}/lock", json=lock).json()["lock"]
    key = {"service": "api", "environment": "production", "who": "waiter"}
    ticket = client.post(f"{API}/lock/queue", json=key).json()["ticket"]["ticket"]
    frozen = add(client)
    client.get(f"{API}/unlock/{holder['id']}")
    answer = client.post(f"{API}/lock/queue", json=key | {"ticket": ticket}).json()
    assert answer["ticket"]["state"] == "frozen"
    assert answer["frozenBy"].startswith('Blocked by hard freeze: "Xmas"')
    client.delete(f"{API}/freeze-window/{frozen['id']}")
    answer = client.post(f"{API}/lock/queue", json=key | {"ticket": ticket}).json()
    assert answer["ticket"]["state"] == "granted"
