"""DORA's four keys of one service and environment over a window, computed from events,
counted as DORA, fourkeys and GitLab count them (docs/dora.md says it for people).

- A deployment is a ``deployment`` event that ended: status success, failure or error
  (``error`` is a failed deployment, as ``failure``). It ended at its own
  ``attributes.endDate``; else, for an event updated in place, at ``metadata.createdAt +
  duration``; for a closing event linked by ``relatedId`` (created when the deployment
  ended), at ``metadata.createdAt``. Imported history keeps its dates.
- It belongs to the window when it ended within ``[start, end]`` (both inclusive).
- Deployment frequency: successful deployments per day (window length in days, at least
  one second). ``deployments`` counts every ended one (the change failure denominator).
- Lead time for changes: for each change (``attributes.changes``), from its
  ``committedAt`` to the end of the first successful deployment that shipped it (by change
  id; a change without id is its own). A later deployment of the same change does not
  count it again. A change committed after that deployment ended is left out and counted in
  ``changesCommittedAfterDeployment`` (a data problem). Failed deployments ship nothing.
- Change failure rate: failed (failure, error) / ended deployments.
- Failed deployment recovery time: per failure episode, from the end of the first failed
  deployment of a run of failures to the end of the next successful deployment (even after
  the window). An episode belongs to the window its first failure ended in; one not
  recovered yet has no recovery time.
- Runs of failures and change ids are followed back ``HISTORY`` before the previous period.
- Percentiles interpolate linearly between the closest ranks (as ``numpy.percentile``).
- Ratings: each key by the 2023 Accelerate State of DevOps report's clusters
  (``THRESHOLDS``); ``level`` is the lowest rating among the keys that have a value.
- ``keys.*.previous``: the same key over the period of the same length just before.
- Incident-based recovery, a second figure (not rated): incidents of the service and
  environment resolved (close, done) in the window, from opened (startDate, else
  createdAt) to resolved (endDate, else createdAt + duration).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, or_, select

from tracker_ci.models import (
    DoraKey,
    DoraKeys,
    DoraLevel,
    DoraReport,
    Event,
    EventType,
    Percentiles,
    Status,
)
from tracker_server.tables import events

DAY = 86400.0
#: Per key, the (inclusive) upper bounds of elite, high and medium; anything beyond is low.
#: Deployment frequency is the other way round: the lower bounds in deployments per day.
#: From the 2023 Accelerate State of DevOps report (DORA): elite deploys on demand (daily
#: or more), high between daily and weekly, medium between weekly and monthly; lead time
#: under a day, a week, a month; change failure rate 5 %, 10 %, 15 % (low: 64 %); recovery
#: under an hour, a day, a week.
THRESHOLDS = {
    "deployments_per_day": (1.0, 1 / 7, 1 / 30),  # daily or more, weekly, monthly
    "lead_time": (DAY, 7 * DAY, 30 * DAY),  # a day, a week, a month
    "change_failure_rate": (0.05, 0.10, 0.15),
    "recovery_time": (3600.0, DAY, 7 * DAY),  # an hour, a day, a week
}
RATED_BY = "DORA, 2023 Accelerate State of DevOps report"
_LEVELS = (DoraLevel.elite, DoraLevel.high, DoraLevel.medium, DoraLevel.low)
#: The statuses of an ended deployment, and those of a failed one.
ENDED = (Status.success.value, Status.failure.value, Status.error.value)
FAILED = (Status.failure.value, Status.error.value)
#: A deployment without endDate is looked up this far before the window (its createdAt is
#: its start): deployments running longer than this are counted only with an endDate.
LONGEST_DEPLOYMENT = timedelta(days=1)
#: How far before the previous period runs of failures and change ids are followed back.
HISTORY = timedelta(days=90)
#: The first and last moments a window may reach (years 1 and 9999, UTC).
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
_TICK = timedelta(microseconds=1)


def shifted(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta``, held within years 1 to 9999 (a window may span them all)."""
    if delta >= timedelta(0):
        return moment + delta if LATEST - moment >= delta else LATEST
    return moment + delta if moment - EARLIEST >= -delta else EARLIEST


