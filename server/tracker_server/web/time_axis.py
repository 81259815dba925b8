"""The time-axis pages: lanes per service x environment over a day or a week
(``/lanes?span=day|week&at=YYYY-MM-DD``) and a month's calendar (``/calendar?month=YYYY-MM``),
with the rows they read.

Bounded at any table size: only the window (and ``LOOKBACK`` before it) is read, through
the time indexes (events by ``start_date`` and by ``created_at``, ``ROW_LIMIT`` rows at most,
said when reached); the month's counts are grouped by the database over the month's rows;
lock holds of the past come from the journal only when the window holds few enough changes
(``JOURNAL_SCAN``); what was read is kept until something changes (``_kept``). The layout
itself is ``timeline_views`` (pure functions).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, TypeVar, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import Connection, bindparam, case, func, select, union_all

from tracker_ci.models import Environment, EventType, Lock
from tracker_server.deps import DatabaseDep, Now, require_reader
from tracker_server.domain import InvalidInput
from tracker_server.store import locks as lock_store
from tracker_server.tables import events, journal
from tracker_server.validation import parse_enum
from tracker_server.web import catalog_view, live, queries
from tracker_server.web import timeline_views as views
from tracker_server.web.render import page

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_reader)])
T = TypeVar("T")

Text = Annotated[str, Query(max_length=200)]

#: At most this many events are read for one window (then the view says it is capped).
ROW_LIMIT = 3000
#: Bars starting this long before the window are read (those still running when it
#: starts); an event started earlier is drawn when still open (incidents, ``OPEN_LIMIT``).
LOOKBACK = timedelta(hours=6)
#: Incidents opened before the window and still open are drawn too (at most this many).
OPEN_LIMIT = 50
#: Past lock holds are read from the journal when the window holds at most this many
#: changes; beyond, only the locks held now are drawn (and the page says so).
JOURNAL_SCAN = 20_000
COLUMNS = (
    "id",
    "title",
    "type",
    "service",
    "environment",
    "status",
    "created_at",
    "start_date",
    "end_date",
    "duration_seconds",
    "related_id",
)
DEPLOYMENT = EventType.deployment.value
KINDS = (DEPLOYMENT, EventType.incident.value)
RUNNING = ("start", "in_progress", "planned", "waiting_approval")
INCIDENT_OPEN = queries.INCIDENT_OPEN_STATUSES
LOCK_TAKEN = ("lock_acquired",)
LOCK_GONE = ("lock_released", "lock_evicted")


# ------------------------------------------------------------------ reading
#: What a window read (its rows, a month's counts) is kept while nothing changed: the
#: journal's newest id and the largest event id are the same (one index seek each), and
#: for at most CACHE_SECONDS (writes made outside the server). Several screens following
#: the same lanes, and a person moving back and forth, read each window once per change.
CACHE_SECONDS = 60.0
CACHE_SIZE = 16
_cache: OrderedDict[tuple[Any, ...], tuple[float, Any]] = OrderedDict()
_cache_lock = threading.Lock()


def _kept(conn: Connection, what: tuple[Any, ...], read: Callable[[], T]) -> T:
    """``read()``, or what it answered for the same ``what`` since the last change."""
    versions = conn.execute(
        select(select(func.max(journal.c.id)).scalar_subquery(), func.max(events.c.id))
    ).one()
    key = (conn.engine.url.render_as_string(hide_password=True), *versions, *what)
    clock = time.monotonic()
    with _cache_lock:
        found = _cache.get(key)
        if found is not None and clock - found[0] < CACHE_SECONDS:
            _cache.move_to_end(key)
            return cast(T, found[1])
    value = read()
    with _cache_lock:
        _cache[key] = (clock, value)
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def _filters(service: str, environment: str) -> list[Any]:
    found = []
    if service:
        found.append(events.c.service == service)
    if environment:
        found.append(events.c.environment == environment)
    return found


def _item(row: Any, now: datetime) -> views.Item:
    """A deployment or incident row as an item: from its start (startDate, else createdAt)
    to its end (endDate; else createdAt + duration; else now while it runs)."""
    (
        event_id,
        title,
        kind,
        service,
        environment,
        status,
        created,
        started,
        ended,
        duration,
        related,
    ) = row
    start = started or created
    end = ended
    if end is None and duration is not None and not related:
        end = created + timedelta(seconds=float(duration))
    running = end is None and status in (RUNNING if kind == DEPLOYMENT else INCIDENT_OPEN)
    if end is None:
        end = max(now, start) if running else start
    return views.Item(
        kind=kind,
        id=event_id,
        title=title or "",
        service=service,
        environment=environment,
        status=status,
        start=start,
        end=end if end > start else start,
        open=running,
        href=f"/events/{event_id}",
    )


def _merged(rows: list[Any], now: datetime) -> list[views.Item]:
    """Items, a closing event (``relatedId``) folded into the event it closes when both are
    read: the bar ends when the closing one was created, with its status."""
    by_id = {row.id: row for row in rows}
    closing = {
        row.related_id: row
        for row in rows
        if row.related_id in by_id and _closes(row, by_id[row.related_id])
    }
    found = []
    for row in rows:
        if closing.get(row.related_id) is row:
            continue
        item = _item(row, now)
        closer = closing.get(row.id)
        if closer is not None and item.open:
            ended = closer.end_date or closer.created_at
            item = replace(item, end=max(ended, item.start), status=closer.status, open=False)
        found.append(item)
    return found


def _closes(row: Any, target: Any) -> bool:
    """A closing event: the same kind, service and environment as the event it names (an
    incident naming the deployment that caused it is an incident of its own)."""
    return bool(
        row.type == target.type
        and row.service == target.service
        and row.environment == target.environment
        and row.status not in RUNNING + INCIDENT_OPEN
    )


def window_events(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    service: str = "",
    environment: str = "",
    now: datetime,
) -> tuple[list[views.Item], bool]:
    """Deployments and incidents drawn in ``[start, end)``; False when all were read, True
    when ROW_LIMIT was reached or lanes beyond LANE_CAP were left unread.

    Lanes are services by name: without a service filter, the services are read in that
    order, a batch at a time (:func:`_batch`), until LANE_CAP lanes are found, so a busy
    window reads the rows of the lanes it draws, not the whole window. Each batch is one
    statement (:func:`_batch_statement`), from LOOKBACK before the window; then the
    incidents still open from before (by type, status, createdAt)."""
    since = start - LOOKBACK
    columns = [events.c[name] for name in COLUMNS]
    kinds = [events.c.type.in_(KINDS), *_filters("", environment)]

    def window_rows(names: list[str], limit: int) -> list[Any]:
        found = conn.execute(
            _batch_statement(bool(environment)),
            {"names": names, "since": since, "end": end, "limit": limit}
            | ({"environment": environment} if environment else {}),
        )
        return list(found.all())

    still_open = (
        select(*columns)
        .where(
            events.c.type == EventType.incident.value,
            events.c.status.in_(INCIDENT_OPEN),
            events.c.created_at < since,
            *_filters(service, environment),
        )
        .order_by(events.c.created_at.desc())
        .limit(OPEN_LIMIT)
    )

    def read() -> tuple[list[Any], bool]:
        rows: dict[str, Any] = {}
        capped = False
        lanes: set[tuple[str, str]] = set()
        read_names: list[str] = []
        names = [service] if service else sorted(queries.services(conn), key=str.lower)
        while len(read_names) < len(names):
            batch = names[len(read_names) : len(read_names) + _batch(len(lanes), read_names)]
            room = ROW_LIMIT - len(rows)
            found = sorted(window_rows(batch, room + 1), key=_moment)
            read_names += batch
            if len(found) > room:
                capped, found = True, found[:room]
            for row in found:
                rows.setdefault(row.id, row)
                if _moment(row) >= start:  # drawn whatever its end
                    lanes.add((row.service, row.environment))
            if capped or len(lanes) >= views.LANE_CAP:
                break
        if not capped and len(read_names) < len(names):
            capped = _more_lanes(conn, start, end, read_names, kinds)
        for row in conn.execute(still_open).all():
            rows.setdefault(row.id, row)
        return list(rows.values()), capped

    rows, capped = _kept(conn, ("rows", start, end, service, environment, ROW_LIMIT), read)
    return _merged(rows, now), capped


@functools.cache
def _batch_statement(by_environment: bool) -> Any:
    """One batch's statement (built once: its parameters are bound), two index range
    reads on (service, startDate, createdAt), each ordered and limited on its index: the
    events dated by startDate in ``[since, end)``, those without one by createdAt."""
    columns = [events.c[name] for name in COLUMNS]
    scope: list[Any] = [
        events.c.service.in_(bindparam("names", expanding=True)),
        events.c.type.in_(KINDS),
    ]
    if by_environment:
        scope.append(events.c.environment == bindparam("environment"))
    since: Any = bindparam("since")
    end: Any = bindparam("end")
    limit: Any = bindparam("limit")
    dated = (
        select(*columns)
        .where(*scope, events.c.start_date >= since, events.c.start_date < end)
        .order_by(events.c.start_date, events.c.id)
        .limit(limit)
    )
    undated = (
        select(*columns)
        .where(
            *scope,
            events.c.start_date.is_(None),
            events.c.created_at >= since,
            events.c.created_at < end,
        )
        .order_by(events.c.created_at, events.c.id)
        .limit(limit)
    )
    both = union_all(select(dated.subquery()), select(undated.subquery())).subquery()
    return select(*(both.c[name] for name in COLUMNS))


#: The first batch of services a window reads (then as many as the lanes found so far
#: per service say are needed to reach LANE_CAP, and a few more).
SERVICE_BATCH = 8


def _batch(lanes: int, read: list[str]) -> int:
    """How many services the next batch reads: SERVICE_BATCH first, then enough for the
    lanes still missing at the rate found so far (a quarter more), rounded up to
    SERVICE_BATCH times a power of two: few statement texts, each prepared once
    (PostgreSQL plans a statement it has seen five times once)."""
    if not read:
        return SERVICE_BATCH
    per_service = max(lanes / len(read), 0.25)
    wanted = 1.25 * (views.LANE_CAP - lanes) / per_service
    size = SERVICE_BATCH
    while size < wanted:
        size *= 2
    return size


def _moment(row: Any) -> datetime:
    """Where a row's bar starts: its startDate, else its createdAt."""
    return cast(datetime, row.start_date or row.created_at)


