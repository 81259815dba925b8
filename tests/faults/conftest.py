"""Helpers of the fault suite: the CLI run in-process (through a proxy that loses answers).
The server's view of a service is tests/support/api.py's; ``service`` is a fixture of
tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import CliRunner, Result

from tests.support.api import API
from tests.support.names import unique
from tracker_ci.cli import cli

# API and unique are tests/support's; test_shutdown.py and test_restart.py import them here.
__all__ = ["API", "Run", "run_cli", "unique"]

Run = Callable[..., Result]


def run_cli(url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    """``tracker-ci ARGS`` in-process against ``url`` (3 retries, the default)."""
    runner = CliRunner()
    return runner.invoke(
        cli, list(args), env={"TRACKER_URL": url, **(env or {})}, catch_exceptions=False
    )
