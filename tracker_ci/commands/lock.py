"""``tracker-ci lock``: take, release, renew, inspect and wait for deployment locks."""

from __future__ import annotations

import time
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

POLL_SECONDS = 2.0

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


def _wait_until_free(
    client: Any, service: str, environment: str, resource: str, wait: float
) -> Any:
    """Poll until the lock is free or ``wait`` runs out; the holder's lock or None."""
    line = LiveWaitLine(f"{service}/{environment}", wait)
    deadline = time.monotonic() + wait
    try:
        while True:
            held = client.find_lock(service=service, environment=environment, resource=resource)
            if held is None or time.monotonic() >= deadline:
                return held
            line(held)
            time.sleep(min(POLL_SECONDS, max(0.05, deadline - time.monotonic())))
    finally:
        line.done()


def _timeout_error(held: Any, waited: float, option: str = "--wait") -> Exception:
    from tracker_ci.exceptions import LockHeld, LockWaitTimeout

    fields = {
        "service": held.service,
        "environment": held.environment,
        "resource": held.resource,
        "holder": held.who,
        "lock_id": held.id,
        "event_id": held.event_id,
        "since": held.created_at,
    }
    # The message names the option of the command that waited (`lock wait` has --timeout).
    message = (
        f"gave up after waiting {waited:.0f}s for the {held.resource} lock of {held.service} "
        f"in {held.environment}: still {LockHeld('', **fields).describe_holder()}. Wait "
        f"longer ({option} SECONDS) or release the lock if its deployment is dead."
    )
    return LockWaitTimeout(message, waited=waited, **fields)


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
    from tracker_ci.commands.context import detect_run
    from tracker_ci.exceptions import LockHeld

    service, env = _key(state, service, environment)
    who = who or detect_run().owner or "tracker-ci"
    ttl = state.config["lock_ttl"] if ttl is None else ttl
    wait = state.config["wait"] if wait is None else wait
    started = time.monotonic()
    with state.client() as client:
        while True:
            try:
                taken = client.acquire_lock(
                    service=service,
                    environment=env,
                    resource=resource,
                    who=who,
                    event_id=event_id,
                    ttl_seconds=ttl,
                )
                break
            except LockHeld:
                left = wait - (time.monotonic() - started)
                if left <= 0:
                    raise
                held = _wait_until_free(client, service, env, resource, left)
                if held is not None:
                    raise _timeout_error(held, time.monotonic() - started) from None
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
@pass_state
def release(
    state: AppState,
    lock_id: str | None,
    service: str | None,
    environment: Any,
    resource: str,
    who: str | None,
) -> None:
    """Release a lock by id, or by service/environment/resource naming its holder.

    Exit 6 when there is no such lock.
    """
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
    if not count:
        raise NotFound(f"{what} does not exist (already released?)", status_code=404)
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
    started = time.monotonic()
    with state.client() as client:
        held = _wait_until_free(client, service, env, resource, wait)
    if held is not None:
        raise _timeout_error(held, time.monotonic() - started, "--timeout")
    click.echo(f"free: no {resource} lock on {service}/{env}")
