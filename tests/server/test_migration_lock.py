"""Replicas starting together on PostgreSQL migrate one at a time: the lock is
transaction-scoped (nothing stays held afterwards, whatever pooler is in between), and a
replica waits for another's migration past the requests' lock_timeout (3 s)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from tracker_server.db import _MIGRATION_LOCK_KEY, create_database_engine, upgrade_schema

from tests.conftest import POSTGRES_ADMIN_DSN
from tests.support.waiting import eventually

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.timeout(120)]


@pytest.fixture
def fresh_database(postgres_database_url: str) -> Iterator[str]:
    name = f"tracker_migrate_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _advisory(database: str, *, granted: bool) -> int:
    query = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted = %s "
        "AND database = (SELECT oid FROM pg_database WHERE datname = %s)"
    )
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        row = conn.execute(query, (granted, database)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_replica_waits_for_another_migration_longer_than_the_lock_timeout(fresh_database):
    dsn = POSTGRES_ADMIN_DSN.replace("dbname=test", f"dbname={fresh_database}")
    engine = create_database_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:5432/{fresh_database}"
    )
    outcome: list[object] = []

    def migrate() -> None:
        try:
            upgrade_schema(engine)
            outcome.append("migrated")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome.append(exc)

    def waits_for_the_lock() -> bool:
        if outcome:  # it finished or failed without waiting: no use waiting longer
            pytest.fail(f"the migration did not wait for the lock: {outcome}")
        return _advisory(fresh_database, granted=False) > 0

    try:
        with psycopg.connect(dsn) as other:  # "another replica", mid-migration
            other.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
            thread = threading.Thread(target=migrate)
            thread.start()
            eventually(waits_for_the_lock)
            waiting = time.monotonic()
            while time.monotonic() - waiting < 4.0:  # past lock_timeout (3 s)
                assert not outcome, outcome
                time.sleep(0.1)
            other.commit()  # the other replica's migration ends
        thread.join(timeout=60)
        assert outcome == ["migrated"]
        assert _advisory(fresh_database, granted=True) == 0  # ended with its transaction
        upgrade_schema(engine)  # at the heads: nothing to do, no lock taken
    finally:
        engine.dispose()
