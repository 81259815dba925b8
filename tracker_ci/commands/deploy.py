"""``tracker-ci deploy``: the deployment lifecycle (start, finish, or run around a command).

The lifecycle itself is ``tracker_ci.deploy``: it decides. This module turns options,
settings and the CI context into its arguments, and reports what it did: lines on
stderr and stdout, the GitHub step (``tracker_ci.ci.github_report``), a GitLab dotenv
report, and the sticky PR/MR comment.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tracker_ci.commands.common import (
    AppState,
    LiveWaitLine,
    Seconds,
    WireChoice,
    environment_option,
    pass_state,
    require,
    service_option,
)
from tracker_ci.output import emit_json, end_live_line, format_seconds, render_summary, warn

if TYPE_CHECKING:
    from tracker_ci.commands.context import RunContext
    from tracker_ci.deploy import Deployment
    from tracker_ci.deploy_state import DeploymentState

__all__ = ["deploy"]

# `deploy run`'s exit codes after SIGINT and SIGTERM (128 + the signal's number).
INTERRUPTED_CODES = (130, 143)


def _warn_untracked(error: Exception, *, starting: bool = False) -> None:
    # The lifecycle hands an outage to on_warning only under the open fail policy.
    if starting:  # no event and no lock: say so loudly, on one line
        warn(
            f"{error} -- going on without tracking (fail policy open): deploying UNTRACKED "
            "and UNLOCKED, no event records it and no lock keeps another deploy out "
            "(--fail-policy closed stops instead)"
        )
    else:
        warn(f"{error} -- going on without tracking (fail policy open)")


def _left_open(result: DeploymentState) -> str:
    """What an event that could not be closed leaves behind: never "closed"."""
    if result.lock_expires_at is not None:
        expiry = f"its lock expires at {result.lock_expires_at.strftime('%Y-%m-%d %H:%M:%SZ')}"
    elif result.lock_id:
        expiry = f"its lock {result.lock_id} has no expiry: release it by hand"
    else:
        expiry = "its lock (if any) stays until released or expired"
    return (
        f"deployment event {result.event_id} could NOT be closed as {result.status}: it is "
        f"left open (status start) and {expiry}; close it later with: tracker-ci deploy "
        f"finish --event-id {result.event_id} --status {result.status}"
    )


def start_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by ``deploy start`` and ``deploy run``."""
    options = [
        service_option,
        environment_option,
        click.option(
            "--title",
            "-t",
            help="Event title. [default: Deploy SERVICE to ENVIRONMENT (short sha)]",
        ),
        click.option(
            "--message", "-m", default="", help="Event message. [default: the CI run's URL]"
        ),
        click.option("--priority", type=WireChoice("Priority"), default="P3", show_default=True),
        click.option(
            "--owner", help="Who deploys. [default: GITHUB_ACTOR, GITLAB_USER_LOGIN or $USER]"
        ),
        click.option(
            "--pr-url",
            envvar="TRACKER_PR_URL",
            help="Pull/merge request URL. "
            "[env: TRACKER_PR_URL; default: detected from the CI context]",
        ),
        click.option("--ticket", default="", help="Ticket URL or key."),
        click.option(
            "--source", help="Event source. [default: github-actions, gitlab-ci or tracker-ci]"
        ),
        click.option(
            "--wait",
            type=Seconds(zero="0 fails at once"),
            envvar="TRACKER_WAIT",
            metavar="SECONDS",
            help="How long to wait for a held lock, with a live line saying who "
            "holds it. [env: TRACKER_WAIT; default: 300; 0 fails at once]",
        ),
        click.option(
            "--reason",
            envvar="TRACKER_REASON",
            default="",
            help="Why this deploy takes the lock: shown to those queued behind it and by "
            "`lock status`. [env: TRACKER_REASON]",
        ),
        click.option(
            "--break-glass",
            envvar="TRACKER_BREAK_GLASS",
            default="",
            metavar="REASON",
            help="Deploy through a hard freeze window, for this reason (stored on the "
            "event); with auth on, needs an admin token. [env: TRACKER_BREAK_GLASS]",
        ),
        click.option(
            "--evict-dead-holder",
            is_flag=True,
            envvar="TRACKER_EVICT_DEAD_HOLDER",
            help="While waiting, ask the CI API whether the holder's job (GitHub run/job, "
            "GitLab job) still runs, with --github-token / --gitlab-token / CI_JOB_TOKEN; "
            "evict it (audited) once it has ended. [env: TRACKER_EVICT_DEAD_HOLDER]",
        ),
        click.option(
            "--lock-ttl",
            type=Seconds(whole=True, zero="0: the lock never expires"),
            envvar="TRACKER_LOCK_TTL",
            metavar="SECONDS",
            help="Lock expiry, renewed while `deploy run` runs (0: never expires). "
            "[env: TRACKER_LOCK_TTL; default: 3600]",
        ),
        click.option(
            "--fail-policy",
            type=click.Choice(["open", "closed"], case_sensitive=False),
            envvar="TRACKER_FAIL_POLICY",
            help="When the server cannot be reached or fails: closed = stop before "
            "deploying (exit 4/1); open = deploy UNTRACKED and UNLOCKED, reported loudly. "
            "A held lock always stops (exit 3), and a deploy that waited behind a holder "
            "never runs unlocked (exit 4). [env: TRACKER_FAIL_POLICY; default: closed]",
        ),
        click.option(
            "--lock/--no-lock",
            default=True,
            help="--no-lock opens the event with status open, which takes no lock: nothing "
            "keeps another deploy of the service out (the action's lock_enable: false). "
            "[default: --lock]",
        ),
        click.option(
            "--require-approval",
            is_flag=True,
            envvar="TRACKER_REQUIRE_APPROVAL",
            help="Open the event as waiting_approval (no lock yet), print where to approve, "
            "and go on (queue for the lock, deploy) only once another token approved it "
            "(`tracker-ci event approve ID`); rejected or timed out: exit 10, the command "
            "never runs (bundled server). [env: TRACKER_REQUIRE_APPROVAL]",
        ),
        click.option(
            "--approval-timeout",
            type=Seconds(zero="more than 0"),
            envvar="TRACKER_APPROVAL_TIMEOUT",
            metavar="SECONDS",
            help="How long --require-approval waits for a decision. "
            "[env: TRACKER_APPROVAL_TIMEOUT; default: 3600]",
        ),
        new_environment_option,
        *comment_options,
    ]
    for option in reversed(options):
        func = option(func)
    return func


