"""Revision 0010 (the search indexes): its downgrade restores the indexes of 0009, and the
upgrade after it builds the declared ones again, keeping the events."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect
from tracker_server.db import downgrade_schema, normalize_database_url, upgrade_schema
from tracker_server.tables import events

from tests.server.helpers import API, create_event

pytestmark = pytest.mark.server

#: The events indexes of revision 0009 (0001, 0003 and 0006), by name and columns.
BEFORE_0010 = {
    "ix_events_start_date": ["start_date"],
    "ix_events_slack_id": ["slack_id"],
    "ix_events_created_at": ["created_at"],
    **{
        f"ix_events_{column}_created_at": [column, "created_at", "id"]
        for column in ("source", "type", "priority", "service", "status", "environment", "impact")
    },
    "ix_events_service_environment_created_at": ["service", "environment", "created_at", "id"],
    "ix_events_type_status_created_at": ["type", "status", "created_at", "id"],
    "ix_events_type_service_environment_created_at": [
        "type",
        "service",
        "environment",
        "created_at",
    ],
}


def _indexes(engine) -> dict[str, list[str]]:
    with engine.connect() as conn:
        return {ix["name"]: ix["column_names"] for ix in inspect(conn).get_indexes("events")}


def test_the_downgrade_restores_the_old_indexes_and_the_upgrade_the_new(database_url, make_client):
    client = make_client()
    event = create_event(client, title="kept")
    engine = create_engine(normalize_database_url(database_url))
    try:
        declared = {ix.name: [c.name for c in ix.columns] for ix in events.indexes}
        assert _indexes(engine) == declared
        downgrade_schema(engine, "0009")
        assert _indexes(engine) == BEFORE_0010
        upgrade_schema(engine)
        assert _indexes(engine) == declared
    finally:
        engine.dispose()
    found = client.get(f"{API}/event/{event['metadata']['id']}").json()["event"]
    assert found["title"] == "kept"
