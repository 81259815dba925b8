"""The Docker action's entrypoint (``main``) and post-entrypoint (``post``).

The action only translates its inputs into a ``tracker-ci ... --output json`` command line,
runs it as a subprocess (``python -m tracker_ci``, so exit codes are the CLI's), and turns
the result into step outputs, a job summary, saved state and annotations.

* ``main`` reads the inputs as the runner passes them (``INPUT_`` + the upper-cased name,
  hyphens kept: ``INPUT_SERVER-URL``; the underscore spelling is accepted too), validates
  them, masks the secrets, runs the CLI, and saves in ``GITHUB_STATE`` what it opened
  (``event_id``, ``lock_id``) and whether it closed it (``closed``). Mode run is
  ``deploy start``, the command (bash, in its own process group), then ``deploy finish``
  with the command's outcome: the state is saved before the command starts, which
  ``deploy run`` (reporting the event when it ends) would not allow. SIGINT/SIGTERM (a
  cancelled run stops the container: this process is its PID 1) are passed on.
* ``post`` runs at the end of the job in a new container; it reads that state back from
  ``STATE_*`` variables and, if this step opened an event or took a lock that is still
  open, closes the event (as failure, or as the job's real status from the ``job-status``
  input, which the runner evaluates again for the post step) and releases the lock.

Errors go through :func:`die`: an ``::error::`` annotation plus a fix-it paragraph in the
job summary. Doubtful inputs get a ``::warning::``. The runner runs the two entrypoints
that :func:`install_entrypoints` writes into the image (see the Dockerfile and action.yml).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from tracker_ci.ci import github
from tracker_ci.models import Environment, Priority

__all__ = [
    "ActionError",
    "ActionInputs",
    "BOOLEAN_INPUTS",
    "CliResult",
    "ENTRYPOINT_NAMES",
    "INPUT_NAMES",
    "MODES",
    "build_cli_argv",
    "die",
    "escape_command_data",
    "inputs_table",
    "install_entrypoints",
    "main",
    "parse_bool",
    "parse_file_commands",
    "parse_inputs",
    "post",
    "read_inputs",
    "render_summary",
    "run",
]

#: Every input of action.yml, in its order (a test keeps the two in step).
INPUT_NAMES = (
    "server-url",
    "token",
    "service",
    "environment",
    "mode",
    "command",
    "wait",
    "title",
    "message",
    "priority",
    "owner",
    "pr-url",
    "ticket",
    "fail-policy",
    "lock-ttl",
    "status",
    "event-id",
    "lock-id",
    "github-token",
    "comment",
    "auto-close",
    "job-status",
)
OUTPUT_NAMES = ("event-id", "lock-id", "status", "duration", "event-url")
SECRET_INPUTS = ("token", "github-token")
BOOLEAN_INPUTS = ("comment", "auto-close")
MODES = ("run", "start", "finish", "lock", "unlock")
FAIL_POLICIES = ("open", "closed")
# The wire enums are the one source of the names an input may take.
PRIORITIES = tuple(Priority.choices())
ENVIRONMENTS = tuple(Environment.choices())
FINISH_STATUSES = ("success", "failure", "warning", "error", "done")
# What `${{ job.status }}` can be: https://docs.github.com/actions/learn-github-actions/contexts
JOB_STATUSES = ("success", "failure", "cancelled")
TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")
#: Where the Dockerfile installs the entrypoints, and their names (action.yml names them).
ENTRYPOINT_DIR = "/usr/local/bin"
ENTRYPOINT_NAMES = {"main": "tracker-action", "post": "tracker-action-post"}
# The CLI's exit codes (docs/architecture.md) and what to do about each.
_FIXES = {
    1: "The Tracker server answered with an error; its message is above. Check the server's "
    "log, or set fail-policy: open to let deploys go on when the server misbehaves.",
    2: "Check the step's `with:` inputs against the action's README (names, allowed values).",
    3: "Another deploy holds the lock for this service and environment. Wait for it to "
    "finish, raise `wait:` (seconds), or release a stale lock with mode: unlock.",
    4: "The Tracker server could not be reached. Check `server-url` (the job must be able to "
    "reach it), or set fail-policy: open to deploy without tracking when it is down.",
    5: "The server refused the token. Pass a valid token for this service in `token:` "
    "(from a secret), or ask an admin for one (`tracker-ci token create`).",
    6: "The event or lock does not exist (any more). Check `event-id` / `lock-id`.",
}


class ActionError(Exception):
    """A problem the user can fix: a message, what to do, and the exit code to use."""

    def __init__(self, message: str, fix: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.exit_code = exit_code


# --------------------------------------------------------------------------- annotations
def escape_command_data(text: str) -> str:
    """Escape a workflow command's message (``%``, CR and LF) as the runner expects."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _command(name: str, message: str, title: str = "tracker-ci") -> None:
    title = escape_command_data(title).replace(":", "%3A").replace(",", "%2C")
    print(f"::{name} title={title}::{escape_command_data(message)}", flush=True)


