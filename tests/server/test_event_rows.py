"""Events read back from the database are built without validation (store/events.py
``row_to_event``): the model built must be the one validation would have made."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from tracker_server.db import create_database_engine
from tracker_server.store.events import row_to_event
from tracker_server.tables import changelog, events

from tracker_ci.models import Event

from .helpers import API, create_event, update_body


def test_an_event_read_back_is_the_model_validation_makes(client: Any, database_url: str) -> None:
    """Every kind of value (open environment names, lists, shipped changes, durations,
    fractions of seconds, Unicode, a changelog) reads back as validation reads it."""
    rich = create_event(
        client,
        "déploiement ✓",
        environment="eu-west-1",
        status="start",
        impact=True,
        startDate="2026-03-04T10:00:00.123456Z",
        endDate="2026-03-04T11:00:00Z",
        stakeHolders=["bob", "carol"],
        notification=True,
        notifications=["#deploys"],
        revision="abc123",
        changes=[
            {
                "kind": "pull_request",
                "id": "42",
                "url": "https://example.com/pr/42",
                "title": "fix",
                "author": "dave",
                "committedAt": "2026-03-01T09:00:00Z",
                "mergedAt": "2026-03-02T09:00:00.5Z",
            }
        ],
        links={"pullRequestLink": "https://example.com/pr/42", "ticket": "T-1"},
        slackId="1700000000.000100",
    )
    # A finished deployment gets a duration and another changelog entry.
    finished = update_body(rich, status="success")
    assert client.put(f"{API}/event", json=finished).status_code == 200, finished
    plain = create_event(client, type="incident", priority="P1", environment="production")

    engine = create_database_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(events).order_by(events.c.created_at)).all()
            entries = conn.execute(select(changelog).order_by(changelog.c.id)).all()
    finally:
        engine.dispose()
    assert [row.id for row in rows] == [rich["metadata"]["id"], plain["metadata"]["id"]]
    for row in rows:
        built = row_to_event(row, [entry for entry in entries if entry.event_id == row.id])
        validated = Event.model_validate(built.model_dump())
        assert built == validated
        assert built.model_dump_json(by_alias=True) == validated.model_dump_json(by_alias=True)
        answer = client.get(f"{API}/event/{row.id}").json()["event"]
        assert answer == validated.to_wire()
    read = row_to_event(rows[0], [e for e in entries if e.event_id == rows[0].id])
    assert read.attributes.environment.value == "eu-west-1"
    assert read.metadata.duration is not None
    assert len(read.changelog) >= 2
    assert read.attributes.changes[0].merged_at is not None
