"""The action's `require-approval`, `approval-timeout` and `new-environment` inputs: they
reach the one tracker-ci command line, and a rejected deploy fails the step with exit 10
without running its command (run as the runner runs it, against the real server)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.action.emulator import Job, event_payloads
from tests.support.names import unique
from tests.support.servers import RunningServer
from tests.support.waiting import eventually
from tracker_ci.ci.github_action import (
    INPUT_NAMES,
    ActionError,
    build_cli_argv,
    parse_inputs,
    read_inputs,
)
from tracker_ci.client import TrackerClient
from tracker_ci.models import Status


def _raw(**values: str) -> dict[str, str]:
    raw = dict.fromkeys(INPUT_NAMES, "")
    raw.update({"service": "shop", "environment": "production", "command": "./deploy.sh"})
    raw.update({name.replace("_", "-"): value for name, value in values.items()})
    return raw


@pytest.mark.unit
@pytest.mark.parametrize("mode", ["run", "start"])
def test_approval_inputs_become_options(mode: str) -> None:
    inputs = parse_inputs(
        _raw(mode=mode, require_approval="true", approval_timeout="600", new_environment="yes")
    )
    argv = build_cli_argv(inputs)
    assert "--require-approval" in argv
    assert argv[argv.index("--approval-timeout") + 1] == "600"
    assert "--new-environment" in argv
    if mode == "run":  # options before the command
        assert argv.index("--require-approval") < argv.index("--")


@pytest.mark.unit
def test_defaults_add_nothing_and_doubts_are_warned() -> None:
    argv = build_cli_argv(parse_inputs(_raw(mode="run")))
    assert not {"--require-approval", "--approval-timeout", "--new-environment"} & set(argv)
    lock = parse_inputs(_raw(mode="lock", require_approval="true", new_environment="true"))
    assert "--new-environment" in build_cli_argv(lock)
    assert any("require-approval" in doubt for doubt in lock.doubts)
    timeout_only = parse_inputs(_raw(mode="run", approval_timeout="60"))
    assert any("approval-timeout" in doubt for doubt in timeout_only.doubts)
    assert read_inputs({"INPUT_REQUIRE_APPROVAL": "true"})["require-approval"] == "true"
    with pytest.raises(ActionError, match="approval-timeout"):
        parse_inputs(_raw(mode="run", require_approval="true", approval_timeout="1h"))


@pytest.mark.e2e
@pytest.mark.server
def test_a_rejected_deploy_fails_the_step_with_exit_10(
    tmp_path: Path, sqlite_server: RunningServer
) -> None:
    job = Job(tmp_path, "pull_request", event_payloads()["pull_request"])
    service = unique("shop")
    marker = job.workspace / "deployed.txt"

    def reject(_step: subprocess.Popen[str]) -> None:
        with TrackerClient(base_url=sqlite_server.url, retries=0) as reviewer:

            def waiting() -> str:
                found = reviewer.search_events(service=service, status=Status.waiting_approval)
                assert len(found.events) == 1
                return found.events[0].id

            event_id = eventually(waiting, message="the deploy waits for approval")
            reviewer.decide_approval(event_id, approved=False, comment="not today")

    step = job.run_main(
        {
            "server-url": sqlite_server.url,
            "service": service,
            "environment": "UAT",
            "command": "echo deployed > deployed.txt",
            "require-approval": "true",
            "approval-timeout": "60",
        },
        while_running=reject,
    )
    assert step.exit_code == 10, step.log
    assert not marker.exists()
    assert "not today" in step.stderr