def warning(message: str) -> None:
    """A ``::warning::`` annotation on the step."""
    _command("warning", message)


def notice(message: str) -> None:
    """A ``::notice::`` annotation on the step."""
    _command("notice", message)


def die(message: str, fix: str = "", exit_code: int = 2) -> NoReturn:
    """Fail the step: an ``::error::`` annotation and a fix-it paragraph in the job summary."""
    _command("error", message)
    paragraph = f"### ❌ tracker-ci: the step failed\n\n{message}\n"
    if fix:
        paragraph += f"\n**How to fix it:** {fix}\n"
    github.append_summary(paragraph)
    raise SystemExit(exit_code)


# --------------------------------------------------------------------------- inputs
def read_inputs(environ: Mapping[str, str]) -> dict[str, str]:
    """The raw inputs from ``INPUT_<NAME>`` (hyphens kept, or turned into underscores)."""
    values = {}
    for name in INPUT_NAMES:
        upper = name.upper().replace(" ", "_")
        for key in (f"INPUT_{upper}", f"INPUT_{upper.replace('-', '_')}"):
            if key in environ:
                values[name] = environ[key].strip()
                break
        else:
            values[name] = ""
    return values


def parse_bool(name: str, value: str) -> bool:
    """``true/yes/1`` or ``false/no/0`` (any case); anything else is an error."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ActionError(
        f"Input `{name}` is {value!r}, which is not a boolean.",
        f"Set `{name}:` to true or false.",
    )


def _choice(
    name: str, value: str, choices: Sequence[str], doubts: list[str], *, empty_ok: bool = False
) -> str:
    if value == "" and empty_ok:
        return ""
    if value in choices:
        return value
    for choice in choices:
        if choice.lower() == value.lower():
            doubts.append(f"Input `{name}` is {value!r}; using its canonical spelling {choice!r}.")
            return choice
    raise ActionError(
        f"Input `{name}` is {value!r}, which is not one of: {', '.join(choices)}.",
        f"Set `{name}:` to one of {', '.join(choices)}.",
    )


def _seconds(name: str, value: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise ActionError(
            f"Input `{name}` is {value!r}, which is not a whole number of seconds.",
            f"Set `{name}:` to a number of seconds, e.g. 300 (0 for none).",
        )
    return seconds


@dataclass(frozen=True)
class ActionInputs:
    """The validated inputs of one step."""

    mode: str
    server_url: str = ""
    token: str = ""
    service: str = ""
    environment: str = ""
    command: str = ""
    wait: int = 0
    title: str = ""
    message: str = ""
    priority: str = ""
    owner: str = ""
    pr_url: str = ""
    ticket: str = ""
    fail_policy: str = "open"
    lock_ttl: int = 0
    status: str = ""
    event_id: str = ""
    lock_id: str = ""
    github_token: str = ""
    comment: bool = False
    auto_close: bool = True
    job_status: str = ""
    #: Inputs that are accepted but look wrong: each one becomes a ``::warning::``.
    doubts: tuple[str, ...] = ()


def parse_inputs(raw: Mapping[str, str], *, check_mode: bool = True) -> ActionInputs:
    """Validate the raw inputs strictly; raise :class:`ActionError` with a fix otherwise.

    ``check_mode=False`` leaves out what only the main step needs (the post step closes
    what was opened whatever else the inputs say).
    """
    doubts: list[str] = []
    mode = _choice("mode", raw["mode"] or "run", MODES, doubts)
    server_url = raw["server-url"].rstrip("/")
    if server_url and not server_url.startswith(("http://", "https://")):
        raise ActionError(
            f"Input `server-url` is {server_url!r}, which is not an http(s) URL.",
            "Set `server-url:` to the server's base URL, e.g. https://tracker.example.com.",
        )
    inputs = ActionInputs(
        mode=mode,
        server_url=server_url,
        token=raw["token"],
        service=raw["service"],
        environment=_choice("environment", raw["environment"], ENVIRONMENTS, doubts, empty_ok=True),
        command=raw["command"],
        wait=_seconds("wait", raw["wait"] or "0"),
        title=raw["title"],
        message=raw["message"],
        priority=_choice("priority", raw["priority"], PRIORITIES, doubts, empty_ok=True),
        owner=raw["owner"],
        pr_url=raw["pr-url"],
        ticket=raw["ticket"],
        fail_policy=_choice("fail-policy", raw["fail-policy"] or "open", FAIL_POLICIES, doubts),
        lock_ttl=_seconds("lock-ttl", raw["lock-ttl"] or "0"),
        status=_choice("status", raw["status"], FINISH_STATUSES, doubts, empty_ok=True),
        event_id=raw["event-id"],
        lock_id=raw["lock-id"],
        github_token=raw["github-token"],
        comment=parse_bool("comment", raw["comment"] or "false"),
        auto_close=parse_bool("auto-close", raw["auto-close"] or "true"),
        job_status=raw["job-status"].lower(),
    )
    if check_mode:
        _check_mode_needs(inputs)
    return dataclasses.replace(inputs, doubts=(*doubts, *_doubts(inputs)))


def _check_mode_needs(inputs: ActionInputs) -> None:
    needs_service = (
        inputs.mode in ("run", "start", "lock")
        or (inputs.mode == "finish" and not inputs.event_id)
        or (inputs.mode == "unlock" and not inputs.lock_id)
    )
    if needs_service and not inputs.service:
        raise ActionError(
            f"Input `service` is required for mode {inputs.mode}.",
            "Add `service: <name of the deployed service>` under the step's `with:`.",
        )
    if needs_service and not inputs.environment:
        raise ActionError(
            f"Input `environment` is required for mode {inputs.mode}.",
            f"Set `environment:` to one of {', '.join(ENVIRONMENTS)}.",
        )
    if inputs.mode == "run" and not inputs.command:
        raise ActionError(
            "Mode run needs the deploy command in input `command`.",
            "Add `command: ./deploy.sh` (run with bash in the action's container), or use "
            "mode: start before your deploy steps and let the post step close the event.",
        )


def _doubts(inputs: ActionInputs) -> list[str]:
    doubts = []
    if inputs.mode != "run" and inputs.command:
        doubts.append(f"Input `command` is ignored in mode {inputs.mode} (it is for mode run).")
    if inputs.job_status and inputs.job_status not in JOB_STATUSES:
        expected = ", ".join(JOB_STATUSES)
        doubts.append(f"Input `job-status` is {inputs.job_status!r}; expected {expected}.")
    if inputs.token and inputs.server_url.startswith("http://"):
        if not _is_local(inputs.server_url):
            doubts.append("The token is sent over plain http; use an https `server-url`.")
    return doubts


def _is_local(url: str) -> bool:
    host = url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
    return host in ("localhost", "127.0.0.1", "::1") or "." not in host


# --------------------------------------------------------------------------- the CLI
def _cli_prefix(inputs: ActionInputs) -> list[str]:
    argv = [sys.executable, "-m", "tracker_ci", "--output", "json"]
    if inputs.server_url:
        argv += ["--url", inputs.server_url]
    return argv


def _option(argv: list[str], flag: str, value: str | int) -> None:
    if value != "":
        argv += [flag, str(value)]


def _comment_flag(inputs: ActionInputs) -> list[str]:
    return ["--comment"] if inputs.comment else []


def finish_status(inputs: ActionInputs) -> str:
    """The status a finish closes with: the `status` input, else the job's status."""
    if inputs.status:
        return inputs.status
    return "success" if inputs.job_status == "success" else "failure"


