"""``tracker-ci deploy``: the deployment lifecycle (start, finish, or run around a command).

The lifecycle itself is ``tracker_ci.deploy.Deployment``; this module turns options,
settings and the CI context into its arguments, and its results into output: stdout,
GitHub step outputs, a GitLab dotenv report, and the sticky PR/MR comment.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tracker_ci.commands.common import (
    AppState,
    LiveWaitLine,
    WireChoice,
    environment_option,
    pass_state,
    require,
    service_option,
)
from tracker_ci.output import emit_json, format_seconds, render_summary, warn

if TYPE_CHECKING:
    from tracker_ci.commands.context import RunContext
    from tracker_ci.deploy import Deployment, DeploymentState

__all__ = ["deploy"]

# What CI systems call a job's result, mapped to Tracker statuses (GitHub's job.status,
# GitLab's CI_JOB_STATUS).
STATUS_ALIASES = {"failed": "failure", "cancelled": "failure", "canceled": "failure"}

# The statuses that end a deployment: `deploy finish --status start` (or open, planned...)
# released the lock and left an event that still looked open.
FINAL_STATUSES = ("failure", "success", "warning", "error", "close", "done")

# The statuses on which the server ends a deployment (it frees the lock, sets the
# duration): an event in one of them was closed before and is not closed again.
CLOSED_STATUSES = ("failure", "success", "done")

# `deploy run`'s exit codes after SIGINT and SIGTERM (128 + the signal's number).
INTERRUPTED_CODES = (130, 143)


def tolerated_by_open_policy(error: Exception) -> bool:
    """Tracking problems the open fail policy lets a deploy survive: unreachable or 5xx."""
    from tracker_ci.exceptions import APIError, LockHeld, ServerUnreachable, UnexpectedResponse

    if isinstance(error, LockHeld):
        return False
    if isinstance(error, (ServerUnreachable, UnexpectedResponse)):
        return True
    return isinstance(error, APIError) and error.status_code >= 500


def _warn_or_raise(error: Exception) -> None:
    # Deployment hands every tracking error to on_warning under the open policy; a bad
    # token or a bad request is not an outage, so it still stops with its exit code.
    if not tolerated_by_open_policy(error):
        raise error
    warn(f"{error} -- going on without tracking (fail policy open)")


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
            type=click.FloatRange(min=0),
            envvar="TRACKER_WAIT",
            metavar="SECONDS",
            help="How long to wait for a held lock, with a live line saying who "
            "holds it. [env: TRACKER_WAIT; default: 0, fail at once]",
        ),
        click.option(
            "--lock-ttl",
            type=click.IntRange(min=0),
            envvar="TRACKER_LOCK_TTL",
            metavar="SECONDS",
            help="Lock expiry, renewed while `deploy run` runs (0: never expires). "
            "[env: TRACKER_LOCK_TTL]",
        ),
        click.option(
            "--fail-policy",
            type=click.Choice(["open", "closed"], case_sensitive=False),
            envvar="TRACKER_FAIL_POLICY",
            help="When the server is unreachable or fails: open = warn and deploy "
            "anyway, closed = stop (exit 4/1). A held lock always stops (exit 3). "
            "[env: TRACKER_FAIL_POLICY; default: open]",
        ),
        *comment_options,
    ]
    for option in reversed(options):
        func = option(func)
    return func


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


def _make_deployment(
    state: AppState,
    client: Any,
    run: RunContext,
    opts: dict[str, Any],
    *,
    service: str,
    environment: str,
) -> Deployment:
    from tracker_ci.commands.context import check_pr_url, default_title, find_pr_url

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
    return _make_deployment_class()(
        client,
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
        on_warning=_warn_or_raise,
        comment=partial(_comment, state, run, opts) if opts.get("comment") else None,
    )


def _make_deployment_class() -> type:
    from tracker_ci.deploy import Deployment

    class ReportingDeployment(Deployment):
        """A Deployment that says what it did: stderr lines, job summary, PR/MR comment."""

        def __init__(
            self, *args: Any, comment: Callable[..., None] | None = None, **kwargs: Any
        ) -> None:
            super().__init__(*args, **kwargs)
            self.comment = comment
            self.last_state: DeploymentState | None = None

        def start(self, wait: float = 0, on_wait: Any = None) -> DeploymentState:
            result = super().start(wait=wait, on_wait=on_wait)
            self.last_state = result
            if result.tracked:
                click.echo(
                    f"tracker-ci: deployment event {result.event_id} opened"
                    f"{' (lock ' + result.lock_id + ')' if result.lock_id else ''}",
                    err=True,
                )
                if self.comment is not None and self.pr_url:
                    self.comment(self, result)
            return result

        def finish(
            self, state_or_event_id: Any, status: Any, message: str | None = None
        ) -> DeploymentState:
            from tracker_ci.ci import github

            result = super().finish(state_or_event_id, status, message)
            self.last_state = result
            if result.tracked:
                took = format_seconds(result.duration)
                click.echo(
                    f"tracker-ci: deployment event {result.event_id} closed as "
                    f"{result.status}{' after ' + took if took else ''}",
                    err=True,
                )
                github.append_summary(
                    f"- **{result.service}** to **{result.environment}**: {result.status}"
                    f"{' in ' + took if took else ''} (Tracker event `{result.event_id}`)"
                )
                if self.comment is not None:
                    self.comment(self, result)
            return result

    return ReportingDeployment


def _comment(
    state: AppState, run: RunContext, opts: dict[str, Any], deployment: Any, result: DeploymentState
) -> None:
    from tracker_ci.commands.context import comment_body, post_comment

    pr_url = deployment.pr_url
    if not pr_url:
        return
    details = [
        f"event `{result.event_id}`" + (f" ({result.event_url})" if result.event_url else ""),
        f"by {deployment.owner}" if deployment.owner else "",
        f"took {format_seconds(result.duration)}" if result.duration is not None else "",
        f"[CI run]({run.run_url})" if run.run_url else "",
    ]
    post_comment(
        run,
        pr_url,
        service=result.service,
        environment=result.environment,
        body=comment_body(result.service, result.environment, result.status, details),
        github_token=opts.get("github_token"),
        gitlab_token=opts.get("gitlab_token"),
        timeout=state.config["timeout"],
    )


def _key(state: AppState, service: str | None, environment: Any) -> tuple[str, str]:
    from tracker_ci.models import Environment

    service = require(service, state, "service", "--service")
    env = Environment.parse(require(environment, state, "environment", "--environment"))
    return service, env.value


def _outputs(result: DeploymentState) -> dict[str, str]:
    """The GitHub step outputs of a deployment state."""
    return {
        "event-id": result.event_id,
        "lock-id": result.lock_id,
        "status": result.status,
        "duration": "" if result.duration is None else f"{result.duration:.3f}",
        "event-url": result.event_url,
    }


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
In GitHub Actions (GITHUB_OUTPUT set) it writes the step outputs event-id, lock-id,
status and event-url; --dotenv FILE writes TRACKER_EVENT_ID and TRACKER_LOCK_ID.
"""
)
@start_options
@click.option(
    "--dotenv",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write TRACKER_EVENT_ID/TRACKER_LOCK_ID to this file (GitLab dotenv report).",
)
@pass_state
def start(
    state: AppState, service: str | None, environment: Any, dotenv: Path | None, **opts: Any
) -> None:
    """Open a deployment event and take its lock; prints the event id."""
    from tracker_ci.ci import github, gitlab
    from tracker_ci.commands.context import detect_run

    service, env = _key(state, service, environment)
    run = detect_run()
    wait = state.config["wait"] if opts.get("wait") is None else opts["wait"]
    line = LiveWaitLine(f"{service}/{env}", wait)
    with state.client() as client:
        deployment = _make_deployment(state, client, run, opts, service=service, environment=env)
        try:
            result = deployment.start(wait=wait, on_wait=line)
        finally:
            line.done()
    github.write_if_possible(
        {
            "event-id": result.event_id,
            "lock-id": result.lock_id,
            "status": result.status,
            "event-url": result.event_url,
        }
    )
    if dotenv is not None:
        gitlab.write_dotenv(
            dotenv, {"TRACKER_EVENT_ID": result.event_id, "TRACKER_LOCK_ID": result.lock_id}
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
    type=WireChoice("Status", aliases=STATUS_ALIASES, only=FINAL_STATUSES),
    help="Final status; failed/cancelled/canceled mean failure.",
)
@click.option("--message", "-m", help="Appended to the event's message.")
@service_option
@environment_option
@click.option(
    "--fail-policy",
    type=click.Choice(["open", "closed"], case_sensitive=False),
    envvar="TRACKER_FAIL_POLICY",
    help="See `deploy start`. [default: open]",
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
    service: str | None,
    environment: Any,
    **opts: Any,
) -> None:
    """Close a deployment event with its status (and duration); releases the lock."""
    from tracker_ci.ci import github
    from tracker_ci.commands.context import detect_run
    from tracker_ci.exceptions import NotFound, TrackerError
    from tracker_ci.models import Environment, EventType
    from tracker_ci.models import Status as StatusEnum

    if not event_id and not (service or state.config.get("service")):
        # Say both ways to name the deployment, not only the --service one.
        raise click.UsageError(
            "which deployment? give --event-id (or set TRACKER_EVENT_ID), or --service and "
            "--environment to close the newest open one"
        )
    run = detect_run()
    policy = (opts.get("fail_policy") or state.config["fail_policy"]).lower()
    closed: Any = None  # the event, when it was closed before this command
    with state.client() as client:
        try:
            if event_id:
                found = client.get_event(event_id)
                if not (service or state.config.get("service")):
                    service = found.attributes.service
                if not (environment or state.config.get("environment")):
                    environment = found.attributes.environment
                service, env = _key(state, service, environment)
                if found.attributes.status.value in CLOSED_STATUSES:
                    closed = found
            else:
                service, env = _key(state, service, environment)
                answer = client.search_events(
                    service=service,
                    environment=env,
                    type=EventType.deployment,
                    status=StatusEnum.start,
                )
                if not answer.events:
                    raise NotFound(
                        f"no open deployment of {service} in {env} to finish "
                        "(give --event-id or set TRACKER_EVENT_ID)",
                        status_code=404,
                    )
                newest = max(
                    answer.events,
                    key=lambda e: (e.metadata.created_at is not None, e.metadata.created_at),
                )
                event_id = newest.metadata.id
        except TrackerError as error:
            if policy == "open" and tolerated_by_open_policy(error):
                warn(f"{error} -- the deployment is not closed (fail policy open)")
                return
            raise
        if closed is not None:
            # Closing again would move its status, duration and changelog (a retried job,
            # a script that finished before after_script did): report, never rewrite.
            _already_closed(state, closed, status)
            return
        opts = {**opts, "fail_policy": policy}
        deployment = _make_deployment(
            state,
            client,
            run,
            {**opts, "pr_url": None},
            service=service,
            environment=Environment.parse(env).value,
        )
        if opts.get("comment"):
            # The PR/MR to comment on is the one the event links to.
            try:
                deployment.pr_url = client.get_event(event_id).links.pull_request_link
            except TrackerError:
                deployment.pr_url = ""
        result = deployment.finish(event_id, status, message)
    github.write_if_possible(
        {
            "status": result.status,
            "duration": "" if result.duration is None else f"{result.duration:.3f}",
        }
    )
    summary = render_summary(
        [
            ("event", result.event_id),
            ("status", result.status),
            ("duration", format_seconds(result.duration)),
        ]
    )
    _print_state(state, result, summary)


