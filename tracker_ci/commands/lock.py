"""``tracker-ci lock``: take, release, renew, inspect and wait for deployment locks."""

from __future__ import annotations

from typing import Any

import click

from tracker_ci.commands.common import (
    AppState,
    LiveWaitLine,
    Seconds,
    describe_eta,
    environment_option,
    pass_state,
    require,
    service_option,
)
from tracker_ci.output import emit_json, render_summary, render_table

__all__ = ["lock"]

resource_option = click.option(
    "--resource",
    default="deployment",
    show_default=True,
    help="What the lock protects (the automatic lock of a deployment event is `deployment`).",
)


def _key(state: AppState, service: str | None, environment: Any) -> tuple[str, str]:
    from tracker_ci.models import Environment

    service = require(service, state, "service", "--service")
    env = Environment.parse(require(environment, state, "environment", "--environment"))
    return service, env.value


def _print_lock(state: AppState, lock: Any) -> None:
    if state.json:
        emit_json(lock)
        return
    click.echo(
        render_summary(
            [
                ("lock", lock.id),
                ("service", lock.service),
                ("environment", lock.environment),
                ("resource", lock.resource),
                ("held by", lock.who),
                ("since", lock.created_at),
                ("event", lock.event_id),
                ("expires", lock.expires_at),
                ("fence", getattr(lock, "fence", 0) or None),
                ("reason", getattr(lock, "reason", "")),
                ("CI job", getattr(lock, "job_url", "")),
            ]
        )
    )


@click.group(
    epilog="""\b
Examples:
  tracker-ci lock acquire -s api -e production --wait 300 --ttl 1800
  tracker-ci lock status -s api -e production      # exit 0 free, 3 held
  tracker-ci lock check -s api -e production --fence "$TRACKER_FENCE"
  tracker-ci lock policy -e production newest
  tracker-ci lock release -s api -e production   # the TRACKER_LOCK_ID this job took
"""
)
def lock() -> None:
    """Deployment locks: one deployment per service and environment at a time."""


def _waiter(
    client: Any,
    service: str,
    environment: str,
    resource: str,
    wait: float,
    option: str,
    **queue: Any,
) -> tuple[Any, LiveWaitLine]:
    """The one lock waiter, with the live line that reports the holder (and the place in
    the queue); ``queue``: who, reason, job_url, break_glass shown to the queue."""
    from tracker_ci.waiter import LockWaiter

    line = LiveWaitLine(f"{service}/{environment}", wait)
    waiter = LockWaiter(
        client,
        service=service,
        environment=environment,
        resource=resource,
        wait=wait,
        on_wait=line,
        option=option,
        **queue,
    )
    return waiter, line


reason_option = click.option(
    "--reason",
    envvar="TRACKER_REASON",
    default="",
    help="Why you take the lock: shown by `lock status` and to those queued behind. "
    "[env: TRACKER_REASON]",
)
break_glass_option = click.option(
    "--break-glass",
    envvar="TRACKER_BREAK_GLASS",
    default="",
    metavar="REASON",
    help="Take a deployment lock through a hard freeze window, for this reason; with auth "
    "on, needs an admin token. [env: TRACKER_BREAK_GLASS]",
)


