"""DORA's four keys of one service and environment over a window, computed from events.

- A deployment is a ``deployment`` event that ended (status success or failure). It ended
  at its own ``attributes.endDate``; else, for an event updated in place, at
  ``metadata.createdAt + duration``; for a closing event linked by ``relatedId`` (created
  when the deployment ended), at ``metadata.createdAt``. Imported history keeps its dates.
- It belongs to the window when it ended within ``[start, end]`` (both inclusive).
- Lead time for changes: a successful deployment's end minus each shipped change's
  ``committedAt`` (``attributes.changes``); failed deployments deliver nothing.
- Change failure rate: failed / ended deployments.
- Failed deployment recovery time: from a failed deployment's end to the end of the next
  successful deployment (of the same service and environment, even after the window);
  a failure not recovered yet has no recovery time.
- Percentiles interpolate linearly between the closest ranks (as ``numpy.percentile``).
- ``level``: each key is rated by the DORA report's thresholds (``THRESHOLDS``); the
  level is the lowest rating among the keys that have a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, or_, select

from tracker_ci.models import DoraLevel, DoraReport, Event, EventType, Percentiles, Status
from tracker_server.tables import events

DAY = 86400.0
#: Per key, the (inclusive) upper bounds of elite, high and medium; anything beyond is low.
#: Deployment frequency is the other way round: the lower bounds in deployments per day.
THRESHOLDS = {
    "deployments_per_day": (1.0, 1 / 7, 1 / 30),  # daily or more, weekly, monthly
    "lead_time": (DAY, 7 * DAY, 30 * DAY),  # a day, a week, a month
    "change_failure_rate": (0.05, 0.10, 0.15),
    "recovery_time": (3600.0, DAY, 7 * DAY),  # an hour, a day, a week
}
_LEVELS = (DoraLevel.elite, DoraLevel.high, DoraLevel.medium, DoraLevel.low)
#: A deployment without endDate is looked up this far before the window (its createdAt is
#: its start): deployments running longer than this are counted only with an endDate.
LONGEST_DEPLOYMENT = timedelta(days=1)


@dataclass(frozen=True)
class Deployment:
    """An ended deployment: when it ended, whether it succeeded, what it shipped."""

    ended_at: datetime
    succeeded: bool
    committed_at: tuple[datetime, ...] = field(default=())


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` percentile (0..1) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * fraction
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _percentiles(values: Sequence[float]) -> Percentiles:
    return Percentiles(p50=percentile(values, 0.5), p90=percentile(values, 0.9))


def _rate(value: float | None, bounds: tuple[float, float, float], *, higher: bool) -> int:
    """The index in ``_LEVELS`` of a key's value (-1: no value)."""
    if value is None:
        return -1
    for index, bound in enumerate(bounds):
        if (value >= bound) if higher else (value <= bound):
            return index
    return len(bounds)


def level_of(report: DoraReport) -> DoraLevel | None:
    """The lowest rating among the keys with a value; None without deployments."""
    if report.deployments == 0:
        return None
    ratings = [
        _rate(report.deployments_per_day, THRESHOLDS["deployments_per_day"], higher=True),
        _rate(report.lead_time_seconds.p50, THRESHOLDS["lead_time"], higher=False),
        _rate(report.change_failure_rate, THRESHOLDS["change_failure_rate"], higher=False),
        _rate(report.recovery_time_seconds.p50, THRESHOLDS["recovery_time"], higher=False),
    ]
    return _LEVELS[max(ratings)]


def compute(
    deployments: Sequence[Deployment],
    *,
    service: str,
    environment: str,
    start: datetime,
    end: datetime,
) -> DoraReport:
    """The report of a window from every ended deployment that might matter (any order)."""
    ordered = sorted(deployments, key=lambda d: d.ended_at)
    inside = [d for d in ordered if start <= d.ended_at <= end]
    failures = [d for d in inside if not d.succeeded]
    lead_times = [
        (d.ended_at - committed).total_seconds()
        for d in inside
        if d.succeeded
        for committed in d.committed_at
    ]
    recoveries: list[float] = []
    for failed in failures:
        recovered = next((d for d in ordered if d.succeeded and d.ended_at > failed.ended_at), None)
        if recovered is not None:
            recoveries.append((recovered.ended_at - failed.ended_at).total_seconds())
    days = max((end - start).total_seconds(), 1.0) / DAY
    report = DoraReport(
        service=service,
        environment=environment,
        start_date=start,
        end_date=end,
        deployments=len(inside),
        deployments_per_day=round(len(inside) / days, 4),
        lead_time_seconds=_percentiles(lead_times),
        change_failure_rate=round(len(failures) / len(inside), 4) if inside else None,
        recovery_time_seconds=_percentiles(recoveries),
    )
    report.level = level_of(report)
    return report


