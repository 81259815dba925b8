"""The grant that opens its event (issue 23, item 1): a waiter that asks with ``openEvent``
(``deploy start|run``) gets, in the long poll's answer, the event opened with its lock in
the transaction that gave it the turn, exactly as ``POST /event`` naming its ticket would
(the freezes, the owner's token, the changelog, the journal); asking again answers the
same event and lock, never a second event; a grant never claimed passes on after the
claim window; a refusal opens nothing. On the real app, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.server.helpers import API, assert_error, event_body, token_headers
from tests.server.test_queue_grant import KEY, _freeze, _statements, join, release, status, take
from tests.server.test_queue_handover import _moments, _polling, sleeping  # noqa: F401

pytestmark = pytest.mark.server

HOUR = 3600


def opening(owner: str = "bob", **attributes: Any) -> dict[str, Any]:
    """The ``POST /event`` body of a deployment of the queue's key that starts."""
    body = event_body(f"deploy by {owner}", status="start", owner=owner, **attributes)
    return body | {"lockTtlSeconds": HOUR}


def ask(client, ticket, who, headers=None, **fields):
    """The waiter's look asking the grant to open its event (``openEvent``, no ``grant``)."""
    body = KEY | {"who": who, "ticket": ticket, "openEvent": opening(who)} | fields
    return client.post(f"{API}/lock/queue", json=body, headers=headers)


def events(client) -> list[dict[str, Any]]:
    return client.get(f"{API}/events/list", params={"per_page": 100}).json()["events"]


@pytest.fixture
def timed(make_client, clock):
    """The app on ``clock`` with a 10 s claim window (and a long heartbeat)."""
    return make_client(clock=clock, queue_heartbeat_seconds=60, queue_claim_seconds=10)


def test_the_grant_opens_one_event_and_asking_again_answers_the_same(timed, clock):
    holder = take(timed, "holder").json()["lock"]
    ticket = join(timed, "bob")
    waiting = ask(timed, ticket, "bob").json()
    assert waiting["ticket"]["state"] == "waiting"
    assert waiting["granted"] is None and waiting["event"] is None
    assert events(timed) == []  # nothing opened before the turn
    release(timed, holder["id"])

    answer = ask(timed, ticket, "bob").json()
    event, granted = answer["event"], answer["granted"]
    assert event["title"] == "deploy by bob" and event["attributes"]["status"] == "start"
    assert [entry["changeType"] for entry in event["changelog"]] == ["created", "locked"]
    assert granted["eventId"] == event["metadata"]["id"] and granted["who"] == "bob"
    assert granted["fence"] == holder["fence"] + 1
    # Until claimed it lasts the claim window, not the event's lock TTL.
    assert granted["expiresAt"] == "2026-03-04T10:00:10Z"
    assert events(timed) == [event]

    clock.advance(timedelta(seconds=5))
    again = ask(timed, ticket, "bob").json()  # the answer was lost, or the claim
    assert again["event"] == event
    assert again["granted"]["id"] == granted["id"]
    assert again["granted"]["fence"] == granted["fence"]
    assert again["granted"]["expiresAt"] == "2026-03-04T11:00:05Z"  # the TTL, from the claim
    assert events(timed) == [event]  # never a second event
    clock.advance(timedelta(seconds=30))  # past the claim window: still held
    assert status(timed)["lock"]["id"] == granted["id"]


def test_a_hard_freeze_holds_the_turn_and_opens_nothing(make_client):
    client = make_client(auth=True, admin_token="admin-secret")
    admin = {"Authorization": "Bearer admin-secret"}
    scoped = token_headers(client, "ci-api", admin, "api")
    holder = take(client, "holder", headers=scoped).json()["lock"]
    ticket = join(client, "bob", headers=scoped)
    _freeze(client, "FREEZE_TYPE_HARD", headers=admin)
    assert client.get(f"{API}/unlock/{holder['id']}", headers=scoped).status_code == 200

    held = ask(client, ticket, "bob", headers=scoped).json()
    assert held["ticket"]["state"] == "frozen" and "Xmas" in held["frozenBy"]
    assert held["granted"] is None and held["event"] is None
    # Breaking glass needs an admin token, as POST /event says: the refusal opens nothing.
    glass = opening("bob") | {"breakGlass": "hotfix INC-42"}
    refused = ask(client, ticket, "bob", headers=scoped, openEvent=glass)
    assert_error(refused, 400, 9, "Xmas", "breaking glass needs an admin token")
    assert events(client) == [] and status(client)["lock"] is None
    # An admin breaks it: the event opens with the glass in its changelog.
    answer = ask(client, ticket, "bob", headers=admin, openEvent=glass)
    assert answer.status_code == 200, answer.text
    event = answer.json()["event"]
    assert answer.json()["granted"]["eventId"] == event["metadata"]["id"]
    assert any("hotfix INC-42" in entry["comment"] for entry in event["changelog"])
    assert [e["metadata"]["id"] for e in events(client)] == [event["metadata"]["id"]]


