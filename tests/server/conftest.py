"""Fixtures of the server tests: the real app in-process on SQLite AND PostgreSQL.

Every test that takes ``client`` runs twice, once per backend. The in-process app is the
same object the subprocess serves (``create_app``), driven through Starlette's TestClient.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from starlette.exceptions import StarletteDeprecationWarning
from tracker_server.app import create_app
from tracker_server.clock import Clock, ManualClock
from tracker_server.db import create_database_engine, normalize_database_url, upgrade_schema
from tracker_server.settings import ServerSettings

# Starlette 1.x warns at import that it prefers httpx2; the warning is about the test
# client's transport, not our code, and pytest turns warnings into errors.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

_TABLES = (
    "changelog",
    "events",
    "locks",
    "idempotency_keys",
    "tokens",
    "journal",
    "webhooks",
    "webhook_deliveries",
    "alerts",
    "lock_fences",
    "lock_queue",
    "lock_policies",
    "freeze_windows",
    "catalog",
)


def _empty_postgres(database_url: str) -> None:
    """Truncate the tables a test wrote to; the others are still as TRUNCATE left them.

    A TRUNCATE costs about 30 ms a table here whatever its size (PostgreSQL drops the
    relation's buffers by scanning all of shared_buffers), so truncating all 14 tables
    cost ~0.4 s a test. A heap of size 0 has had no row since its last TRUNCATE (a
    DELETE keeps the pages), so the tables left out are exactly as a TRUNCATE leaves them.
    """
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.begin() as conn:
            written = conn.execute(
                text(
                    "SELECT name FROM unnest(CAST(:tables AS text[])) AS name"
                    " WHERE to_regclass(name) IS NOT NULL"
                    " AND pg_relation_size(to_regclass(name)) > 0"
                ),
                {"tables": list(_TABLES)},
            ).scalars()
            present = list(written)
            if present:
                conn.execute(text(f"TRUNCATE {', '.join(present)} CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database at the newest schema, migrated once per session."""
    path = tmp_path_factory.mktemp("template") / "tracker.db"
    engine = create_database_engine(f"sqlite:///{path}")
    upgrade_schema(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a copy of the migrated SQLite template, or the session's
    PostgreSQL emptied. (The app still runs its migrations: they find nothing to do.)

    The PostgreSQL database is emptied again afterwards: tests that start their own
    servers on ``postgres_database_url`` must not inherit this test's rows (a hard freeze
    of production left by a queue test blocked every lock of test_queue_replicas.py)."""
    if request.param == "sqlite":
        target = tmp_path / "tracker.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite_template"), target)
        yield f"sqlite:///{target}"
        return
    url: str = request.getfixturevalue("postgres_database_url")
    _empty_postgres(url)
    yield url
    _empty_postgres(url)


AppClient = Callable[..., TestClient]


@pytest.fixture
def make_client(database_url: str) -> Iterator[AppClient]:
    """Build an app with these settings (and clock) on the test's database and give its
    TestClient."""
    clients: list[TestClient] = []

    def build(*, clock: Clock | None = None, **settings: Any) -> TestClient:
        # The tests' receivers listen on loopback (a private address for webhooks).
        settings.setdefault("allow_private_webhooks", True)
        app = create_app(ServerSettings(database_url=database_url, **settings), clock=clock)
        client = TestClient(app, raise_server_exceptions=True)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: AppClient) -> TestClient:
    """A TestClient of the app with default settings (auth off)."""
    return make_client()


#: Where ``clock`` starts: a fixed moment, so tests can assert exact timestamps.
CLOCK_START = datetime(2026, 3, 4, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    """The server's clock for ``timed``: tests move it past a TTL instead of waiting."""
    return ManualClock(CLOCK_START)


@pytest.fixture
def timed(make_client: AppClient, clock: ManualClock) -> TestClient:
    """A TestClient of an app whose time is ``clock`` (default settings otherwise)."""
    return make_client(clock=clock)
