"""The lock queue on the real app (SQLite and PostgreSQL): arrival order, grants in the
release's transaction, the gate, fences, dropped and unclaimed waiters, the newest policy,
expected waits, the long poll's wake-up, and the journal entries."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import create_engine
from tracker_server import wakeup
from tracker_server.db import normalize_database_url
from tracker_server.journal import read_journal

from tests.server.helpers import API, assert_error, create_event, update_body

pytestmark = pytest.mark.server

KEY = {"service": "api", "environment": "production", "resource": "deployment"}


def join(client, who, **fields):
    response = client.post(f"{API}/lock/queue", json=KEY | {"who": who} | fields)
    assert response.status_code == 200, response.text
    return response.json()


def visit(client, ticket, who="x", wait=0.0, **fields):
    return client.post(
        f"{API}/lock/queue", json=KEY | {"who": who, "ticket": ticket, "waitSeconds": wait} | fields
    )


def take(client, who, ticket="", **fields):
    return client.post(f"{API}/lock", json=KEY | {"who": who, "queueTicket": ticket} | fields)


def status(client):
    response = client.get(f"{API}/locks/status", params=KEY)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def timed(make_client, clock):
    """The ``timed`` app with a short heartbeat and claim window, on ``clock``."""
    return make_client(clock=clock, queue_heartbeat_seconds=15, queue_claim_seconds=10)


def test_waiters_are_served_in_arrival_order_with_growing_fences(client):
    first = take(client, "holder", reason="release 1.2").json()["lock"]
    assert first["fence"] == 1 and first["reason"] == "release 1.2"
    tickets = [join(client, who)["ticket"]["ticket"] for who in ("w1", "w2", "w3")]
    queue = status(client)["queue"]
    assert [(e["position"], e["who"], e["state"]) for e in queue] == [
        (1, "w1", "waiting"),
        (2, "w2", "waiting"),
        (3, "w3", "waiting"),
    ]
    assert all(e["ticket"] == "" for e in queue)  # a ticket is only its waiter's

    holder_id = first["id"]
    fences = [1]
    for who, ticket in zip(("w1", "w2", "w3"), tickets, strict=True):
        assert client.get(f"{API}/unlock/{holder_id}").json()["count"] == "1"
        # The grant happened in the release's transaction: the head's turn has come...
        assert status(client)["queue"][0]["state"] == "granted"
        # ...and nobody else may take the free key, queued or not.
        assert_error(take(client, "intruder"), 409, 6, f"reserved for {who}")
        mine = visit(client, ticket, who).json()["ticket"]
        assert mine["state"] == "granted" and mine["position"] == 1
        lock = take(client, who, ticket).json()["lock"]
        fences.append(lock["fence"])
        holder_id = lock["id"]
    assert fences == [1, 2, 3, 4]
    assert status(client)["queue"] == []
    # The fence outlives its locks: the next grant of the key goes on counting.
    client.get(f"{API}/unlock/{holder_id}")
    assert take(client, "later").json()["lock"]["fence"] == 5


def test_a_deployment_event_claims_its_turn_with_the_ticket(client):
    opened = create_event(client, status="start", owner="alice")
    ticket = join(client, "bob")["ticket"]["ticket"]
    closed = client.put(f"{API}/event", json=update_body(opened, status="success"))
    assert closed.status_code == 200
    body = {
        "title": "deploy api",
        "attributes": KEY | {"type": "deployment", "status": "start", "owner": "carol"},
        "links": {},
    }
    del body["attributes"]["resource"]
    assert_error(client.post(f"{API}/event", json=body), 409, 6)
    body["attributes"]["owner"] = "bob"
    response = client.post(f"{API}/event", json=body | {"queueTicket": ticket})
    assert response.status_code == 200, response.text
    assert status(client)["lock"]["who"] == "bob"


def test_a_silent_waiter_is_dropped_and_never_granted(timed, clock):
    holder = take(timed, "holder").json()["lock"]
    silent = join(timed, "killed")["ticket"]["ticket"]
    clock.advance(timedelta(seconds=5))
    alive = join(timed, "alive")["ticket"]["ticket"]
    clock.advance(timedelta(seconds=11))  # 16 s since `killed` was heard of
    answer = visit(timed, alive, "alive").json()
    assert [e["who"] for e in answer["queue"]] == ["alive"]
    assert_error(visit(timed, silent, "killed"), 404, 5, "not found")
    timed.get(f"{API}/unlock/{holder['id']}")
    assert visit(timed, alive, "alive").json()["ticket"]["state"] == "granted"


def test_an_unclaimed_turn_passes_to_the_next(timed, clock):
    holder = take(timed, "holder").json()["lock"]
    first = join(timed, "first")["ticket"]["ticket"]
    second = join(timed, "second")["ticket"]["ticket"]
    timed.get(f"{API}/unlock/{holder['id']}")
    for _ in range(3):  # both keep their heartbeat; `first` never claims its turn
        clock.advance(timedelta(seconds=4))
        visit(timed, first, "first")
        visit(timed, second, "second")
    answer = visit(timed, second, "second").json()
    assert answer["ticket"]["state"] == "granted"
    assert [e["who"] for e in answer["queue"]] == ["second"]
    assert take(timed, "second", second).status_code == 200


def test_leaving_removes_the_ticket_and_passes_the_turn(client):
    holder = take(client, "holder").json()["lock"]
    first = join(client, "first")["ticket"]["ticket"]
    second = join(client, "second")["ticket"]["ticket"]
    client.get(f"{API}/unlock/{holder['id']}")
    left = client.delete(f"{API}/lock/queue/{first}").json()
    assert left["count"] == "1"
    assert client.delete(f"{API}/lock/queue/{first}").json()["count"] == "0"
    assert visit(client, second, "second").json()["ticket"]["state"] == "granted"


def test_the_newest_policy_supersedes_older_waiters(client):
    response = client.put(
        f"{API}/locks/policy", json={"environment": "production", "policy": "newest"}
    )
    assert response.status_code == 200, response.text
    assert client.get(f"{API}/locks/policies").json()["policies"] == [
        {"environment": "production", "service": "", "policy": "newest"}
    ]
    take(client, "holder")
    old = join(client, "old")["ticket"]["ticket"]
    new = join(client, "new")["ticket"]["ticket"]
    assert [e["who"] for e in status(client)["queue"]] == ["new"]
    assert_error(visit(client, old, "old"), 409, 10, "superseded by new's deploy")
    assert visit(client, new, "new").status_code == 200
    assert_error(
        client.put(f"{API}/locks/policy", json={"environment": "production", "policy": "lifo"}),
        400,
        3,
        "fifo, newest",
    )


def test_the_expected_wait_is_the_median_of_recent_successful_deploys(timed, clock):
    assert status(timed)["queue"] == []
    for minutes in (2, 4, 30):  # median 4 min
        opened = create_event(timed, status="start", owner="alice")
        clock.advance(timedelta(minutes=minutes))
        timed.put(f"{API}/event", json=update_body(opened, status="success"))
    take(timed, "holder")
    join(timed, "w1")
    join(timed, "w2")
    clock.advance(timedelta(minutes=1))
    queue = status(timed)["queue"]
    assert [e["expectedWaitSeconds"] for e in queue] == [180.0, 420.0]
    assert [e["since"] is not None for e in queue] == [True, True]


def test_the_expected_wait_is_null_without_history(client):
    take(client, "holder")
    join(client, "w1")
    assert status(client)["queue"][0]["expectedWaitSeconds"] is None


def test_the_long_poll_answers_as_soon_as_the_turn_comes(client, monkeypatch):
    # Each sleep of the poll is watched: the test releases the lock once the poll sleeps,
    # and asserts that a change, never a timeout, ended every sleep. The slice a waiter
    # sleeps between looks is longer than the poll, so only the release can wake it.
    holder = take(client, "holder").json()["lock"]
    ticket = join(client, "waiter")["ticket"]["ticket"]
    asleep, woken, sleep = threading.Event(), [], wakeup.Bell.wait

    def watched_sleep(bell: wakeup.Bell, timeout: float) -> bool:
        asleep.set()
        woken.append(sleep(bell, timeout))
        return woken[-1]

    monkeypatch.setattr(wakeup.Bell, "wait", watched_sleep)
    monkeypatch.setattr(wakeup, "MAX_SLICE", 60.0)
    answers = []

    def poll() -> None:
        answers.append(visit(client, ticket, "waiter", wait=20))

    thread = threading.Thread(target=poll)
    thread.start()
    assert asleep.wait(timeout=60), "the long poll never slept"
    client.get(f"{API}/unlock/{holder['id']}")
    thread.join(timeout=60)
    [answer] = answers
    assert answer.json()["ticket"]["state"] == "granted", answer.text
    assert woken and all(woken), f"a sleep ran out instead of being woken: {woken}"


def test_an_expired_holder_is_noticed_by_the_waiters(timed, clock):
    take(timed, "holder", ttlSeconds=60)
    ticket = join(timed, "waiter")["ticket"]["ticket"]
    clock.advance(timedelta(seconds=61))
    assert visit(timed, ticket, "waiter").json()["ticket"]["state"] == "granted"


def test_queue_changes_are_journaled_in_their_transaction(client, database_url):
    holder = take(client, "holder").json()["lock"]
    ticket = join(client, "w1", reason="hotfix")["ticket"]["ticket"]
    client.get(f"{API}/unlock/{holder['id']}")
    take(client, "w1", ticket)
    client.put(f"{API}/locks/policy", json={"environment": "UAT", "policy": "newest"})
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as conn:
            kinds = [record.entry.KIND for record in read_journal(conn, limit=100)]
    finally:
        engine.dispose()
    assert kinds == [
        "lock_acquired",
        "queue_joined",
        "lock_released",
        "queue_granted",
        "queue_left",
        "lock_acquired",
        "queue_policy_set",
    ]


def test_bad_queue_requests_answer_400(client):
    assert_error(
        client.post(f"{API}/lock/queue", json={"environment": "production", "who": "x"}),
        400,
        3,
        "service",
    )
    assert_error(visit(client, "not-a-uuid"), 400, 3, "ticket")
    assert_error(visit(client, "3f2b8a4e-1c9d-4b7a-9e2f-5d6c7b8a9e0f"), 404, 5)