def _more_lanes(
    conn: Connection, start: datetime, end: datetime, read: list[str], kinds: list[Any]
) -> bool:
    """Whether a service not read has an event in the window (the first one found by the
    window's startDate index ends the look, so it is short when there is one)."""
    other = [events.c.service.not_in(read), *kinds]
    for moment in (events.c.start_date, events.c.created_at):
        where = [moment >= start, moment < end]
        if moment is events.c.created_at:
            where.append(events.c.start_date.is_(None))
        if conn.execute(select(events.c.id).where(*other, *where).limit(1)).first():
            return True
    return False


def _lock_item(lock: Lock, start: datetime, end: datetime, *, held: bool) -> views.Item:
    return views.Item(
        kind="lock",
        id=f"lock-{lock.id}-{start.timestamp():.0f}",
        title=f"{lock.resource} held by {lock.who or 'someone'}"
        + (f": {lock.reason}" if lock.reason else ""),
        service=lock.service,
        environment=lock.environment,
        status="held" if held else "released",
        start=start,
        end=max(end, start),
        open=held,
        href=f"/events/{lock.event_id}" if lock.event_id else "/locks",
    )


def _journal_id_at(conn: Connection, when: datetime, low: int, high: int) -> int:
    """The first journal id written at or after ``when`` (ids grow with time): a bisection
    on the primary key, a few dozen single-row reads at any journal size."""
    while low < high:
        middle = (low + high) // 2
        row = conn.execute(
            select(journal.c.id, journal.c.occurred_at)
            .where(journal.c.id >= middle)
            .order_by(journal.c.id)
            .limit(1)
        ).first()
        if row is None or row.occurred_at >= when:
            high = middle
        else:
            low = int(row.id) + 1
    return low


