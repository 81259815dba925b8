"""A faithful stand-in for the GitHub runner running our Docker action, minus Docker.

What it copies from the runner (actions/runner, ActionRunner.cs and ContainerActionHandler.cs):
every input of action.yml becomes ``INPUT_`` + its upper-cased name with hyphens kept,
defaults included and evaluated for each stage (``${{ job.status }}`` is evaluated again
for the post step); each step gets fresh file-command files (``GITHUB_OUTPUT``,
``GITHUB_STATE``, ``GITHUB_STEP_SUMMARY``, ``GITHUB_ENV``, ``GITHUB_PATH``); the working
directory is the workspace; the main and post stages run the executables that action.yml's
``entrypoint`` and ``post-entrypoint`` name; what the main stage saved in ``GITHUB_STATE``
arrives in the post stage as ``STATE_<name>``; what a step appended to ``GITHUB_ENV`` is in
the environment of the steps after it.

The executables are written by the same code the Dockerfile runs
(``python -m tracker_ci.ci.github_action --install-entrypoints DIR``), into a temporary
directory instead of the image's ``/usr/local/bin``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTION_YML = ROOT / "action.yml"
DOCKERFILE = ROOT / "Dockerfile"
EXPRESSION = re.compile(r"^\$\{\{\s*([A-Za-z_.-]+)\s*\}\}$")
ANY_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def load_action() -> dict[str, Any]:
    """action.yml, parsed."""
    return yaml.safe_load(ACTION_YML.read_text(encoding="utf-8"))


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's stages by name (``FROM ... AS name``), each with its instructions."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            current = []
            stages[rest.split()[-1] if " AS " in rest.upper() else rest] = current
        current.append((keyword, rest))
    return stages


def dockerfile_entrypoint_dir() -> str:
    """The directory where the Dockerfile installs the action's entrypoints."""
    for keyword, rest in dockerfile_instructions():
        if keyword == "RUN":
            match = re.search(r"tracker_ci\.ci\.github_action --install-entrypoints (\S+)", rest)
            if match:
                return match.group(1)
    raise AssertionError("the Dockerfile does not install the action's entrypoints")


def input_env_name(name: str) -> str:
    """``server-url`` -> ``INPUT_SERVER-URL``, as the runner spells it."""
    return "INPUT_" + name.upper().replace(" ", "_")


