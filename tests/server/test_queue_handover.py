"""The handover (issue 23): while a long poll asking for the grant sleeps, the transaction
that gives its ticket the turn (here a release) takes its lock too, so the lock is the
waiter's as soon as the release is answered and the long poll answers it without a write
of its own; a grant that transaction may not take (a hard freeze) is left to the
waiter's own look, and the release goes through. On the real app, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine
from tracker_server import wakeup, writes
from tracker_server.db import normalize_database_url
from tracker_server.journal import read_journal

from tests.server.helpers import API
from tests.server.test_queue_grant import _freeze, ask, join, release, status, take

pytestmark = pytest.mark.server


@pytest.fixture
def sleeping(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Set each time a long poll goes to sleep (its handover is armed by then); the
    first in line sleeps until woken (no look every second)."""
    asleep, sleep = threading.Event(), wakeup.Bell.wait

    def watched(bell: wakeup.Bell, timeout: float) -> bool:
        asleep.set()
        return sleep(bell, timeout)

    monkeypatch.setattr(wakeup.Bell, "wait", watched)
    monkeypatch.setattr(wakeup, "MAX_SLICE", 600.0)
    yield asleep
    wakeup.resume()


def _polling(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    answers: list[object] = []
    thread = threading.Thread(target=lambda: answers.append(call()))
    thread.start()
    return thread, answers


def _moments(database_url: str) -> list[tuple[str, object]]:
    """Each journal entry's kind and moment (one per transaction: its request's)."""
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as conn:
            return [(r.entry.KIND, r.occurred_at) for r in read_journal(conn, limit=100)]
    finally:
        engine.dispose()


def test_a_release_hands_the_lock_to_the_sleeping_waiter(client, sleeping, database_url):
    holder = take(client, "holder").json()["lock"]
    ticket = join(client, "w1", reason="release 2.1")
    thread, answers = _polling(
        lambda: ask(client, ticket, "w1", reason="release 2.1", waitSeconds=60)
    )
    assert sleeping.wait(timeout=60), "the long poll never slept"
    release(client, holder["id"])
    # Taken in the release's own transaction: the waiter's lock once the release answered.
    held = status(client)
    assert held["lock"]["who"] == "w1" and held["queue"] == []
    thread.join(timeout=60)
    [answer] = answers
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ticket"] == {**body["ticket"], "ticket": ticket, "state": "granted"}
    granted = body["granted"]
    assert granted == held["lock"] and body["lock"] == granted
    assert granted["reason"] == "release 2.1" and granted["fence"] == holder["fence"] + 1
    # The same grant is claimed as any: asking again with the ticket.
    claimed = ask(client, ticket, "w1").json()["granted"]
    assert claimed["id"] == granted["id"] and claimed["fence"] == granted["fence"]
    # One transaction released, granted the turn and took the lock for the waiter.
    journal = _moments(database_url)
    released = next(at for kind, at in journal if kind == "lock_released")
    in_it = [kind for kind, at in journal if at == released]
    assert in_it == ["lock_released", "queue_granted", "queue_left", "lock_acquired"]


def test_a_hard_freeze_leaves_the_turn_to_the_waiters_own_look(client, sleeping):
    holder = take(client, "holder").json()["lock"]
    ticket = join(client, "w1")
    _freeze(client, "FREEZE_TYPE_HARD")
    thread, answers = _polling(lambda: ask(client, ticket, "w1", waitSeconds=60))
    assert sleeping.wait(timeout=60), "the long poll never slept"
    release(client, holder["id"])  # the release itself goes through
    assert status(client)["lock"] is None
    held = ask(client, ticket, "w1").json()
    assert held["ticket"]["state"] == "frozen" and held["granted"] is None
    wakeup.begin_shutdown()  # the sleeping poll answers now
    thread.join(timeout=60)
    [answer] = answers
    assert answer.json()["granted"] is None
    assert status(client)["lock"] is None


def test_a_waiter_without_grant_is_told_its_turn_and_takes_the_lock(client, sleeping):
    holder = take(client, "holder").json()["lock"]
    ticket = join(client, "w1")
    body = {"service": "api", "environment": "production", "resource": "deployment"}
    poll = body | {"who": "w1", "ticket": ticket, "waitSeconds": 60}
    thread, answers = _polling(lambda: client.post("/api/v1alpha1/lock/queue", json=poll))
    assert sleeping.wait(timeout=60), "the long poll never slept"
    release(client, holder["id"])
    thread.join(timeout=60)
    [answer] = answers
    turn = answer.json()
    assert turn["ticket"]["state"] == "granted" and turn["granted"] is None
    assert turn["lock"] is None and status(client)["lock"] is None  # nothing taken for it
    lock = take(client, "w1", queueTicket=ticket).json()["lock"]
    assert lock["who"] == "w1" and lock["fence"] == holder["fence"] + 1
    assert status(client)["queue"] == []


def test_a_handover_its_transaction_rolled_back_is_never_answered(client, sleeping, monkeypatch):
    """The long poll answers the grant from what the releasing transaction wrote, only
    once it committed: here the release fails after the handover, and the waiter rung
    all the same finds no grant, looks for itself and waits on behind the holder."""
    holder = take(client, "holder").json()["lock"]
    ticket = join(client, "w1")
    thread, answers = _polling(lambda: ask(client, ticket, "w1", waitSeconds=60))
    assert sleeping.wait(timeout=60), "the long poll never slept"
    persist = writes.Write._persist

    def failing(write: writes.Write, conn: object) -> object:
        if any(entry.KIND == "lock_acquired" for entry in write.journal.pending):
            raise RuntimeError("the commit failed")
        return persist(write, conn)

    monkeypatch.setattr(writes.Write, "_persist", failing)
    with pytest.raises(RuntimeError, match="the commit failed"):
        client.get(f"{API}/unlock/{holder['id']}")
    monkeypatch.setattr(writes.Write, "_persist", persist)
    assert status(client)["lock"]["id"] == holder["id"]  # rolled back: still the holder's
    sleeping.clear()
    wakeup.notify(wakeup.Wake(frozenset({ticket})))  # its bell rings all the same
    assert sleeping.wait(timeout=60), "the long poll never slept again"
    assert status(client)["lock"]["id"] == holder["id"]
    wakeup.begin_shutdown()  # the sleeping poll answers now
    thread.join(timeout=60)
    [answer] = answers
    assert answer.status_code == 200, answer.text
    assert answer.json()["granted"] is None and answer.json()["ticket"]["state"] == "waiting"


def test_the_handed_over_answer_shows_the_queue_behind_it(client, sleeping):
    """The answer's queue is built from the rows the release read, as a read would."""
    holder = take(client, "holder").json()["lock"]
    ticket = join(client, "w1")
    join(client, "w2", reason="next")
    thread, answers = _polling(lambda: ask(client, ticket, "w1", waitSeconds=60))
    assert sleeping.wait(timeout=60), "the long poll never slept"
    release(client, holder["id"])
    thread.join(timeout=60)
    [answer] = answers
    body = answer.json()
    assert body["granted"]["who"] == "w1"
    held = status(client)
    assert [entry["who"] for entry in body["queue"]] == ["w2"]
    assert body["queue"] == held["queue"]