#: ``--new-environment`` (deploy start|run; event create and lock acquire have their own).
new_environment_option = click.option(
    "--new-environment",
    is_flag=True,
    envvar="TRACKER_NEW_ENVIRONMENT",
    help="The environment is a new name, not a misspelling: our server refuses a name "
    "close to one the service used (e.g. prodution beside production) unless told. "
    "[env: TRACKER_NEW_ENVIRONMENT]",
)

comment_options = [
    click.option(
        "--comment/--no-comment",
        default=False,
        envvar="TRACKER_COMMENT",
        help="Keep one comment on the PR/MR with the deployment's state, updated "
        "in place. [env: TRACKER_COMMENT; default: off]",
    ),
    click.option(
        "--github-token",
        envvar="GITHUB_TOKEN",
        show_envvar=True,
        help="Token for the pull request lookup and comment.",
    ),
    click.option(
        "--gitlab-token",
        envvar="GITLAB_TOKEN",
        show_envvar=True,
        help="Token for the merge request lookup and note. [default: CI_JOB_TOKEN]",
    ),
]


class CliReporter:
    """What the CLI shows of a deployment: stderr lines, the GitHub step, the PR comment."""

    def __init__(
        self, state: AppState, run: RunContext, opts: dict[str, Any], *, running: bool
    ) -> None:
        from tracker_ci.ci.github_report import StepReport

        self.state = state
        self.run = run
        self.opts = opts
        self.running = running
        self.step = StepReport()
        #: The state when the event opened (its fence: the closed state has none).
        self.opened_state: DeploymentState | None = None

    def opened(self, deployment: Deployment, result: DeploymentState) -> None:
        end_live_line()  # the wait's live line, if the lock was waited for
        self.opened_state = result
        if result.tracked:
            lock = f" (lock {result.lock_id})" if result.lock_id else ""
            click.echo(f"tracker-ci: deployment event {result.event_id} opened{lock}", err=True)
        self.step.deployment_opened(
            result, owner=deployment.owner, pr_url=deployment.pr_url, running=self.running
        )
        if result.tracked and deployment.shipped is not None:
            from tracker_ci.changes import changes_markdown  # (its models: pydantic)

            if shipped := changes_markdown(deployment.shipped):
                self.step.summary(shipped)
        if result.tracked:
            self._comment(deployment, result)

    def closed(self, deployment: Deployment, result: DeploymentState) -> None:
        end_live_line()
        if result.closed_before:
            click.echo(
                f"tracker-ci: deployment event {result.event_id} was already closed as "
                f"{result.status}; nothing changed",
                err=True,
            )
        elif result.left_open:
            click.echo(f"tracker-ci: {_left_open(result)}", err=True)
        elif result.tracked:
            took = format_seconds(result.duration)
            click.echo(
                f"tracker-ci: deployment event {result.event_id} closed as "
                f"{result.status}{' after ' + took if took else ''}",
                err=True,
            )
        self.step.deployment_closed(
            result,
            owner=deployment.owner,
            pr_url=deployment.pr_url,
            detail=result.detail,
            ran=self.running,
        )
        if result.tracked and not result.closed_before:
            self._comment(deployment, result)

    def _comment(self, deployment: Deployment, result: DeploymentState) -> None:
        if not (self.opts.get("comment") and deployment.pr_url):
            return
        from tracker_ci.changes import changes_line
        from tracker_ci.commands.context import comment_body, post_comment

        run = self.run
        details = [
            f"event `{result.event_id}`" + (f" ({result.event_url})" if result.event_url else ""),
            f"by {deployment.owner}" if deployment.owner else "",
            f"took {format_seconds(result.duration)}" if result.duration is not None else "",
            f"[CI run]({run.run_url})" if run.run_url else "",
            changes_line(deployment.shipped),
        ]
        post_comment(
            run,
            deployment.pr_url,
            service=result.service,
            environment=result.environment,
            body=comment_body(result.service, result.environment, result.status, details),
            github_token=self.opts.get("github_token"),
            gitlab_token=self.opts.get("gitlab_token"),
            timeout=self.state.config["timeout"],
        )


