"""What the pages show, read from the database (no HTTP here).

Queue lengths come from the lock-queue table when this server has one
(``tables.metadata``); a page without it shows holders only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from tracker_ci.models import OPEN_STATUSES, Environment, Event, EventType, Lock, Status
from tracker_server.dora import percentile
from tracker_server.store import events as event_store
from tracker_server.store import freezes as freeze_store
from tracker_server.store import locks as lock_store
from tracker_server.store.gauges import queue_lengths
from tracker_server.tables import changelog, events, lock_queue

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
    """A freeze window active now or starting soon: the occurrence in force (``since`` ..
    ``until``) or the next one (``starts`` .. ``until``), every moment in UTC."""

    window: Any
    active: bool
    until: datetime | None = None
    starts: datetime | None = None
    since: datetime | None = None


@dataclass
class Board:
    """Everything the board shows."""

    latest: list[Any] = field(default_factory=list)
    running: list[Running] = field(default_factory=list)
    locks: list[HeldLock] = field(default_factory=list)
    freezes: list[Freeze] = field(default_factory=list)
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
    created_at: datetime | None
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
        created_at=row.created_at,
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


def waiters(conn: Connection, limit: int = 500) -> dict[tuple[str, str, str], list[Any]]:
    """Who waits for each lock key, in queue order (rows: who, reason, joined_at)."""
    query = (
        select(lock_queue)
        .where(lock_queue.c.granted_at.is_(None))
        .order_by(lock_queue.c.seq)
        .limit(limit)
    )
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


def occurrence(window: Any, now: datetime) -> tuple[datetime, datetime] | None:
    """A recurring window's occurrence covering ``now``, else its next one: (start, end)
    in UTC, read in the window's own zone (None: not recurring, or no valid schedule)."""
    from zoneinfo import ZoneInfo

    from cronsim import CronSim, CronSimError

    if not window.cron_start or not window.cron_end:
        return None
    try:
        zone = ZoneInfo(window.timezone or "UTC")
        local = now.astimezone(zone).replace(tzinfo=None)
        # The latest start at or before now (as the store's in_force finds it), its end.
        began = next(CronSim(window.cron_start, local + timedelta(minutes=1), reverse=True))
        ends = next(CronSim(window.cron_end, began))
        if ends <= local:  # that occurrence is over: the next one
            began = next(CronSim(window.cron_start, local))
            ends = next(CronSim(window.cron_end, began))
    except (CronSimError, StopIteration, KeyError, ValueError):
        return None
    start = began.replace(tzinfo=zone).astimezone(UTC)
    end = ends.replace(tzinfo=zone).astimezone(UTC)
    if window.ends_at is not None:
        end = min(end, window.ends_at)
    return start, end


def _next_start(window: Any, now: datetime) -> datetime | None:
    """When a window not in force now starts within the next 24 h (15-minute steps)."""
    if window.starts_at is not None and not window.cron_start:
        return window.starts_at if now < window.starts_at <= now + UPCOMING else None
    step = timedelta(minutes=15)
    moment = now + step
    while moment <= now + UPCOMING:
        if freeze_store.in_force(window, moment) is not None:
            return moment
        moment += step
    return None


def _in_force(window: Any, now: datetime, until: datetime | None) -> Freeze:
    found = occurrence(window, now)
    since = found[0] if found else window.starts_at
    return Freeze(window=window, active=True, until=until, since=since)


def _upcoming(window: Any, now: datetime) -> Freeze | None:
    found = occurrence(window, now)
    if found is not None and now < found[0] <= now + UPCOMING:
        if window.starts_at is None or found[0] >= window.starts_at:
            return Freeze(window=window, active=False, starts=found[0], until=found[1])
    starts = _next_start(window, now)
    if starts is None:
        return None
    return Freeze(window=window, active=False, starts=starts, until=window.ends_at)


def freeze_windows(conn: Connection, now: datetime, *, upcoming: bool = True) -> list[Freeze]:
    """Windows in force now (and, with ``upcoming``, starting within 24 h)."""
    found = []
    for window in freeze_store.list_windows(conn):
        stretch = freeze_store.in_force(window, now)
        if stretch is not None:
            found.append(_in_force(window, now, stretch.until))
        elif upcoming and window.active:
            next_one = _upcoming(window, now)
            if next_one is not None:
                found.append(next_one)
    return found


def all_freezes(conn: Connection) -> list[Any]:
    """Every freeze window."""
    return list(freeze_store.list_windows(conn))


def board(conn: Connection, now: datetime) -> Board:
    """The board's data."""
    locks, queues_known = held_locks(conn, now)
    freezes = freeze_windows(conn, now)
    return Board(
        latest=latest_deployments(conn),
        running=running_deployments(conn, now),
        locks=locks,
        freezes=freezes,
        queues_known=queues_known,
    )


#: A held lock whose lease ends within this is "near expiry" on the board.
NEAR_EXPIRY = timedelta(minutes=5)
#: Incidents of these priorities, still open, are at the top of the board.
URGENT_PRIORITIES = ("P1", "P2")
INCIDENT_OPEN_STATUSES = ("open", "start", "in_progress")
FAILED = ("failure", "error")
#: A freeze in force with no known start: who broke glass in this long.
GLASS_LOOKBACK = timedelta(days=7)