@dataclass(frozen=True)
class Change:
    """A shipped change: its id ("" for none: never the same as another) and commit time."""

    id: str = ""
    committed_at: datetime | None = None


@dataclass(frozen=True)
class Deployment:
    """An ended deployment: when it ended, whether it succeeded, what it shipped."""

    ended_at: datetime
    succeeded: bool
    changes: tuple[Change, ...] = field(default=())


@dataclass(frozen=True)
class History:
    """Ended deployments oldest first, each change at its first successful deployment
    (``(deployment end, commit)``), and the failure episodes (``(first failure end,
    recovering success end or None)``)."""

    deployments: list[Deployment]
    first_shipped: list[tuple[datetime, datetime]]
    episodes: list[tuple[datetime, datetime | None]]


def history(deployments: Sequence[Deployment]) -> History:
    """Order the deployments once; find each change's first shipping and each episode."""
    ordered = sorted(deployments, key=lambda d: d.ended_at)
    seen: set[str] = set()
    first_shipped: list[tuple[datetime, datetime]] = []
    episodes: list[tuple[datetime, datetime | None]] = []
    failing_since: datetime | None = None
    for deployment in ordered:
        if not deployment.succeeded:
            failing_since = failing_since or deployment.ended_at
            continue
        if failing_since is not None:
            episodes.append((failing_since, deployment.ended_at))
            failing_since = None
        for change in deployment.changes:
            if change.id and change.id in seen:
                continue
            seen.add(change.id)
            if change.committed_at is not None:
                first_shipped.append((deployment.ended_at, change.committed_at))
    if failing_since is not None:
        episodes.append((failing_since, None))
    return History(ordered, first_shipped, episodes)


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


def _values(report: DoraReport) -> dict[str, float | None]:
    """The rated value of each key (None: no value), by ``THRESHOLDS`` name."""
    return {
        "deployments_per_day": report.deployments_per_day if report.deployments else None,
        "lead_time": report.lead_time_seconds.p50,
        "change_failure_rate": report.change_failure_rate,
        "recovery_time": report.recovery_time_seconds.p50,
    }


def _ratings(report: DoraReport) -> dict[str, int]:
    return {
        name: _rate(value, THRESHOLDS[name], higher=name == "deployments_per_day")
        for name, value in _values(report).items()
    }


def level_of(report: DoraReport) -> DoraLevel | None:
    """The lowest rating among the keys with a value; None without deployments."""
    if report.deployments == 0:
        return None
    return _LEVELS[max(_ratings(report).values())]


def _key(value: float | None, rating: int, previous: float | None) -> DoraKey:
    change = None if value is None or previous is None else round(value - previous, 4)
    return DoraKey(
        value=value,
        rating=_LEVELS[rating] if rating >= 0 else None,
        previous=previous,
        change=change,
    )


def _keys(report: DoraReport, previous: DoraReport | None) -> DoraKeys:
    ratings = _ratings(report)
    values = _values(report)
    before = _values(previous) if previous is not None else dict.fromkeys(values)
    return DoraKeys(
        deployment_frequency=_key(
            values["deployments_per_day"],
            ratings["deployments_per_day"],
            before["deployments_per_day"],
        ),
        lead_time=_key(values["lead_time"], ratings["lead_time"], before["lead_time"]),
        change_failure_rate=_key(
            values["change_failure_rate"],
            ratings["change_failure_rate"],
            before["change_failure_rate"],
        ),
        recovery_time=_key(
            values["recovery_time"], ratings["recovery_time"], before["recovery_time"]
        ),
    )


def _within(moment: datetime, start: datetime, end: datetime) -> bool:
    return start <= moment <= end