def _make_deployment(
    state: AppState,
    client: Any,
    run: RunContext,
    opts: dict[str, Any],
    *,
    service: str,
    environment: str,
    running: bool = False,
    pr_url: str | None = None,
) -> Deployment:
    from tracker_ci.approval import DEFAULT_APPROVAL_TIMEOUT
    from tracker_ci.commands.context import check_pr_url, default_title, find_pr_url
    from tracker_ci.deploy import Deployment, DeploymentOptions

    if pr_url is None:
        pr_url = check_pr_url(opts.get("pr_url"))
        if pr_url is None:
            pr_url = find_pr_url(
                run,
                github_token=opts.get("github_token"),
                gitlab_token=opts.get("gitlab_token"),
                timeout=state.config["timeout"],
            )
    policy = (opts.get("fail_policy") or state.config["fail_policy"]).lower()
    lock_ttl = opts.get("lock_ttl")
    approval_timeout = opts.get("approval_timeout")
    options = DeploymentOptions(
        service=service,
        environment=environment,
        title=opts.get("title") or default_title(service, environment, run),
        message=opts.get("message") or (f"CI run: {run.run_url}" if run.run_url else ""),
        priority=opts.get("priority") or "P3",
        owner=opts.get("owner") or run.owner,
        pr_url=pr_url or "",
        ticket=opts.get("ticket") or "",
        source=opts.get("source") or run.source,
        lock_ttl=state.config["lock_ttl"] if lock_ttl is None else lock_ttl,
        fail_policy=policy,
        on_lock_lost="continue" if opts.get("on_lock_lost") == "continue" else "stop",
        reason=opts.get("reason") or "",
        break_glass=opts.get("break_glass") or "",
        job_url=run.run_url,
        close_within=state.config["close_retry"],
        lock=opts.get("lock", True) is not False,
        require_approval=bool(opts.get("require_approval")),
        new_environment=bool(opts.get("new_environment")),
        approval_timeout=(
            DEFAULT_APPROVAL_TIMEOUT if approval_timeout is None else approval_timeout
        ),
    )
    deployment = Deployment(
        client,
        options,
        # Before the event opened, an outage means neither an event nor a lock.
        on_warning=lambda error: _warn_untracked(error, starting=deployment.last_state is None),
        reporter=CliReporter(state, run, opts, running=running),
        evict_dead_holder=dead_holder_check(opts) if opts.get("evict_dead_holder") else None,
    )
    if run.github is not None or run.gitlab is not None:
        deployment.ship_lookup = _ship_lookup(state, client, run, opts, service, environment)
    deployment.announce_approval = _announce_approval
    return deployment


