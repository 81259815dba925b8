"""The Docker action's entrypoint (``main``) and post-entrypoint (``post``): a translator.

``main`` reads the inputs as the runner passes them (``INPUT_`` + the upper-cased name,
hyphens kept: ``INPUT_SERVER-URL``; the underscore spelling is accepted too), validates
them (a bad one fails the step naming the input and how to fix it), masks the secrets,
and makes ONE ``tracker-ci`` invocation in this process: ``deploy run`` (mode run),
``deploy start``, ``deploy finish``, ``lock acquire`` or ``lock release``. Everything
else is the CLI's: the lifecycle (lock wait, lease renewal, signals, closing by exit
code) is ``tracker_ci.deploy``, and the step outputs, the state for the post step, the
job summary and the annotations are written by ``tracker_ci.ci.github_report``.

``post`` runs at the end of the job in a new container; when the main step left an event
(or a lock) open, it is ``tracker-ci deploy finish --if-open`` with the job's status (or
``lock release --missing-ok``). The runner runs the two entrypoints that
``tracker_ci.ci.action_files`` writes into the image (see the Dockerfile and action.yml).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass

from tracker_ci.ci import github
from tracker_ci.ci.action_inputs import (
    OUR_DEFAULTS,
    UPSTREAM_ALIASES,
    UPSTREAM_DEFAULTS,
    UPSTREAM_ONLY,
)
from tracker_ci.ci.github_report import OUTPUT_NAMES as REPORTED_OUTPUTS
from tracker_ci.ci.github_report import StepReport

__all__ = [
    "ActionError",
    "ActionInputs",
    "INPUT_NAMES",
    "MODES",
    "OUTPUT_NAMES",
    "build_cli_argv",
    "main",
    "parse_bool",
    "parse_inputs",
    "post",
    "post_cli_argv",
    "read_inputs",
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
    "reason",
    "break-glass",
    "fail-policy",
    "lock-ttl",
    "require-approval",
    "approval-timeout",
    "new-environment",
    "status",
    "event-id",
    "lock-id",
    "github-token",
    "comment",
    "auto-close",
    "lock-enable",
    "host",
    "tracker_host",
    "lock_enable",
    "related_id",
    "github_token",
    "job-status",
)
#: Ours whose default is an expression (never empty): the upstream spelling, given, wins.
_DEFAULTED = ("github-token",)
#: The step outputs, in action.yml's order (``id`` is upstream's name for ``event-id``).
OUTPUT_NAMES = ("event-id", "id", *REPORTED_OUTPUTS[1:])
SECRET_INPUTS = ("token", "github-token", "github_token")
MODES = ("run", "start", "finish", "lock", "unlock")
FAIL_POLICIES = ("open", "closed")
# What `${{ job.status }}` can be: https://docs.github.com/actions/learn-github-actions/contexts
JOB_STATUSES = ("success", "failure", "cancelled")
TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")
#: Inputs of ours that make a workflow ours even with an upstream spelling in it.
OUR_CORE = ("server-url", "mode", "command")
#: The key ``merge_upstream_inputs`` adds: "true" for an upstream workflow.
UPSTREAM_KEY = "upstream"


class ActionError(Exception):
    """A problem the user can fix: a message, what to do, and the exit code to use."""

    def __init__(self, message: str, fix: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.exit_code = exit_code


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


def merge_upstream_inputs(raw: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """Our inputs from upstream's spellings too; two spellings that differ are an error.

    Also as upstream reads them: a server without a scheme is ``http://``; no `service`
    is the repository's name (for what opens a deployment or lock, and upstream's finish);
    no `mode` follows `command`, then `status`. An upstream workflow (one of upstream's
    spellings, none of `server-url`, `mode`, `command`) is marked ``upstream: "true"``:
    upstream's defaults and behaviour hold for it (see ``parse_inputs``).
    """
    merged = dict(raw)
    upstream = any(raw.get(name) for name in UPSTREAM_ONLY) and not any(
        raw.get(name) for name in OUR_CORE
    )
    merged[UPSTREAM_KEY] = "true" if upstream else ""
    for alias, ours in UPSTREAM_ALIASES.items():
        value = merged.pop(alias, "")
        if not value or value == merged[ours]:
            continue
        if merged[ours] and ours not in _DEFAULTED:
            raise ActionError(
                f"Inputs `{alias}` and `{ours}` are both given and differ "
                f"({value!r} and {merged[ours]!r}); they mean the same.",
                f"Keep one of them (`{ours}` is this action's name, `{alias}` upstream's).",
            )
        merged[ours] = value
    url = merged["server-url"]
    if url and "://" not in url:
        merged["server-url"] = f"http://{url}"
    if not merged["mode"]:
        merged["mode"] = _implied_mode(merged)
    opens = merged["mode"].lower() in ("run", "start", "lock")
    if not merged["service"] and (opens or (upstream and merged["mode"].lower() == "finish")):
        merged["service"] = environ.get("GITHUB_REPOSITORY", "").rpartition("/")[2]
    return merged


def _implied_mode(raw: Mapping[str, str]) -> str:
    status = raw["status"].strip().lower()
    if raw["command"]:
        return "run"
    if status in ("", "start", "in_progress"):
        return "start"  # the post step closes it with the job's outcome
    return "finish"


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


def _environment(value: str, environments: Sequence[str], doubts: list[str]) -> str:
    """Upstream's eight (case forgiven, as other choices), or any name our server takes."""
    from tracker_ci.models import ENVIRONMENT_NAME

    if value == UPSTREAM_DEFAULTS["environment"]:
        return value  # what upstream sent: no environment (its own lock key)
    known = [name.lower() for name in environments]
    if value == "" or value.lower() in known or not ENVIRONMENT_NAME.fullmatch(value):
        return _choice("environment", value, environments, doubts, empty_ok=True)
    return value  # e.g. staging, eu-west-1: the bundled server stores it as given


