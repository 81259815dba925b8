"""``tracker-ci doctor``: check, before a deploy needs it, that everything is in place.

Each check says ok, warn or fail, what it found, and how to fix a problem. The exit code
is the documented code of the first failed check (4 unreachable, 5 token refused...), 0
when none failed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from tracker_ci.commands.common import (
    AppState,
    environment_option,
    pass_state,
    service_option,
)
from tracker_ci.output import emit_json

__all__ = ["doctor"]


@dataclass
class Check:
    """One line of the report."""

    name: str
    verdict: str  # ok, warn, fail
    found: str
    fix: str = ""
    exit_code: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "verdict": self.verdict, "found": self.found, "fix": self.fix}


#: The fix of a refused token, wherever doctor meets it.
TOKEN_FIX = (
    "set TRACKER_TOKEN (or --token) to a valid token: an admin makes one with "
    "`tracker-ci token create`"
)


def _failed(name: str, error: Exception, fix: str = "") -> Check:
    """A failed check; without ``fix``, the fix of the error's cause (not always the log)."""
    from tracker_ci.exceptions import exit_code_for

    return Check(name, "fail", str(error), fix or _fix_for(error), exit_code_for(error))


def _fix_for(error: Exception) -> str:
    from tracker_ci.exceptions import (
        AuthenticationFailed,
        PermissionDenied,
        ServerError,
        ServerUnreachable,
    )

    if isinstance(error, AuthenticationFailed):
        return TOKEN_FIX
    if isinstance(error, PermissionDenied):
        return "use a token that may read and write this service (or an admin token)"
    if isinstance(error, ServerUnreachable):
        return "check TRACKER_URL (or --url) and that the server runs"
    if isinstance(error, ServerError):
        return "the server failed: see the server's log"
    return "see the message above; `tracker-ci --debug doctor` shows more"


def _server(client: Any) -> Check:
    from tracker_ci.exceptions import NotFound, TrackerError

    try:
        health = client.health()
    except NotFound:
        health = None  # upstream's Go server has no /health; any answer tells its kind
    except TrackerError as error:
        return _failed("server", error, "check TRACKER_URL (or --url) and that it runs")
    if health is None:
        try:
            client.list_locks()
        except TrackerError as error:
            return _failed("server", error, "check TRACKER_URL (or --url) and that it runs")
    if client.server_is_bundled:
        version = (health or {}).get("version", "")
        return Check("server", "ok", f"{client.base_url}: tracker-ci's server {version}".strip())
    return Check(
        "server",
        "ok",
        f"{client.base_url}: an upstream Tracker (no lock TTLs, renewals, tokens or queue)",
    )


def _token(client: Any, token: str | None) -> Check:
    from tracker_ci.exceptions import AuthenticationFailed, PermissionDenied, TrackerError

    if not client.server_is_bundled:
        return Check("token", "ok", "upstream Tracker: no tokens")
    try:
        client.list_tokens()
    except PermissionDenied:
        return Check("token", "ok", "accepted; not an admin token (it writes its services)")
    except AuthenticationFailed as error:
        return _failed("token", error, TOKEN_FIX)
    except TrackerError as error:
        return _failed("token", error)
    if token:
        return Check("token", "ok", "accepted, with admin rights (or the server has auth off)")
    return Check("token", "ok", "none needed: the server has auth off")


def _lock(client: Any, service: str | None, environment: str | None) -> Check:
    from tracker_ci.exceptions import TrackerError
    from tracker_ci.models import Environment

    if not (service and environment):
        return Check("lock", "warn", "not checked", "give --service and --environment")
    env = Environment.parse(environment).value
    try:
        held = client.find_lock(service=service, environment=env)
    except TrackerError as error:
        return _failed("lock", error)
    if held is None:
        return Check("lock", "ok", f"{service}/{env} is free")
    since = f" since {held.created_at:%Y-%m-%d %H:%M:%SZ}" if held.created_at else ""
    return Check(
        "lock",
        "warn",
        f"{service}/{env} is held by {held.who or 'someone'}{since} (lock {held.id})",
        "a deploy now waits (--wait) or stops with exit 3",
    )


