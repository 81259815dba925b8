"""Locks under a real race: 50 clients, two server processes, one PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from tests.server.helpers import API, Racers, event_body
from tests.support.names import unique
from tests.support.servers import run_server

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.timeout(150)]

CLIENTS = 50
ROUNDS = 20


@pytest.fixture(scope="module")
def two_servers(postgres_database_url, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("race")
    with run_server(postgres_database_url, log_dir=log_dir) as first:
        with run_server(postgres_database_url, log_dir=log_dir) as second:
            yield first.url, second.url


@pytest.fixture(scope="module")
def racers(two_servers):
    racers = Racers(two_servers)
    yield racers
    racers.close()


def test_exactly_one_of_50_clients_gets_the_lock_every_time(racers):
    two_servers = racers.urls
    service = unique("race")
    for round_number in range(ROUNDS):
        bodies = [
            {
                "service": service,
                "environment": "production",
                "resource": "deployment",
                "who": f"job-{round_number}-{i}",
            }
            for i in range(CLIENTS)
        ]
        responses = racers.race(f"{API}/lock", bodies)
        winners = [r for r in responses if r.status_code == 200]
        losers = [r for r in responses if r.status_code != 200]
        assert len(winners) == 1, [r.text for r in winners]
        lock = winners[0].json()["lock"]
        for response in losers:
            assert response.status_code == 409, response.text
            assert response.json()["code"] == 6
            assert response.json()["message"] == (
                f"service {service} is already locked for deployment in production by "
                f"{lock['who']} (lock_id: {lock['id']}, event_id: )"
            )
        release = httpx.get(f"{two_servers[round_number % 2]}{API}/unlock/{lock['id']}")
        assert release.json()["count"] == "1"


def test_exactly_one_of_50_starting_deployments_is_created(racers):
    two_servers = racers.urls
    service = unique("race")
    for _ in range(5):
        bodies = [
            event_body(title=f"deploy {i}", service=service, status="start") for i in range(CLIENTS)
        ]
        responses = racers.race(f"{API}/event", bodies)
        created = [r.json()["event"] for r in responses if r.status_code == 200]
        assert len(created) == 1
        assert all(r.status_code == 409 for r in responses if r.status_code != 200)
        search = httpx.get(
            f"{two_servers[0]}{API}/events/search", params={"service": service, "status": "start"}
        ).json()
        assert search["totalCount"] == 1
        event = created[0]
        body = {
            "id": event["metadata"]["id"],
            "title": event["title"],
            "attributes": event["attributes"] | {"status": "success"},
            "links": event["links"],
        }
        assert httpx.put(f"{two_servers[1]}{API}/event", json=body).status_code == 200


def test_50_creates_racing_with_one_idempotency_key_create_one_event(racers):
    """The key's row decides (``INSERT ... ON CONFLICT DO NOTHING``, no savepoint): one
    request creates, the others wait for its commit and replay its answer."""
    service = unique("race")
    for round_number in range(3):
        headers = {"Idempotency-Key": f"{service}-{round_number}"}
        body = event_body(title=f"incident {round_number}", service=service)
        responses = racers.race(f"{API}/event", [body] * CLIENTS, headers=headers)
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        ids = {r.json()["event"]["metadata"]["id"] for r in responses}
        assert len(ids) == 1
        replayed = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
        assert len(replayed) == CLIENTS - 1
    search = httpx.get(f"{racers.urls[0]}{API}/events/search", params={"service": service})
    assert search.json()["totalCount"] == 3