def _seconds(name: str, value: str) -> int:
    seconds = int(value) if value.isdigit() else -1
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
    reason: str = ""
    break_glass: str = ""
    fail_policy: str = "closed"
    lock_ttl: int = 0
    #: Wait for another token's approval before taking the lock (exit 10 when refused);
    #: how long, in seconds (0: the CLI's default).
    require_approval: bool = False
    approval_timeout: int = 0
    #: The environment is a new name, not a misspelling of one the service used.
    new_environment: bool = False
    status: str = ""
    event_id: str = ""
    lock_id: str = ""
    github_token: str = ""
    comment: bool = False
    auto_close: bool = True
    lock_enable: bool = True
    job_status: str = ""
    #: An upstream workflow: a final status with nothing open records a finished event.
    upstream: bool = False
    #: Inputs that are accepted but look wrong: each one becomes a ``::warning::``.
    doubts: tuple[str, ...] = ()


def _wire_words() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Environments, priorities and finish statuses: the wire vocabulary's own lists."""
    from tracker_ci.models import FINISH_STATUSES, Environment, Priority

    return tuple(Environment.choices()), tuple(Priority.choices()), FINISH_STATUSES


def parse_inputs(raw: Mapping[str, str], *, check_mode: bool = True) -> ActionInputs:
    """Validate the raw inputs strictly; raise :class:`ActionError` with a fix otherwise.

    ``check_mode=False`` leaves out what only the main step needs (the post step closes
    what was opened whatever else the inputs say).
    """
    environments, priorities, statuses = _wire_words()
    doubts: list[str] = []
    upstream = raw.get(UPSTREAM_KEY) == "true"
    defaults = UPSTREAM_DEFAULTS if upstream else OUR_DEFAULTS
    mode = _choice("mode", raw["mode"] or _implied_mode(raw), MODES, doubts)
    server_url = raw["server-url"].rstrip("/")
    if server_url and not server_url.startswith(("http://", "https://")):
        raise ActionError(
            f"Input `server-url` is {server_url!r}, which is not an http(s) URL.",
            "Set `server-url:` to the server's base URL, e.g. https://tracker.example.com.",
        )
    if raw["pr-url"] and github.parse_pull_request_url(raw["pr-url"]) is None:
        raise ActionError(
            f"Input `pr-url` is {raw['pr-url']!r}, which is not a pull request URL.",
            "Set `pr-url:` to a link like https://github.com/OWNER/REPO/pull/123, or "
            "leave it empty to detect it.",
        )
    inputs = ActionInputs(
        mode=mode,
        server_url=server_url,
        token=raw["token"],
        service=raw["service"],
        environment=_environment(
            raw["environment"] or defaults["environment"], environments, doubts
        ),
        command=raw["command"],
        wait=_seconds("wait", raw["wait"] or "0"),
        title=raw["title"],
        message=raw["message"],
        priority=_choice(
            "priority", raw["priority"] or defaults["priority"], priorities, doubts, empty_ok=True
        ),
        owner=raw["owner"],
        pr_url=raw["pr-url"],
        ticket=raw["ticket"],
        reason=raw["reason"],
        break_glass=raw["break-glass"],
        fail_policy=_choice("fail-policy", raw["fail-policy"] or "closed", FAIL_POLICIES, doubts),
        lock_ttl=_seconds("lock-ttl", raw["lock-ttl"] or "0"),
        require_approval=parse_bool("require-approval", raw["require-approval"] or "false"),
        approval_timeout=_seconds("approval-timeout", raw["approval-timeout"] or "0"),
        new_environment=parse_bool("new-environment", raw["new-environment"] or "false"),
        status=_choice(
            "status", _finish_word(mode, raw["status"]), statuses, doubts, empty_ok=True
        ),
        event_id=raw["event-id"],
        lock_id=raw["lock-id"],
        github_token=raw["github-token"],
        comment=parse_bool("comment", raw["comment"] or "false"),
        auto_close=parse_bool("auto-close", raw["auto-close"] or "true"),
        lock_enable=parse_bool("lock-enable", raw["lock-enable"] or "true"),
        job_status=raw["job-status"].lower(),
        upstream=upstream,
    )
    if check_mode:
        _check_mode_needs(inputs, environments)
    return dataclasses.replace(inputs, doubts=(*doubts, *_doubts(inputs)))


