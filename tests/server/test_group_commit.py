"""Group commit (``db.GroupCommit``): concurrent creates of one process share one
transaction and one commit, on SQLite and PostgreSQL.

A gate (a grouped write that holds the committer until it is opened) makes the grouping
certain: the creates sent while it holds are queued, and commit together once it opens.
Then: every write of the group is answered and stored, ``tracker_write_group_size``
counts the group; a create refused inside the transaction (a hard freeze, after its rows
were written; a held lock; a reused idempotency key; a missing relatedId) refuses only
itself and leaves nothing; the same idempotency key twice in one group creates once; a
write failing in the database is undone alone and decided again alone; and a server
killed (``kill -9``) right after its answers keeps every answered event.
"""

from __future__ import annotations

import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError
from tracker_server.db import MAX_GROUP, Database, create_database_engine, upgrade_schema
from tracker_server.tables import events, idempotency_keys, journal, webhook_deliveries

from tests.server.helpers import API, event_body
from tests.support.servers import run_server
from tests.support.waiting import eventually

pytestmark = pytest.mark.server


class Gate:
    """A grouped write that holds the committer (in its transaction) until opened."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        #: Its group committed and was counted (the metric is observed before settling).
        self.settled = threading.Event()

    def apply(self, conn: Connection) -> None:
        assert self.opened.wait(30)

    def settle(self, error: BaseException | None) -> None:
        assert error is None
        self.settled.set()


def in_one_group(
    client: Any,
    requests: list[tuple[dict[str, Any], dict[str, str]]],
    max_group: int | None = MAX_GROUP,
) -> list[Any]:
    """POST these /event bodies (with their headers) so that they commit as one group:
    every committer is held by a gate while they queue, then one gate opens. The groups
    carry up to MAX_GROUP writes, as on SQLite (PostgreSQL's default is one write a group,
    PG_MAX_GROUP: the mechanism is the same, tested here on both backends); ``max_group``
    None keeps the backend's own."""
    groups = client.app.state.database.groups
    if max_group is not None:
        groups.max_group = max_group
    gates = [Gate() for _ in range(groups.committers)]
    for gate in gates:  # one by one: each committer takes one and holds it
        groups.submit(gate)
        eventually(lambda: groups.waiting == 0, timeout=20)
    with ThreadPoolExecutor(len(requests)) as pool:
        futures = [
            pool.submit(client.post, f"{API}/event", json=body, headers=headers)
            for body, headers in requests
        ]
        try:
            eventually(lambda: groups.waiting == len(requests), timeout=20)
            gates[0].opened.set()
            eventually(lambda: groups.waiting == 0, timeout=20)  # all taken by one committer
        finally:
            for gate in gates:
                gate.opened.set()
        answers = [future.result() for future in futures]
    # The other gates' groups commit on their own: counted once they settle.
    eventually(lambda: all(gate.settled.is_set() for gate in gates), timeout=20)
    return answers


def group_sizes(client: Any) -> tuple[float, float]:
    """``tracker_write_group_size``'s (count, sum): commits, and the writes they carried."""
    text = client.get("/metrics").text
    count = re.search(r"^tracker_write_group_size_count (\S+)$", text, re.MULTILINE)
    total = re.search(r"^tracker_write_group_size_sum (\S+)$", text, re.MULTILINE)
    assert count and total, text
    return float(count.group(1)), float(total.group(1))


def titles(client: Any, service: str) -> list[str]:
    found = client.get(f"{API}/events/search", params={"service": service}).json()["events"]
    return sorted(event["title"] for event in found)


def test_concurrent_creates_share_one_commit(client, service) -> None:
    before = group_sizes(client)
    bodies: list[tuple[dict[str, Any], dict[str, str]]] = [
        (event_body(f"e{i}", service=service), {}) for i in range(8)
    ]
    answers = in_one_group(client, bodies)
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    ids = {a.json()["event"]["metadata"]["id"] for a in answers}
    assert len(ids) == 8
    assert titles(client, service) == sorted(f"e{i}" for i in range(8))
    for event_id in ids:
        assert client.get(f"{API}/event/{event_id}").status_code == 200
    # The gates' commits (1 write each), then the 8 creates in one commit.
    gates = client.app.state.database.groups.committers
    count, total = group_sizes(client)
    assert (count - before[0], total - before[1]) == (gates + 1, gates + 8)


