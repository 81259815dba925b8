"""Locks under a real race on SQLite: one server process, 50 clients at once."""

from __future__ import annotations

import pytest

from tests.server.helpers import API, Racers

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]


def test_exactly_one_of_50_clients_gets_the_sqlite_lock(fresh_sqlite_server):
    racers = Racers((fresh_sqlite_server.url, fresh_sqlite_server.url))
    try:
        for round_number in range(5):
            bodies = [
                {"service": "api", "environment": "UAT", "who": f"job-{round_number}-{i}"}
                for i in range(50)
            ]
            responses = racers.race(f"{API}/lock", bodies)
            statuses = sorted(r.status_code for r in responses)
            assert statuses == [200] + [409] * 49, [
                r.text for r in responses if r.status_code not in (200, 409)
            ]
            lock = next(r for r in responses if r.status_code == 200).json()["lock"]
            assert all(
                f"by {lock['who']} (lock_id: {lock['id']}" in r.json()["message"]
                for r in responses
                if r.status_code == 409
            )
            released = racers.clients[0].get(f"{API}/unlock/{lock['id']}").json()
            assert released["count"] == "1"
    finally:
        racers.close()