def _finish_word(mode: str, status: str) -> str:
    """The `status` a finish closes with; upstream's `start` says which mode, nothing more."""
    return "" if mode == "start" and status.lower() in ("start", "in_progress") else status


def _check_mode_needs(inputs: ActionInputs, environments: Sequence[str]) -> None:
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
            f"Set `environment:` to one of {', '.join(environments)}.",
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
    if not inputs.lock_enable and inputs.mode == "lock":
        doubts.append("Input `lock-enable` is false, but mode lock is for taking the lock.")
    if inputs.approval_timeout and not inputs.require_approval:
        doubts.append("Input `approval-timeout` is ignored without `require-approval: true`.")
    if inputs.require_approval and inputs.mode not in ("run", "start"):
        doubts.append(
            f"Input `require-approval` is ignored in mode {inputs.mode} (it is for run and start)."
        )
    if inputs.job_status and inputs.job_status not in JOB_STATUSES:
        expected = ", ".join(JOB_STATUSES)
        doubts.append(f"Input `job-status` is {inputs.job_status!r}; expected {expected}.")
    if inputs.token and inputs.server_url.startswith("http://"):
        host = inputs.server_url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
        if host not in ("localhost", "127.0.0.1", "::1") and "." in host:
            doubts.append("The token is sent over plain http; use an https `server-url`.")
    return doubts


# --------------------------------------------------------------------------- the CLI
def _global(inputs: ActionInputs) -> list[str]:
    return ["--url", inputs.server_url] if inputs.server_url else []


def _options(pairs: Sequence[tuple[str, str | int]]) -> list[str]:
    return [part for flag, value in pairs if value != "" for part in (flag, str(value))]


def _key(inputs: ActionInputs) -> list[str]:
    return _options([("--service", inputs.service), ("--environment", inputs.environment)])


def finish_status(inputs: ActionInputs) -> str:
    """The status a finish closes with: the `status` input, else the job's status."""
    if inputs.status:
        return inputs.status
    return "success" if inputs.job_status == "success" else "failure"