def test_creates_taking_no_lock_share_a_commit_on_every_backend(client, service) -> None:
    """PostgreSQL's groups carry one write (PG_MAX_GROUP), except creates that take no lock
    and carry no key: they only insert new rows, so they share a commit there too. Those
    taking a lock, or with a key, commit one by one on PostgreSQL (together on SQLite)."""
    postgres = client.app.state.database.backend == "postgresql"
    gates = client.app.state.database.groups.committers
    before = group_sizes(client)
    plain = [(event_body(f"p{i}", service=service), {}) for i in range(5)]
    answers = in_one_group(client, plain, max_group=None)
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    count, total = group_sizes(client)
    assert (count - before[0], total - before[1]) == (gates + 1, gates + 5)

    before = (count, total)
    locking = [
        (event_body(f"l{i}", service=f"{service}-{i}", status="in_progress"), {}) for i in range(2)
    ]
    keyed = [(event_body("k", service=service), {"Idempotency-Key": f"{service}-k"})]
    answers = in_one_group(client, locking + keyed, max_group=None)
    assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]
    count, total = group_sizes(client)
    assert total - before[1] == gates + 3
    assert count - before[0] == gates + (3 if postgres else 1)
    assert titles(client, service) == sorted(["k", *(f"p{i}" for i in range(5))])


def test_a_group_journals_and_notifies_each_create(client, service, unique) -> None:
    """The journal entries and webhook deliveries of a group's creates are written
    together after the group's writes (one statement for all): one of each per create
    that committed, none for the refused one."""
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["deployment.finished"]}
    assert client.post(f"{API}/webhooks", json=hook).status_code == 201
    missing = str(uuid.uuid4())
    requests: list[tuple[dict[str, Any], dict[str, str]]] = [
        (event_body(f"n{i}", service=service), {}) for i in range(3)
    ]
    requests.insert(1, (event_body("refused", service=service, relatedId=missing), {}))
    answers = in_one_group(client, requests, max_group=None)
    assert [a.status_code for a in answers] == [200, 400, 200, 200], [a.text for a in answers]
    ids = {a.json()["event"]["metadata"]["id"] for a in answers if a.status_code == 200}
    engine = client.app.state.database.engine
    with engine.connect() as conn:
        rows = conn.execute(
            select(journal.c.id, journal.c.payload).where(journal.c.kind == "event_created")
        ).all()
        created = {row.id: row.payload["event"]["metadata"]["id"] for row in rows}
        mine = {key for key, event_id in created.items() if event_id in ids}
        assert sorted(created[key] for key in mine) == sorted(ids)
        delivered = conn.execute(
            select(webhook_deliveries.c.journal_id).where(webhook_deliveries.c.journal_id.in_(mine))
        ).scalars()
        assert sorted(delivered) == sorted(mine)


def test_a_refused_create_refuses_only_itself(client, service, unique) -> None:
    frozen = unique("frozen")
    window = {
        "title": "Xmas",
        "type": "FREEZE_TYPE_HARD",
        "scopeType": "FREEZE_SCOPE_SERVICE",
        "scopeIds": [frozen],
        "endsAt": "2099-01-01T00:00:00Z",
    }
    assert client.post(f"{API}/freeze-window", json=window).status_code == 200
    locked = unique("locked")
    holder = client.post(f"{API}/event", json=event_body("holder", service=locked, status="start"))
    assert holder.status_code == 200, holder.text
    key = {"Idempotency-Key": unique("key")}
    first = client.post(f"{API}/event", json=event_body("keyed", service=service), headers=key)
    assert first.status_code == 200, first.text
    before = group_sizes(client)

    good: list[tuple[dict[str, Any], dict[str, str]]] = [
        (event_body(f"good{i}", service=service), {}) for i in range(4)
    ]
    bad = [
        # Refused after its event and lock rows were written (its savepoint undoes them).
        (event_body("frozen", service=frozen, status="start"), {}),
        (event_body("second holder", service=locked, status="start"), {}),
        (event_body("other body", service=service), key),
        (event_body("orphan", service=service, relatedId=str(uuid.uuid4())), {}),
    ]
    answers = in_one_group(client, [item for pair in zip(good, bad, strict=True) for item in pair])

    statuses = [a.status_code for a in answers]
    assert statuses[0::2] == [200] * 4, [a.text for a in answers]
    assert answers[1].status_code == 400 and "hard freeze" in answers[1].text
    assert answers[3].status_code == 409, answers[3].text
    assert answers[5].status_code == 400 and "Idempotency-Key reused" in answers[5].text
    assert answers[7].status_code == 400 and "relatedId" in answers[7].text
    assert titles(client, service) == ["good0", "good1", "good2", "good3", "keyed"]
    assert titles(client, frozen) == []
    assert titles(client, locked) == ["holder"]
    locks = client.get(f"{API}/locks/list").json()["locks"]
    assert [lock["service"] for lock in locks] == [locked]
    # The refusals committed nothing; the four creates, one commit after the gates'.
    gates = client.app.state.database.groups.committers
    count, total = group_sizes(client)
    assert (count - before[0], total - before[1]) == (gates + 1, gates + 4)