def test_a_dead_waiters_grant_passes_on_after_the_claim_window(timed, clock):
    holder = take(timed, "holder").json()["lock"]
    dead = join(timed, "dead")
    alive = join(timed, "alive")
    release(timed, holder["id"])
    lost = ask(timed, dead, "dead").json()  # the waiter died before reading it
    assert lost["event"]["attributes"]["owner"] == "dead"
    assert ask(timed, alive, "alive").json()["ticket"]["state"] == "waiting"
    clock.advance(timedelta(seconds=9))
    assert ask(timed, alive, "alive").json()["event"] is None
    clock.advance(timedelta(seconds=2))  # 11 s: the claim window is over
    answer = ask(timed, alive, "alive").json()
    assert answer["event"]["attributes"]["owner"] == "alive"
    assert answer["granted"]["eventId"] == answer["event"]["metadata"]["id"]
    assert answer["granted"]["fence"] == lost["granted"]["fence"] + 1
    assert_error(ask(timed, dead, "dead"), 404, 5)  # its ticket went with its grant
    assert len(events(timed)) == 2


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"service": "web"}, "openEvent"),
        ({"environment": "staging"}, "openEvent"),
        ({"status": "success"}, "openEvent"),  # an event that takes no lock
        ({"type": "operation"}, "openEvent"),  # another resource's
        ({"service": ""}, "attributes.service"),
        ({"owner": "x" * 300}, "attributes.owner"),
    ],
)
def test_an_event_of_another_key_or_a_bad_body_is_refused(client, change, fragment):
    holder = take(client, "holder").json()["lock"]
    ticket = join(client, "bob")
    release(client, holder["id"])
    body = event_body("deploy by bob", **({"status": "start", "owner": "bob"} | change))
    assert_error(ask(client, ticket, "bob", openEvent=body), 400, 3, fragment)
    assert events(client) == [] and status(client)["lock"] is None
    both = {"eventId": "3f2b8a4e-1c9d-4b7a-9e2f-5d6c7b8a9e0f"}
    assert_error(ask(client, ticket, "bob", **both), 400, 3, "eventId and openEvent")
    assert ask(client, ticket, "bob").json()["event"]["attributes"]["owner"] == "bob"


def test_a_token_that_may_not_write_the_service_is_refused(make_client):
    client = make_client(auth=True, admin_token="admin-secret")
    admin = {"Authorization": "Bearer admin-secret"}
    web = token_headers(client, "ci-web", admin, "web")
    take(client, "holder", headers=admin)
    body = KEY | {"who": "bob", "openEvent": opening("bob")}
    assert_error(client.post(f"{API}/lock/queue", json=body, headers=web), 403, 7)
    assert events(client) == [] and status(client)["queue"] == []


def test_the_grant_opens_the_event_for_the_waiters_token(make_client):
    client = make_client(auth=True, admin_token="admin-secret")
    admin = {"Authorization": "Bearer admin-secret"}
    mine = token_headers(client, "ci-a", admin, "api")
    theirs = token_headers(client, "ci-b", admin, "api")
    holder = take(client, "holder", headers=mine).json()["lock"]
    ticket = join(client, "bob", headers=mine)
    client.get(f"{API}/unlock/{holder['id']}", headers=mine)
    granted = ask(client, ticket, "bob", headers=mine).json()["granted"]
    # Its lock is the waiter's token's: another token may neither claim nor release it.
    assert_error(ask(client, ticket, "bob", headers=theirs), 403, 7)
    assert client.get(f"{API}/unlock/{granted['id']}", headers=theirs).status_code == 403
    assert client.get(f"{API}/unlock/{granted['id']}", headers=mine).status_code == 200


