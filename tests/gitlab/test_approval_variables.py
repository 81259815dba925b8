"""The template's approval and environment-name settings (inputs require-approval,
approval-timeout, new-environment; variables TRACKER_REQUIRE_APPROVAL,
TRACKER_APPROVAL_TIMEOUT, TRACKER_NEW_ENVIRONMENT) with the real `tracker-ci` and server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.gitlab.test_job_scripts import job_environment, run
from tests.gitlab.test_templates import run_snippets, shown
from tests.support.api import deployments, locks_of
from tests.support.servers import RunningServer

SWITCHES = (
    "for n in TRACKER_REQUIRE_APPROVAL TRACKER_APPROVAL_TIMEOUT TRACKER_NEW_ENVIRONMENT; do "
    'eval "v=\\${$n-UNSET}"; echo "$n=$v"; done\n'
)


@pytest.mark.unit
def test_switches_are_set_or_unset_and_variables_beat_inputs(tmp_path: Path) -> None:
    defaults = {
        "TRACKER_DEFAULT_REQUIRE_APPROVAL": "true",
        "TRACKER_DEFAULT_APPROVAL_TIMEOUT": "3600",
        "TRACKER_DEFAULT_NEW_ENVIRONMENT": "false",
    }
    result = run_snippets(tmp_path, ("settings",), defaults, SWITCHES)
    assert result.returncode == 0, result.stderr
    assert shown(result.stdout) == {
        "TRACKER_REQUIRE_APPROVAL": "1",
        "TRACKER_APPROVAL_TIMEOUT": "3600",
        "TRACKER_NEW_ENVIRONMENT": "UNSET",
    }
    variables = {"TRACKER_REQUIRE_APPROVAL": "false", "TRACKER_NEW_ENVIRONMENT": "yes"}
    result = run_snippets(tmp_path, ("settings",), defaults | variables, SWITCHES)
    assert shown(result.stdout)["TRACKER_REQUIRE_APPROVAL"] == "UNSET"
    assert shown(result.stdout)["TRACKER_NEW_ENVIRONMENT"] == "1"


@pytest.mark.e2e
def test_an_unapproved_deploy_job_stops_with_exit_10(
    sqlite_server: RunningServer, unique: Callable[[str], str], tmp_path: Path
) -> None:
    service = unique("approval")
    env = job_environment(
        sqlite_server.url,
        service,
        TRACKER_DEFAULT_REQUIRE_APPROVAL="true",
        TRACKER_APPROVAL_TIMEOUT="1",
    )
    before = run(("settings", "install", "start"), tmp_path, env)
    assert before.returncode == 10, before.stdout + before.stderr
    assert "waits for approval" in before.stderr
    [event] = deployments(sqlite_server.url, service)
    assert event["attributes"]["status"] == "failure"
    assert "not approved within 1 s" in event["attributes"]["message"]
    assert locks_of(sqlite_server.url, service) == []
    after = run(("settings", "install", "close-job"), tmp_path, {**env, "CI_JOB_STATUS": "failed"})
    assert "opened no deployment event" in after.stdout, after.stdout + after.stderr


@pytest.mark.e2e
def test_a_new_environment_name_needs_the_variable(
    sqlite_server: RunningServer, unique: Callable[[str], str], tmp_path: Path
) -> None:
    service = unique("names")
    first = job_environment(sqlite_server.url, service, TRACKER_DEFAULT_ENVIRONMENT="staging")
    assert run(("settings", "install", "start"), tmp_path, first).returncode == 0
    closed = run(
        ("settings", "install", "close-job"), tmp_path, first | {"CI_JOB_STATUS": "success"}
    )
    assert closed.returncode == 0, closed.stderr
    typo = first | {"TRACKER_DEFAULT_ENVIRONMENT": "stagign"}
    refused = run(("settings", "install", "start"), tmp_path, typo)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "did you mean 'staging'?" in refused.stderr
    said_new = run(
        ("settings", "install", "start"), tmp_path, typo | {"TRACKER_NEW_ENVIRONMENT": "true"}
    )
    assert said_new.returncode == 0, said_new.stdout + said_new.stderr
    run(("settings", "install", "close-job"), tmp_path, typo | {"CI_JOB_STATUS": "success"})
