"""Schema migrations: created at start, and an upgrade keeps stored events."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData, create_engine, inspect, text
from tracker_server.db import normalize_database_url, upgrade_schema

from tests.server.helpers import API

pytestmark = pytest.mark.server

OLD_EVENT = {
    "id": "6f1c0c52-3a8e-4d7e-9a55-0d2b1c3e4f50",
    "title": "from 0001",
    "message": "kept",
    "source": "gh",
    "type": "deployment",
    "priority": "P2",
    "related_id": "",
    "service": "api",
    "status": "success",
    "environment": "production",
    "impact": False,
    "start_date": None,
    "end_date": None,
    "owner": "alice",
    "stake_holders": "[]",
    "notification": False,
    "notifications": "[]",
    "pull_request_link": "",
    "ticket": "",
    "slack_id": "",
    "created_at": "2026-01-02 03:04:05",
    "duration_seconds": 12.5,
}


def _drop_everything(conn) -> None:
    """Start from no schema at all (the test databases come migrated)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    else:
        existing = MetaData()
        existing.reflect(conn)
        existing.drop_all(conn)


def test_an_upgrade_from_the_first_revision_keeps_events(database_url, make_client):
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.begin() as conn:
            _drop_everything(conn)
        upgrade_schema(engine, "0001")
        columns = ", ".join(OLD_EVENT)
        with engine.begin() as conn:
            assert "tokens" not in inspect(conn).get_table_names()
            conn.execute(
                text(
                    f"INSERT INTO events ({columns}) VALUES "
                    f"({', '.join(':' + c for c in OLD_EVENT)})"
                ),
                OLD_EVENT,
            )
            conn.execute(
                text(
                    "INSERT INTO locks (id, service, environment, resource, who, event_id, "
                    "created_at) VALUES ('0b9e3a34-5d2c-4f7a-8e1b-2c3d4e5f6a7b', 'api', 'UAT', "
                    "'deployment', 'bob', '', '2026-01-02 03:04:05')"
                )
            )
    finally:
        engine.dispose()

    client = make_client()  # the app upgrades the schema to head at start
    event = client.get(f"{API}/event/{OLD_EVENT['id']}").json()["event"]
    assert event["title"] == "from 0001" and event["attributes"]["message"] == "kept"
    assert event["metadata"]["createdAt"] == "2026-01-02T03:04:05Z"
    assert event["metadata"]["duration"] == "12.5s"
    [lock] = client.get(f"{API}/locks/list").json()["locks"]
    assert lock["who"] == "bob" and lock["expiresAt"] is None  # old locks never expire
    engine = create_engine(normalize_database_url(database_url))
    with engine.connect() as conn:
        versions = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        assert {"tokens", "idempotency_keys", "journal"} <= set(inspect(conn).get_table_names())
    engine.dispose()
    # The one head: the event order epoch (0014), after the linked events' index (0013).
    from alembic.script import ScriptDirectory
    from tracker_server.db import MIGRATIONS_DIR

    assert versions == set(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads()) == {"0014"}


def test_starting_twice_is_a_no_op(make_client):
    make_client()
    client = make_client()
    assert client.get("/health").json() == {"status": "ok", "database": "ok", "version": "0.1.0"}


def test_the_migrations_build_exactly_the_declared_schema(database_url, make_client):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from tracker_server.tables import metadata

    make_client()
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert differences == []