def parse_file_commands(text: str) -> dict[str, str]:
    """The runner's reading of a file-command file (``k=v`` and ``k<<DELIM`` blocks)."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        equals = line.find("=")
        heredoc = line.find("<<")
        if heredoc >= 0 and (equals < 0 or heredoc < equals):
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            block: list[str] = []
            while lines[index] != delimiter:  # IndexError: unterminated, as the runner fails
                block.append(lines[index])
                index += 1
            index += 1
            values[name] = "\n".join(block)
        else:
            assert equals > 0, f"invalid file-command line {line!r}"
            values[line[:equals]] = line[equals + 1 :]
    return values


@dataclass
class StepResult:
    """What one stage of the action left: exit code, logs and the file-command files."""

    exit_code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    state: dict[str, str]
    env_file: dict[str, str]
    summary: str
    argv: list[str]
    step_id: str

    def annotations(self, kind: str) -> list[str]:
        """The messages of ``::kind ...::message`` workflow commands in the logs."""
        found = []
        for line in (self.stdout + self.stderr).splitlines():
            match = re.match(rf"^::{kind}( [^:]*)?::(.*)$", line)
            if match:
                found.append(match.group(2).replace("%0A", "\n").replace("%25", "%"))
        return found

    @property
    def log(self) -> str:
        return f"exit {self.exit_code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass
class Job:
    """One job on the emulated runner: a workspace, an event, and the steps run so far."""

    root: Path
    event_name: str
    payload: dict[str, Any]
    github_token: str = "ghs_emulated_job_token_0123456789"
    actor: str = "octocat"
    extra_env: dict[str, str] = field(default_factory=dict)
    job_env: dict[str, str] = field(default_factory=dict)
    steps: int = 0
    uses: int = 0

    def __post_init__(self) -> None:
        self.workspace = self.root / "workspace"
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.home = self.root / "github-home"
        self.home.mkdir(exist_ok=True)
        self.event_path = self.root / "event.json"
        self.event_path.write_text(json.dumps(self.payload), encoding="utf-8")
        self.bin_dir = self.root / "image-bin"
        self.bin_dir.mkdir(exist_ok=True)
        # The same command the Dockerfile runs, with this interpreter instead of the image's.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tracker_ci.ci.github_action",
                "--install-entrypoints",
                str(self.bin_dir),
            ],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        self.action = load_action()

    # ------------------------------------------------------------------ contexts
    def context(self, job_status: str) -> dict[str, str]:
        """The expression values action.yml's defaults may use."""
        return {
            "github.token": self.github_token,
            "github.actor": self.actor,
            "github.repository": "acme/shop",
            "github.event_name": self.event_name,
            "job.status": job_status,
        }

    def evaluate(self, value: Any, job_status: str) -> str:
        """A default's value; an expression this emulator does not know fails the test."""
        if isinstance(value, bool):
            return "true" if value else "false"
        text = "" if value is None else str(value)
        match = EXPRESSION.match(text.strip())
        if match:
            context = self.context(job_status)
            assert match.group(1) in context, f"emulator cannot evaluate {text!r}"
            return context[match.group(1)]
        assert not ANY_EXPRESSION.search(text), f"emulator cannot evaluate {text!r}"
        return text

    def base_env(self) -> dict[str, str]:
        """The variables the runner gives every container step."""
        keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            {
                "CI": "true",
                "GITHUB_ACTIONS": "true",
                "HOME": str(self.home),
                "GITHUB_WORKSPACE": str(self.workspace),
                "GITHUB_EVENT_NAME": self.event_name,
                "GITHUB_EVENT_PATH": str(self.event_path),
                "GITHUB_REPOSITORY": "acme/shop",
                "GITHUB_REPOSITORY_OWNER": "acme",
                "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
                "GITHUB_REF": "refs/heads/main",
                "GITHUB_REF_NAME": "main",
                "GITHUB_RUN_ID": "4242",
                "GITHUB_RUN_NUMBER": "7",
                "GITHUB_RUN_ATTEMPT": "1",
                "GITHUB_JOB": "deploy",
                "GITHUB_ACTOR": self.actor,
                "GITHUB_SERVER_URL": "https://github.com",
                # No GitHub here: a lookup must fail fast (connection refused), not hang.
                "GITHUB_API_URL": "http://127.0.0.1:9",
                "RUNNER_OS": "Linux",
                "RUNNER_TEMP": str(self.root / "runner-temp"),
            }
        )
        env.update(self.extra_env)
        env.update(self.job_env)
        return env

    # ------------------------------------------------------------------ stages
    def _executable(self, declared: str) -> Path:
        image_dir = dockerfile_entrypoint_dir()
        assert os.path.dirname(declared) == image_dir, (
            f"action.yml runs {declared}, but the Dockerfile installs entrypoints in {image_dir}"
        )
        path = self.bin_dir / os.path.basename(declared)
        assert path.is_file(), f"{declared} is not installed by the Dockerfile's command"
        return path

    def _run(
        self,
        stage: str,
        with_: dict[str, str],
        *,
        job_status: str,
        step_id: str,
        state: dict[str, str] | None = None,
        timeout: float = 120,
        while_running: Callable[[subprocess.Popen[str]], None] | None = None,
    ) -> StepResult:
        runs = self.action["runs"]
        assert runs["using"] == "docker" and runs["image"] == "Dockerfile"
        declared = runs["entrypoint"] if stage == "main" else runs["post-entrypoint"]
        self.steps += 1
        files = self.root / f"file-commands-{self.steps}"
        files.mkdir()
        env = self.base_env()
        env["GITHUB_ACTION"] = step_id
        for kind in ("output", "state", "step_summary", "env", "path"):
            path = files / kind
            path.touch()
            env[f"GITHUB_{kind.upper()}"] = str(path)
        inputs = {}
        for name, spec in self.action["inputs"].items():
            if name in with_:
                inputs[name] = with_[name]
            else:
                inputs[name] = self.evaluate((spec or {}).get("default", ""), job_status)
            env[input_env_name(name)] = inputs[name]
        for name, value in (state or {}).items():
            env[f"STATE_{name}"] = value
        argv = [str(self._executable(declared))]
        for arg in runs.get("args", []) or []:
            argv.append(ANY_EXPRESSION.sub(lambda m: _input_ref(m.group(0), inputs), str(arg)))
        process = subprocess.Popen(
            argv,
            cwd=self.workspace,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            if while_running is not None:
                while_running(process)
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        env_file = parse_file_commands((files / "env").read_text(encoding="utf-8"))
        self.job_env.update(env_file)
        return StepResult(
            exit_code=process.returncode,
            stdout=stdout,
            stderr=stderr,
            outputs=parse_file_commands((files / "output").read_text(encoding="utf-8")),
            state=parse_file_commands((files / "state").read_text(encoding="utf-8")),
            env_file=env_file,
            summary=(files / "step_summary").read_text(encoding="utf-8"),
            argv=argv,
            step_id=step_id,
        )

    def run_main(
        self,
        with_: dict[str, str],
        *,
        job_status: str = "success",
        while_running: Callable[[subprocess.Popen[str]], None] | None = None,
    ) -> StepResult:
        """The action's main stage (``runs.entrypoint``), as a new step of the job.

        ``while_running`` gets the container's main process (PID 1 in the container), e.g.
        to send it the SIGTERM of a cancelled run.
        """
        # Each use of the action in a job has its own step id (GITHUB_ACTION): `__owner_repo`,
        # then `__owner_repo_2`...; the post stage keeps the id of its main stage.
        self.uses += 1
        step_id = "__tracker-ci_tracker-action" + ("" if self.uses == 1 else f"_{self.uses}")
        return self._run(
            "main", with_, job_status=job_status, step_id=step_id, while_running=while_running
        )

    def run_post(self, main: StepResult, with_: dict[str, str], *, job_status: str) -> StepResult:
        """The post stage (``runs.post-entrypoint``), with the main stage's state."""
        return self._run(
            "post", with_, job_status=job_status, step_id=main.step_id, state=main.state
        )


def _input_ref(expression: str, inputs: dict[str, str]) -> str:
    match = re.match(r"^\$\{\{\s*inputs\.([A-Za-z0-9_-]+)\s*\}\}$", expression)
    assert match, f"emulator cannot evaluate {expression!r} in runs.args"
    return inputs[match.group(1)]


def event_payloads() -> dict[str, dict[str, Any]]:
    """Minimal webhook payloads of the three kinds of run the action is used in."""
    repository = {"full_name": "acme/shop", "html_url": "https://github.com/acme/shop"}
    return {
        "pull_request": {
            "action": "synchronize",
            "number": 17,
            "pull_request": {
                "number": 17,
                "html_url": "https://github.com/acme/shop/pull/17",
                "head": {"ref": "feature/cart", "sha": "0123456789abcdef"},
                "base": {"ref": "main"},
            },
            "repository": repository,
        },
        "push": {
            "ref": "refs/heads/main",
            "after": "0123456789abcdef0123456789abcdef01234567",
            "head_commit": {"id": "0123456789abcdef0123456789abcdef01234567"},
            "repository": repository,
        },
        "workflow_dispatch": {
            "ref": "refs/heads/main",
            "inputs": {"environment": "production"},
            "repository": repository,
        },
    }