def _ended_at(row: object) -> datetime:
    end_date = getattr(row, "end_date", None)
    if end_date is not None:
        return end_date  # type: ignore[no-any-return]
    created_at: datetime = getattr(row, "created_at")  # noqa: B009
    duration = getattr(row, "duration_seconds", None)
    if duration is not None and not getattr(row, "related_id", ""):
        return created_at + timedelta(seconds=duration)
    return created_at


def event_ended_at(event: Event) -> datetime | None:
    """When a deployment event ended, by the same rule as the report (None: unknown)."""
    metadata = event.metadata
    if event.attributes.end_date is not None:
        return event.attributes.end_date
    if metadata.created_at is None:
        return None
    if metadata.duration is not None and not event.attributes.related_id:
        return metadata.created_at + metadata.duration
    return metadata.created_at


def lead_times(event: Event) -> list[float]:
    """Seconds from each shipped change's commit to a successful deployment's end."""
    ended = event_ended_at(event)
    if ended is None or event.attributes.status != Status.success:
        return []
    return [
        (ended - change.committed_at).total_seconds()
        for change in event.attributes.changes
        if change.committed_at is not None
    ]


def _committed_at(changes: object) -> tuple[datetime, ...]:
    from tracker_ci.models import ShippedChange

    moments = []
    for change in changes if isinstance(changes, list) else []:
        committed = ShippedChange.model_validate(change).committed_at
        if committed is not None:
            moments.append(committed)
    return tuple(moments)


def load_deployments(
    conn: Connection, *, service: str, environment: str, since: datetime
) -> list[Deployment]:
    """Ended deployments of a service and environment that may have ended after ``since``."""
    query = select(
        events.c.status,
        events.c.end_date,
        events.c.created_at,
        events.c.duration_seconds,
        events.c.related_id,
        events.c.changes,
    ).where(
        events.c.service == service,
        events.c.environment == environment,
        events.c.type == EventType.deployment.value,
        events.c.status.in_([Status.success.value, Status.failure.value]),
        or_(
            events.c.end_date >= since,
            and_(events.c.end_date.is_(None), events.c.created_at >= since - LONGEST_DEPLOYMENT),
        ),
    )
    return [
        Deployment(
            ended_at=_ended_at(row),
            succeeded=row.status == Status.success.value,
            committed_at=_committed_at(row.changes) if row.status == Status.success.value else (),
        )
        for row in conn.execute(query)
    ]


def dora_report(
    conn: Connection, *, service: str, environment: str, start: datetime, end: datetime
) -> DoraReport:
    """The DORA report of a service and environment for ``[start, end]``."""
    deployments = load_deployments(conn, service=service, environment=environment, since=start)
    return compute(deployments, service=service, environment=environment, start=start, end=end)


def slices(
    deployments: Sequence[Deployment],
    *,
    service: str,
    environment: str,
    start: datetime,
    end: datetime,
    length: timedelta,
) -> list[DoraReport]:
    """One report per ``length`` slice of the window, oldest first (daily counts, weekly
    trends), each slice ``[slice start, next slice start)`` and the last one up to ``end``."""
    reports: list[DoraReport] = []
    slice_start = start
    while slice_start <= end and len(reports) < 1000:
        following = slice_start + length
        slice_end = min(following - timedelta(microseconds=1), end)
        reports.append(
            compute(
                deployments,
                service=service,
                environment=environment,
                start=slice_start,
                end=slice_end,
            )
        )
        slice_start = following
    return reports


@dataclass(frozen=True)
class Insights:
    """The window's report, and its daily and weekly slices."""

    report: DoraReport
    daily: list[DoraReport]
    weekly: list[DoraReport]


def insights(
    conn: Connection, *, service: str, environment: str, start: datetime, end: datetime
) -> Insights:
    """The report of ``[start, end]`` with its days and weeks, from one read."""
    deployments = load_deployments(conn, service=service, environment=environment, since=start)
    common = {"service": service, "environment": environment, "start": start, "end": end}
    return Insights(
        report=compute(deployments, **common),  # type: ignore[arg-type]
        daily=slices(deployments, length=timedelta(days=1), **common),  # type: ignore[arg-type]
        weekly=slices(deployments, length=timedelta(days=7), **common),  # type: ignore[arg-type]
    )