@lock.command()
@service_option
@environment_option
@resource_option
@click.option("--who", help="Who takes the lock. [default: the CI actor or $USER]")
@click.option("--event-id", default="", help="The event this lock belongs to.")
@click.option(
    "--ttl",
    type=Seconds(whole=True, zero="0: the lock never expires"),
    default=None,
    help="Seconds after which the lock expires unless renewed (0: never). "
    "[env: TRACKER_LOCK_TTL; config: lock_ttl; default: 3600]",
)
@click.option(
    "--wait",
    type=Seconds(zero="0 fails at once"),
    default=None,
    envvar="TRACKER_WAIT",
    help="Seconds to wait for a held lock before giving up (exit 3); waits in the "
    "server's queue, in arrival order. [env: TRACKER_WAIT; default: 300]",
)
@reason_option
@break_glass_option
@click.option(
    "--evict-dead-holder",
    is_flag=True,
    envvar="TRACKER_EVICT_DEAD_HOLDER",
    help="While waiting, ask the CI API (GITHUB_TOKEN, GITLAB_TOKEN or CI_JOB_TOKEN) whether "
    "the holder's job still runs; evict it (audited) once it has ended.",
)
@click.option(
    "--new-environment",
    is_flag=True,
    envvar="TRACKER_NEW_ENVIRONMENT",
    help="The environment is a new name, not a misspelling (our server refuses a name "
    "close to one the service used unless told). [env: TRACKER_NEW_ENVIRONMENT]",
)
@pass_state
def acquire(
    state: AppState,
    service: str | None,
    environment: Any,
    resource: str,
    who: str | None,
    event_id: str,
    ttl: int | None,
    wait: float | None,
    reason: str,
    break_glass: str,
    evict_dead_holder: bool,
    new_environment: bool,
) -> None:
    """Take a lock; prints its id. Exit 3 when it is held (after --wait), 7 when a hard
    freeze window refuses it."""
    from tracker_ci.ci.github_report import StepReport
    from tracker_ci.commands.context import detect_run
    from tracker_ci.output import warn

    service, env = _key(state, service, environment)
    run = detect_run()
    who = who or run.owner or "tracker-ci"
    ttl = state.config["lock_ttl"] if ttl is None else ttl
    wait = state.config["wait"] if wait is None else wait
    check_holder = None
    if evict_dead_holder:  # the deploy commands' module, only when asked for
        from tracker_ci.commands.deploy import dead_holder_check

        check_holder = dead_holder_check({})
    with state.client(on_warning=warn) as client:
        waiter, line = _waiter(
            client,
            service,
            env,
            resource,
            wait,
            "--wait",
            who=who,
            reason=reason,
            job_url=run.run_url,
            break_glass=break_glass,
            evict_dead_holder=check_holder,
            ttl_seconds=ttl,
            event_id=event_id,
        )
        try:
            # The queue's answer carries the lock when our turn comes (our server).
            taken = waiter.run(
                lambda ticket: client.acquire_lock(
                    service=service,
                    environment=env,
                    resource=resource,
                    who=who,
                    event_id=event_id,
                    ttl_seconds=ttl,
                    reason=reason,
                    job_url=run.run_url,
                    break_glass=break_glass,
                    queue_ticket=ticket,
                    new_environment=new_environment,
                ),
                granted=lambda lock: lock,
            )
        finally:
            line.done()
    StepReport().lock_taken(taken)
    if state.json:
        emit_json(taken)
    else:
        click.echo(taken.id)