def _freezes(client: Any, service: str | None, environment: str | None) -> Check:
    from tracker_ci.exceptions import NotFound, TrackerError
    from tracker_ci.models import FreezeType

    if not client.server_is_bundled:
        return Check("freezes", "ok", "upstream Tracker: freeze windows are not enforced")
    try:
        active = client.active_freezes(service=service, environment=environment)
    except NotFound:
        return Check("freezes", "ok", "this server has no freeze windows")
    except TrackerError as error:
        return _failed("freezes", error)
    scope = f" for {service}/{environment}" if service and environment else ""
    if not active:
        return Check("freezes", "ok", f"no freeze window in force{scope}")
    names = []
    hard = False
    for freeze in active:
        window = freeze.freeze_window
        soft = window.type is FreezeType.FREEZE_TYPE_SOFT
        hard = hard or not soft
        until = f"{freeze.until:%Y-%m-%d %H:%M:%SZ}" if freeze.until else "further notice"
        names.append(f'{"soft" if soft else "hard"} "{window.title}" until {until}')
    fix = (
        "a deploy is refused now (exit 7); wait, or pass --break-glass REASON if it must go"
        if hard
        else "a deploy goes through with a warning"
    )
    return Check("freezes", "warn", f"in force{scope}: {'; '.join(names)}", fix)


#: Services that deployed within this many days should have a catalog entry.
CATALOG_DAYS = 30
#: How many services without an entry the report names (then "and N more").
CATALOG_NAMED = 10
CATALOG_FIX = (
    "record who owns each: `tracker-ci catalog set NAME --owner TEAM --version VERSION`, "
    "or `tracker-ci catalog import catalog-info.yaml` from Backstage"
)


def _catalog(client: Any) -> Check:
    """Services with deployments in the last 30 days and no catalog entry (nobody to page,
    no blast radius): a warning. A server without a catalog (404) is not checked."""
    from datetime import timedelta

    from tracker_ci.exceptions import NotFound, TrackerError
    from tracker_ci.models import EventType, utcnow

    try:
        entries = client.list_catalogs()
    except NotFound:
        return Check("catalog", "ok", "this server has no service catalog: not checked")
    except TrackerError as error:
        return Check("catalog", "warn", f"not checked: {error}", _fix_for(error))
    now = utcnow()
    try:
        stats = client.monthly_stats(
            start_date=now - timedelta(days=CATALOG_DAYS),
            end_date=now,
            types=[EventType.deployment],
            group_by_service=True,
        )
    except TrackerError as error:
        return Check("catalog", "warn", f"not checked: {error}", _fix_for(error))
    deploying = {stat.service for stat in stats.stats if stat.service and stat.count}
    missing = sorted(deploying - {entry.name for entry in entries})
    window = f"in the last {CATALOG_DAYS} days"
    if not missing:
        return Check(
            "catalog",
            "ok",
            f"{len(entries)} entries; every service that deployed {window} has one",
        )
    named = ", ".join(missing[:CATALOG_NAMED])
    if len(missing) > CATALOG_NAMED:
        named += f" and {len(missing) - CATALOG_NAMED} more"
    return Check(
        "catalog",
        "warn",
        f"{len(missing)} service(s) deployed {window} without a catalog entry: {named}",
        CATALOG_FIX,
    )


def _pull_request(state: AppState) -> Check:
    from tracker_ci.commands.context import detect_run, find_pr_url

    run = detect_run()
    if run.github is None and run.gitlab is None:
        return Check("pull request", "ok", "not in GitHub Actions or GitLab CI: none to look up")
    url = find_pr_url(
        run,
        github_token=os.environ.get("GITHUB_TOKEN"),
        gitlab_token=os.environ.get("GITLAB_TOKEN"),
        timeout=state.config["timeout"],
    )
    if url:
        return Check("pull request", "ok", url)
    return Check(
        "pull request",
        "warn",
        "none found for this commit",
        "pass --pr-url, or give the job a token that can read pull/merge requests",
    )


