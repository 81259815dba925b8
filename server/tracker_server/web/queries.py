"""What the pages show, read from the database (no HTTP here).

Queue lengths and freeze windows come from the lock-queue and freeze tables when this
server has them (``tables.metadata``); a page without them shows holders only.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from tracker_ci.models import OPEN_STATUSES, Event, EventType, Lock, Status
from tracker_server.dora import percentile
from tracker_server.store import events as event_store
from tracker_server.store import locks as lock_store
from tracker_server.tables import events, metadata

#: A running deployment is flagged once it runs longer than this percentile of its history.
SLOW_PERCENTILE = 0.95
#: How many ended deployments of a service and environment make its usual duration.
HISTORY = 50
UPCOMING = timedelta(hours=24)
#: The board shows at most this many service x environment pairs.
MAX_PAIRS = 2000
BOARD_COLUMNS = (
    "id",
    "title",
    "service",
    "environment",
    "status",
    "owner",
    "created_at",
    "duration_seconds",
    "start_date",
    "end_date",
    "pull_request_link",
)


def _freeze_store() -> ModuleType | None:
    """The freeze store when this server has one."""
    try:
        return importlib.import_module("tracker_server.store.freezes")
    except ImportError:
        return None


@dataclass
class Running:
    """A deployment running now: its event, elapsed seconds, usual p95 (None: no history)."""

    event: Event
    elapsed: float
    usual_p95: float | None

    @property
    def slow(self) -> bool:
        """Running past its usual p95."""
        return self.usual_p95 is not None and self.elapsed > self.usual_p95


@dataclass
class HeldLock:
    """A lock, how long it has been held, and who waits for it (in order)."""

    lock: Lock
    age: float
    queue: int
    waiting: list[Any] = field(default_factory=list)


@dataclass
class Freeze:
    """A freeze window active now or starting soon."""

    window: Any
    active: bool
    until: datetime | None = None
    starts: datetime | None = None


@dataclass
class Board:
    """Everything the board shows."""

    latest: list[Any] = field(default_factory=list)
    running: list[Running] = field(default_factory=list)
    locks: list[HeldLock] = field(default_factory=list)
    freezes: list[Freeze] = field(default_factory=list)
    freezes_known: bool = False
    queues_known: bool = False


def latest_deployments(conn: Connection) -> list[Any]:
    """The newest deployment of every service x environment, by service then environment:
    rows with the columns the board shows (not full events: the board may list thousands).

    The newest moment per pair comes from the (type, service, environment, createdAt)
    index alone; the rows are then read by that key."""
    newest = (
        select(
            events.c.service,
            events.c.environment,
            func.max(events.c.created_at).label("newest"),
        )
        .where(events.c.type == EventType.deployment.value)
        .group_by(events.c.service, events.c.environment)
        .subquery()
    )
    rows = conn.execute(
        select(*(events.c[name] for name in BOARD_COLUMNS))
        .join(
            newest,
            and_(
                events.c.service == newest.c.service,
                events.c.environment == newest.c.environment,
                events.c.created_at == newest.c.newest,
            ),
        )
        .where(events.c.type == EventType.deployment.value)
        .order_by(events.c.service, events.c.environment, events.c.id.desc())
        .limit(MAX_PAIRS)
    ).all()
    latest: list[Any] = []
    for row in rows:  # two deployments of a pair created in the same instant: keep one
        if not latest or (latest[-1].service, latest[-1].environment) != (
            row.service,
            row.environment,
        ):
            latest.append(row)
    return [_latest_row(row) for row in latest]


@dataclass(frozen=True)
class LatestRow:
    """One line of the board's table, formatted once here (the board may have thousands)."""

    id: str
    title: str
    service: str
    environment: str
    status: str
    owner: str
    created_iso: str
    created_text: str
    duration_text: str
    pull_request_link: str


def _latest_row(row: Any) -> LatestRow:
    from tracker_server.web.render import human_seconds, iso, moment

    duration = row.duration_seconds
    if duration is None and row.start_date is not None and row.end_date is not None:
        duration = (row.end_date - row.start_date).total_seconds()
    return LatestRow(
        id=row.id,
        title=row.title or row.id,
        service=row.service,
        environment=row.environment,
        status=row.status,
        owner=row.owner or "—",
        created_iso=iso(row.created_at),
        created_text=moment(row.created_at),
        duration_text=human_seconds(duration),
        pull_request_link=row.pull_request_link,
    )


