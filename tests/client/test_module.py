"""The client module: its public names, its import cost, and the idempotency key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tracker_ci import client as client_module
from tracker_ci import models
from tracker_ci.client import idempotency_key_for

pytestmark = pytest.mark.unit


def test_client_all_is_complete() -> None:
    public = {
        name
        for name, value in vars(client_module).items()
        if not name.startswith("_")
        and (
            getattr(value, "__module__", None) == client_module.__name__
            or (
                name.isupper()
                and isinstance(value, (int, float, str))
                and not hasattr(models, name)  # re-exported from the models
            )
        )
        and name not in {"IDEMPOTENCY_HEADER", "MAX_BACKOFF", "RETRY_STATUSES"}
    }
    assert public == set(client_module.__all__)
    for name in client_module.__all__:
        assert hasattr(client_module, name), name


def test_importing_the_client_loads_no_server_or_forge_library() -> None:
    code = (
        "import sys, tracker_ci.client, tracker_ci.deploy; "
        "heavy = ('fastapi', 'sqlalchemy', 'uvicorn', 'alembic', 'github', 'gitlab', "
        "'tracker_server', 'tracker_ci.cli'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_random_key_per_call_outside_ci() -> None:
    first = idempotency_key_for("api", "production", "deploy-start")
    assert first.startswith("tracker-ci-")
    assert idempotency_key_for("api", "production", "deploy-start") != first


def github(monkeypatch: pytest.MonkeyPatch, attempt: str = "1", job: str = "deploy") -> None:
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/app")
    monkeypatch.setenv("GITHUB_RUN_ID", "123456")
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", attempt)
    monkeypatch.setenv("GITHUB_JOB", job)


def test_github_key_is_stable_and_varies_with_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    github(monkeypatch)
    first = idempotency_key_for("api", "production", "deploy-start")
    assert first is not None and first.startswith("tracker-ci-")
    assert idempotency_key_for("api", "production", "deploy-start") == first

    assert idempotency_key_for("web", "production", "deploy-start") != first
    assert idempotency_key_for("api", "UAT", "deploy-start") != first
    assert idempotency_key_for("api", "production", "lock") != first
    github(monkeypatch, attempt="2")
    assert idempotency_key_for("api", "production", "deploy-start") != first
    github(monkeypatch, job="other")
    assert idempotency_key_for("api", "production", "deploy-start") != first


def test_gitlab_key_uses_job_and_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_JOB_ID", "42")
    monkeypatch.setenv("CI_PIPELINE_ID", "7")
    first = idempotency_key_for("api", "production", "deploy-start")
    assert first is not None
    assert idempotency_key_for("api", "production", "deploy-start") == first
    monkeypatch.setenv("CI_JOB_ID", "43")  # a retried GitLab job gets a new job id
    assert idempotency_key_for("api", "production", "deploy-start") != first