def lock_holds(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    service: str = "",
    environment: str = "",
    now: datetime,
) -> tuple[list[views.Item], bool]:
    """Lock holds within ``[start, end)``: the locks held now, and the past ones from the
    journal (taken -> released); False when the window held too many changes to read
    them (only the current holds are drawn then)."""

    def wanted(lock: Lock) -> bool:
        return (not service or lock.service == service) and (
            not environment or lock.environment == environment
        )

    current = lock_store.list_locks(conn, now=now)
    found = [
        _lock_item(lock, lock.created_at, now, held=True)
        for lock in current
        if lock.created_at is not None and lock.created_at < end and wanted(lock)
    ]
    held_now = {lock.id for lock in current}
    bounds = conn.execute(select(func.min(journal.c.id), func.max(journal.c.id))).one()
    if bounds[0] is None:
        return found, True
    low, high = int(bounds[0]), int(bounds[1]) + 1
    # A hold that began before the window and ended in it: look back as the events do.
    first = _journal_id_at(conn, start - LOOKBACK, low, high)
    last = _journal_id_at(conn, end, first, high)
    if last - first > JOURNAL_SCAN:
        return found, False
    taken: dict[str, tuple[Lock, datetime]] = {}
    rows = conn.execute(
        select(journal.c.kind, journal.c.occurred_at, journal.c.payload)
        .where(
            journal.c.id >= first,
            journal.c.id < last,
            journal.c.kind.in_(LOCK_TAKEN + LOCK_GONE),
        )
        .order_by(journal.c.id)
    )
    for row in rows:
        lock = Lock.model_validate(row.payload.get("lock") or {})
        if not lock.id or not wanted(lock):
            continue
        if row.kind in LOCK_TAKEN:
            taken[lock.id] = (lock, lock.created_at or row.occurred_at)
        elif lock.id not in held_now:
            began = taken.pop(lock.id, (lock, lock.created_at or row.occurred_at))[1]
            found.append(_lock_item(lock, began, row.occurred_at, held=False))
    return found, True