def usual_p95(conn: Connection, *, service: str, environment: str) -> float | None:
    """The p95 duration of the last ended deployments of a service and environment (their
    recorded duration, else endDate - startDate for imported history)."""
    rows = conn.execute(
        select(events.c.duration_seconds, events.c.start_date, events.c.end_date)
        .where(
            events.c.service == service,
            events.c.environment == environment,
            events.c.type == EventType.deployment.value,
            events.c.status.in_([Status.success.value, Status.failure.value]),
        )
        .order_by(events.c.created_at.desc())
        .limit(HISTORY)
    ).all()
    durations = []
    for row in rows:
        if row.duration_seconds is not None:
            durations.append(float(row.duration_seconds))
        elif row.start_date is not None and row.end_date is not None:
            durations.append((row.end_date - row.start_date).total_seconds())
    return percentile(durations, SLOW_PERCENTILE)


def running_deployments(conn: Connection, now: datetime, limit: int = 20) -> list[Running]:
    """Deployments still open (the newest ``limit``), against their usual duration."""
    rows = conn.execute(
        select(events)
        .where(events.c.type == EventType.deployment.value, events.c.status.in_(OPEN_STATUSES))
        .order_by(events.c.created_at.desc(), events.c.id.desc())
        .limit(limit)
    ).all()
    running = []
    usual: dict[tuple[str, str], float | None] = {}
    for row in rows:
        event = event_store.row_to_event(row)
        started = event.metadata.created_at or now
        pair = (row.service, row.environment)
        if pair not in usual:
            usual[pair] = usual_p95(conn, service=row.service, environment=row.environment)
        running.append(
            Running(
                event=event,
                elapsed=max((now - started).total_seconds(), 0.0),
                usual_p95=usual[pair],
            )
        )
    return running


def queue_lengths(conn: Connection) -> dict[tuple[str, str, str], int] | None:
    """Waiters per lock key (None: this server has no lock queue)."""
    queue = metadata.tables.get("lock_queue")
    if queue is None:
        return None
    query = select(queue.c.service, queue.c.environment, queue.c.resource, func.count()).group_by(
        queue.c.service, queue.c.environment, queue.c.resource
    )
    if "granted_at" in queue.c:
        query = query.where(queue.c.granted_at.is_(None))
    return {(r[0], r[1], r[2]): int(r[3]) for r in conn.execute(query)}


def waiters(conn: Connection, limit: int = 500) -> dict[tuple[str, str, str], list[Any]]:
    """Who waits for each lock key, in queue order (rows: who, reason, joined_at)."""
    queue = metadata.tables.get("lock_queue")
    if queue is None:
        return {}
    query = select(queue).order_by(queue.c.seq).limit(limit)
    if "granted_at" in queue.c:
        query = query.where(queue.c.granted_at.is_(None))
    found: dict[tuple[str, str, str], list[Any]] = {}
    for row in conn.execute(query):
        found.setdefault((row.service, row.environment, row.resource), []).append(row)
    return found


def held_locks(
    conn: Connection, now: datetime, *, with_waiters: bool = False
) -> tuple[list[HeldLock], bool]:
    """Every held lock with its age and queue length (and who waits); whether queues are
    known."""
    lengths = queue_lengths(conn)
    queued = waiters(conn) if with_waiters else {}
    held = []
    for lock in lock_store.list_locks(conn, now=now):
        key = (lock.service, lock.environment, lock.resource)
        held.append(
            HeldLock(
                lock=lock,
                age=max((now - lock.created_at).total_seconds(), 0.0) if lock.created_at else 0.0,
                queue=(lengths or {}).get(key, 0),
                waiting=queued.get(key, []),
            )
        )
    return held, lengths is not None