def _announce_approval(state: DeploymentState) -> None:
    """Where a deployment waiting for approval is approved (stderr: stdout stays the id)."""
    click.echo(
        f"tracker-ci: deployment {state.event_id} waits for approval: {state.event_url}\n"
        f"  approve: tracker-ci event approve {state.event_id} [--comment TEXT]\n"
        f"  reject:  tracker-ci event reject {state.event_id} [--comment TEXT]",
        err=True,
    )


def _ship_lookup(
    state: AppState, client: Any, run: RunContext, opts: dict[str, Any], service: str, env: str
) -> Callable[[], Any]:
    """What the deploy ships, from the forge's compare API (a problem is a warning)."""
    from tracker_ci.changes import find_shipped

    return lambda: find_shipped(
        client,
        service=service,
        environment=env,
        github=run.github,
        gitlab=run.gitlab,
        github_token=opts.get("github_token"),
        gitlab_token=opts.get("gitlab_token"),
        timeout=state.config["timeout"],
        on_problem=warn,
    )


def dead_holder_check(opts: dict[str, Any]) -> Callable[[Any], str | None]:
    """``--evict-dead-holder``: why the holder's CI job has ended (ci/jobs.py), or None."""
    import os

    from tracker_ci.ci.jobs import JobChecker

    checker = JobChecker.from_env(
        os.environ,
        github_token=opts.get("github_token"),
        gitlab_token=opts.get("gitlab_token"),
    )
    return lambda holder: checker.ended(holder.job_url)


def _key(state: AppState, service: str | None, environment: Any) -> tuple[str, str]:
    from tracker_ci.models import Environment

    service = require(service, state, "service", "--service")
    env = Environment.parse(require(environment, state, "environment", "--environment"))
    return service, env.value


@contextlib.contextmanager
def _opened(
    state: AppState, service: str | None, environment: Any, opts: dict[str, Any], *, running: bool
) -> Iterator[tuple[Deployment, float, LiveWaitLine]]:
    """The deployment of ``deploy start``/``run``, its wait, and the live line of that wait."""
    from tracker_ci.commands.context import detect_run

    service, env = _key(state, service, environment)
    wait = state.config["wait"] if opts.get("wait") is None else opts["wait"]
    line = LiveWaitLine(f"{service}/{env}", wait)
    # The server's warnings (a soft freeze, broken glass): ::warning:: in Actions.
    with state.client(on_warning=warn) as client:
        deployment = _make_deployment(
            state, client, detect_run(), opts, service=service, environment=env, running=running
        )
        try:
            yield deployment, wait, line
        finally:
            line.done()


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """Under ``-o json``, what the deploy command prints goes to stderr (file descriptor 1
    points at 2 while it runs), so that stdout holds one JSON document."""
    if not active:
        yield
        return
    import os

    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout at all: nothing to keep clean
        yield
        return
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _run_document(deployment: Deployment, what: str, code: int) -> dict[str, Any]:
    """``deploy run -o json``: the deployment, its status, duration and fence, and the
    command's exit code (``status: not started`` when it never opened)."""
    last = deployment.last_state
    if last is None:
        service, _, environment = what.partition("/")
        document: dict[str, Any] = {
            "service": service,
            "environment": environment,
            "status": "not started",
        }
    else:
        document = last.to_dict()
    opened = getattr(deployment.reporter, "opened_state", None)
    document["fence"] = opened.fence if opened is not None else 0
    document["exitCode"] = code
    return document


def _timestamp(value: str | None) -> Any:
    """``--started-at``: an RFC 3339 time (``Z`` or an offset), or None."""
    if not value:
        return None
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an RFC 3339 time; give e.g. 2026-01-31T12:00:00Z",
            param_hint="--started-at",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _print_state(state: AppState, result: DeploymentState, text: str) -> None:
    if state.json:
        emit_json(result)
    elif text:
        click.echo(text)