def _window(
    found: History, *, service: str, environment: str, start: datetime, end: datetime
) -> DoraReport:
    """The report of ``[start, end]`` from a history, without the previous period."""
    inside = [d for d in found.deployments if _within(d.ended_at, start, end)]
    successful = sum(1 for d in inside if d.succeeded)
    failed = len(inside) - successful
    shipped = [
        (ended - committed).total_seconds()
        for ended, committed in found.first_shipped
        if _within(ended, start, end)
    ]
    lead_times = [seconds for seconds in shipped if seconds >= 0]
    episodes = [(first, back) for first, back in found.episodes if _within(first, start, end)]
    recoveries = [(back - first).total_seconds() for first, back in episodes if back is not None]
    days = max((end - start + _TICK).total_seconds(), 1.0) / DAY
    report = DoraReport(
        service=service,
        environment=environment,
        start_date=start,
        end_date=end,
        deployments=len(inside),
        successful_deployments=successful,
        failed_deployments=failed,
        deployments_per_day=round(successful / days, 4),
        changes=len(lead_times),
        changes_committed_after_deployment=len(shipped) - len(lead_times),
        lead_time_seconds=_percentiles(lead_times),
        change_failure_rate=round(failed / len(inside), 4) if inside else None,
        failure_episodes=len(episodes),
        recovery_time_seconds=_percentiles(recoveries),
        rated_by=RATED_BY,
    )
    report.level = level_of(report)
    return report


def previous_period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The period of the same length just before ``[start, end]``."""
    return shifted(start, -(end - start + _TICK)), shifted(start, -_TICK)


def compute(
    deployments: Sequence[Deployment] | History,
    *,
    service: str,
    environment: str,
    start: datetime,
    end: datetime,
    compare: bool = True,
) -> DoraReport:
    """The report of a window from every ended deployment that might matter (any order),
    with each key's rating and (``compare``) its change against the previous period."""
    found = deployments if isinstance(deployments, History) else history(deployments)
    common = {"service": service, "environment": environment}
    report = _window(found, start=start, end=end, **common)
    previous = None
    if compare:
        previous_start, previous_end = previous_period(start, end)
        previous = _window(found, start=previous_start, end=previous_end, **common)
        report.previous_start_date, report.previous_end_date = previous_start, previous_end
    report.keys = _keys(report, previous)
    return report


def _ended_at(row: object) -> datetime:
    end_date = getattr(row, "end_date", None)
    if end_date is not None:
        return end_date  # type: ignore[no-any-return]
    created_at: datetime = getattr(row, "created_at")  # noqa: B009
    duration = getattr(row, "duration_seconds", None)
    if duration is not None and not getattr(row, "related_id", ""):
        return shifted(created_at, timedelta(seconds=duration))
    return created_at


def event_ended_at(event: Event) -> datetime | None:
    """When a deployment event ended, by the same rule as the report (None: unknown)."""
    metadata = event.metadata
    if event.attributes.end_date is not None:
        return event.attributes.end_date
    if metadata.created_at is None:
        return None
    if metadata.duration is not None and not event.attributes.related_id:
        return shifted(metadata.created_at, metadata.duration)
    return metadata.created_at


def lead_times(event: Event) -> list[float]:
    """Seconds from each shipped change's commit to a successful deployment's end (a change
    committed after the deployment ended is a data problem, left out)."""
    ended = event_ended_at(event)
    if ended is None or event.attributes.status != Status.success:
        return []
    return [
        seconds
        for change in event.attributes.changes
        if change.committed_at is not None
        and (seconds := (ended - change.committed_at).total_seconds()) >= 0
    ]


def _changes(changes: object) -> tuple[Change, ...]:
    from tracker_ci.models import ShippedChange

    found = []
    for change in changes if isinstance(changes, list) else []:
        shipped = ShippedChange.model_validate(change)
        found.append(Change(id=shipped.id, committed_at=shipped.committed_at))
    return tuple(found)


