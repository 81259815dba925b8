"""Fixtures of the CLI tests: a click runner bound to the real bundled server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.ci.fake_api import fake_api
from tests.support.servers import RunningServer, run_server
from tracker_ci.cli import cli

__all__ = ["ADMIN_TOKEN", "Invoke", "auth_server", "fake_api", "invoke", "unique"]

ADMIN_TOKEN = "trk_admin_secret_for_tests_0123456789"


class Invoke:
    """``invoke(*args, env=...)`` runs ``tracker-ci`` in-process against ``url``."""

    def __init__(self, url: str, cwd: Path) -> None:
        self.url = url
        self.cwd = cwd

    def __call__(self, *args: str, env: dict[str, str] | None = None, **kwargs: Any) -> Result:
        runner = CliRunner()
        # No retries and no wait for a held lock unless a test asks (the default is 300 s).
        full_env = {
            "TRACKER_URL": self.url,
            "TRACKER_RETRIES": "0",
            "TRACKER_WAIT": "0",
            **(env or {}),
        }
        return runner.invoke(cli, list(args), env=full_env, catch_exceptions=False, **kwargs)


@pytest.fixture
def invoke(sqlite_server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run the CLI against the session's bundled server, from an empty working directory."""
    monkeypatch.chdir(tmp_path)
    return Invoke(sqlite_server.url, tmp_path)


@pytest.fixture(scope="session")
def auth_server(session_tmp: Path) -> Iterator[RunningServer]:
    """A bundled server with --auth on (public reads) and a known admin token."""
    db = session_tmp / "auth.db"
    with run_server(
        f"sqlite:///{db}",
        log_dir=session_tmp,
        extra_args=["--auth", "--admin-token", ADMIN_TOKEN],
    ) as server:
        yield server


_counter = iter(range(1_000_000))


def unique(prefix: str = "svc") -> str:
    """A service name no other test uses (the session server is shared)."""
    import os

    return f"{prefix}-{os.getpid()}-{next(_counter)}"