@lock.command()
@click.argument("lock_id", required=False)
@service_option
@environment_option
@resource_option
@click.option("--who", help="The holder's name. [default: the CI actor or $USER]")
@click.option(
    "--held-lock-id",
    envvar="TRACKER_LOCK_ID",
    default="",
    help="By key: the id of the lock this job took (lock acquire / deploy start export "
    "it). [env: TRACKER_LOCK_ID]",
)
@click.option(
    "--event-id",
    envvar="TRACKER_EVENT_ID",
    default="",
    help="By key: the event whose lock this job took. [env: TRACKER_EVENT_ID]",
)
@click.option(
    "--reason",
    default="",
    help="An admin releasing a lock another token took says why (audited on the server).",
)
@click.option(
    "--missing-ok",
    is_flag=True,
    help="A lock that is already gone (released, expired) is no error (exit 0).",
)
@pass_state
def release(
    state: AppState,
    lock_id: str | None,
    service: str | None,
    environment: Any,
    resource: str,
    who: str | None,
    held_lock_id: str,
    event_id: str,
    reason: str,
    missing_ok: bool,
) -> None:
    """Release a lock by id, or by service/environment/resource and the lock (or event) id
    this job holds; a name alone never releases someone else's lock.

    Exit 6 when there is no such lock (0 with --missing-ok); 3 when another job holds it.
    """
    from tracker_ci.ci.github_report import StepReport
    from tracker_ci.commands.context import detect_run
    from tracker_ci.exceptions import NotFound

    with state.client() as client:
        if lock_id:
            count = client.release_lock(lock_id, reason=reason)
            what = f"lock {lock_id}"
        else:
            service, env = _key(state, service, environment)
            if not (held_lock_id or event_id):
                raise click.UsageError(
                    "give a LOCK_ID, or --service/--environment with the lock this job took: "
                    "TRACKER_LOCK_ID (--held-lock-id) or TRACKER_EVENT_ID (--event-id)"
                )
            count = client.release_lock_by_key(
                service=service,
                environment=env,
                resource=resource,
                who=who or detect_run().owner or "tracker-ci",
                lock_id=held_lock_id,
                event_id=event_id,
                reason=reason,
            )
            what = f"the {resource} lock of {service} in {env}"
    if not count and not missing_ok:
        raise NotFound(f"{what} does not exist (already released?)", status_code=404)
    if not count:
        click.echo(f"tracker-ci: {what} is already released; nothing to do", err=True)
    StepReport().lock_released(what, lock_id or "", already=not count)
    if state.json:
        emit_json({"released": True, "count": count})
    else:
        click.echo(f"released {what}")


@lock.command()
@click.argument("lock_id")
@click.option(
    "--ttl",
    type=click.IntRange(min=1),
    required=True,
    help="New time to live, in seconds from now.",
)
@pass_state
def renew(state: AppState, lock_id: str, ttl: int) -> None:
    """Push back the expiry of a lock (bundled server only)."""
    with state.client() as client:
        renewed = client.renew_lock(lock_id, ttl)
    _print_lock(state, renewed)


@lock.command()
@service_option
@environment_option
@resource_option
@pass_state
def status(state: AppState, service: str | None, environment: Any, resource: str) -> None:
    """Who holds the lock of a service in an environment (fence, reason, CI job) and who
    waits for it, in order, with the expected waits. Exit 0 when free, 3 when held."""
    service, env = _key(state, service, environment)
    queue: list[Any] = []
    with state.client() as client:
        held = client.find_lock(service=service, environment=env, resource=resource)
        if client.server_is_bundled:  # upstream has no queue
            answer = client.lock_status(service=service, environment=env, resource=resource)
            held, queue = answer.lock, answer.queue
    if state.json:
        emit_json({"locked": held is not None, "lock": held, "queue": [_queued(e) for e in queue]})
    else:
        if held is None:
            click.echo(f"free: no {resource} lock on {service}/{env}")
        else:
            _print_lock(state, held)
        _print_queue(queue)
    if held is not None:
        raise click.exceptions.Exit(3)


def _queued(entry: Any) -> dict[str, Any]:
    """A waiter as ``lock status --output json`` shows it."""
    wire = entry.to_wire()
    return {
        name: wire[name]
        for name in ("position", "who", "since", "reason", "jobUrl", "state", "expectedWaitSeconds")
    }


def _print_queue(queue: list[Any]) -> None:
    if not queue:
        return
    # The first waiter expected now while the holder still works: it overran its usual
    # duration, and every later estimate is only a lower bound.
    first = queue[0] if queue else None
    overran = first is not None and first.state == "waiting" and first.expected_wait_seconds == 0
    rows = [
        (
            e.position,
            e.who,
            e.since,
            e.reason,
            describe_eta(e.expected_wait_seconds, e.state, overran=overran),
            e.state,
        )
        for e in queue
    ]
    click.echo(f"\nqueue ({len(queue)} waiting):")
    click.echo(render_table(rows, ["#", "who", "since", "reason", "expected wait", "state"]))


