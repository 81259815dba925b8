"""Tokens: writes need one when auth is on; scoped tokens; admin manages tokens."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import create_engine, text
from tracker_server.db import normalize_database_url

from tests.server.helpers import API, assert_error, create_event, event_body

pytestmark = pytest.mark.server

ADMIN = {"Authorization": "Bearer admin-secret"}


@pytest.fixture
def secured(make_client):
    return make_client(auth=True, admin_token="admin-secret")


def new_token(client, **body):
    response = client.post(f"{API}/tokens", json={"name": "ci"} | body, headers=ADMIN)
    assert response.status_code == 201, response.text
    created = response.json()
    return created["token"], {"Authorization": f"Bearer {created['secret']}"}, created["secret"]


def test_auth_is_off_by_default(client):
    # Without --auth every write goes through with no Authorization header at all.
    event = create_event(client, status="start")
    listed = client.get(f"{API}/locks/list").json()["locks"]
    assert [lock["eventId"] for lock in listed] == [event["metadata"]["id"]]
    released = client.get(f"{API}/unlock/{listed[0]['id']}")
    assert released.status_code == 200 and released.json()["count"] == "1", released.text


def test_writes_need_a_token_and_reads_stay_open(secured):
    assert_error(secured.post(f"{API}/event", json=event_body()), 401, 16, "Authorization: Bearer")
    assert_error(secured.post(f"{API}/lock", json={"service": "a", "environment": "UAT"}), 401, 16)
    assert_error(secured.get(f"{API}/unlock/00000000-0000-4000-8000-000000000000"), 401, 16)
    wrong = {"Authorization": "Bearer trk_nope"}
    assert_error(
        secured.post(f"{API}/event", json=event_body(), headers=wrong),
        401,
        16,
        "unknown or revoked",
    )
    assert secured.get(f"{API}/events/list").status_code == 200
    assert secured.post(f"{API}/event", json=event_body(), headers=ADMIN).status_code == 200


def test_closed_reads_need_any_valid_token(make_client):
    client = make_client(auth=True, admin_token="admin-secret", public_reads=False)
    assert_error(client.get(f"{API}/events/list"), 401, 16, "to read")
    _, headers, _ = new_token(client, services=["web"])
    assert client.get(f"{API}/events/list", headers=headers).status_code == 200
    assert client.get("/health").status_code == 200  # health stays open for probes


def test_tokens_are_shown_once_stored_hashed_and_revocable(secured, database_url):
    token, headers, secret = new_token(secured, name="deployer")
    assert secret.startswith("trk_") and len(secret) > 30
    assert token["prefix"] == secret[:8] and token["admin"] is False
    listed = secured.get(f"{API}/tokens", headers=ADMIN).json()
    assert listed["totalCount"] == 1 and "secret" not in listed["tokens"][0]
    assert secret not in secured.get(f"{API}/tokens", headers=ADMIN).text
    engine = create_engine(normalize_database_url(database_url))
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT secret_hash FROM tokens")).scalar_one()
    engine.dispose()
    assert stored == hashlib.sha256(secret.encode()).hexdigest()

    assert secured.post(f"{API}/event", json=event_body(), headers=headers).status_code == 200
    used = secured.get(f"{API}/tokens", headers=ADMIN).json()["tokens"][0]
    assert used["lastUsedAt"] is not None
    revoked = secured.delete(f"{API}/tokens/{token['id']}", headers=ADMIN)
    assert revoked.json()["token"]["id"] == token["id"]
    assert_error(secured.post(f"{API}/event", json=event_body(), headers=headers), 401, 16)
    assert_error(secured.delete(f"{API}/tokens/{token['id']}", headers=ADMIN), 404, 5)


def test_a_scoped_token_writes_only_its_services(secured):
    _, web, _ = new_token(secured, services=["web"])
    assert_error(
        secured.post(f"{API}/event", json=event_body(service="api"), headers=web),
        403,
        7,
        "web",
        "'api'",
    )
    event = secured.post(f"{API}/event", json=event_body(service="web"), headers=web)
    assert event.status_code == 200
    assert_error(
        secured.post(f"{API}/lock", json={"service": "api", "environment": "UAT"}, headers=web),
        403,
        7,
    )
    api_event = create_event_as(secured, ADMIN, service="api")
    assert_error(secured.delete(f"{API}/event/{api_event}", headers=web), 403, 7)
    lock = secured.post(
        f"{API}/lock", json={"service": "api", "environment": "UAT"}, headers=ADMIN
    ).json()["lock"]
    assert_error(secured.get(f"{API}/unlock/{lock['id']}", headers=web), 403, 7)
    assert secured.get(f"{API}/locks/list").json()["totalCount"] == 1


def create_event_as(client, headers, **attributes):
    response = client.post(f"{API}/event", json=event_body(**attributes), headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["event"]["metadata"]["id"]


def test_only_admins_manage_tokens(secured):
    _, plain, _ = new_token(secured)
    assert_error(
        secured.post(f"{API}/tokens", json={"name": "x"}, headers=plain), 403, 7, "not an admin"
    )
    assert_error(secured.get(f"{API}/tokens"), 401, 16)
    _, admin_token, _ = new_token(secured, name="ops", admin=True)
    assert secured.get(f"{API}/tokens", headers=admin_token).json()["totalCount"] == 2
    assert_error(secured.post(f"{API}/tokens", json={"name": ""}, headers=ADMIN), 400, 3, "name")


def test_a_scoped_token_cannot_touch_another_services_records_by_id(secured):
    """Ownership is checked on the STORED record, whatever the body says."""
    _, web, _ = new_token(secured, services=["web"])
    event = secured.post(
        f"{API}/event",
        json=event_body(service="api", type="incident", status="open"),
        headers=ADMIN,
    ).json()["event"]
    event_id = event["metadata"]["id"]
    lock = secured.post(
        f"{API}/lock", json={"service": "api", "environment": "UAT", "who": "x"}, headers=ADMIN
    ).json()["lock"]
    as_web = {
        "id": event_id,
        "title": "mine now",
        "attributes": event["attributes"] | {"service": "web"},
        "links": event["links"],
    }
    refused = [
        secured.put(f"{API}/event", json=as_web, headers=web),
        secured.post(f"{API}/event/{event_id}/changelog", json={"entry": {}}, headers=web),
        secured.post(f"{API}/event/{event_id}/slack", json={"slackId": "s"}, headers=web),
        secured.put(f"{API}/lock/{lock['id']}", json={"who": "me"}, headers=web),
        secured.put(f"{API}/lock/{lock['id']}", json={"service": "api"}, headers=web),
        secured.post(f"{API}/lock/{lock['id']}/renew", json={"ttlSeconds": 5}, headers=web),
        secured.delete(f"{API}/lock/{lock['id']}", headers=web),
        secured.post(
            f"{API}/unlock",
            json={"service": "api", "environment": "UAT", "who": "x"},
            headers=web,
        ),
    ]
    for response in refused:
        assert_error(response, 403, 7, "may only write services web")
    after = secured.get(f"{API}/event/{event_id}").json()["event"]
    assert after["title"] == event["title"] and after["changelog"] == event["changelog"]
    assert secured.get(f"{API}/lock/{lock['id']}").json()["lock"] == lock
