"""``tracker-ci freeze``: freeze windows that the bundled server enforces (add, list, remove)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from tracker_ci.commands.common import AppState, pass_state
from tracker_ci.output import emit_json, render_summary, render_table

__all__ = ["freeze"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SCOPES = {
    "global": "FREEZE_SCOPE_GLOBAL",
    "environment": "FREEZE_SCOPE_ENVIRONMENT",
    "service": "FREEZE_SCOPE_SERVICE",
    "domain": "FREEZE_SCOPE_DOMAIN",
}


@contextlib.contextmanager
def _admin_only(what: str) -> Iterator[None]:
    """A 403 here means the token is not an admin one: say that and how to get past it."""
    from tracker_ci.exceptions import PermissionDenied

    try:
        yield
    except PermissionDenied as error:
        said = error.server_message or str(error)
        raise PermissionDenied(
            f"the server refused to {what}: freeze windows are managed with an admin token "
            f"(the server said: {said}). Run this with the admin token (TRACKER_TOKEN or "
            "--token), or ask an admin; `tracker-ci token create --admin` makes one",
            status_code=error.status_code,
            code=error.code,
            server_message=error.server_message,
            url=error.url,
        ) from None


def parse_for(value: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1w`` as a duration."""
    match = _DURATION.match(value)
    if not match:
        raise click.BadParameter(
            f"{value!r} is not a duration: use a number and s, m, h, d or w (e.g. 2h)",
            param_hint="'--for'",
        )
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


def parse_when(value: str, option: str) -> datetime:
    """An RFC 3339 time (``2026-12-24T18:00:00Z``); a time without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a time: use RFC 3339, e.g. 2026-12-24T18:00:00Z",
            param_hint=f"'{option}'",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _print_window(state: AppState, window: Any) -> None:
    if state.json:
        emit_json(window)
        return
    schedule = f"{window.cron_start} -> {window.cron_end} ({window.timezone})"
    click.echo(
        render_summary(
            [
                ("freeze window", window.id),
                ("title", window.title),
                ("type", "hard" if window.type.value.endswith("HARD") else "soft"),
                ("scope", _scope_text(window)),
                ("starts", window.starts_at),
                ("ends", window.ends_at),
                ("recurs", schedule if window.cron_start else ""),
                ("by", window.created_by),
            ]
        )
    )


def _scope_text(window: Any) -> str:
    scope = window.scope_type.value.removeprefix("FREEZE_SCOPE_").lower()
    return scope if scope == "global" else f"{scope}: {', '.join(window.scope_ids)}"


@click.group(
    epilog="""\b
Examples:
  tracker-ci freeze add "Release freeze" -e production --for 2h
  tracker-ci freeze add "Weekends" -e production --cron-start "0 18 * * 5" \\
      --cron-end "0 8 * * 1" --timezone Europe/Paris
  tracker-ci freeze add "Marketing launch" --soft -s web --until 2026-12-24T18:00:00Z
  tracker-ci freeze list
  tracker-ci freeze remove 3f2a...
"""
)
def freeze() -> None:
    """Freeze windows: the bundled server refuses deploys in a hard one (exit 7) and warns in
    a soft one; --break-glass REASON on deploy passes a hard one."""


@freeze.command("add")
@click.argument("title")
@click.option("--environment", "-e", "environments", multiple=True, help="Environments frozen.")
@click.option("--service", "-s", "services", multiple=True, help="Services frozen.")
@click.option("--soft", is_flag=True, help="Warn instead of refusing.")
@click.option("--description", default="", help="Why, for those who are refused.")
@click.option("--for", "for_", metavar="DURATION", help="From now (or --from) for 2h, 30m, 1d...")
@click.option("--from", "from_", metavar="TIME", help="Start (RFC 3339). [default: now]")
@click.option("--until", metavar="TIME", help="End (RFC 3339).")
@click.option("--cron-start", default="", help='Recurring: starts at each "M H DoM Mon DoW".')
@click.option("--cron-end", default="", help="Recurring: ends at the next such occurrence.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA zone of the cron times.")
@click.option(
    "--new-environment",
    is_flag=True,
    envvar="TRACKER_NEW_ENVIRONMENT",
    help="The environments named are new names, not misspellings (our server refuses a name "
    "close to one in use unless told). [env: TRACKER_NEW_ENVIRONMENT]",
)
@pass_state
def add(
    state: AppState,
    title: str,
    environments: tuple[str, ...],
    services: tuple[str, ...],
    soft: bool,
    description: str,
    for_: str | None,
    from_: str | None,
    until: str | None,
    cron_start: str,
    cron_end: str,
    timezone: str,
    new_environment: bool,
) -> None:
    """Create a freeze window over environments, services, or everything (neither given)."""
    from tracker_ci.models import FreezeScope, FreezeType, FreezeWindow

    if environments and services:
        raise click.UsageError("a window covers environments or services, not both")
    if for_ and until:
        raise click.UsageError("give --for or --until, not both")
    starts = parse_when(from_, "--from") if from_ else None
    ends = parse_when(until, "--until") if until else None
    if for_:
        ends = (starts or datetime.now(UTC)) + parse_for(for_)
    if ends is None and not cron_start:
        raise click.UsageError("say when it ends: --for, --until, or --cron-start/--cron-end")
    scope = "environment" if environments else "service" if services else "global"
    window = FreezeWindow(
        title=title,
        description=description,
        type=FreezeType.FREEZE_TYPE_SOFT if soft else FreezeType.FREEZE_TYPE_HARD,
        scope_type=FreezeScope(_SCOPES[scope]),
        scope_ids=list(environments or services),
        starts_at=starts,
        ends_at=ends,
        timezone=timezone,
        cron_start=cron_start,
        cron_end=cron_end,
    )
    with state.client() as client, _admin_only("add a freeze window"):
        created = client.create_freeze_window(window, new_environment=new_environment)
    _print_window(state, created)


@freeze.command("list")
@pass_state
def list_windows(state: AppState) -> None:
    """Every freeze window, newest first."""
    with state.client() as client:
        windows = client.list_freeze_windows()
    if state.json:
        emit_json(windows)
        return
    if not windows:
        click.echo("no freeze windows")
        return
    click.echo(
        render_table(
            [
                (
                    w.title,
                    "soft" if w.type.value.endswith("SOFT") else "hard",
                    _scope_text(w),
                    w.starts_at,
                    w.ends_at,
                    f"{w.cron_start} -> {w.cron_end} {w.timezone}" if w.cron_start else "",
                    w.id,
                )
                for w in windows
            ],
            ["title", "type", "scope", "starts", "ends", "recurs", "id"],
        )
    )


@freeze.command("remove")
@click.argument("window_id")
@pass_state
def remove(state: AppState, window_id: str) -> None:
    """Delete a freeze window. Exit 6 when there is none with this id."""
    with state.client() as client, _admin_only(f"remove freeze window {window_id}"):
        client.delete_freeze_window(window_id)
    if state.json:
        emit_json({"removed": True, "id": window_id})
    else:
        click.echo(f"removed freeze window {window_id}")