@lock.command("check")
@service_option
@environment_option
@resource_option
@click.option(
    "--fence",
    type=click.IntRange(min=1),
    envvar="TRACKER_FENCE",
    required=True,
    help="The fencing token your grant got (deploy run exports TRACKER_FENCE). "
    "[env: TRACKER_FENCE]",
)
@pass_state
def check(
    state: AppState, service: str | None, environment: Any, resource: str, fence: int
) -> None:
    """Exit 0 when FENCE is the current holder's fence, 3 otherwise: check you still hold
    the lock before a step that must not run twice."""
    service, env = _key(state, service, environment)
    with state.client() as client:
        held = client.find_lock(service=service, environment=env, resource=resource)
    current = held.fence if held is not None else 0
    ok = held is not None and current == fence
    if state.json:
        emit_json({"holder": ok, "fence": fence, "currentFence": current, "lock": held})
    elif ok:
        click.echo(f"holder: fence {fence} holds the {resource} lock of {service}/{env}")
    elif held is None:
        click.echo(f"not the holder: no {resource} lock on {service}/{env}", err=True)
    else:
        click.echo(
            f"not the holder: the {resource} lock of {service}/{env} is held by {held.who} "
            f"with fence {current}, not {fence}",
            err=True,
        )
    if not ok:
        raise click.exceptions.Exit(3)


@lock.command("policy")
@click.option("--environment", "-e", help="The environment the policy applies to.")
@click.option("--service", "-s", default="", help="Only this service. [default: every service]")
@click.argument("policy", required=False, type=click.Choice(["fifo", "newest"]))
@pass_state
def policy(state: AppState, environment: str | None, service: str, policy: str | None) -> None:
    """Show the queue policies, or set one: fifo (arrival order, the default) or newest (a
    newer waiter supersedes the older ones, which exit 8)."""
    from tracker_ci.models import Environment

    with state.client() as client:
        if policy is None:
            policies = client.list_queue_policies()
        else:
            if not environment:
                raise click.UsageError("give --environment to set a policy")
            env = Environment.parse(environment).value
            policies = [client.set_queue_policy(environment=env, service=service, policy=policy)]
    if state.json:
        emit_json(policies)
        return
    if not policies:
        click.echo("no policies set: every queue is fifo")
        return
    click.echo(
        render_table(
            [(p.environment, p.service or "(all)", p.policy) for p in policies],
            ["environment", "service", "policy"],
        )
    )


@lock.command("list")
@pass_state
def list_locks(state: AppState) -> None:
    """Every lock held on the server."""
    with state.client() as client:
        locks = client.list_locks()
    if state.json:
        emit_json(locks)
        return
    if not locks:
        click.echo("no locks")
        return
    click.echo(
        render_table(
            [
                (x.service, x.environment, x.resource, x.who, x.created_at, x.event_id, x.id)
                for x in locks
            ],
            ["service", "environment", "resource", "who", "since", "event", "id"],
        )
    )


@lock.command("wait")
@service_option
@environment_option
@resource_option
@click.option(
    "--timeout",
    "wait",
    type=Seconds(zero="0 checks once"),
    default=None,
    envvar="TRACKER_WAIT",
    help="Seconds to wait before giving up (exit 3). "
    "[env: TRACKER_WAIT; config: wait; default: 300; 0 checks once]",
)
@pass_state
def wait_for_lock(
    state: AppState, service: str | None, environment: Any, resource: str, wait: float | None
) -> None:
    """Wait until a lock is free (exit 0), or give up after --timeout (exit 3)."""
    service, env = _key(state, service, environment)
    wait = state.config["wait"] if wait is None else wait
    with state.client() as client:
        waiter, line = _waiter(client, service, env, resource, wait, "--timeout")
        try:
            waiter.until_free()
        finally:
            line.done()
    if state.json:
        emit_json({"free": True, "service": service, "environment": env, "resource": resource})
        return
    click.echo(f"free: no {resource} lock on {service}/{env}")