def build_cli_argv(inputs: ActionInputs) -> list[str]:
    """The one ``tracker-ci`` command line of the step's mode (secrets travel in the env)."""
    comment = ["--comment"] if inputs.comment else []
    policy = ["--fail-policy", inputs.fail_policy]
    if inputs.mode in ("run", "start"):
        argv = [*_global(inputs), "deploy", inputs.mode, *_key(inputs)]
        argv += _options(
            [
                ("--title", inputs.title),
                ("--message", inputs.message),
                ("--priority", inputs.priority),
                ("--owner", inputs.owner),
                ("--pr-url", inputs.pr_url),
                ("--ticket", inputs.ticket),
                ("--reason", inputs.reason),
                ("--break-glass", inputs.break_glass),
                ("--source", "github-actions"),
                ("--wait", inputs.wait),
                ("--lock-ttl", inputs.lock_ttl),
            ]
        )
        argv += policy + comment + ([] if inputs.lock_enable else ["--no-lock"])
        if inputs.require_approval:
            argv += ["--require-approval"]
            argv += _options([("--approval-timeout", inputs.approval_timeout or "")])
        argv += ["--new-environment"] if inputs.new_environment else []
        if inputs.mode == "start":
            return argv
        # bash with the options of a `run:` step's shell, in a process group of its own.
        script = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", inputs.command]
        return [*argv, "--process-group", "--", *script]
    if inputs.mode == "finish":
        argv = [*_global(inputs), "deploy", "finish", "--status", finish_status(inputs)]
        argv += _options([("--event-id", inputs.event_id), ("--message", inputs.message)])
        if inputs.upstream and not inputs.event_id:
            # Upstream posts a finished event; ours closes the open one, or records one.
            argv += ["--record-if-none", *_options([("--priority", inputs.priority)])]
            argv += _options([("--title", inputs.title), ("--owner", inputs.owner)])
        return argv + _key(inputs) + policy + comment
    if inputs.mode == "lock":
        argv = [*_global(inputs), "lock", "acquire", *_key(inputs)]
        return (
            argv
            + _options(
                [
                    ("--who", inputs.owner),
                    ("--wait", inputs.wait),
                    ("--ttl", inputs.lock_ttl),
                    ("--reason", inputs.reason),
                    ("--break-glass", inputs.break_glass),
                ]
            )
            + (["--new-environment"] if inputs.new_environment else [])
        )
    # unlock: by id, or by key naming the holder (the server checks it is the holder)
    if inputs.lock_id:
        return [*_global(inputs), "lock", "release", inputs.lock_id]
    return [
        *_global(inputs),
        "lock",
        "release",
        *_key(inputs),
        *_options([("--who", inputs.owner)]),
    ]


def post_cli_argv(inputs: ActionInputs, event_id: str, lock_id: str) -> list[str]:
    """The post step's command line: close what the main step left open, if it still is."""
    if not event_id:
        return [*_global(inputs), "lock", "release", lock_id, "--missing-ok"]
    status = finish_status(dataclasses.replace(inputs, status=""))
    message = (
        f"Closed by the post step of the action (job status: {inputs.job_status or 'unknown'})."
    )
    argv = [*_global(inputs), "deploy", "finish", "--event-id", event_id, "--if-open"]
    argv += ["--status", status, "--message", message, "--fail-policy", inputs.fail_policy]
    return argv + (["--comment"] if inputs.comment else [])


def invoke_cli(argv: Sequence[str], inputs: ActionInputs, environ: MutableMapping[str, str]) -> int:
    """Run ``tracker-ci ARGV`` in this process (its signal handling included); its exit code.

    The tokens travel as variables, never in argv.
    """
    from tracker_ci.__main__ import main as cli_main

    if inputs.token:
        environ["TRACKER_TOKEN"] = inputs.token
    if inputs.github_token:
        environ["GITHUB_TOKEN"] = inputs.github_token
    for name in [name for name in environ if name.startswith("INPUT_")]:
        del environ[name]  # the action's inputs are not the CLI's
    try:
        cli_main(list(argv))
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


# --------------------------------------------------------------------------- main
def _fail(exc: ActionError, report: StepReport) -> int:
    report.failed(exc.message, exc.exit_code, fix=exc.fix)
    return exc.exit_code


def _mask_inputs(raw: Mapping[str, str]) -> None:
    for name in SECRET_INPUTS:
        if raw[name]:
            github.mask(raw[name], {"GITHUB_ACTIONS": "true"})


