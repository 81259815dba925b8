"""``tracker-ci dora``: DORA's four keys of a service and environment (bundled server)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from tracker_ci.commands.common import (
    AppState,
    environment_option,
    pass_state,
    require,
    service_option,
)
from tracker_ci.output import emit_json, format_seconds, render_summary

__all__ = ["dora"]

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGO = re.compile(r"^(\d+)([mhdw])$")


class When(click.ParamType):
    """A moment: ``30d`` / ``12h`` / ``2w`` / ``90m`` ago, or a date / UTC timestamp.

    With ``end_of_day`` a bare date means the end of that day (an inclusive ``--until``,
    as the API's ``end_date``).
    """

    name = "when"

    def __init__(self, *, end_of_day: bool = False) -> None:
        self.end_of_day = end_of_day

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        match = _AGO.match(text)
        if match:
            seconds = int(match.group(1)) * _UNITS[match.group(2)]
            return datetime.now(UTC) - timedelta(seconds=seconds)
        for layout in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S"):
            try:
                moment = datetime.strptime(text, layout).replace(tzinfo=UTC)
            except ValueError:
                continue
            if self.end_of_day and layout == "%Y-%m-%d":
                return moment + timedelta(days=1, microseconds=-1)
            return moment
        self.fail(
            f"{text!r} is neither a duration ago (30d, 12h, 2w, 90m) nor a date "
            "(2026-01-31) or UTC timestamp (2026-01-31T12:00:00Z)",
            param,
            ctx,
        )


def _percentiles(value: Any) -> str:
    if value.p50 is None:
        return "no data"
    return f"median {format_seconds(value.p50)}, p90 {format_seconds(value.p90)}"


def _signed_seconds(seconds: float) -> str:
    """``+2h00m00s`` / ``-47h00m00s``: a change of a duration, its sign first."""
    return ("-" if seconds < 0 else "+") + format_seconds(abs(seconds))


def _rated(key: Any, show: Any) -> str:
    """`` (rating; previous X, change Y)`` after a key's value."""
    rating = key.rating.value if key.rating else "not rated"
    if key.previous is None:
        return f" ({rating}; previous period: no data)"
    change = _signed_seconds(key.change) if show is None else show(key.change, signed=True)
    previous = format_seconds(key.previous) if show is None else show(key.previous)
    return f" ({rating}; previous period {previous}, change {change})"


def _per_day(value: float, *, signed: bool = False) -> str:
    return f"{value:+g}" if signed else f"{value:g}"


def _percent(value: float, *, signed: bool = False) -> str:
    return f"{value * 100:+.1f} pt" if signed else f"{value * 100:.1f} %"


def _lines(report: Any) -> list[tuple[str, str]]:
    keys = report.keys
    rate = report.change_failure_rate
    late = report.changes_committed_after_deployment
    return [
        ("service", f"{report.service} in {report.environment}"),
        ("window", f"{report.start_date:%Y-%m-%d %H:%M}Z to {report.end_date:%Y-%m-%d %H:%M}Z"),
        (
            "deployments",
            f"{report.deployments} ({report.successful_deployments} successful, "
            f"{report.failed_deployments} failed)",
        ),
        (
            "deployment frequency",
            f"{report.deployments_per_day:g} successful per day"
            + _rated(keys.deployment_frequency, _per_day),
        ),
        (
            "lead time for changes",
            _percentiles(report.lead_time_seconds) + _rated(keys.lead_time, None),
        ),
        (
            "change failure rate",
            ("no data" if rate is None else f"{rate * 100:.1f} %")
            + _rated(keys.change_failure_rate, _percent),
        ),
        (
            "failed deployment recovery time",
            _percentiles(report.recovery_time_seconds) + _rated(keys.recovery_time, None),
        ),
        ("failure episodes", str(report.failure_episodes)),
        (
            "incident recovery time",
            f"{_percentiles(report.incident_recovery_seconds)} over "
            f"{report.incidents_resolved} resolved incident"
            f"{'' if report.incidents_resolved == 1 else 's'} (not rated)"
            if report.incidents_resolved
            else "",
        ),
        ("changes", str(report.changes)),
        (
            "data problems",
            f"{late} change{'' if late == 1 else 's'} committed after its deployment "
            "(left out of the lead time)"
            if late
            else "",
        ),
        ("level", report.level.value if report.level else "no deployments"),
        ("rated by", report.rated_by),
    ]


@click.command(
    epilog="""\b
Examples:
  tracker-ci dora -s api -e production --since 30d
  tracker-ci dora -s api -e production --since 2026-01-01 --until 2026-03-31 -o json
"""
)
@service_option
@environment_option
@click.option(
    "--since", type=When(), default="30d", show_default=True, help="Window start: 30d or a date."
)
@click.option(
    "--until",
    type=When(end_of_day=True),
    default=None,
    help="Window end, inclusive: a date is the whole day (default: now).",
)
@pass_state
def dora(
    state: AppState,
    service: str | None,
    environment: Any,
    since: datetime,
    until: datetime | None,
) -> None:
    """DORA's four keys over a window, computed by the bundled server: deployment
    frequency, lead time for changes, change failure rate, failed deployment recovery
    time, and the performance level.

    Counted as DORA counts them (docs/dora.md): successful deployments per day; each
    change once, at its first successful deployment; error = failed; recovery per run of
    failures. Each key is rated and compared with the previous period."""
    from tracker_ci.models import Environment

    service = require(service, state, "service", "--service")
    # The documented default (production), as every command: flag > env > config > default.
    environment = Environment.parse(require(environment, state, "environment", "--environment"))
    with state.client() as client:
        report = client.dora(service=service, environment=environment.value, start=since, end=until)
    if state.json:
        emit_json(report)
        return
    click.echo(render_summary(_lines(report)))