def build_cli_argv(inputs: ActionInputs) -> list[str]:
    """The ``tracker-ci`` command line of the step's mode (secrets travel in the env).

    Mode run is ``deploy start`` here; the command and ``deploy finish`` follow it.
    """
    argv = _cli_prefix(inputs)
    if inputs.mode in ("run", "start"):
        argv += ["deploy", "start", "--service", inputs.service]
        argv += ["--environment", inputs.environment]
        _option(argv, "--title", inputs.title)
        _option(argv, "--message", inputs.message)
        _option(argv, "--priority", inputs.priority)
        _option(argv, "--owner", inputs.owner)
        _option(argv, "--pr-url", inputs.pr_url)
        _option(argv, "--ticket", inputs.ticket)
        argv += ["--source", "github-actions", "--wait", str(inputs.wait)]
        argv += ["--lock-ttl", str(inputs.lock_ttl), "--fail-policy", inputs.fail_policy]
        return argv + _comment_flag(inputs)
    if inputs.mode == "finish":
        return finish_argv(inputs, inputs.event_id, finish_status(inputs), inputs.message)
    if inputs.mode == "lock":
        argv += ["lock", "acquire", "--service", inputs.service]
        argv += ["--environment", inputs.environment]
        _option(argv, "--who", inputs.owner)
        return argv + ["--wait", str(inputs.wait), "--ttl", str(inputs.lock_ttl)]
    # unlock: by id, or by key naming the holder (the server checks it is the holder)
    if inputs.lock_id:
        return argv + ["lock", "release", inputs.lock_id]
    argv += ["lock", "release", "--service", inputs.service]
    argv += ["--environment", inputs.environment]
    _option(argv, "--who", inputs.owner)
    return argv


def finish_argv(inputs: ActionInputs, event_id: str, status: str, message: str) -> list[str]:
    """``deploy finish`` of one event (or of the newest open one of the service)."""
    argv = _cli_prefix(inputs) + ["deploy", "finish", "--status", status]
    if event_id:
        argv += ["--event-id", event_id]
    if inputs.service and inputs.environment:
        argv += ["--service", inputs.service, "--environment", inputs.environment]
    _option(argv, "--message", message)
    argv += ["--fail-policy", inputs.fail_policy]
    return argv + _comment_flag(inputs)


