"""The composite variant (composite/action.yml): generated from action.yml, and its steps
run on this machine as a runner runs them, against the real server."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.action.emulator import ACTION_YML, ROOT, Job, event_payloads, parse_file_commands
from tests.action.test_action_files import _run, _tool
from tests.support.servers import RunningServer
from tracker_ci.ci import action_files

COMPOSITE = ROOT / "composite" / "action.yml"
INPUTS = re.compile(r"^\$\{\{ (inputs\.[\w-]+(?: \|\| inputs\.[\w-]+)*) \}\}$")


@pytest.mark.unit
def test_the_composite_action_is_generated_from_action_yml() -> None:
    assert COMPOSITE.read_text(encoding="utf-8") == action_files.composite_action(ACTION_YML), (
        "composite/action.yml is stale: run "
        "`python -m tracker_ci.ci.github_action --write-composite composite/action.yml`"
    )
    composite, docker = (
        yaml.safe_load(COMPOSITE.read_text()),
        yaml.safe_load(ACTION_YML.read_text()),
    )
    assert composite["inputs"] == docker["inputs"]
    assert set(composite["outputs"]) == set(docker["outputs"])
    passed = " ".join(composite["runs"]["steps"][1]["env"].values())
    for name in docker["inputs"]:
        assert f"inputs.{name} " in passed + " ", f"input {name} never reaches the step"


@pytest.mark.e2e
def test_the_composite_action_matches_the_schema_of_github_actions() -> None:
    result = _run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(COMPOSITE)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _run_step(
    job: Job, step: dict, with_: dict[str, str], env: dict[str, str], files: Path
) -> subprocess.CompletedProcess[str]:
    """One composite step as the runner runs it: bash -e, inputs evaluated into its env."""
    defaults = yaml.safe_load(ACTION_YML.read_text())["inputs"]
    step_env = dict(env)
    for variable, expression in step.get("env", {}).items():
        match = INPUTS.match(expression)
        assert match, f"cannot evaluate {expression!r}"
        values = []
        for term in match.group(1).split(" || "):
            name = term.removeprefix("inputs.")
            value = (
                with_[name]
                if name in with_
                else job.evaluate(defaults[name].get("default"), "success")
            )
            values.append(value)
        step_env[variable] = next((v for v in values if v), "")
    assert step["shell"] == "bash"
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=job.workspace,
        env=step_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.e2e
@pytest.mark.server
def test_the_composite_steps_install_and_track_a_deploy(
    tmp_path: Path, sqlite_server: RunningServer
) -> None:
    job = Job(tmp_path, "pull_request", event_payloads()["pull_request"])
    files = tmp_path / "files"
    files.mkdir()
    env = job.base_env()
    env.update(
        {
            "GITHUB_ACTION_PATH": str(ROOT / "composite"),
            "GITHUB_ENV": str(files / "env"),
            "GITHUB_OUTPUT": str(files / "output"),
            "GITHUB_STATE": str(files / "state"),
            "GITHUB_STEP_SUMMARY": str(files / "summary"),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
    )
    (tmp_path / "runner-temp").mkdir()
    install, track = yaml.safe_load(COMPOSITE.read_text())["runs"]["steps"]
    installed = _run_step(job, install, {}, env, files)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    python = parse_file_commands((files / "env").read_text())["TRACKER_CI_PYTHON"]
    assert Path(python).is_file() and str(tmp_path / "runner-temp") in python
    env["TRACKER_CI_PYTHON"] = python
    with_ = {
        "server-url": sqlite_server.url,
        "service": "composite-shop",
        "command": "echo deployed > deployed.txt",
        "wait": "0",
    }
    tracked = _run_step(job, track, with_, env, files)
    assert tracked.returncode == 0, tracked.stdout + tracked.stderr
    assert (job.workspace / "deployed.txt").read_text() == "deployed\n"
    outputs = parse_file_commands((files / "output").read_text())
    assert outputs["status"] == "success" and outputs["id"] == outputs["event-id"]
    event = httpx.get(f"{sqlite_server.url}/api/v1alpha1/event/{outputs['event-id']}", timeout=10)
    assert event.json()["event"]["attributes"]["status"] == "success"
    # The `if: always()` close of a start step, as the README shows it.
    start = _run_step(job, track, {**with_, "command": "", "mode": "start"}, env, files)
    assert start.returncode == 0, start.stdout + start.stderr
    opened = parse_file_commands((files / "env").read_text())["TRACKER_EVENT_ID"]
    env["TRACKER_EVENT_ID"] = opened
    finish = _run_step(job, track, {"server-url": sqlite_server.url, "mode": "finish"}, env, files)
    assert finish.returncode == 0, finish.stdout + finish.stderr
    closed = httpx.get(f"{sqlite_server.url}/api/v1alpha1/event/{opened}", timeout=10)
    assert closed.json()["event"]["attributes"]["status"] == "success"
    locks = httpx.get(f"{sqlite_server.url}/api/v1alpha1/locks/list", timeout=10).json()
    assert [x for x in locks["locks"] if x["service"] == "composite-shop"] == []
    assert os.environ.get("TRACKER_CI_PYTHON") is None
