"""``tracker-ci lock``: take, release, renew, inspect and wait for deployment locks."""

from __future__ import annotations

from typing import Any

import click

from tracker_ci.commands.common import (
    AppState,
    LiveWaitLine,
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
            ]
        )
    )


@click.group(
    epilog="""\b
Examples:
  tracker-ci lock acquire -s api -e production --wait 300 --ttl 1800
  tracker-ci lock status -s api -e production      # exit 0 free, 3 held
  tracker-ci lock release -s api -e production --who alice
"""
)
def lock() -> None:
    """Deployment locks: one deployment per service and environment at a time."""


def _waiter(
    client: Any, service: str, environment: str, resource: str, wait: float, option: str
) -> tuple[Any, LiveWaitLine]:
    """The one lock waiter, with the live line that reports the holder."""
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
    )
    return waiter, line


@lock.command()
@service_option
@environment_option
@resource_option
@click.option("--who", help="Who takes the lock. [default: the CI actor or $USER]")
@click.option("--event-id", default="", help="The event this lock belongs to.")
@click.option(
    "--ttl",
    type=click.IntRange(min=0),
    default=None,
    help="Seconds after which the lock expires unless renewed (0: never). "
    "[env: TRACKER_LOCK_TTL; config: lock_ttl; default: 0]",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=None,
    envvar="TRACKER_WAIT",
    help="Seconds to wait for a held lock before giving up (exit 3). [env: TRACKER_WAIT]",
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
) -> None:
    """Take a lock; prints its id. Exit 3 when it is held (after --wait)."""
    from tracker_ci.ci.github_report import StepReport
    from tracker_ci.commands.context import detect_run

    service, env = _key(state, service, environment)
    who = who or detect_run().owner or "tracker-ci"
    ttl = state.config["lock_ttl"] if ttl is None else ttl
    wait = state.config["wait"] if wait is None else wait
    with state.client() as client:
        waiter, line = _waiter(client, service, env, resource, wait, "--wait")
        try:
            taken = waiter.run(
                lambda: client.acquire_lock(
                    service=service,
                    environment=env,
                    resource=resource,
                    who=who,
                    event_id=event_id,
                    ttl_seconds=ttl,
                )
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
@click.option("--who", help="The holder's name (required to release by key).")
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
    missing_ok: bool,
) -> None:
    """Release a lock by id, or by service/environment/resource naming its holder.

    Exit 6 when there is no such lock (0 with --missing-ok).
    """
    from tracker_ci.ci.github_report import StepReport
    from tracker_ci.exceptions import NotFound

    with state.client() as client:
        if lock_id:
            count = client.release_lock(lock_id)
            what = f"lock {lock_id}"
        else:
            service, env = _key(state, service, environment)
            if not who:
                raise click.UsageError("give a LOCK_ID, or --who with --service/--environment")
            count = client.release_lock_by_key(
                service=service, environment=env, resource=resource, who=who
            )
            what = f"the {resource} lock of {service} in {env}"
    if not count and not missing_ok:
        raise NotFound(f"{what} does not exist (already released?)", status_code=404)
    if not count:
        click.echo(f"tracker-ci: {what} is already released; nothing to do", err=True)
    StepReport().lock_released(what, lock_id or "")
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
    """Who holds the lock of a service in an environment. Exit 0 when free, 3 when held."""
    service, env = _key(state, service, environment)
    with state.client() as client:
        held = client.find_lock(service=service, environment=env, resource=resource)
    if state.json:
        emit_json({"locked": held is not None, "lock": held})
    elif held is None:
        click.echo(f"free: no {resource} lock on {service}/{env}")
    else:
        _print_lock(state, held)
    if held is not None:
        raise click.exceptions.Exit(3)


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
    type=click.FloatRange(min=0),
    default=None,
    envvar="TRACKER_WAIT",
    help="Seconds to wait before giving up (exit 3). "
    "[env: TRACKER_WAIT; config: wait; default: 0, check once]",
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
    click.echo(f"free: no {resource} lock on {service}/{env}")
