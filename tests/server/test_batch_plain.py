"""The batch's plain items (no lock, no relatedId, no approval, a known environment name)
skip ``create_event`` and SQLAlchemy's per-row work: what they store, answer, journal and
hand the webhook outbox must still equal what single ``POST /event`` creates of the same
bodies make (both backends; hostile text; a bad item among good ones); and the items that
must read first (an environment name to check, a relatedId) still follow the single rules."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from tracker_server.db import normalize_database_url

from tests.server.helpers import API, event_body, token_headers

pytestmark = pytest.mark.server

BATCH = f"{API}/events/batch"

#: Text a careless encoder or driver would mangle: quotes, backslashes, SQL, markup,
#: control-ish and non-BMP characters, line and paragraph separators.
HOSTILE = (
    "O'Brien \"quoted\" \\back\\slash '); DROP TABLE events;-- <b>&amp;</b> \u2028\u2029 é漢🚀"
)


def bodies() -> list[dict[str, Any]]:
    """Plain bodies covering every column: lists, links, dates with offsets, a revision."""
    return [
        event_body("plain incident", type="incident", status="open"),
        event_body(
            HOSTILE,
            type="incident",
            status="open",
            message=HOSTILE,
            source="src " + HOSTILE[:20],
            owner="",  # the changelog's author becomes "system"
            stakeHolders=["alice", HOSTILE[:30]],
            notification=True,
            notifications=["#ops", "ops@example.com"],
            impact=True,
            startDate="2026-03-04T12:00:00+02:00",
            endDate="2026-03-04T13:30:00.123456Z",
            links={"pullRequestLink": 'https://example.com/pr/7?a=1&b="2"', "ticket": HOSTILE},
            slackId="C123/1700000000.0001",
        ),
        event_body(
            "deploy done",
            revision="v1.2.3",
            changes=[{"kind": "commit", "id": "abc123", "title": HOSTILE[:40]}],
            priority="P1",
        ),
        event_body("waiting", status="waiting_approval"),  # auth off: no approval to record
        event_body("drift", type="drift", status="success", environment="staging"),
    ]


def _without_ids(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with every event id replaced by its position (ids differ, nothing else)."""
    text_value = json.dumps(value, sort_keys=True, default=str)
    for event_id, name in ids.items():
        text_value = text_value.replace(event_id, name)
    return json.loads(text_value)


def _stored(client: Any) -> dict[str, list[dict[str, Any]]]:
    engine = create_engine(normalize_database_url(client.app.state.settings.database_url))
    try:
        with engine.connect() as conn:

            def rows(sql: str) -> list[dict[str, Any]]:
                return [dict(row._mapping) for row in conn.execute(text(sql))]

            return {
                "events": rows("SELECT * FROM events"),
                "changelog": rows("SELECT * FROM changelog ORDER BY id"),
                "journal": rows("SELECT kind, payload FROM journal ORDER BY id"),
                "outbox": rows("SELECT journal_id, type, body FROM webhook_deliveries"),
            }
    finally:
        engine.dispose()


