"""Fixtures of the CLI tests: a click runner bound to the real bundled server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.ci.fake_api import fake_api
from tests.conftest import ADMIN_TOKEN
from tests.support.names import unique
from tests.support.servers import RunningServer
from tracker_ci.cli import cli

# ADMIN_TOKEN (of tests/conftest.py's auth_server) and unique (tests/support/names.py) are
# re-exported: the CLI tests import them from here.
__all__ = ["ADMIN_TOKEN", "Invoke", "fake_api", "invoke", "unique"]


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
