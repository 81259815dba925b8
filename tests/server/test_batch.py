"""POST /events/batch on the real app (SQLite and PostgreSQL): one result per item in order,
per-item idempotency, the single create's refusals item by item, locks and the webhook
outbox as for single creates, and history (real dates, kept ids, no lock, no notification)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from tracker_server.db import normalize_database_url

from tests.server.helpers import API, assert_error, event_body

pytestmark = pytest.mark.server

BATCH = f"{API}/events/batch"
ADMIN = "batch-admin-secret"
JSON_TYPE = {"Content-Type": "application/json"}


def item(title: str = "seed", key: str = "", **attributes: Any) -> dict[str, Any]:
    """A live item: an open incident of ``api`` unless told otherwise."""
    body = event_body(title, **({"type": "incident", "status": "open"} | attributes))
    return body | ({"idempotencyKey": key} if key else {})


def history(
    title: str = "old deploy",
    *,
    created: str = "2024-03-01T10:00:00Z",
    event_id: str | None = None,
    key: str = "",
    **attributes: Any,
) -> dict[str, Any]:
    """A history item: an upstream-shaped event carrying its metadata and changelog."""
    body = event_body(title, **attributes)
    body["metadata"] = {
        "createdAt": created,
        "duration": "95.5s",
        "id": event_id if event_id is not None else str(uuid.uuid4()),
        "slackId": "",
    }
    body["changelog"] = [
        {"timestamp": created, "user": "alice", "changeType": "created", "comment": "created"},
        {
            "timestamp": "2024-03-01T10:01:35Z",
            "user": "alice",
            "changeType": "status_changed",
            "field": "status",
            "oldValue": "start",
            "newValue": "success",
        },
    ]
    return body | ({"idempotencyKey": key} if key else {})


def send(client: Any, items: list[dict[str, Any]], **headers: str) -> dict[str, Any]:
    response = client.post(BATCH, json={"events": items}, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [r["index"] for r in answer["results"]] == list(range(len(items)))
    return answer


def outcomes(answer: dict[str, Any]) -> list[tuple[str, int]]:
    return [(r["outcome"], r["status"]) for r in answer["results"]]


def total_events(client: Any) -> int:
    return int(client.get(f"{API}/events/list", params={"per_page": 1}).json()["totalCount"])


def test_each_item_gets_its_own_result_in_order(client: Any) -> None:
    bad_type = item("bad type", type="nope")
    answer = send(
        client,
        [item("a", key="k-a"), item("", key="k-empty"), bad_type, item("b"), "not an object"],
    )
    assert outcomes(answer) == [
        ("created", 201),
        ("refused", 400),
        ("refused", 400),
        ("created", 201),
        ("refused", 400),
    ]
    assert (answer["created"], answer["replayed"], answer["refused"]) == (2, 0, 3)
    created = answer["results"][0]
    assert created["idempotencyKey"] == "k-a" and created["error"] is None
    assert created["event"]["title"] == "a"
    assert created["event"]["changelog"][0]["comment"] == "Event created"
    stored = client.get(f"{API}/event/{created['event']['metadata']['id']}").json()["event"]
    assert stored == created["event"]
    # A refused item says what single create says for the same body, with its error body.
    for index, body in ((1, item("")), (2, bad_type)):
        single = client.post(f"{API}/event", json=body).json()
        assert answer["results"][index]["error"] == single
        assert answer["results"][index]["event"] is None
    assert answer["results"][4]["error"]["message"] == (
        "invalid request: an item must be a JSON object (an event)"
    )
    assert total_events(client) == 2


def test_a_repeat_replays_and_a_reused_key_is_refused(client: Any) -> None:
    first = send(client, [item("a", key="r-1"), item("b", key="r-2"), item("", key="r-3")])
    again = send(
        client,
        [item("a", key="r-1"), item("b changed", key="r-2"), item("c", key="r-3")],
    )
    assert outcomes(again) == [("replayed", 201), ("refused", 400), ("created", 201)]
    assert again["results"][0]["event"] == first["results"][0]["event"]
    assert again["results"][1]["error"]["message"] == (
        "Idempotency-Key reused with a different request"
    )
    # The refused r-3 was not kept: it could be sent again and succeed.
    assert total_events(client) == 3
    # The same key twice in one batch: the second answers the first's result.
    twice = send(client, [item("d", key="r-4"), item("d", key="r-4"), item("e", key="r-4")])
    assert outcomes(twice) == [("created", 201), ("replayed", 201), ("refused", 400)]
    assert twice["results"][1]["event"] == twice["results"][0]["event"]
    assert total_events(client) == 4


def test_an_opening_deployment_takes_its_lock_and_a_held_one_refuses_only_itself(
    client: Any,
) -> None:
    start = {"type": "deployment", "status": "start", "service": "web"}
    answer = send(client, [item("one", **start), item("note"), item("two", **start)])
    assert outcomes(answer) == [("created", 201), ("created", 201), ("refused", 409)]
    assert "already locked" in answer["results"][2]["error"]["message"]
    assert answer["results"][2]["error"]["code"] == 6
    holder = answer["results"][0]["event"]
    assert [entry["changeType"] for entry in holder["changelog"]] == ["created", "locked"]
    locks = client.get(f"{API}/locks/list").json()["locks"]
    assert [(lock["service"], lock["eventId"]) for lock in locks] == [
        ("web", holder["metadata"]["id"])
    ]
    assert total_events(client) == 2  # the refused deployment left nothing behind


def test_created_events_reach_the_webhook_outbox_and_the_journal(make_client: Any) -> None:
    client = make_client(webhook_dispatcher=False)
    hook = client.post(
        f"{API}/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["deployment.*"]},
    )
    assert hook.status_code == 201, hook.text
    send(
        client,
        [
            item("live", type="deployment", status="start"),
            history("imported", type="deployment", status="success"),
        ],
    )
    deliveries = client.get(f"{API}/webhooks/deliveries").json()["deliveries"]
    # The live deployment notifies, as a single create would; history notifies nobody.
    assert [d["type"] for d in deliveries] == ["deployment.started"]
    engine = create_engine(normalize_database_url(client.app.state.settings.database_url))
    try:
        with engine.connect() as conn:
            kinds = [row[0] for row in conn.execute(text("SELECT kind FROM journal ORDER BY id"))]
    finally:
        engine.dispose()
    assert kinds.count("event_created") == 1 and kinds.count("events_imported") == 1
    assert "lock_acquired" in kinds


def test_history_keeps_its_dates_changelog_and_id_and_takes_no_lock(client: Any) -> None:
    parent_id = str(uuid.uuid4())
    child = history(
        "finished",
        created="2024-03-01T10:05:00Z",
        relatedId=parent_id,
        status="success",
    )
    parent = history(
        "started", event_id=parent_id, type="deployment", status="start", service="legacy"
    )
    answer = send(client, [child, parent])  # the link names an event later in the import
    assert outcomes(answer) == [("created", 201), ("created", 201)]
    stored = client.get(f"{API}/event/{parent_id}").json()["event"]
    assert stored["metadata"] == {
        "createdAt": "2024-03-01T10:00:00Z",
        "duration": "95.5s",
        "id": parent_id,
        "slackId": "",
    }
    blank = {"field": "", "oldValue": "", "newValue": "", "comment": ""}
    assert stored["changelog"] == [blank | entry for entry in parent["changelog"]]
    linked = answer["results"][0]["event"]
    assert linked["attributes"]["relatedId"] == parent_id
    assert linked["metadata"]["createdAt"] == "2024-03-01T10:05:00Z"
    # An imported "start" is history: it takes no lock and shows in searches by its date.
    assert client.get(f"{API}/locks/list").json()["locks"] == []
    found = client.get(
        f"{API}/events/stats",
        params={"start_date": "2024-03-01", "end_date": "2024-03-01"},
    ).json()
    assert found["totalCount"] == "2"


def test_history_is_imported_once_even_after_its_key_is_forgotten(client: Any) -> None:
    kept = str(uuid.uuid4())
    first = send(client, [history("a", event_id=kept, key="h-1")])
    assert outcomes(first) == [("created", 201)]
    # Another key (say, a day later): the same id and createdAt is the same event.
    again = send(client, [history("a", event_id=kept, key="h-other")])
    assert outcomes(again) == [("replayed", 200)]
    assert again["results"][0]["event"] == first["results"][0]["event"]
    # The same id with another createdAt is another event: it gets an id of its own.
    other = send(client, [history("b", event_id=kept, created="2023-01-01T00:00:00Z")])
    assert outcomes(other) == [("created", 201)]
    assert other["results"][0]["event"]["metadata"]["id"] != kept
    # Not a UUID: a new id too; the same id twice in one batch is imported once.
    dup = str(uuid.uuid4())
    mixed = send(
        client,
        [history("c", event_id="42"), history("d", event_id=dup), history("d", event_id=dup)],
    )
    assert outcomes(mixed) == [("created", 201), ("created", 201), ("replayed", 200)]
    assert mixed["results"][0]["event"]["metadata"]["id"] != "42"
    assert total_events(client) == 4
    # Without a UUID (no id, or "42"), the id is derived from what the event is: importing
    # it again, under another key, finds it instead of writing it twice.
    derived = mixed["results"][0]["event"]["metadata"]["id"]
    no_id = history("e", event_id="")
    first_plain = send(client, [no_id, history("c", event_id="42", key="h-again")])
    assert outcomes(first_plain) == [("created", 201), ("replayed", 200)]
    assert first_plain["results"][1]["event"]["metadata"]["id"] == derived
    assert outcomes(send(client, [history("e", event_id="", key="h-e2")])) == [("replayed", 200)]
    assert total_events(client) == 5


def test_history_is_checked_like_a_create(client: Any) -> None:
    negative = history("neg")
    negative["metadata"]["duration"] = "-5s"
    long_comment = history("long")
    long_comment["changelog"][0]["comment"] = "x" * 20_001
    bad_date = history("date", created="yesterday")
    answer = send(client, [negative, long_comment, bad_date, history("", created="2024-01-01")])
    assert outcomes(answer) == [("refused", 400)] * 4
    messages = [r["error"]["message"] for r in answer["results"]]
    assert "metadata.duration may not be negative" in messages[0]
    assert "entry.comment is 20001 characters long" in messages[1]
    assert messages[2].startswith("invalid request: metadata.createdAt: ")
    assert "title is required" in messages[3]


def test_the_whole_batch_is_refused_when_it_is_empty_too_big_or_not_a_batch(client: Any) -> None:
    assert_error(client.post(BATCH, json={"events": []}), 400, 3, "1 to 1000 events, not 0")
    too_many = {"events": [item(f"e{i}") for i in range(1001)]}
    assert_error(client.post(BATCH, json=too_many), 400, 3, "not 1001; split it")
    assert_error(client.post(BATCH, json=[item()]), 400, 3, "must be a JSON object")
    assert_error(client.post(BATCH, json={"event": [item()]}), 400, 3, "events: is required")
    assert_error(client.post(BATCH, content=b"{nope", headers=JSON_TYPE), 400, 3, "not valid JSON")
    assert total_events(client) == 0


def test_with_auth_each_item_is_checked_against_the_token(make_client: Any) -> None:
    client = make_client(auth=True, admin_token=ADMIN)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    created = client.post(f"{API}/tokens", json={"name": "ci", "services": ["api"]}, headers=admin)
    scoped = {"Authorization": f"Bearer {created.json()['secret']}"}
    assert_error(client.post(BATCH, json={"events": [item()]}), 401, 16)
    answer = send(client, [item("mine"), item("theirs", service="web"), history()], **scoped)
    assert outcomes(answer) == [("created", 201), ("refused", 403), ("refused", 403)]
    assert "may only write services api" in answer["results"][1]["error"]["message"]
    assert "not an admin token" in answer["results"][2]["error"]["message"]
    assert outcomes(send(client, [history()], **admin)) == [("created", 201)]


def test_a_large_batch_in_one_transaction_refreshes_sqlite_statistics(client: Any) -> None:
    size = 600
    base = datetime(2025, 1, 1, tzinfo=UTC)
    items = [
        history(f"h{i}", created=(base + timedelta(minutes=i)).isoformat(), key=f"bulk-{i}")
        for i in range(size)
    ]
    answer = send(client, items)
    assert answer["created"] == size
    assert total_events(client) == size
    settings = client.app.state.settings
    if not settings.database_url.startswith("sqlite"):
        return
    client.app.state.upkeep.join(timeout=60)  # the refresh runs in the background
    engine = create_engine(normalize_database_url(settings.database_url))
    try:
        with engine.connect() as conn:
            stats = conn.execute(
                text("SELECT stat FROM sqlite_stat1 WHERE tbl = 'events' AND idx IS NOT NULL")
            ).all()
    finally:
        engine.dispose()
    assert stats and all(int(row[0].split()[0]) >= size for row in stats), stats


def test_a_batch_of_plain_events_costs_a_few_statements_not_a_few_per_event(client: Any) -> None:
    from sqlalchemy import event as sqlalchemy_event

    engine = client.app.state.database.engine
    seen: list[tuple[str, bool]] = []

    def count(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, many: bool
    ) -> None:
        seen.append((" ".join(statement.split()[:3]).upper(), many))

    size = 50
    sqlalchemy_event.listen(engine, "before_cursor_execute", count)
    try:
        answer = send(client, [item(f"e{i}", key=f"few-{i}") for i in range(size)])
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", count)
    assert answer["created"] == size
    statements = [text for text, _ in seen]
    # The rows go as one executemany per table; the keys are claimed in one statement.
    assert statements.count("INSERT INTO EVENTS") == 1
    assert statements.count("INSERT INTO CHANGELOG") == 1
    assert statements.count("INSERT INTO IDEMPOTENCY_KEYS") == 1
    assert statements.count("INSERT INTO JOURNAL") == 1  # not one per event (SQLite)
    assert ("INSERT INTO EVENTS", True) in seen or engine.dialect.name == "postgresql"
    assert not any(text.startswith("SELECT") and "EVENTS" in text for text in statements)


def test_each_journal_entry_of_a_batch_is_handed_on_with_its_own_id(client: Any) -> None:
    """One insert numbers every entry of a batch: the outbox gets each entry with the id it
    was stored under (a webhook delivery names the entry it delivers), in the batch's
    order."""
    from tracker_server.journal import read_journal
    from tracker_server.tables import webhook_deliveries

    hook = {"url": "http://127.0.0.1:9/hook", "events": ["deployment.*"]}
    assert client.post(f"{API}/webhooks", json=hook).status_code == 201
    send(client, [item("before")])  # entries (and ids) before the batch's
    with client.app.state.database.read() as conn:
        last = read_journal(conn, limit=1000)[-1].id
    titles = [f"journal-order-{n}" for n in range(40)]
    batch = [
        item(t, service=f"svc-{n}", type="deployment", status="success")
        for n, t in enumerate(titles)
    ]
    answer = send(client, batch)
    assert answer["created"] == len(titles)
    with client.app.state.database.read() as conn:
        records = read_journal(conn, after=last, limit=1000)
        deliveries = conn.execute(
            webhook_deliveries.select().where(webhook_deliveries.c.journal_id > last)
        ).all()
    stored = {record.id: record.entry for record in records}
    assert [entry.event.title for entry in stored.values()] == titles  # ids in row order
    assert len(deliveries) == len(titles)
    for delivery in deliveries:
        entry = stored[delivery.journal_id]
        assert entry.event.metadata.id in str(delivery.body), (delivery.journal_id, entry)
