"""Fixtures shared by every test: a clean environment and a real bundled server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import names
from tests.support.servers import RunningServer, run_server

_CLEARED_PREFIXES = ("TRACKER_", "GITHUB_", "GITLAB_", "CI_", "INPUT_", "STATE_", "RUNNER_")
# Read once at import, before the autouse fixture below clears CI variables per test.
RUNNING_IN_CI = os.environ.get("CI", "").lower() == "true"
# The machine's PostgreSQL (trust auth); each test session makes its own database in it.
POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
#: The admin token of ``auth_server``.
ADMIN_TOKEN = "trk_admin_secret_for_tests_0123456789"


@pytest.fixture(autouse=True)
def hermetic_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never see the CI variables of the machine that runs them, nor its config."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in ("CI", "GITLAB_CI", "GITHUB_ACTIONS"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


@pytest.fixture
def unique() -> Callable[[str], str]:
    """``unique("api")`` -> ``api-<hex>``: a name (service, token, hook) no other test uses,
    since the session's servers are shared."""
    return names.unique


@pytest.fixture
def service(unique: Callable[[str], str]) -> str:
    """A service of this test's own on a shared server."""
    return unique("svc")


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session")


@pytest.fixture(scope="session")
def sqlite_server(session_tmp: Path) -> Iterator[RunningServer]:
    """One bundled server on a fresh SQLite file, shared by the session (auth off)."""
    db = session_tmp / "tracker.db"
    with run_server(f"sqlite:///{db}", log_dir=session_tmp) as server:
        yield server


@pytest.fixture(scope="session")
def auth_server(session_tmp: Path) -> Iterator[RunningServer]:
    """A bundled server with --auth on (public reads) and ``ADMIN_TOKEN``, for the session."""
    db = session_tmp / "auth.db"
    with run_server(
        f"sqlite:///{db}",
        log_dir=session_tmp,
        extra_args=["--auth", "--admin-token", ADMIN_TOKEN],
    ) as server:
        yield server


@pytest.fixture
def fresh_sqlite_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A bundled server on its own empty SQLite file, for tests that need a clean slate."""
    with run_server(f"sqlite:///{tmp_path / 'tracker.db'}", log_dir=tmp_path) as server:
        yield server


def _postgres_available() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means: no PostgreSQL here
        return f"no PostgreSQL at 127.0.0.1:5432 ({exc.__class__.__name__}: {exc})"


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """A brand-new PostgreSQL database for this test session, dropped afterwards.

    Skips with the reason on a machine without PostgreSQL, but fails under CI=true:
    a skipped PostgreSQL suite in CI would hide a broken server.
    """
    reason = _postgres_available()
    if reason:
        if RUNNING_IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true: {reason}")
        pytest.skip(reason)
    import psycopg

    name = f"tracker_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