def main(environ: MutableMapping[str, str] | None = None) -> int:
    """The action's main step: validate the inputs, then one ``tracker-ci`` invocation."""
    env = os.environ if environ is None else environ
    report = StepReport(env)
    raw = read_inputs(env)
    _mask_inputs(raw)  # before anything else is printed
    try:
        raw = merge_upstream_inputs(raw, env)
    except ActionError as exc:
        return _fail(exc, report)
    if raw["mode"].lower() == "finish" and not raw["event-id"]:
        # A start step of this job exported its event (GITHUB_ENV).
        raw["event-id"] = env.get("TRACKER_EVENT_ID", "")
        # Nothing was opened, so no lock is at stake: a warning whatever the fail policy.
        if not (raw["event-id"] or raw["service"]):
            report.annotate(
                "warning",
                "Nothing to finish: no `event-id`, and no start step of this job opened an "
                "event (the deploy may have run untracked). Set `event-id:` or `service:`.",
            )
            return 0
    try:
        inputs = parse_inputs(raw)
    except ActionError as exc:
        return _fail(exc, report)
    for doubt in inputs.doubts:
        report.annotate("warning", doubt)
    if not (inputs.server_url or env.get("TRACKER_URL")):
        report.annotate(
            "warning",
            "No `server-url` (nor TRACKER_URL): using http://127.0.0.1:8080, which is only "
            "right for a server in this container. Set `server-url:`.",
        )
    report.save_state(mode=inputs.mode)
    return invoke_cli(build_cli_argv(inputs) + _run_start(inputs, env), inputs, env)


def _run_start(inputs: ActionInputs, environ: Mapping[str, str]) -> list[str]:
    """``--started-at`` for a deployment an upstream finish step may record: the workflow
    run's start (the Actions API), so that it has the run's duration when known."""
    if not (inputs.upstream and inputs.mode == "finish" and not inputs.event_id):
        return []
    context = github.detect(environ)
    started = context and github.run_started_at(context, token=inputs.github_token)
    return ["--started-at", started] if started else []


# --------------------------------------------------------------------------- post
def post(environ: MutableMapping[str, str] | None = None) -> int:
    """The post step: close what the main step opened and left open; else do nothing."""
    env = os.environ if environ is None else environ
    report = StepReport(env)
    raw = read_inputs(env)
    _mask_inputs(raw)
    event_id = env.get("STATE_event_id", "")
    lock_id = env.get("STATE_lock_id", "")
    if env.get("STATE_closed", "") != "false" or not (event_id or lock_id):
        print("tracker-ci: this step left nothing open.")
        return 0
    try:
        raw = merge_upstream_inputs(raw, env)
        mode = env.get("STATE_mode", "") or raw["mode"]
        inputs = parse_inputs({**raw, "mode": mode}, check_mode=False)
    except ActionError as exc:  # the main step accepted the same inputs
        return _fail(exc, report)
    if not inputs.auto_close:
        report.annotate(
            "notice",
            f"auto-close is false: event {event_id or '-'} and lock {lock_id or '-'} stay open.",
        )
        return 0
    env["TRACKER_STEP"] = "post"
    env["TRACKER_JOB_STATUS"] = inputs.job_status or "unknown"
    return invoke_cli(post_cli_argv(inputs, event_id, lock_id), inputs, env)


def run(argv: Sequence[str] | None = None) -> int:
    """Command line: ``main`` | ``post`` | ``--print-inputs-table`` | ``--install-entrypoints``."""
    parser = argparse.ArgumentParser(prog="python -m tracker_ci.ci.github_action")
    parser.add_argument("stage", nargs="?", choices=("main", "post"))
    parser.add_argument("--print-inputs-table", metavar="ACTION_YML", nargs="?", const="action.yml")
    parser.add_argument("--install-entrypoints", metavar="DIR")
    parser.add_argument("--write-composite", metavar="PATH")
    args = parser.parse_args(argv)
    if args.print_inputs_table or args.install_entrypoints or args.write_composite:
        from tracker_ci.ci import action_files

        return action_files.run(args)
    if args.stage == "post":
        return post()
    if args.stage == "main":
        return main()
    parser.error("give a stage (main or post) or an option")


if __name__ == "__main__":
    sys.exit(run())
