"""``tracker-ci dora``: DORA's four keys of a service and environment (bundled server)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from tracker_ci.commands.common import AppState, pass_state
from tracker_ci.output import emit_json, format_seconds, render_summary

__all__ = ["dora"]

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGO = re.compile(r"^(\d+)([mhdw])$")


class When(click.ParamType):
    """A moment: ``30d`` / ``12h`` / ``2w`` / ``90m`` ago, or a date / UTC timestamp."""

    name = "when"

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
                return datetime.strptime(text, layout).replace(tzinfo=UTC)
            except ValueError:
                continue
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


@click.command(
    epilog="""\b
Examples:
  tracker-ci dora -s api -e production --since 30d
  tracker-ci dora -s api -e production --since 2026-01-01 --until 2026-03-31 -o json
"""
)
@click.option("-s", "--service", required=True, envvar="TRACKER_SERVICE", help="The service.")
@click.option(
    "-e", "--environment", required=True, envvar="TRACKER_ENVIRONMENT", help="The environment."
)
@click.option(
    "--since", type=When(), default="30d", show_default=True, help="Window start: 30d or a date."
)
@click.option("--until", type=When(), default=None, help="Window end (default: now).")
@pass_state
def dora(
    state: AppState,
    service: str,
    environment: str,
    since: datetime,
    until: datetime | None,
) -> None:
    """DORA's four keys over a window, computed by the bundled server: deployment
    frequency, lead time for changes, change failure rate, failed deployment recovery
    time, and the performance level."""
    with state.client() as client:
        report = client.dora(service=service, environment=environment, start=since, end=until)
    if state.json:
        emit_json(report)
        return
    rate = report.change_failure_rate
    click.echo(
        render_summary(
            [
                ("service", f"{report.service} in {report.environment}"),
                (
                    "window",
                    f"{report.start_date:%Y-%m-%d %H:%M}Z to {report.end_date:%Y-%m-%d %H:%M}Z",
                ),
                ("deployments", str(report.deployments)),
                ("deployment frequency", f"{report.deployments_per_day:g} per day"),
                ("lead time for changes", _percentiles(report.lead_time_seconds)),
                ("change failure rate", "no data" if rate is None else f"{rate * 100:.1f} %"),
                ("failed deployment recovery time", _percentiles(report.recovery_time_seconds)),
                ("level", report.level.value if report.level else "no deployments"),
            ]
        )
    )