def load_deployments(
    conn: Connection, *, service: str, environment: str, since: datetime
) -> list[Deployment]:
    """Ended deployments of a service and environment that may have ended after ``since``."""
    earliest_start = shifted(since, -LONGEST_DEPLOYMENT)
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
        events.c.status.in_(ENDED),
        or_(
            events.c.end_date >= since,
            and_(events.c.end_date.is_(None), events.c.created_at >= earliest_start),
        ),
    )
    return [
        Deployment(
            ended_at=_ended_at(row),
            succeeded=row.status == Status.success.value,
            changes=_changes(row.changes) if row.status == Status.success.value else (),
        )
        for row in conn.execute(query)
    ]


#: The statuses of a resolved incident.
RESOLVED = (Status.close.value, Status.done.value)


def incident_recoveries(
    conn: Connection, *, service: str, environment: str, start: datetime, end: datetime
) -> list[float]:
    """Seconds from opened to resolved of each incident resolved within ``[start, end]``."""
    query = select(
        events.c.start_date,
        events.c.end_date,
        events.c.created_at,
        events.c.duration_seconds,
        events.c.related_id,
    ).where(
        events.c.service == service,
        events.c.environment == environment,
        events.c.type == EventType.incident.value,
        events.c.status.in_(RESOLVED),
        or_(
            events.c.end_date >= start,
            and_(
                events.c.end_date.is_(None),
                events.c.created_at >= shifted(start, -LONGEST_DEPLOYMENT),
            ),
        ),
    )
    found = []
    for row in conn.execute(query):
        resolved = _ended_at(row)
        opened = row.start_date or row.created_at
        if start <= resolved <= end and resolved >= opened:
            found.append((resolved - opened).total_seconds())
    return found


def _with_incidents(
    report: DoraReport, conn: Connection, *, service: str, environment: str
) -> DoraReport:
    assert report.start_date is not None and report.end_date is not None
    recoveries = incident_recoveries(
        conn,
        service=service,
        environment=environment,
        start=report.start_date,
        end=report.end_date,
    )
    report.incidents_resolved = len(recoveries)
    report.incident_recovery_seconds = _percentiles(recoveries)
    return report


def _load_history(
    conn: Connection, *, service: str, environment: str, start: datetime, end: datetime
) -> History:
    """What a window needs: its previous period and ``HISTORY`` before that."""
    since = shifted(previous_period(start, end)[0], -HISTORY)
    return history(load_deployments(conn, service=service, environment=environment, since=since))


def dora_report(
    conn: Connection, *, service: str, environment: str, start: datetime, end: datetime
) -> DoraReport:
    """The DORA report of a service and environment for ``[start, end]``."""
    found = _load_history(conn, service=service, environment=environment, start=start, end=end)
    report = compute(found, service=service, environment=environment, start=start, end=end)
    return _with_incidents(report, conn, service=service, environment=environment)


def slices(
    deployments: Sequence[Deployment] | History,
    *,
    service: str,
    environment: str,
    start: datetime,
    end: datetime,
    length: timedelta,
) -> list[DoraReport]:
    """One report per ``length`` slice of the window, oldest first (daily counts, weekly
    trends), each slice ``[slice start, next slice start)`` and the last one up to ``end``;
    rated, without the previous period."""
    found = deployments if isinstance(deployments, History) else history(deployments)
    reports: list[DoraReport] = []
    slice_start = start
    while slice_start <= end and len(reports) < 1000:
        following = shifted(slice_start, length)
        slice_end = end if following == LATEST else min(following - _TICK, end)
        reports.append(
            compute(
                found,
                service=service,
                environment=environment,
                start=slice_start,
                end=slice_end,
                compare=False,
            )
        )
        if following == LATEST:  # the last slice reached the end of time
            break
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
    found = _load_history(conn, service=service, environment=environment, start=start, end=end)
    report = compute(found, service=service, environment=environment, start=start, end=end)
    return Insights(
        report=_with_incidents(report, conn, service=service, environment=environment),
        daily=slices(
            found,
            service=service,
            environment=environment,
            start=start,
            end=end,
            length=timedelta(days=1),
        ),
        weekly=slices(
            found,
            service=service,
            environment=environment,
            start=start,
            end=end,
            length=timedelta(days=7),
        ),
    )