def _payload(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def test_plain_items_store_answer_journal_and_notify_as_single_creates(
    make_client: Any, clock: Any
) -> None:
    client = make_client(clock=clock, webhook_dispatcher=False)
    hook = client.post(f"{API}/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["*"]})
    assert hook.status_code == 201, hook.text
    sent = bodies()
    singles = []
    for body in sent:
        response = client.post(f"{API}/event", json=body)
        assert response.status_code in (200, 201), response.text
        singles.append(response.json())
    before = _stored(client)
    bad = event_body("bad", type="incident", status="open", priority="P9")
    response = client.post(BATCH, json={"events": [*sent[:2], bad, *sent[2:]]})
    assert response.status_code == 200, response.text
    answer = response.json()
    results = answer["results"]
    assert [r["outcome"] for r in results] == ["created"] * 2 + ["refused"] + ["created"] * 3
    # The bad item gets POST /event's own refusal, and only it.
    single_bad = client.post(f"{API}/event", json=bad)
    assert single_bad.status_code == 400
    assert results[2]["error"] == single_bad.json() and results[2]["status"] == 400
    created = [r for r in results if r["outcome"] == "created"]

    single_ids = {s["event"]["metadata"]["id"]: f"event-{n}" for n, s in enumerate(singles)}
    batch_ids = {r["event"]["metadata"]["id"]: f"event-{n}" for n, r in enumerate(created)}
    assert len(set(batch_ids) | set(single_ids)) == 2 * len(sent)
    # The answers: the same events (ids aside) and warnings.
    assert _without_ids([r["event"] for r in created], batch_ids) == _without_ids(
        [s["event"] for s in singles], single_ids
    )
    assert [r["warnings"] for r in created] == [s.get("warnings", []) for s in singles]

    after = _stored(client)
    # The rows: events and changelog, as the single creates stored them.
    for table, key in (("events", "id"), ("changelog", "event_id")):
        mine = sorted(
            (row for row in after[table] if row[key] in batch_ids), key=lambda r: batch_ids[r[key]]
        )
        theirs = sorted(
            (row for row in before[table] if row[key] in single_ids),
            key=lambda r: single_ids[r[key]],
        )
        if table == "changelog":
            mine = [{**row, "id": None} for row in mine]
            theirs = [{**row, "id": None} for row in theirs]
        assert _without_ids(mine, batch_ids) == _without_ids(theirs, single_ids), table
        assert len(mine) == len(sent)
    # The journal: one event_created per event, the same payloads.
    new_entries = after["journal"][len(before["journal"]) :]
    old_entries = [e for e in before["journal"] if e["kind"] == "event_created"]
    assert [e["kind"] for e in new_entries] == ["event_created"] * len(sent)
    assert _without_ids([_payload(e["payload"]) for e in new_entries], batch_ids) == _without_ids(
        [_payload(e["payload"]) for e in old_entries], single_ids
    )
    # The outbox: the same deliveries (the finished deployment's), the same bodies.
    new_deliveries = after["outbox"][len(before["outbox"]) :]
    assert len(new_deliveries) == len(before["outbox"]) >= 1

    def deliveries(rows: list[dict[str, Any]], ids: dict[str, str]) -> list[Any]:
        found = [(row["type"], _payload(row["body"])) for row in rows]
        return sorted(_without_ids(found, ids), key=json.dumps)

    def sans_delivery_ids(found: list[Any]) -> list[Any]:
        return [
            [kind, {k: v for k, v in body.items() if k not in ("id", "deliveryId")}]
            for kind, body in found
        ]

    assert sans_delivery_ids(deliveries(new_deliveries, batch_ids)) == sans_delivery_ids(
        deliveries(before["outbox"], single_ids)
    )


def test_a_misspelled_environment_is_refused_item_by_item_as_post_event_does(
    client: Any,
) -> None:
    seeded = client.post(f"{API}/event", json=event_body("seed", environment="preprod"))
    assert seeded.status_code in (200, 201), seeded.text
    typo = event_body("typo", type="incident", status="open", environment="prepord")
    single = client.post(f"{API}/event", json=typo)
    assert single.status_code == 400, single.text
    good = event_body("good", type="incident", status="open", environment="preprod")
    new = event_body("new name", type="incident", status="open", environment="sandbox-eu")
    answer = client.post(BATCH, json={"events": [good, typo, new]}).json()
    assert [r["outcome"] for r in answer["results"]] == ["created", "refused", "created"]
    assert answer["results"][1]["error"] == single.json()
    # Declared new, the name passes (X-Tracker-New-Environment), as for POST /event.
    declared = client.post(
        BATCH, json={"events": [typo]}, headers={"X-Tracker-New-Environment": "true"}
    ).json()
    assert [r["outcome"] for r in declared["results"]] == ["created"]


def test_a_related_item_reads_its_parent_and_an_unknown_one_is_refused(
    client: Any,
) -> None:
    parent = client.post(f"{API}/event", json=event_body("parent")).json()["event"]
    parent_id = parent["metadata"]["id"]
    child = event_body("child", type="incident", status="close", relatedId=parent_id)
    orphan = event_body(
        "orphan", type="incident", status="close", relatedId="0" * 8 + "-0000-4000-8000-" + "0" * 12
    )
    answer = client.post(BATCH, json={"events": [event_body("first"), child, orphan]}).json()
    assert [r["outcome"] for r in answer["results"]] == ["created", "created", "refused"], answer[
        "results"
    ][1]["error"]
    assert answer["results"][1]["event"]["metadata"]["duration"] is not None
    assert "names no event" in answer["results"][2]["error"]["message"]


def test_a_waiting_item_records_its_requester_so_it_may_not_approve_itself(
    make_client: Any,
) -> None:
    client = make_client(auth=True, admin_token="admin-secret", webhook_dispatcher=False)
    admin = {"Authorization": "Bearer admin-secret"}
    requester = token_headers(client, "ci", admin)
    reviewer = token_headers(client, "reviewer", admin)
    waiting = event_body("gated", status="waiting_approval")
    single = client.post(f"{API}/event", json=waiting, headers=requester).json()["event"]
    answer = client.post(BATCH, json={"events": [waiting]}, headers=requester).json()
    batched = answer["results"][0]["event"]
    # The same changelog as the single create's: "created" and "approval requested".
    assert [(c["changeType"], c["field"], c["newValue"]) for c in batched["changelog"]] == [
        (c["changeType"], c["field"], c["newValue"]) for c in single["changelog"]
    ]
    event_id = batched["metadata"]["id"]
    own = client.post(f"{API}/event/{event_id}/approve", json={}, headers=requester)
    assert own.status_code == 403, own.text
    approved = client.post(f"{API}/event/{event_id}/approve", json={}, headers=reviewer)
    assert approved.status_code == 200, approved.text


def test_the_cycle_collector_is_back_on_after_a_batch(client: Any) -> None:
    assert gc.isenabled()
    answer = client.post(BATCH, json={"events": [event_body("one"), "not an object"]}).json()
    assert [r["outcome"] for r in answer["results"]] == ["created", "refused"]
    assert gc.isenabled()