def deploy_command_argv(inputs: ActionInputs) -> list[str]:
    """The deploy command of mode run: bash with the options of a ``run:`` step's shell."""
    return ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", inputs.command]


@dataclass
class CliResult:
    """What one run of the CLI left behind."""

    exit_code: int
    stdout: str
    stderr_tail: list[str]
    outputs: dict[str, str] = field(default_factory=dict)
    document: dict[str, Any] = field(default_factory=dict)

    @property
    def error_line(self) -> str:
        """The CLI's one-line error (its last stderr line that is not a warning)."""
        for line in reversed(self.stderr_tail):
            text = line.strip()
            if text and not text.startswith(("::", "warning:")):
                return text.removeprefix("Error: ").removeprefix("error: ")
        return ""

    @property
    def warnings(self) -> list[str]:
        """The CLI's ``warning: ...`` lines, without the prefix."""
        return [
            line.strip().removeprefix("warning: ")
            for line in self.stderr_tail
            if line.startswith("warning: ")
        ]


def parse_file_commands(text: str) -> dict[str, str]:
    """Parse a ``GITHUB_OUTPUT``-style file: ``name=value`` and ``name<<DELIM`` blocks."""
    values: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            while index < len(lines) and lines[index] != delimiter:
                block.append(lines[index])
                index += 1
            index += 1  # the closing delimiter
            values[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def last_json_document(text: str) -> dict[str, Any]:
    """The last JSON object printed at the start of a line ({} when none)."""
    decoder = json.JSONDecoder()
    starts = [i for i, ch in enumerate(text) if ch == "{" and (i == 0 or text[i - 1] == "\n")]
    for start in reversed(starts):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


class Children:
    """The processes this step runs; SIGINT/SIGTERM are passed on to them.

    In the container this process is PID 1, which the kernel spares from signals it does
    not handle: without this, a cancelled run would not reach the deploy command.
    """

    def __init__(self) -> None:
        self.running: set[subprocess.Popen[Any]] = set()
        self.groups: set[int] = set()
        self.interrupted: int | None = None

    def install(self) -> None:
        """Handle SIGINT and SIGTERM (main thread only)."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._forward)

    def _forward(self, signum: int, _frame: Any) -> None:
        if self.interrupted is None:
            self.interrupted = signum
        for process in list(self.running):
            if process.poll() is not None:
                continue
            if process.pid in self.groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)

    def wait(self, process: subprocess.Popen[Any], *, group: bool = False) -> int:
        """Wait for a process, passing signals on to it (to its whole group) meanwhile."""
        self.running.add(process)
        if group:
            self.groups.add(process.pid)
        if self.interrupted is not None:  # the signal came while the process was starting
            self._forward(self.interrupted, None)
        try:
            return process.wait()
        finally:
            self.running.discard(process)
            self.groups.discard(process.pid)


CHILDREN = Children()


def _relay(stream: Any, sink: Any | None, keep: list[str], limit: int | None) -> None:
    for line in iter(stream.readline, ""):
        if sink is not None:
            sink.write(line)
            sink.flush()
        keep.append(line)
        if limit is not None and len(keep) > limit:
            del keep[0]
    stream.close()


def run_cli(
    argv: list[str], environ: Mapping[str, str], *, forward_signals: bool = True
) -> CliResult:
    """Run the CLI with a private ``GITHUB_OUTPUT``, relaying its stderr to the log live."""
    with tempfile.TemporaryDirectory(prefix="tracker-action-") as tmp:
        output_file = Path(tmp) / "output"
        output_file.touch()
        env = dict(environ)
        # The CLI writes its outputs to a private file: the action owns the step's outputs.
        env["GITHUB_OUTPUT"] = str(output_file)
        env["GITHUB_STEP_SUMMARY"] = str(Path(tmp) / "summary")
        process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        stdout_lines: list[str] = []
        stderr_tail: list[str] = []
        relays = [
            # stdout is the JSON result, turned into outputs; stderr is for people.
            threading.Thread(target=_relay, args=(process.stdout, None, stdout_lines, None)),
            threading.Thread(target=_relay, args=(process.stderr, sys.stderr, stderr_tail, 50)),
        ]
        for relay in relays:
            relay.start()
        exit_code = CHILDREN.wait(process) if forward_signals else process.wait()
        if exit_code < 0:  # killed by a signal (a cancelled run): as a shell reports it
            exit_code = 128 - exit_code
        for relay in relays:
            relay.join()
        stdout = "".join(stdout_lines)
        return CliResult(
            exit_code=exit_code,
            stdout=stdout,
            stderr_tail=stderr_tail,
            outputs=parse_file_commands(output_file.read_text(encoding="utf-8")),
            document=last_json_document(stdout),
        )


def cli_environment(inputs: ActionInputs, environ: Mapping[str, str]) -> dict[str, str]:
    """The CLI's environment: the step's, with the tokens as variables (never in argv)."""
    env = {k: v for k, v in environ.items() if not k.startswith("INPUT_")}
    if inputs.token:
        env["TRACKER_TOKEN"] = inputs.token
    if inputs.comment and inputs.github_token:
        # For the comment only: the action has looked the pull request up already.
        env["GITHUB_TOKEN"] = inputs.github_token
    return env


# --------------------------------------------------------------------------- results
def _seconds_text(value: Any) -> str:
    if value in (None, ""):
        return ""
    text = str(value).strip().removesuffix("s")
    try:
        return f"{float(text):.3f}".rstrip("0").rstrip(".")
    except ValueError:
        return str(value)


def outputs_from(result: CliResult) -> dict[str, str]:
    """The step's outputs: what the CLI wrote to its output file, else read from its JSON.

    The JSON is a DeploymentState (``eventId``...), an Event or a Lock, by command.
    """
    doc = result.document
    event = doc if "attributes" in doc else None
    lock = doc if "who" in doc and "resource" in doc else None
    values = {
        "event-id": doc.get("eventId") or "",
        "lock-id": doc.get("lockId") or "",
        "status": doc.get("status") or "",
        "duration": _seconds_text(doc.get("duration")),
        "event-url": doc.get("eventUrl") or "",
    }
    if event is not None:
        values["event-id"] = values["event-id"] or event.get("metadata", {}).get("id", "")
        values["status"] = values["status"] or event.get("attributes", {}).get("status", "")
        duration = event.get("metadata", {}).get("duration")
        values["duration"] = values["duration"] or _seconds_text(duration)
    if lock is not None:
        values["lock-id"] = values["lock-id"] or lock.get("id", "")
        values["event-id"] = values["event-id"] or lock.get("eventId", "")
    for name in OUTPUT_NAMES:
        if result.outputs.get(name):
            values[name] = result.outputs[name]
    values["duration"] = _seconds_text(values["duration"])
    return {name: str(values.get(name) or "") for name in OUTPUT_NAMES}


def _merge(first: Mapping[str, str], then: Mapping[str, str]) -> dict[str, str]:
    return {name: then.get(name) or first.get(name, "") for name in OUTPUT_NAMES}


def render_summary(
    inputs: ActionInputs,
    outputs: Mapping[str, str],
    *,
    heading: str,
    actor: str = "",
    pr_url: str = "",
    lock_note: str = "",
    note: str = "",
) -> str:
    """The job summary of one step: what was deployed, by whom, PR, lock, duration, status."""
    status = outputs.get("status") or "unknown"
    icon = {
        "success": "✅",
        "failure": "❌",
        "start": "🚀",
        "locked": "🔒",
        "unlocked": "🔓",
    }.get(status, "ℹ️")
    event_id = outputs.get("event-id", "")
    if outputs.get("event-url"):
        event_cell = f"[`{event_id}`]({outputs['event-url']})"
    else:
        event_cell = f"`{event_id}`" if event_id else "none (not tracked)"
    by = inputs.owner or actor
    lock_id = outputs.get("lock-id", "")
    lock_cell = f"`{lock_id}`" if lock_id else "none"
    if lock_note:
        lock_cell = f"`{lock_id}` {lock_note}" if lock_id else lock_note
    rows = [
        ("Service", f"`{inputs.service}`" if inputs.service else ""),
        ("Environment", f"`{inputs.environment}`" if inputs.environment else ""),
        ("Status", f"{icon} {status}"),
        ("Deployed by", by + (f" (run by {actor})" if actor and actor != by else "")),
        ("Pull request", pr_url),
        ("Lock", lock_cell),
        ("Duration", f"{outputs['duration']} s" if outputs.get("duration") else ""),
        ("Event", event_cell),
    ]
    lines = [f"### {icon} {heading}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows if value]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- state
class StateFile:
    """The step's saved state (``GITHUB_STATE``), appended as soon as a value is known."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.path = environ.get("GITHUB_STATE", "")
        self.saved: dict[str, str] = {}

    def save(self, **values: str) -> None:
        """Append the values that changed; the post step sees them as ``STATE_<name>``."""
        changed = {k: v for k, v in values.items() if self.saved.get(k) != v}
        if not changed or not self.path:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(github.to_output_text(changed))
        self.saved.update(changed)


def _append_env(environ: Mapping[str, str], values: Mapping[str, str]) -> None:
    path = environ.get("GITHUB_ENV")
    values = {k: v for k, v in values.items() if v}
    if path and values:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(github.to_output_text(values))


# --------------------------------------------------------------------------- pull request
def detect_pull_request(inputs: ActionInputs, environ: Mapping[str, str]) -> str:
    """The PR to attach: the `pr-url` input, the event payload, else the commit's PR."""
    if inputs.pr_url:
        if github.parse_pull_request_url(inputs.pr_url) is None:
            raise ActionError(
                f"Input `pr-url` is {inputs.pr_url!r}, which is not a pull request URL.",
                "Set `pr-url:` to a link like https://github.com/OWNER/REPO/pull/123, or "
                "leave it empty to detect it.",
            )
        return inputs.pr_url
    context = github.detect(environ)
    if context is None:
        return ""
    try:
        url = github.find_pull_request_url(context, token=inputs.github_token or None, timeout=5)
    except Exception as exc:  # noqa: BLE001 - a PR link is a nicety, never worth a failed deploy
        warning(f"Could not look up the pull request of commit {context.short_sha}: {exc}")
        return ""
    return url or ""


# --------------------------------------------------------------------------- main
def _fail_from_cli(result: CliResult, what: str) -> NoReturn:
    message = result.error_line or f"tracker-ci exited with code {result.exit_code}"
    die(f"{what}: {message}", _FIXES.get(result.exit_code, ""), result.exit_code)


def _annotate_warnings(result: CliResult) -> None:
    for text in result.warnings:
        warning(text)


_FAILED_WHAT = {
    "run": "Could not start the deployment",
    "start": "Could not start the deployment",
    "finish": "Could not close the deployment",
    "lock": "Could not take the lock",
    "unlock": "Could not release the lock",
}
_UNTRACKED = (
    "The deployment is not tracked: the Tracker server could not be reached or failed, and "
    "fail-policy: open let the deploy go on."
)


def _mask_inputs(raw: Mapping[str, str]) -> None:
    for name in SECRET_INPUTS:
        if raw[name]:
            github.mask(raw[name], {"GITHUB_ACTIONS": "true"})


def main(environ: Mapping[str, str] | None = None) -> int:
    """The action's main step: validate the inputs, run the CLI, publish its result."""
    env = dict(os.environ if environ is None else environ)
    raw = read_inputs(env)
    _mask_inputs(raw)  # before anything else is printed
    if raw["mode"].lower() == "finish" and not raw["event-id"]:
        # A start step of this job exported its event (GITHUB_ENV).
        raw["event-id"] = env.get("TRACKER_EVENT_ID", "")
        if not (raw["event-id"] or raw["service"]) and raw["fail-policy"] != "closed":
            warning(
                "Nothing to finish: no `event-id`, and no start step of this job opened an "
                "event (the deploy may have run untracked). Set `event-id:` or `service:`."
            )
            return 0
    try:
        inputs = parse_inputs(raw)
        if inputs.mode in ("run", "start"):
            inputs = dataclasses.replace(inputs, pr_url=detect_pull_request(inputs, env))
    except ActionError as exc:
        die(exc.message, exc.fix, exc.exit_code)
    for doubt in inputs.doubts:
        warning(doubt)
    if not (inputs.server_url or env.get("TRACKER_URL")):
        warning(
            "No `server-url` (nor TRACKER_URL): using http://127.0.0.1:8080, which is only "
            "right for a server in this container. Set `server-url:`."
        )
    CHILDREN.install()
    state = StateFile(env)
    state.save(mode=inputs.mode)
    cli_env = cli_environment(inputs, env)
    result = run_cli(build_cli_argv(inputs), cli_env)
    _annotate_warnings(result)
    if result.exit_code != 0:
        _fail_from_cli(result, _FAILED_WHAT[inputs.mode])
    outputs = outputs_from(result)
    if inputs.mode in ("run", "start", "lock") and (outputs["event-id"] or outputs["lock-id"]):
        # Saved before anything else runs, so the post step can close what was opened
        # even when the job is cancelled or the container killed mid-deploy.
        state.save(
            event_id=outputs["event-id"],
            lock_id=outputs["lock-id"],
            pr_url=inputs.pr_url,
            closed="false",
        )
    if inputs.mode == "run":
        return _run_deploy(inputs, env, cli_env, outputs, state)
    actor = env.get("GITHUB_ACTOR", "")
    if inputs.mode == "start":
        _append_env(
            env, {"TRACKER_EVENT_ID": outputs["event-id"], "TRACKER_LOCK_ID": outputs["lock-id"]}
        )
        if not outputs["event-id"]:
            warning(_UNTRACKED)
        note = (
            "The event stays open for the next steps: a `mode: finish` step, or this "
            "action's post step at the end of the job, closes it."
            if inputs.auto_close
            else "auto-close is false: close the event with a `mode: finish` step."
        )
        heading = f"Deploying {inputs.service} to {inputs.environment}"
        summary = render_summary(
            inputs, outputs, heading=heading, actor=actor, pr_url=inputs.pr_url, note=note
        )
    elif inputs.mode == "finish":
        heading = f"Deployment {inputs.service or inputs.event_id} closed"
        summary = render_summary(
            inputs, outputs, heading=heading, actor=actor, lock_note="released"
        )
    elif inputs.mode == "lock":
        _append_env(env, {"TRACKER_LOCK_ID": outputs["lock-id"]})
        outputs = {**outputs, "status": "locked"}
        heading = f"Lock taken on {inputs.service} in {inputs.environment}"
        summary = render_summary(inputs, outputs, heading=heading, actor=actor)
    else:
        outputs = {**outputs, "status": "unlocked", "lock-id": inputs.lock_id}
        summary = render_summary(
            inputs, outputs, heading="Lock released", actor=actor, lock_note="released"
        )
    github.write_if_possible(outputs, env)
    github.append_summary(summary, env)
    return 0


def _run_deploy(
    inputs: ActionInputs,
    env: Mapping[str, str],
    cli_env: Mapping[str, str],
    opened: dict[str, str],
    state: StateFile,
) -> int:
    """Mode run after ``deploy start``: run the command, then ``deploy finish`` by its code.

    Not ``tracker-ci deploy run``: that reports the event only when it ends, and the post
    step needs it in the state before the command starts.
    """
    event_id, lock_id = opened["event-id"], opened["lock-id"]
    command_env = {**cli_env, "TRACKER_EVENT_ID": event_id, "TRACKER_LOCK_ID": lock_id}
    if CHILDREN.interrupted is not None:
        code = 128 + CHILDREN.interrupted
    else:
        with _renewing(inputs, cli_env, lock_id):
            try:
                # Its own process group, so that a cancellation reaches every process of
                # the script (bash does not pass SIGTERM on to its children).
                process = subprocess.Popen(
                    deploy_command_argv(inputs), env=command_env, start_new_session=True
                )
            except OSError as exc:  # no bash in PATH: a broken image, a failed deploy
                print(f"tracker-ci: cannot run the command: {exc}", file=sys.stderr)
                code = 127
            else:
                code = CHILDREN.wait(process, group=True)
                if code < 0:  # killed by a signal: report it as a shell does
                    code = 128 - code
    if CHILDREN.interrupted is not None:
        detail = f"cancelled by {signal.Signals(CHILDREN.interrupted).name} (exit code {code})"
    else:
        detail = "" if code == 0 else f"the deploy command exited with code {code}"
    outputs = dict(opened)
    if event_id:
        status = "success" if code == 0 and CHILDREN.interrupted is None else "failure"
        closing = run_cli(
            finish_argv(inputs, event_id, status, detail), cli_env, forward_signals=False
        )
        _annotate_warnings(closing)
        if closing.exit_code != 0:
            # The post step tries again; the command's own result stands.
            warning(f"Could not close the deployment: {closing.error_line}")
        else:
            outputs = _merge(opened, outputs_from(closing))
            outputs["status"] = outputs["status"] or status
            state.save(closed="true")
    else:
        warning(_UNTRACKED)
    github.write_if_possible(outputs, env)
    closed = state.saved.get("closed") == "true"
    summary = render_summary(
        inputs,
        outputs,
        heading=f"Deployment of {inputs.service} to {inputs.environment}",
        actor=env.get("GITHUB_ACTOR", ""),
        pr_url=inputs.pr_url,
        lock_note="released" if closed else "",
        note=_sentence(detail),
    )
    github.append_summary(summary, env)
    if code != 0:
        if not event_id:
            outcome = "it was not tracked"
        elif closed:
            outcome = f"the deployment was closed as {outputs['status']}"
        else:
            outcome = "the post step will close the deployment"
        _command("error", f"{_sentence(detail)[:-1]}; {outcome}.")
    return code


def _sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}." if text else ""


