"""The keys' advisory locks on PostgreSQL (store/queue.py): one key's lock
(``lock_key``, numbered in Python) and several keys' (``lock_keys``, numbered in one SQL
statement) are the same advisory lock for the same key, whatever its characters, and
the statement takes several keys in one order. On the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, column, create_engine, select, text, values
from tracker_server.db import normalize_database_url
from tracker_server.store.queue import LockKey, _advisory_locks, lock_key, lock_keys

pytestmark = [pytest.mark.server, pytest.mark.postgres]

KEYS = [
    LockKey("api", "production", "deployment"),
    LockKey("dépôt-☃", "prod 🚀", "deployment"),
    LockKey("Zeta", "staging", "operation"),
    LockKey("a\tb", "é", "x" * 200),
]


@pytest.fixture
def engine(postgres_database_url: str) -> Iterator[Engine]:
    engine = create_engine(normalize_database_url(postgres_database_url))
    yield engine
    engine.dispose()


def _keys(keys: list[LockKey]):  # the select lock_keys is given: (service, environment, resource)
    rows = values(column("service"), column("environment"), column("resource"), name="keys")
    rows = rows.data([(k.service, k.environment, k.resource) for k in keys])
    return select(rows.c.service, rows.c.environment, rows.c.resource)


def _held(conn: Connection) -> list[int]:
    """The advisory locks this transaction holds, as signed 64-bit numbers, sorted."""
    rows = conn.execute(
        text(
            "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks "
            "WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
        )
    ).scalars()
    return sorted(number - (1 << 64) if number >= 1 << 63 else number for number in rows)


def test_one_statement_takes_the_locks_each_key_takes_alone(engine):
    with engine.connect() as one_by_one, one_by_one.begin():
        for key in KEYS:
            lock_key(one_by_one, key)
        expected = _held(one_by_one)
    assert len(expected) == len(KEYS)
    with engine.connect() as together, together.begin():
        lock_keys(together, _keys([*KEYS, KEYS[0]]))  # a key named twice is taken once
        assert _held(together) == expected


def test_the_statement_takes_the_keys_after_sorting_them(engine):
    with engine.connect() as conn:
        statement = _advisory_locks(_keys(KEYS))
        sql = str(statement.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = list(conn.execute(text("EXPLAIN (VERBOSE) " + sql)).scalars())
    # The function is called in the node above the sort (by code point: COLLATE "C").
    calls = [i for i, line in enumerate(plan) if "pg_advisory_xact_lock" in line]
    sort = next(i for i, line in enumerate(plan) if line.strip().startswith("->  Sort"))
    assert calls and max(calls) < sort, "\n".join(plan)
    assert 'COLLATE "C"' in next(line for line in plan if "Sort Key" in line)