def _next_start(store: ModuleType, window: Any, now: datetime) -> datetime | None:
    """When a window not in force now starts within the next 24 h (15-minute steps)."""
    if window.starts_at is not None and not window.cron_start:
        return window.starts_at if now < window.starts_at <= now + UPCOMING else None
    step = timedelta(minutes=15)
    moment = now + step
    while moment <= now + UPCOMING:
        if store.in_force(window, moment) is not None:
            return moment
        moment += step
    return None


def freeze_windows(
    conn: Connection, now: datetime, *, upcoming: bool = True
) -> list[Freeze] | None:
    """Windows in force now (and, with ``upcoming``, starting within 24 h); None: unknown."""
    store = _freeze_store()
    if store is None or "freeze_windows" not in metadata.tables:
        return None
    found = []
    for window in store.list_windows(conn):
        stretch = store.in_force(window, now)
        if stretch is not None:
            found.append(Freeze(window=window, active=True, until=stretch.until))
        elif upcoming and window.active:
            starts = _next_start(store, window, now)
            if starts is not None:
                found.append(Freeze(window=window, active=False, starts=starts))
    return found


def all_freezes(conn: Connection) -> list[Any] | None:
    """Every freeze window (None: this server has none)."""
    store = _freeze_store()
    if store is None or "freeze_windows" not in metadata.tables:
        return None
    return list(store.list_windows(conn))


def board(conn: Connection, now: datetime) -> Board:
    """The board's data."""
    locks, queues_known = held_locks(conn, now)
    freezes = freeze_windows(conn, now)
    return Board(
        latest=latest_deployments(conn),
        running=running_deployments(conn, now),
        locks=locks,
        freezes=freezes or [],
        freezes_known=freezes is not None,
        queues_known=queues_known,
    )


@dataclass(frozen=True)
class TimelineQuery:
    """The timeline's filters (empty: any) and page."""

    service: str = ""
    environment: str = ""
    type: str = ""
    status: str = ""
    start: datetime | None = None
    end: datetime | None = None
    page: int = 1
    per_page: int = 50

    def clauses(self) -> list[Any]:
        """SQL conditions: exact matches, and createdAt within the period."""
        clauses: list[Any] = []
        for column, value in (
            (events.c.service, self.service),
            (events.c.environment, self.environment),
            (events.c.type, self.type),
            (events.c.status, self.status),
        ):
            if value:
                clauses.append(column == value)
        if self.start is not None:
            clauses.append(events.c.created_at >= self.start)
        if self.end is not None:
            clauses.append(events.c.created_at <= self.end)
        return clauses


def timeline(conn: Connection, query: TimelineQuery) -> event_store.EventPage:
    """One page of events, newest first, and how many match (an estimate past the count's
    cap: ``total_exact`` says)."""
    return event_store.find_page(
        conn, where=query.clauses(), page=query.page, per_page=query.per_page
    )


def services(conn: Connection) -> list[str]:
    """Every service name events carry, sorted."""
    return [
        s
        for s in conn.execute(
            select(events.c.service).group_by(events.c.service).order_by(events.c.service)
        ).scalars()
        if s
    ]


@dataclass
class Linked:
    """An event linked to another, and the seconds from that one to it."""

    event: Event
    relation: str
    seconds: float | None


def linked_events(conn: Connection, event: Event) -> list[Linked]:
    """The event it relates to, and those that relate to it, with the time between."""
    ids = [event.attributes.related_id] if event.attributes.related_id else []
    rows = conn.execute(
        select(events)
        .where(or_(events.c.related_id == event.id, events.c.id.in_(ids)))
        .order_by(events.c.created_at)
        .limit(100)
    ).all()
    linked = []
    for row in rows:
        other = event_store.row_to_event(row)
        seconds = None
        if other.metadata.created_at and event.metadata.created_at:
            seconds = (other.metadata.created_at - event.metadata.created_at).total_seconds()
        relation = "relates to" if other.id in ids else "related"
        linked.append(Linked(event=other, relation=relation, seconds=seconds))
    return linked


def event_page(conn: Connection, event_id: str) -> tuple[Event, list[Linked]] | None:
    """An event (changelog included) and its linked events; None when unknown."""
    event = event_store.get_event(conn, event_id=event_id.lower())
    if event is None:
        return None
    return event, linked_events(conn, event)