def test_one_idempotency_key_twice_in_a_group_creates_once(client, service, unique) -> None:
    key = {"Idempotency-Key": unique("key")}
    body = event_body("once", service=service)
    answers = in_one_group(client, [(body, key), (body, key), (body, key)])
    assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]
    assert len({a.json()["event"]["metadata"]["id"] for a in answers}) == 1
    assert sorted(a.headers.get("Idempotent-Replayed", "") for a in answers) == ["", "true", "true"]
    assert titles(client, service) == ["once"]


def test_answered_creates_survive_a_kill(tmp_path: Path, service) -> None:
    """Every event answered before a ``kill -9`` is in the database after it (SQLite in
    WAL with synchronous=NORMAL: the commit is in the log before the answer leaves; a
    PostgreSQL commit is flushed before it returns)."""
    database_url = f"sqlite:///{tmp_path / 'tracker.db'}"
    with run_server(database_url, log_dir=tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:

            def create(i: int) -> str:
                answer = http.post(f"{API}/event", json=event_body(f"k{i}", service=service))
                assert answer.status_code == 200, answer.text
                return str(answer.json()["event"]["metadata"]["id"])

            with ThreadPoolExecutor(8) as pool:
                answered = list(pool.map(create, range(24)))
            server.process.kill()  # kill -9, right after the last answer
            server.process.wait()
    # What a restarted server would read first (SQLite replays its log on opening).
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as conn:
            stored = set(
                conn.execute(select(events.c.id).where(events.c.service == service)).scalars()
            )
    finally:
        engine.dispose()
    assert stored == set(answered)


class KeyInsert:
    """A grouped write inserting one idempotency key (a duplicate fails in the database)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.settled: list[BaseException | None] = []
        self.runs = 0

    def apply(self, conn: Connection) -> None:
        self.runs += 1
        conn.execute(
            insert(idempotency_keys).values(
                scope="group-commit test",
                key=self.key,
                request_hash="",
                status_code=200,
                response_body="",
                created_at=datetime.now(UTC),
            )
        )

    def settle(self, error: BaseException | None) -> None:
        self.settled.append(error)


def test_a_database_error_in_a_group_is_decided_alone(database_url: str, unique) -> None:
    engine = create_database_engine(database_url)
    upgrade_schema(engine)
    database = Database(engine)
    database.groups.max_group = MAX_GROUP  # as on SQLite (see in_one_group)
    sizes: list[int] = []
    database.groups.observe = sizes.append
    try:
        gates = [Gate() for _ in range(database.groups.committers)]
        for gate in gates:
            database.groups.submit(gate)
            eventually(lambda: database.groups.waiting == 0, timeout=20)
        key = unique("key")
        first, twin, other = KeyInsert(key), KeyInsert(key), KeyInsert(unique("key"))
        for write in (first, twin, other):
            database.groups.submit(write)
        gates[0].opened.set()
        eventually(lambda: first.settled and twin.settled and other.settled, timeout=20)
    finally:
        for gate in gates:
            gate.opened.set()
        database.dispose()
    assert first.settled == [None] and other.settled == [None]
    # The twin failed in the group (its savepoint undone, the others kept), then alone.
    assert twin.runs == 2
    assert len(twin.settled) == 1 and isinstance(twin.settled[0], IntegrityError)
    assert sorted(sizes) == [1] * len(gates) + [2]