@click.group(
    epilog="""\b
Examples:
  # the whole lifecycle around one command (exit code passed through):
  tracker-ci deploy run -s api -e production --wait 600 -- ./deploy.sh v1.2.3
\b
  # or in two steps (e.g. GitLab before_script / after_script):
  tracker-ci deploy start -s api -e production --dotenv deploy.env
  tracker-ci deploy finish -s api -e production --status "$CI_JOB_STATUS"
  # (--status takes success, failed, canceled; --event-id ID names one event)
"""
)
def deploy() -> None:
    """Track a deployment: event, lock, PR/MR link, status and duration."""


@deploy.command(
    epilog="""\b
Examples:
  tracker-ci deploy start -s api -e production --wait 300
  tracker-ci -o json deploy start -s api -e UAT --pr-url https://github.com/o/r/pull/7
\b
In GitHub Actions it writes the step outputs event-id (and id), lock-id, status and
event-url, and exports TRACKER_EVENT_ID, TRACKER_LOCK_ID and TRACKER_FENCE to the later
steps; --dotenv FILE writes the same three (GitLab dotenv report).
"""
)
@start_options
@click.option(
    "--dotenv",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write TRACKER_EVENT_ID/TRACKER_LOCK_ID/TRACKER_FENCE to this file (GitLab dotenv "
    "report).",
)
@pass_state
def start(
    state: AppState, service: str | None, environment: Any, dotenv: Path | None, **opts: Any
) -> None:
    """Open a deployment event and take its lock; prints the event id."""
    with _opened(state, service, environment, opts, running=False) as (deployment, wait, line):
        result = deployment.start(wait=wait, on_wait=line)
    if dotenv is not None:
        from tracker_ci.ci import gitlab

        gitlab.write_dotenv(
            dotenv,
            {
                "TRACKER_EVENT_ID": result.event_id,
                "TRACKER_LOCK_ID": result.lock_id,
                # The fencing token, as `deploy run` gives its command (empty: none).
                "TRACKER_FENCE": str(result.fence) if result.fence else "",
            },
        )
    _print_state(state, result, result.event_id)


@deploy.command(
    epilog="""\b
Examples:
  tracker-ci deploy finish --event-id 1f0c... --status success
  tracker-ci deploy finish -s api -e production --status failure -m "rolled back"
  tracker-ci deploy finish --event-id "${{ steps.start.outputs.event-id }}" \\
      --status "${{ job.status }}"   # success, failure, cancelled
"""
)
@click.option(
    "--event-id",
    envvar="TRACKER_EVENT_ID",
    help="The deployment event. [env: TRACKER_EVENT_ID; default: the newest open "
    "deployment of --service/--environment]",
)
@click.option(
    "--status",
    required=True,
    type=WireChoice("Status", aliases="STATUS_ALIASES", only="FINISH_STATUSES"),
    help="Final status; failed/cancelled/canceled mean failure.",
)
@click.option("--message", "-m", help="Appended to the event's message.")
@click.option(
    "--if-open",
    is_flag=True,
    help="Close the event only if it is still open; one closed before (with any status) "
    "is left as it is (exit 0). What the GitHub Action's post step does.",
)
@click.option(
    "--record-if-none",
    is_flag=True,
    help="When --service/--environment have no open deployment, record one that has "
    "ended: an event created with this status, no lock (upstream's one-step use). "
    "[default: off, exit 6]",
)
@click.option(
    "--started-at",
    envvar="TRACKER_STARTED_AT",
    metavar="TIME",
    help="With --record-if-none: when the deploy started (RFC 3339), its start date and "
    "duration. [env: TRACKER_STARTED_AT; default: now, duration unknown]",
)
@click.option("--title", "-t", help="With --record-if-none: the recorded event's title.")
@click.option(
    "--priority",
    type=WireChoice("Priority"),
    default="P3",
    show_default=True,
    help="With --record-if-none: the recorded event's priority.",
)
@click.option("--owner", help="With --record-if-none: who deployed. [default: as deploy start]")
@service_option
@environment_option
@click.option(
    "--fail-policy",
    type=click.Choice(["open", "closed"], case_sensitive=False),
    envvar="TRACKER_FAIL_POLICY",
    help="When the server cannot be reached: closed = exit 4; open = warn and leave "
    "the deployment open. [env: TRACKER_FAIL_POLICY; default: closed]",
)
@comment_options[0]
@comment_options[1]
@comment_options[2]
@pass_state
def finish(
    state: AppState,
    event_id: str | None,
    status: Any,
    message: str | None,
    if_open: bool,
    record_if_none: bool,
    started_at: str | None,
    service: str | None,
    environment: Any,
    **opts: Any,
) -> None:
    """Close a deployment event with its status (and duration); releases the lock."""
    from tracker_ci.commands.context import detect_run
    from tracker_ci.deploy import find_open_deployment
    from tracker_ci.exceptions import NotFound

    if not event_id and not (service or state.config.get("service")):
        # Say both ways to name the deployment, not only the --service one.
        raise click.UsageError(
            "which deployment? give --event-id (or set TRACKER_EVENT_ID), or --service and "
            "--environment to close the newest open one"
        )
    policy = (opts.get("fail_policy") or state.config["fail_policy"]).lower()
    started = _timestamp(started_at)
    with state.client() as client:
        key = ("", "") if event_id else _key(state, service, environment)
        try:
            event = find_open_deployment(
                client,
                fail_policy=policy,
                on_warning=lambda error: warn(
                    f"{error} -- the deployment is not closed (fail policy open)"
                ),
                event_id=event_id,
                service=key[0],
                environment=key[1],
            )
        except NotFound:
            if not record_if_none or event_id:
                raise
            event = None
            deployment = _make_deployment(
                state,
                client,
                detect_run(),
                {**opts, "fail_policy": policy},
                service=key[0],
                environment=key[1],
            )
            result = deployment.record(status, message, started_at=started)
        else:
            if event is None:
                return
            deployment = _make_deployment(
                state,
                client,
                detect_run(),
                {**opts, "fail_policy": policy},
                service=event.attributes.service or service or "",
                environment=event.attributes.environment.value,
                pr_url=event.links.pull_request_link,
            )
            result = deployment.close(event, status, message, if_open=if_open)
    summary = render_summary(
        [
            ("event", result.event_id),
            ("status", result.status),
            ("duration", format_seconds(result.duration)),
        ]
    )
    _print_state(state, result, summary)


@deploy.command(
    context_settings={"allow_interspersed_args": False},
    epilog="""\b
Examples:
  tracker-ci deploy run -s api -e production -- helm upgrade api ./chart
  tracker-ci deploy run -s api -e UAT --wait 900 --lock-ttl 1800 -- ./deploy.sh
\b
The command sees TRACKER_EVENT_ID and TRACKER_LOCK_ID. The lock's lease is renewed every
third of --lock-ttl; when it is lost (the server says it is gone, or no renewal succeeded
within the TTL) the command is stopped (SIGTERM, SIGKILL after 5 s), the event closed as
failure and the exit code is 9 (--on-lock-lost continue: warn and go on).
Exit code: the command's own; 130/143 when interrupted (SIGINT/SIGTERM: the event is
closed as failure and the lock released first); 3 when the lock stays held; 9 lock lost.
With -o json it prints one JSON document at the end (the deployment, its status, duration
and fence, and the command's exitCode); the command's own stdout then goes to stderr.
""",
)
@start_options
@click.option(
    "--on-lock-lost",
    type=click.Choice(["stop", "continue"], case_sensitive=False),
    envvar="TRACKER_ON_LOCK_LOST",
    help="When the lock's lease is lost while the command runs: stop it and exit 9, or "
    "continue without the lock. [env: TRACKER_ON_LOCK_LOST; default: stop]",
)
@click.option(
    "--process-group",
    is_flag=True,
    hidden=True,
    help="Run the command in a process group of its own and signal the whole group "
    "(what the GitHub Action does: bash does not pass SIGTERM on).",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_state
def run(
    state: AppState,
    service: str | None,
    environment: Any,
    process_group: bool,
    command: tuple[str, ...],
    **opts: Any,
) -> None:
    """Run a command as a tracked deployment: start, run it, finish by its exit code."""
    with (
        _stdout_to_stderr(state.json),
        _opened(state, service, environment, opts, running=True) as (deployment, wait, line),
    ):
        code = deployment.run(list(command), wait=wait, on_wait=line, process_group=process_group)
    if state.json:
        emit_json(_run_document(deployment, line.what, code))
    if deployment.last_state is None and code in INTERRUPTED_CODES:
        # A signal while waiting for the lock: say so, or the job ends without a word.
        click.echo(
            f"tracker-ci: interrupted while waiting for the lock of {line.what}; "
            "no event was opened and the command did not run",
            err=True,
        )
    sys.stdout.flush()
    raise click.exceptions.Exit(code)