def test_waiters_open_their_events_in_arrival_order_with_growing_fences(client):
    holder = take(client, "holder").json()["lock"]
    names = ["w1", "w2", "w3"]
    tickets = [join(client, who) for who in names]
    lock_id, fences, opened = holder["id"], [holder["fence"]], []
    for index, who in enumerate(names):
        release(client, lock_id)
        for later, later_who in zip(tickets[index + 1 :], names[index + 1 :], strict=True):
            assert ask(client, later, later_who).json()["event"] is None
        answer = ask(client, tickets[index], who).json()
        assert answer["event"]["attributes"]["owner"] == who
        lock_id = answer["granted"]["id"]
        fences.append(answer["granted"]["fence"])
        opened.append(answer["event"]["metadata"]["id"])
    assert fences == [holder["fence"] + n for n in range(len(names) + 1)]
    assert len(set(opened)) == len(names) == len(events(client))


def test_the_release_opens_the_sleeping_waiters_event(client, sleeping, database_url):  # noqa: F811
    holder = take(client, "holder").json()["lock"]
    ticket = join(client, "bob")
    thread, answers = _polling(lambda: ask(client, ticket, "bob", waitSeconds=60))
    assert sleeping.wait(timeout=60), "the long poll never slept"
    release(client, holder["id"])
    # Opened in the release's own transaction: the waiter's once the release answered.
    [opened] = events(client)
    held = status(client)["lock"]
    assert held["who"] == "bob" and held["eventId"] == opened["metadata"]["id"]
    thread.join(timeout=60)
    [answer] = answers
    assert answer.status_code == 200, answer.text
    assert answer.json()["event"] == opened and answer.json()["granted"] == held
    again = ask(client, ticket, "bob").json()  # the claim
    assert again["event"] == opened and again["granted"]["fence"] == held["fence"]
    assert len(events(client)) == 1
    journal = _moments(database_url)
    released = next(at for kind, at in journal if kind == "lock_released")
    in_it = [kind for kind, at in journal if at == released]
    assert in_it == [
        "lock_released",
        "queue_granted",
        "queue_left",
        "lock_acquired",
        "event_created",
    ]


def test_the_close_that_hands_over_runs_each_statement_once(client, sleeping):  # noqa: F811
    """``deploy finish`` of the holder while ``deploy run`` waits (``openEvent``): the
    close, the release and the waiter's lock and event in one transaction, which reads
    the queue once, stores no turn it hands over at once, writes the fence with the lock
    and each event's changelog in one insert."""
    opened = client.post(f"{API}/event", json=opening("alice")).json()["event"]
    ticket = join(client, "bob")
    thread, answers = _polling(lambda: ask(client, ticket, "bob", waitSeconds=60))
    assert sleeping.wait(timeout=60), "the long poll never slept"
    seen, closed = _statements(
        client,
        lambda: client.post(
            f"{API}/event/{opened['metadata']['id']}/close",
            json={"status": "success"},
            headers={"Idempotency-Key": "close-1"},
        ),
    )
    assert closed.status_code == 200, closed.text
    thread.join(timeout=60)
    [answer] = answers
    granted = answer.json()
    assert granted["event"]["attributes"]["owner"] == "bob"
    assert [e["changeType"] for e in granted["event"]["changelog"]] == ["created", "locked"]
    assert [e["changeType"] for e in closed.json()["event"]["changelog"]][-2:] == [
        "status_changed",
        "unlocked",
    ]

    def counted(start: str) -> int:
        return sum(statement.startswith(start) for statement in seen)

    assert counted("SELECT LOCK_QUEUE.") == 1, seen  # no second read by the gate
    assert counted("UPDATE LOCK_QUEUE") == 0, seen  # handed over: no turn stored
    assert counted("UPDATE LOCKS") == 0, seen  # the fence comes with the lock's insert
    assert counted("INSERT INTO CHANGELOG") == 2, seen  # one per event
    # The expired keys' purge runs at most once a minute: not counted.
    steady = [s for s in seen if not s.startswith("DELETE FROM IDEMPOTENCY_KEYS")]
    postgres = client.app.state.database.engine.dialect.name == "postgresql"
    # 25 (SQLite) and 28 (PostgreSQL) before; 20 and 22 now.
    assert len(steady) <= (22 if postgres else 20), seen