def freeze_items(conn: Connection, *, start: datetime, end: datetime) -> list[views.Item]:
    """Every freeze window's occurrences within ``[start, end)``."""
    found = []
    for window in queries.all_freezes(conn):
        hard = window.type.value != "FREEZE_TYPE_SOFT"
        for begins, ends in views.freeze_occurrences(window, start, end):
            found.append(
                views.Item(
                    kind="freeze",
                    id=f"freeze-{window.id}-{begins.timestamp():.0f}",
                    title=window.title,
                    service="",
                    environment="",
                    status="hard" if hard else "soft",
                    start=begins,
                    end=ends,
                    href="/freezes",
                    hard=hard,
                    freeze=window,
                )
            )
    return found


def _wanted_freezes(found: list[views.Item], service: str, environment: str) -> list[views.Item]:
    """The freezes that can hold the filtered lanes back (all of them without a filter)."""

    def wanted(item: views.Item) -> bool:
        scope = item.freeze.scope_type.value
        if scope == "FREEZE_SCOPE_ENVIRONMENT" and environment:
            return item.covers("", environment)
        if scope == "FREEZE_SCOPE_SERVICE" and service:
            return item.covers(service, "")
        return scope != "FREEZE_SCOPE_DOMAIN" or not (service or environment)

    return [item for item in found if wanted(item)]


@dataclass(frozen=True)
class DayCount:
    """What one day of the calendar counts."""

    deployments: int
    failed: int
    incidents: int


def day_counts(
    conn: Connection,
    *,
    start: datetime,
    days: int,
    service: str = "",
    environment: str = "",
) -> dict[date, DayCount]:
    """Deployments (and failed ones) and incidents per UTC day from ``start``, grouped by
    the database (``date()`` on both backends; moments are stored in UTC). A day is the
    event's startDate, else its createdAt. Two index range reads: dated, undated."""
    end = start + timedelta(days=days)
    failed = func.sum(case((events.c.status.in_(("failure", "error")), 1), else_=0))
    common = [events.c.type.in_(KINDS), *_filters(service, environment)]
    found: dict[date, list[int]] = {}
    for moment, where in (
        (events.c.start_date, [events.c.start_date >= start, events.c.start_date < end]),
        (
            events.c.created_at,
            [
                events.c.start_date.is_(None),
                events.c.created_at >= start,
                events.c.created_at < end,
            ],
        ),
    ):
        day = func.date(moment)
        rows = conn.execute(
            select(day, events.c.type, func.count(), failed)
            .where(*common, *where)
            .group_by(day, events.c.type)
        )
        for when, kind, count, failures in rows:
            counts = found.setdefault(date.fromisoformat(str(when)[:10]), [0, 0, 0])
            if kind == EventType.deployment.value:
                counts[0] += int(count)
                counts[1] += int(failures or 0)
            else:
                counts[2] += int(count)
    return {day: DayCount(*counts) for day, counts in found.items()}


def month_counts(
    conn: Connection, *, start: datetime, days: int, service: str = "", environment: str = ""
) -> dict[date, DayCount]:
    """:func:`day_counts`, kept until something changes."""
    return _kept(
        conn,
        ("days", start, days, service, environment),
        lambda: day_counts(conn, start=start, days=days, service=service, environment=environment),
    )


# ------------------------------------------------------------------ pages
def _environment(value: str) -> str:
    parsed = parse_enum(Environment, value, "environment")
    return "" if parsed is None or parsed.value.endswith("_UNSPECIFIED") else str(parsed.value)


#: The years a view may show (its neighbours and look-back stay within the calendar).
YEARS = range(1900, 9999)


def _day(value: str, now: datetime) -> date:
    if not value:
        return now.astimezone(UTC).date()
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"invalid request: query parameter at: {value!r} is not a date (e.g. 2026-01-31)"
        ) from None
    if day.year not in YEARS:
        raise InvalidInput(f"invalid request: query parameter at: {value!r} is out of range")
    return day


def _link(path: str, **params: str) -> str:
    kept = {k: v for k, v in params.items() if v}
    return path + ("?" + urlencode(kept) if kept else "")