def _changes(state: AppState, client: Any, service: str | None, environment: Any) -> Check:
    """Whether what a deploy ships can be listed with the CI token (GitHub/GitLab compare)."""
    from tracker_ci.changes import find_shipped
    from tracker_ci.commands.context import detect_run

    run = detect_run()
    if run.github is None and run.gitlab is None:
        return Check("changes", "ok", "not in GitHub Actions or GitLab CI: none to list")
    if not service:
        return Check("changes", "warn", "not checked", "give --service and --environment")
    problems: list[str] = []
    shipped = find_shipped(
        client,
        service=service,
        environment=getattr(environment, "value", environment) or "production",
        github=run.github,
        gitlab=run.gitlab,
        github_token=os.environ.get("GITHUB_TOKEN"),
        gitlab_token=os.environ.get("GITLAB_TOKEN"),
        timeout=state.config["timeout"],
        on_problem=problems.append,
    )
    if problems:
        fix = "give the job a token that can read the repository's commits and PRs/MRs"
        return Check("changes", "warn", problems[0], fix)
    if not shipped.revision:
        return Check("changes", "ok", "no commit in this run: none to list")
    if not shipped.changes:
        return Check(
            "changes",
            "ok",
            f"none to list up to {shipped.revision[:12]} (no earlier successful deploy with "
            "a revision, or nothing new since)",
        )
    return Check(
        "changes",
        "ok",
        f"{len(shipped.changes)} change(s) since the last successful deploy, up to "
        f"{shipped.revision[:12]}",
    )


def _policy(state: AppState) -> Check:
    policy = str(state.config["fail_policy"]).lower()
    meaning = {
        "open": "an unreachable or failing server lets a deploy go on UNTRACKED and "
        "UNLOCKED (the default, closed, stops it)",
        "closed": "an unreachable or failing server stops the deploy",
    }.get(policy, "")
    source = state.config.source("fail_policy")
    level = "warn" if policy == "open" else "ok"
    return Check("fail policy", level, f"{policy} ({source}): {meaning}")


@click.command(
    epilog="""\b
Examples:
  tracker-ci doctor -s api -e production
  tracker-ci -o json doctor
"""
)
@service_option
@environment_option
@pass_state
def doctor(state: AppState, service: str | None, environment: Any) -> None:
    """Check the server, token, lock, freezes, PR and changes lookups, the catalog, and
    fail policy."""
    service = service or state.config.get("service")
    environment = environment or state.config.get("environment")
    checks: list[Check] = []
    with state.client() as client:
        checks.append(_server(client))
        if checks[0].verdict != "fail":
            steps: list[Callable[[], Check]] = [
                lambda: _token(client, state.config["token"]),
                lambda: _lock(client, service, getattr(environment, "value", environment)),
                lambda: _freezes(client, service, getattr(environment, "value", environment)),
                lambda: _changes(state, client, service, environment),
                lambda: _catalog(client),
            ]
            checks += [step() for step in steps]
    checks += [_pull_request(state), _policy(state)]
    _show(state, checks)
    failed = [check for check in checks if check.verdict == "fail"]
    if failed:
        raise click.exceptions.Exit(failed[0].exit_code or 1)


def _show(state: AppState, checks: list[Check]) -> None:
    if state.json:
        emit_json([check.as_dict() for check in checks])
        return
    width = max(len(check.name) for check in checks)
    for check in checks:
        click.echo(f"{check.verdict:<4}  {check.name:<{width}}  {check.found}")
        if check.fix and check.verdict != "ok":
            click.echo(f"{'':<4}  {'':<{width}}  fix: {check.fix}")