@dataclass(frozen=True)
class Waiter:
    """Someone in a lock's queue: position, who, why, since when, and the expected wait
    (seconds; None without a usual duration): what the holder has left of its usual p95,
    plus a usual p95 per deployment ahead."""

    position: int
    who: str
    reason: str
    joined_at: datetime | None
    expected_wait: float | None


@dataclass(frozen=True)
class Queue:
    """A held lock others wait for."""

    held: HeldLock
    waiters: list[Waiter]


@dataclass(frozen=True)
class BrokenFreeze:
    """A hard freeze in force, and the deployments that broke glass through it."""

    freeze: Freeze
    broke_glass: list[Any]


@dataclass
class Problems:
    """What needs a human, first on the board."""

    failed: list[LatestRow] = field(default_factory=list)
    slow: list[Running] = field(default_factory=list)
    incidents: list[Event] = field(default_factory=list)
    freezes: list[BrokenFreeze] = field(default_factory=list)
    queues: list[Queue] = field(default_factory=list)
    expiring: list[HeldLock] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(
            len(found)
            for found in (
                self.failed,
                self.slow,
                self.incidents,
                self.freezes,
                self.queues,
                self.expiring,
            )
        )


def open_incidents(conn: Connection, limit: int = 20) -> list[Event]:
    """Open P1 and P2 incidents, newest first."""
    rows = conn.execute(
        select(events)
        .where(
            events.c.type == EventType.incident.value,
            events.c.status.in_(INCIDENT_OPEN_STATUSES),
            events.c.priority.in_(URGENT_PRIORITIES),
        )
        .order_by(events.c.created_at.desc(), events.c.id.desc())
        .limit(limit)
    ).all()
    return [event_store.row_to_event(row) for row in rows]


def broke_glass(conn: Connection, window_id: str, since: datetime, limit: int = 20) -> list[Any]:
    """Deployments created since ``since`` that broke glass through a freeze window (their
    changelog lines), newest first: event id, title, service, environment, who, when, why.
    Read from the events side (created_at is indexed, changelog.event_id too), so the cost
    is the events of the freeze's stretch, not the whole changelog."""
    query = (
        select(
            events.c.id,
            events.c.title,
            events.c.service,
            events.c.environment,
            changelog.c.user,
            changelog.c.timestamp,
            changelog.c.comment,
        )
        .select_from(events.join(changelog, changelog.c.event_id == events.c.id))
        .where(
            events.c.created_at >= since,
            changelog.c.field == "freeze",
            changelog.c.new_value == "break-glass",
            changelog.c.old_value == window_id,
        )
        .order_by(changelog.c.timestamp.desc())
        .limit(limit)
    )
    return list(conn.execute(query).all())


def _queue(conn: Connection, held: HeldLock, waiting: list[Any]) -> Queue:
    lock = held.lock
    usual = usual_p95(conn, service=lock.service, environment=lock.environment)
    left = None if usual is None else max(usual - held.age, 0.0)
    waiters = [
        Waiter(
            position=index + 1,
            who=row.who or "someone",
            reason=row.reason or "",
            joined_at=row.joined_at,
            expected_wait=None if left is None or usual is None else left + index * usual,
        )
        for index, row in enumerate(waiting)
    ]
    return Queue(held=held, waiters=waiters)


def problems(conn: Connection, now: datetime, board: Board) -> Problems:
    """What needs a human: failed latest deploys, deploys past their usual p95, open P1/P2
    incidents, hard freezes in force with who broke glass, queues, locks near expiry."""
    found = Problems(
        failed=[row for row in board.latest if row.status in FAILED],
        slow=[run for run in board.running if run.slow],
        incidents=open_incidents(conn),
    )
    for freeze in board.freezes:
        if freeze.active and freeze.window.type.value != "FREEZE_TYPE_SOFT":
            since = freeze.since or freeze.window.starts_at or now - GLASS_LOOKBACK
            glass = broke_glass(conn, freeze.window.id, since)
            found.freezes.append(BrokenFreeze(freeze=freeze, broke_glass=glass))
    queued = waiters(conn) if board.queues_known else {}
    for held in board.locks:
        lock = held.lock
        waiting = queued.get((lock.service, lock.environment, lock.resource), [])
        if waiting:
            found.queues.append(_queue(conn, held, waiting))
        expires = held.lock.expires_at
        if expires is not None and now <= expires <= now + NEAR_EXPIRY:
            found.expiring.append(held)
    return found


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


def environments(conn: Connection, *, selected: str = "") -> list[str]:
    """Upstream's eight environments in their order, then every other name events carry
    (``staging``, ``eu-west-1``), sorted, and ``selected`` when it is neither: a select
    always holds the environment it shows."""
    upstream = [e.value for e in Environment if e.value != "ENVIRONMENT_UNSPECIFIED"]
    used = conn.execute(select(events.c.environment).group_by(events.c.environment)).scalars()
    known = set(upstream)
    others = sorted({e for e in used if e and e not in known and e != "ENVIRONMENT_UNSPECIFIED"})
    if selected and selected not in known and selected not in others:
        others = sorted([*others, selected])
    return upstream + others


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