@contextlib.contextmanager
def _renewing(inputs: ActionInputs, cli_env: Mapping[str, str], lock_id: str) -> Iterator[None]:
    """Renew the lock every third of its TTL while the command runs (``lock renew``)."""
    if not (lock_id and inputs.lock_ttl > 0):
        yield
        return
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(inputs.lock_ttl / 3):
            argv = _cli_prefix(inputs) + ["lock", "renew", lock_id, "--ttl", str(inputs.lock_ttl)]
            renewed = run_cli(argv, cli_env, forward_signals=False)
            if renewed.exit_code != 0:
                warning(f"Could not renew the lock {lock_id}: {renewed.error_line}")

    thread = threading.Thread(target=renew, name="tracker-action-lock-renewal", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


# --------------------------------------------------------------------------- post
def post(environ: Mapping[str, str] | None = None) -> int:
    """The post step: close what the main step opened and left open; else do nothing."""
    env = dict(os.environ if environ is None else environ)
    raw = read_inputs(env)
    _mask_inputs(raw)
    event_id = env.get("STATE_event_id", "")
    lock_id = env.get("STATE_lock_id", "")
    if env.get("STATE_closed", "") != "false" or not (event_id or lock_id):
        print("tracker-ci: this step left nothing open.")
        return 0
    try:
        mode = env.get("STATE_mode", "") or raw["mode"]
        inputs = parse_inputs({**raw, "mode": mode}, check_mode=False)
    except ActionError as exc:  # the main step accepted the same inputs
        die(exc.message, exc.fix, exc.exit_code)
    if not inputs.auto_close:
        notice(f"auto-close is false: event {event_id or '-'} and lock {lock_id or '-'} stay open.")
        return 0
    CHILDREN.install()
    cli_env = cli_environment(inputs, env)
    job_status = inputs.job_status or "unknown"
    status = finish_status(dataclasses.replace(inputs, status=""))
    message = f"Closed by the post step of the action (job status: {job_status})."
    if event_id:
        current = run_cli(_cli_prefix(inputs) + ["event", "get", event_id], cli_env)
        if current.exit_code == 0 and _event_status(current.document) not in OPEN_STATUSES:
            print(f"tracker-ci: event {event_id} is already closed; nothing to do.")
            return 0
        result = run_cli(finish_argv(inputs, event_id, status, message), cli_env)
    else:
        result = run_cli(_cli_prefix(inputs) + ["lock", "release", lock_id], cli_env)
        if result.exit_code == 6:  # released by a later step, or expired: nothing to do
            print(f"tracker-ci: lock {lock_id} is already released; nothing to do.")
            return 0
    _annotate_warnings(result)
    if result.exit_code != 0:
        what = "Could not close what this step opened, at the end of the job"
        if inputs.fail_policy == "open" and result.exit_code in (1, 4):
            warning(f"{what}: {result.error_line}")
            return 0
        _fail_from_cli(result, what)
    outputs = {**outputs_from(result), "event-id": event_id, "lock-id": lock_id}
    if event_id:
        outputs["status"] = outputs["status"] or status
        heading = f"Deployment of {inputs.service} to {inputs.environment} closed by the post step"
        note = (
            f"This step left the deployment open and the job ended with status "
            f"**{job_status}**: the post step closed it as **{outputs['status']}** and "
            "released its lock."
        )
    else:
        outputs["status"] = "unlocked"
        heading = f"Lock on {inputs.service} in {inputs.environment} released by the post step"
        note = f"The job ended with status **{job_status}**: the post step released the lock."
    summary = render_summary(
        inputs,
        outputs,
        heading=heading,
        actor=env.get("GITHUB_ACTOR", ""),
        pr_url=env.get("STATE_pr_url", ""),
        lock_note="released",
        note=note,
    )
    github.append_summary(summary, env)
    print(f"tracker-ci: {note.replace('**', '')}")
    return 0


OPEN_STATUSES = ("start", "in_progress")


def _event_status(document: Mapping[str, Any]) -> str:
    return str((document.get("attributes") or {}).get("status", ""))


# --------------------------------------------------------------------------- tooling
def inputs_table(action_yml: str | Path = "action.yml") -> str:
    """The README's inputs and outputs tables, generated from action.yml."""
    import yaml

    meta = yaml.safe_load(Path(action_yml).read_text(encoding="utf-8"))

    def cell(text: Any) -> str:
        return " ".join(str(text).split()).replace("|", "\\|")

    lines = ["| input | default | description |", "|---|---|---|"]
    for name, spec in meta["inputs"].items():
        default = spec.get("default", "")
        default_cell = f"`{default}`" if default != "" else ""
        lines.append(f"| `{name}` | {default_cell} | {cell(spec.get('description', ''))} |")
    lines += ["", "| output | description |", "|---|---|"]
    for name, spec in meta["outputs"].items():
        lines.append(f"| `{name}` | {cell(spec.get('description', ''))} |")
    return "\n".join(lines) + "\n"


_WRAPPER = """#!{python}
# The GitHub Action's {stage} entrypoint (written by tracker_ci.ci.github_action).
import sys

from tracker_ci.ci.github_action import run

sys.exit(run([{stage!r}]))
"""


def install_entrypoints(directory: str | Path, python: str | None = None) -> list[Path]:
    """Write the executables that action.yml's entrypoint and post-entrypoint name."""
    paths = []
    for stage, name in ENTRYPOINT_NAMES.items():
        path = Path(directory) / name
        path.write_text(_WRAPPER.format(python=python or sys.executable, stage=stage))
        path.chmod(0o755)
        paths.append(path)
    return paths


def run(argv: Sequence[str] | None = None) -> int:
    """Command line: ``main`` | ``post`` | ``--print-inputs-table`` | ``--install-entrypoints``."""
    parser = argparse.ArgumentParser(prog="python -m tracker_ci.ci.github_action")
    parser.add_argument("stage", nargs="?", choices=("main", "post"))
    parser.add_argument("--print-inputs-table", metavar="ACTION_YML", nargs="?", const="action.yml")
    parser.add_argument("--install-entrypoints", metavar="DIR")
    args = parser.parse_args(argv)
    if args.print_inputs_table:
        sys.stdout.write(inputs_table(args.print_inputs_table))
        return 0
    if args.install_entrypoints:
        for path in install_entrypoints(args.install_entrypoints):
            print(path)
        return 0
    if args.stage == "post":
        return post()
    if args.stage == "main":
        return main()
    parser.error("give a stage (main or post) or an option")


if __name__ == "__main__":
    sys.exit(run())
