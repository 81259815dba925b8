"""Fixtures of the fault suite: the real server (subprocess), the CLI run in-process
through a proxy that loses answers, and a unique service per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
from click.testing import CliRunner, Result

from tracker_ci.cli import cli

API = "/api/v1alpha1"

Run = Callable[..., Result]


def unique() -> str:
    return f"svc-{uuid.uuid4().hex[:10]}"


def run_cli(url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    """``tracker-ci ARGS`` in-process against ``url`` (3 retries, the default)."""
    runner = CliRunner()
    return runner.invoke(
        cli, list(args), env={"TRACKER_URL": url, **(env or {})}, catch_exceptions=False
    )


def events_of(url: str, service: str) -> list[dict]:
    """Every event of the service, read from the server itself (not through the proxy)."""
    answer = httpx.get(f"{url}{API}/events/search", params={"service": service})
    answer.raise_for_status()
    return answer.json()["events"]


def locks_of(url: str, service: str) -> list[dict]:
    answer = httpx.get(f"{url}{API}/locks/list")
    answer.raise_for_status()
    return [lock for lock in answer.json()["locks"] if lock["service"] == service]


@pytest.fixture
def service() -> str:
    return unique()
