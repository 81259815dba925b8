"""The queue with two server replicas on one PostgreSQL (real processes): waiters spread
over both replicas are served in arrival order, one at a time, and a waiter long-polling
one replica is woken by a release on the other (LISTEN/NOTIFY), well before its poll ends."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest

from tests.support.api import heartbeat
from tests.support.servers import run_server

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.timeout(150)]

API = "/api/v1alpha1"
# The session's PostgreSQL database is shared with other tests: a key of our own.
KEY = {
    "service": f"api-{uuid.uuid4().hex[:8]}",
    "environment": "production",
    "resource": "deployment",
}


@pytest.fixture
def replicas(postgres_database_url, tmp_path):
    with run_server(postgres_database_url, log_dir=tmp_path) as first:
        with run_server(postgres_database_url, log_dir=tmp_path) as second:
            yield first.url, second.url


def test_two_replicas_serve_one_queue_in_order_and_wake_each_other(replicas, postgres_database_url):
    a, b = replicas
    taken = httpx.post(f"{a}{API}/lock", json=KEY | {"who": "holder"})
    assert taken.status_code == 200, taken.text
    holder = taken.json()["lock"]
    tickets = []
    for index in range(4):  # joined alternately through each replica
        url = replicas[index % 2]
        answer = httpx.post(f"{url}{API}/lock/queue", json=KEY | {"who": f"w{index}"}).json()
        tickets.append((url, answer["ticket"]["ticket"]))
    status = httpx.get(f"{b}{API}/locks/status", params=KEY).json()
    assert [q["who"] for q in status["queue"]] == ["w0", "w1", "w2", "w3"]

    # w0 long-polls replica A; the release goes through replica B.
    woken: list[float] = []

    def poll() -> None:
        url, ticket = tickets[0]
        body = KEY | {"who": "w0", "ticket": ticket, "waitSeconds": 30}
        answer = httpx.post(f"{url}{API}/lock/queue", json=body, timeout=60).json()
        assert answer["ticket"]["state"] == "granted"
        woken.append(time.monotonic())

    joined_at = heartbeat(postgres_database_url, tickets[0][1])
    thread = threading.Thread(target=poll)
    thread.start()
    # Not `eventually`: the timed release must land early in the waiter's 1 s sleep (0.01 s looks).
    deadline = time.monotonic() + 10
    while heartbeat(postgres_database_url, tickets[0][1]) == joined_at:  # then it sleeps
        assert time.monotonic() < deadline, "the long poll never looked"
        time.sleep(0.01)
    released = time.monotonic()
    httpx.get(f"{b}{API}/unlock/{holder['id']}")
    thread.join(timeout=40)
    # Not the 30 s of the poll, nor the look every second (wakeup.MAX_SLICE): LISTEN.
    assert woken and woken[0] - released < 0.5

    fences = []
    for index, (url, ticket) in enumerate(tickets):
        other = replicas[(index + 1) % 2]
        # Only the head may take it, through either replica.
        for later_url, later in tickets[index + 1 :]:
            refused = httpx.post(
                f"{later_url}{API}/lock", json=KEY | {"who": "x", "queueTicket": later}
            )
            assert refused.status_code == 409, refused.text
        taken = httpx.post(
            f"{other}{API}/lock", json=KEY | {"who": f"w{index}", "queueTicket": ticket}
        )
        assert taken.status_code == 200, taken.text
        lock = taken.json()["lock"]
        fences.append(lock["fence"])
        httpx.get(f"{url}{API}/unlock/{lock['id']}")
    first = holder["fence"]
    assert fences == [first + 1, first + 2, first + 3, first + 4]