@router.get("/lanes")
def lanes(
    request: Request,
    database: DatabaseDep,
    now: Now,
    span: Text = "day",
    at: Text = "",
    service: Text = "",
    environment: Text = "",
) -> Response:
    """Lanes per service x environment over a day or a week: deployments, incidents,
    freezes and lock holds as bars, overlaps flagged, a "now" line."""
    if span not in views.SPANS:
        raise InvalidInput(f"invalid request: query parameter span: {span!r} is not day or week")
    env = _environment(environment)
    where = views.window(span, _day(at, now))
    with database.read() as conn:
        items, capped = window_events(
            conn, start=where.start, end=where.end, service=service, environment=env, now=now
        )
        holds, holds_complete = lock_holds(
            conn, start=where.start, end=where.end, service=service, environment=env, now=now
        )
        freezes = _wanted_freezes(
            freeze_items(conn, start=where.start, end=where.end), service, env
        )
        services = catalog_view.service_choices(conn, selected=service)
        environments = queries.environments(conn, selected=env)
    drawn = views.layout([*items, *holds], freezes, where, now)
    common = {"service": service, "environment": env}
    today = now.astimezone(UTC).date()
    links = {
        "previous": _link("/lanes", span=span, at=where.previous_day.isoformat(), **common),
        "next": _link("/lanes", span=span, at=where.next_day.isoformat(), **common),
        "today": _link("/lanes", span=span, at=today.isoformat(), **common),
        "day": _link("/lanes", span="day", at=where.day.isoformat(), **common),
        "week": _link("/lanes", span="week", at=where.day.isoformat(), **common),
        "month": _link("/calendar", month=where.day.strftime("%Y-%m"), **common),
    }
    return page(
        request,
        "lanes.html",
        current="lanes",
        layout=drawn,
        views=views,
        span=span,
        at=where.day.isoformat(),
        service=service,
        environment=env,
        services=services,
        environments=environments,
        capped=capped,
        holds_complete=holds_complete,
        links=links,
        now=now,
        journal_id=live.newest_journal_id(database),
    )


def _month(value: str, now: datetime) -> tuple[int, int]:
    if not value:
        today = now.astimezone(UTC)
        return today.year, today.month
    try:
        first = date.fromisoformat(value.strip() + "-01")
    except ValueError:
        raise InvalidInput(
            f"invalid request: query parameter month: {value!r} is not a month (e.g. 2026-01)"
        ) from None
    if first.year not in YEARS:
        raise InvalidInput(f"invalid request: query parameter month: {value!r} is out of range")
    return first.year, first.month


@router.get("/calendar")
def calendar(
    request: Request,
    database: DatabaseDep,
    now: Now,
    month: Text = "",
    service: Text = "",
    environment: Text = "",
) -> Response:
    """A month: deployments (failed ones flagged), incidents and freeze days per day, each
    day a link to its lanes."""
    env = _environment(environment)
    year, number = _month(month, now)
    weeks = views.month_grid(year, number, now.astimezone(UTC).date())
    first = datetime.combine(weeks[0][0].day, datetime.min.time(), tzinfo=UTC)
    days = 7 * len(weeks)
    with database.read() as conn:
        counts = month_counts(conn, start=first, days=days, service=service, environment=env)
        freezes = _wanted_freezes(
            freeze_items(conn, start=first, end=first + timedelta(days=days)), service, env
        )
        services = catalog_view.service_choices(conn, selected=service)
        environments = queries.environments(conn, selected=env)
    grid = [day for week in weeks for day in week]
    for day in grid:
        found = counts.get(day.day)
        if found is not None:
            day.deployments, day.failed, day.incidents = (
                found.deployments,
                found.failed,
                found.incidents,
            )
    views.mark_freezes(grid, freezes)
    common = {"service": service, "environment": env}
    before = date(year, number, 1) - timedelta(days=1)
    after = date(year, number, 28) + timedelta(days=7)
    return page(
        request,
        "calendar.html",
        current="calendar",
        weeks=weeks,
        title=date(year, number, 1).strftime("%B %Y"),
        month=f"{year:04d}-{number:02d}",
        service=service,
        environment=env,
        services=services,
        environments=environments,
        day_link=lambda d: _link("/lanes", span="day", at=d.isoformat(), **common),
        links={
            "previous": _link("/calendar", month=before.strftime("%Y-%m"), **common),
            "next": _link("/calendar", month=after.strftime("%Y-%m"), **common),
            "today": _link("/calendar", **common),
        },
        now=now,
        journal_id=live.newest_journal_id(database),
    )