def _already_closed(state: AppState, event: Any, status: Any) -> None:
    """Finish of an event closed before: a no-op with the same status, else exit 2."""
    from tracker_ci.ci import github
    from tracker_ci.deploy import DeploymentState, event_url

    closed_as = event.attributes.status.value
    if closed_as != status.value:
        raise click.UsageError(
            f"deployment event {event.id} is already closed as {closed_as}; to change "
            f"its status: tracker-ci event update {event.id} --status {status.value}"
        )
    click.echo(
        f"tracker-ci: deployment event {event.id} was already closed as {closed_as}; "
        "nothing changed",
        err=True,
    )
    duration = event.metadata.duration
    result = DeploymentState(
        event_id=event.id,
        service=event.attributes.service,
        environment=event.attributes.environment.value,
        status=closed_as,
        started_at=event.attributes.start_date,
        duration=None if duration is None else duration.total_seconds(),
        event_url=event_url(state.config["url"], event.id),
    )
    github.write_if_possible({"status": result.status, "duration": _outputs(result)["duration"]})
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
Exit code: the command's own; 130/143 when interrupted (SIGINT/SIGTERM: the event is
closed as failure and the lock released first); 3 when the lock stays held.
""",
)
@start_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_state
def run(
    state: AppState, service: str | None, environment: Any, command: tuple[str, ...], **opts: Any
) -> None:
    """Run a command as a tracked deployment: start, run it, finish by its exit code."""
    from tracker_ci.ci import github
    from tracker_ci.commands.context import detect_run

    service, env = _key(state, service, environment)
    ci_run = detect_run()
    wait = state.config["wait"] if opts.get("wait") is None else opts["wait"]
    line = LiveWaitLine(f"{service}/{env}", wait)
    with state.client() as client:
        deployment = _make_deployment(state, client, ci_run, opts, service=service, environment=env)
        try:
            code = deployment.run(list(command), wait=wait, on_wait=line)
        finally:
            line.done()
    # The ReportingDeployment made by _make_deployment remembers its last state.
    final: DeploymentState | None = getattr(deployment, "last_state", None)
    if final is not None:
        github.write_if_possible(_outputs(final))
    elif code in INTERRUPTED_CODES:
        # A signal while waiting for the lock: say so, or the job ends without a word.
        click.echo(
            f"tracker-ci: interrupted while waiting for the lock of {service}/{env}; "
            "no event was opened and the command did not run",
            err=True,
        )
    sys.stdout.flush()
    raise click.exceptions.Exit(code)
