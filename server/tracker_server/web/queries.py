"""What the pages show, read from the database (no HTTP here).

Queue lengths come from the lock-queue table when this server has one
(``tables.metadata``); a page without it shows holders only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    union_all,
)

from tracker_ci.models import OPEN_STATUSES, Environment, Event, EventType, Lock, Status
from tracker_server.dora import percentile
from tracker_server.journal import JournalEntry
from tracker_server.store import events as event_store
from tracker_server.store import freezes as freeze_store
from tracker_server.store import locks as lock_store
from tracker_server.store.gauges import queue_lengths
from tracker_server.tables import changelog, events, journal, lock_queue

#: A running deployment is flagged once it runs longer than this percentile of its history.
SLOW_PERCENTILE = 0.95
#: How many ended deployments of a service and environment make its usual duration.
HISTORY = 50
UPCOMING = timedelta(hours=24)
#: The board reads at most this many service x environment pairs ...
MAX_PAIRS = 2000
#: ... and lists the first this many (its HTML stays bounded: 1,600 pairs made 940 KB);
#: the problems above it come from every pair.
BOARD_PAIRS = 200
#: Failed latest deployments listed among the problems (the others are counted).
BOARD_FAILED = 50
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
    #: Every pair's latest deployment (``latest`` shows the first ``BOARD_PAIRS``).
    pairs: list[Any] = field(default_factory=list)

    @property
    def hidden_pairs(self) -> int:
        """Pairs beyond the ones the board shows."""
        return max(len(self.pairs) - len(self.latest), 0)


def latest_deployments(conn: Connection) -> list[LatestRow]:
    """The newest deployment of every service x environment, by service then environment:
    rows with the columns the board shows (not full events: the board may list thousands).

    Kept per database between renders and brought up to date from the journal, which
    every replica shares: a render reads the entries written since the previous one and
    re-reads only the pairs they touched (one index seek each). The GROUP BY over every
    deployment (100-200 ms at a million events) runs only at the first render, after an
    import, when the journal went back (emptied, restored) and every
    ``LATEST_REBUILD_SECONDS`` (for writes made outside the server)."""
    with _latest_lock:
        return _latest_state(conn).ordered


def _latest_state(conn: Connection) -> _LatestState:
    """This database's kept state, brought up to date (call under ``_latest_lock``)."""
    key = conn.engine.url.render_as_string(hide_password=True)
    state = _latest_refreshed(conn, _latest_states.get(key))
    _latest_states[key] = state
    return state


#: See :func:`latest_deployments`.
LATEST_REBUILD_SECONDS = 300.0
#: More journal entries than this since the previous render: rebuilt, not replayed.
LATEST_REPLAY_MAX = 500
#: Entries this far below the newest are looked at again: on PostgreSQL a transaction
#: that took its id earlier may commit after a later one; it is applied once visible.
LATEST_LATE = 200
#: The journal's kinds that can change a pair's newest deployment (an import: rebuilt).
_PAIR_KINDS = ("event_created", "event_updated", "event_deleted", "approval_decided")


@dataclass
class _LatestState:
    rows: dict[tuple[str, str], LatestRow]
    ordered: list[LatestRow]
    newest: int  # the journal id it is up to date with
    marker: datetime | None  # that entry's occurred_at: tells a journal emptied or restored
    seen: set[int]  # ids within LATEST_LATE of ``newest`` already applied
    built: float  # time.monotonic() of the last full read
    #: usual_p95 per pair, kept like the rows (a pair's entries drop it).
    usual: dict[tuple[str, str], float | None] = field(default_factory=dict)


_latest_states: dict[str, _LatestState] = {}
_latest_lock = threading.Lock()


def _latest_refreshed(conn: Connection, state: _LatestState | None) -> _LatestState:
    # The journal is read before the events: what is committed in between is applied
    # twice (re-reading a pair is idempotent), never missed.
    # One statement: the newest entry, the one the state is up to date with (still there,
    # as it was?) and how many lie just below that one (an entry that committed late).
    known = state.newest if state is not None else 0
    top = select(journal.c.id, journal.c.occurred_at).order_by(journal.c.id.desc()).limit(1)
    look = conn.execute(
        select(
            top.with_only_columns(journal.c.id).scalar_subquery(),
            top.with_only_columns(journal.c.occurred_at).scalar_subquery(),
            select(journal.c.occurred_at).where(journal.c.id == known).scalar_subquery(),
            select(func.count())
            .where(journal.c.id > known - LATEST_LATE, journal.c.id <= known)
            .scalar_subquery(),
        )
    ).one()
    newest, marker = int(look[0] or 0), look[1]
    if (
        state is None
        or newest < state.newest
        or newest - state.newest > LATEST_REPLAY_MAX
        or time.monotonic() - state.built > LATEST_REBUILD_SECONDS
        or (state.newest and look[2] != state.marker)
    ):
        return _latest_rebuilt(conn, newest, marker)
    if newest == state.newest and int(look[3]) == len(state.seen):
        return state
    window = conn.execute(
        select(journal.c.id, journal.c.kind, journal.c.occurred_at).where(
            journal.c.id > state.newest - LATEST_LATE
        )
    ).all()
    fresh = [row for row in window if row.id not in state.seen and row.id <= newest]
    if any(row.kind == "events_imported" for row in fresh):
        return _latest_rebuilt(conn, newest, marker)
    pairs: set[tuple[str, str]] = set()
    wanted = [row.id for row in fresh if row.kind in _PAIR_KINDS]
    if wanted:
        for row in conn.execute(
            select(journal.c.kind, journal.c.payload).where(journal.c.id.in_(wanted))
        ):
            pairs |= _deployment_pairs(JournalEntry.from_row(row.kind, row.payload))
    for service, environment in pairs:
        state.usual.pop((service, environment), None)
        found = conn.execute(
            select(*(events.c[name] for name in BOARD_COLUMNS))
            .where(
                events.c.type == EventType.deployment.value,
                events.c.service == service,
                events.c.environment == environment,
            )
            .order_by(events.c.created_at.desc(), events.c.id.desc())
            .limit(1)
        ).first()
        if found is None:
            state.rows.pop((service, environment), None)
        else:
            state.rows[(service, environment)] = _latest_row(found)
    state.newest, state.marker = newest, marker
    state.seen = {row.id for row in window if row.id > newest - LATEST_LATE and row.id <= newest}
    if pairs:
        state.ordered = [state.rows[pair] for pair in sorted(state.rows)][:MAX_PAIRS]
    return state


def _deployment_pairs(entry: JournalEntry) -> set[tuple[str, str]]:
    """The (service, environment) of the deployments a journal entry changed."""
    changed = [getattr(entry, name, None) for name in ("event", "before", "after")]
    return {
        (event.attributes.service, str(getattr(env, "value", env)))
        for event in changed
        if isinstance(event, Event) and event.attributes.type == EventType.deployment
        for env in [event.attributes.environment]
    }


def _latest_rebuilt(conn: Connection, newest: int, marker: datetime | None) -> _LatestState:
    """Every pair's newest deployment, read in full: the newest moment per pair comes from
    the (type, service, environment, ...) index alone; the rows are then read by that key."""
    seen = set(
        conn.execute(
            select(journal.c.id).where(journal.c.id > newest - LATEST_LATE, journal.c.id <= newest)
        ).scalars()
    )
    newest_per_pair = (
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
            newest_per_pair,
            and_(
                events.c.service == newest_per_pair.c.service,
                events.c.environment == newest_per_pair.c.environment,
                events.c.created_at == newest_per_pair.c.newest,
            ),
        )
        .where(events.c.type == EventType.deployment.value)
        .order_by(events.c.service, events.c.environment, events.c.id.desc())
        .limit(MAX_PAIRS)
    ).all()
    latest: dict[tuple[str, str], LatestRow] = {}
    for row in rows:  # two deployments of a pair created in the same instant: keep one
        latest.setdefault((row.service, row.environment), _latest_row(row))
    ordered = [latest[pair] for pair in sorted(latest)]
    return _LatestState(latest, ordered, newest, marker, seen, time.monotonic())


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


#: Built once: the board asks it for every running deployment and queue (building the
#: statement cost more than running it).
_ENDED = (
    select(events.c.duration_seconds, events.c.start_date, events.c.end_date)
    .where(
        events.c.type == EventType.deployment.value,
        events.c.status.in_([Status.success.value, Status.failure.value]),
    )
    .order_by(events.c.created_at.desc())
    .limit(HISTORY)
)
_USUAL = _ENDED.where(
    events.c.service == bindparam("service"), events.c.environment == bindparam("environment")
)


def usual_p95(conn: Connection, *, service: str, environment: str) -> float | None:
    """The p95 duration of the last ended deployments of a service and environment (their
    recorded duration, else endDate - startDate for imported history)."""
    rows = conn.execute(_USUAL, {"service": service, "environment": environment}).all()
    durations = []
    for row in rows:
        if row.duration_seconds is not None:
            durations.append(float(row.duration_seconds))
        elif row.start_date is not None and row.end_date is not None:
            durations.append((row.end_date - row.start_date).total_seconds())
    return percentile(durations, SLOW_PERCENTILE)


def usual_p95s(
    conn: Connection, pairs: list[tuple[str, str]]
) -> dict[tuple[str, str], float | None]:
    """:func:`usual_p95` of each (service, environment). On PostgreSQL in one statement
    (one bounded read per pair, joined with UNION ALL: a round trip each cost more than
    the reads, 20 pairs 140 ms against 15 ms); SQLite has no round trip to save."""
    if conn.dialect.name == "sqlite":
        return {pair: usual_p95(conn, service=pair[0], environment=pair[1]) for pair in pairs}
    if not pairs:
        return {}
    parts = [
        select(
            _ENDED.where(events.c.service == service, events.c.environment == environment)
            .add_columns(literal_column(str(number)).label("pair"))
            .subquery()
        )
        for number, (service, environment) in enumerate(pairs)
    ]
    found: dict[int, list[float]] = {number: [] for number in range(len(pairs))}
    for row in conn.execute(union_all(*parts)):
        if row.duration_seconds is not None:
            found[int(row.pair)].append(float(row.duration_seconds))
        elif row.start_date is not None and row.end_date is not None:
            found[int(row.pair)].append((row.end_date - row.start_date).total_seconds())
    return {pair: percentile(found[n], SLOW_PERCENTILE) for n, pair in enumerate(pairs)}


def kept_usual_p95s(
    conn: Connection, pairs: list[tuple[str, str]]
) -> dict[tuple[str, str], float | None]:
    """:func:`usual_p95s`, kept with the latest deployments: read again for a pair once
    the journal says one of its deployments changed. Call it after
    :func:`latest_deployments` (which brings the kept state up to date) in the same read,
    as the board does; without a kept state it reads them all."""
    key = conn.engine.url.render_as_string(hide_password=True)
    with _latest_lock:
        state = _latest_states.get(key)
        if state is None:
            return usual_p95s(conn, pairs)
        missing = [pair for pair in pairs if pair not in state.usual]
        state.usual.update(usual_p95s(conn, missing))
        return {pair: state.usual[pair] for pair in pairs}


def running_deployments(conn: Connection, now: datetime, limit: int = 20) -> list[Running]:
    """Deployments still open (the newest ``limit``), against their usual duration."""
    rows = conn.execute(
        select(events)
        .where(events.c.type == EventType.deployment.value, events.c.status.in_(OPEN_STATUSES))
        .order_by(events.c.created_at.desc(), events.c.id.desc())
        .limit(limit)
    ).all()
    running = []
    usual = kept_usual_p95s(conn, sorted({(row.service, row.environment) for row in rows}))
    for row in rows:
        event = event_store.row_to_event(row)
        started = event.metadata.created_at or now
        pair = (row.service, row.environment)
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
    pairs = latest_deployments(conn)
    return Board(
        latest=pairs[:BOARD_PAIRS],
        pairs=pairs,
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
    def failed_shown(self) -> list[LatestRow]:
        """The failed latest deployments the board lists (the rest are counted)."""
        return self.failed[:BOARD_FAILED]

    @property
    def failed_more(self) -> int:
        """Failed latest deployments beyond those listed."""
        return max(len(self.failed) - BOARD_FAILED, 0)

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
        failed=[row for row in board.pairs or board.latest if row.status in FAILED],
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
    used = _names(conn, events.c.environment)
    known = set(upstream)
    others = sorted({e for e in used if e and e not in known and e != "ENVIRONMENT_UNSPECIFIED"})
    if selected and selected not in known and selected not in others:
        others = sorted([*others, selected])
    return upstream + others


def services(conn: Connection) -> list[str]:
    """Every service name events carry, sorted (one index seek per name, whatever the
    number of events)."""
    return _names(conn, events.c.service)


#: (database, column) -> (the journal's mark when read, the names).
_kept_names: dict[tuple[str, str], tuple[tuple[int, int], list[str]]] = {}


def _names(conn: Connection, column: Any) -> list[str]:
    """The distinct names of a column (:func:`event_store.distinct_values`, one index
    seek per name), kept until the journal moves: on PostgreSQL the seeks of 200
    services cost 8 ms, the look at the journal one small statement."""
    newest = select(func.coalesce(func.max(journal.c.id), 0)).scalar_subquery()
    # The newest id, and how many entries lie just below it: a transaction that commits
    # after a later one (PostgreSQL) changes the count.
    mark_row = conn.execute(
        select(func.coalesce(func.max(journal.c.id), 0), func.count()).where(
            journal.c.id > newest - LATEST_LATE
        )
    ).one()
    mark = (int(mark_row[0]), int(mark_row[1]))
    key = (conn.engine.url.render_as_string(hide_password=True), column.name)
    kept = _kept_names.get(key)
    if kept is not None and kept[0] == mark:
        return list(kept[1])
    names = event_store.distinct_values(conn, column)
    _kept_names[key] = (mark, names)
    return list(names)


@dataclass
class Linked:
    """An event linked to another, and the seconds from that one to it."""

    event: Event
    relation: str
    seconds: float | None


def linked_events(conn: Connection, event: Event) -> list[Linked]:
    """The event it relates to, and those that relate to it, with the time between."""
    ids = [event.attributes.related_id] if event.attributes.related_id else []
    # ``related_id != ""`` names the partial index ix_events_related_id (revision 0013),
    # which holds linked events only; without it this read every event.
    linking = events.c.related_id != literal_column("''")  # the index's own condition
    relates_to_it = and_(events.c.related_id == event.id, linking)
    rows = conn.execute(
        select(events)
        .where(or_(relates_to_it, events.c.id.in_(ids)))
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


# ------------------------------------------------------------------ the locks page
#: How many of the journal's newest entries the locks page reads for the leases' last
#: renewals (the journal has no index by kind: a bounded read by id, whatever its size).
RENEWAL_LOOKBACK = 5000


@dataclass(frozen=True)
class Place:
    """One place in a lock's queue, as the locks page shows it: the API's entry (position,
    who, reason, since, state, and ``expected_wait_seconds`` from the median of recent
    successful deployments, as ``GET /locks/status`` answers) and the wait counted with the
    usual p95 duration, as the board counts it (None: no history, or the key is free)."""

    entry: Any
    worst_wait: float | None


@dataclass(frozen=True)
class Lease:
    """A held lock's lease: its last renewal (None: not renewed since it was taken, when
    ``known``; not within the journal's newest entries otherwise) and how long a grant or
    renewal lasts (seconds; None: the lock never expires, or the length is not known)."""

    renewed_at: datetime | None
    known: bool
    length: float | None


@dataclass(frozen=True)
class LockState:
    """A lock key on the locks page: its holder (None: free while its queue waits, e.g. a
    turn a hard freeze holds back), its lease, its queue policy (``fifo``/``newest``) and
    its queue in order."""

    service: str
    environment: str
    resource: str
    held: HeldLock | None
    lease: Lease | None
    policy: str
    places: list[Place]


@dataclass(frozen=True)
class LocksPage:
    """The locks page: each held lock's state by lock id, the queues of free keys, every
    queue policy set, and whether this server keeps queues."""

    held: list[HeldLock]
    states: dict[str, LockState]
    free: list[LockState]
    policies: list[Any]
    queues_known: bool


def last_renewals(conn: Connection, locks: list[Lock]) -> dict[str, Lease]:
    """Each lock's lease, from the ``lock_renewed`` entries among the journal's newest
    :data:`RENEWAL_LOOKBACK` (a renewal sets ``expiresAt`` to its moment + the TTL)."""
    from tracker_server.journal import LockRenewed
    from tracker_server.tables import journal

    if not locks:
        return {}
    newest = conn.execute(select(func.max(journal.c.id))).scalar() or 0
    floor = newest - RENEWAL_LOOKBACK
    rows = conn.execute(
        select(journal.c.occurred_at, journal.c.payload)
        .where(journal.c.id > floor, journal.c.kind == LockRenewed.KIND)
        .order_by(journal.c.id.desc())
    ).all()
    renewed: dict[str, datetime] = {}
    for row in rows:
        lock_id = str(((row.payload or {}).get("lock") or {}).get("id", ""))
        renewed.setdefault(lock_id, row.occurred_at)
    # The oldest moment read: a lock taken after it, never renewed since, is known to be so.
    oldest = None
    if floor > 0:
        first = select(journal.c.occurred_at).where(journal.c.id > floor).order_by(journal.c.id)
        oldest = conn.execute(first.limit(1)).scalar()
    leases = {}
    for lock in locks:
        at = renewed.get(lock.id)
        known = (
            at is not None
            or oldest is None
            or (lock.created_at is not None and utc_naive(oldest) <= utc_naive(lock.created_at))
        )
        start = at if at is not None else (lock.created_at if known else None)
        length = None
        if lock.expires_at is not None and start is not None:
            length = max((utc_naive(lock.expires_at) - utc_naive(start)).total_seconds(), 0.0)
        leases[lock.id] = Lease(renewed_at=at, known=known, length=length)
    return leases


def utc_naive(value: datetime) -> datetime:
    """A moment comparable with any other (stores answer aware or naive UTC)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


@dataclass(frozen=True)
class _Waiting:
    """A queue entry in the shape the board's expected-wait count reads."""

    who: str
    reason: str
    joined_at: datetime | None


def _places(conn: Connection, held: HeldLock | None, entries: list[Any]) -> list[Place]:
    """The places of a queue: the API's entries, each with its wait at the usual p95 (the
    board's count, :func:`_queue`)."""
    worst: list[float | None] = [None] * len(entries)
    if held is not None and entries:
        waiting = [_Waiting(e.who, e.reason, e.since) for e in entries]
        worst = [w.expected_wait for w in _queue(conn, held, waiting).waiters]
    return [Place(entry=e, worst_wait=w) for e, w in zip(entries, worst, strict=True)]


def locks_page(conn: Connection, now: datetime) -> LocksPage:
    """Every held lock with its lease, queue policy and queue (expected waits as the API
    answers them, and at the usual p95), the queues of free keys, and the policies set."""
    from tracker_server.store import queue as queue_store

    held, queues_known = held_locks(conn, now)
    leases = last_renewals(conn, [h.lock for h in held])
    # Every key with a queue row, granted turns included (a free key whose head's turn a
    # hard freeze holds back waits too).
    keys = select(lock_queue.c.service, lock_queue.c.environment, lock_queue.c.resource)
    queued = {(row[0], row[1], row[2]) for row in conn.execute(keys.distinct())}
    policies: dict[tuple[str, str], str] = {}

    def state(service: str, environment: str, resource: str, found: HeldLock | None) -> LockState:
        if (service, environment) not in policies:
            policies[(service, environment)] = queue_store.policy_for(
                conn, service=service, environment=environment
            )
        entries = []
        if (service, environment, resource) in queued:
            entries = queue_store.queue_of(
                conn, service=service, environment=environment, resource=resource, now=now
            )
        return LockState(
            service=service,
            environment=environment,
            resource=resource,
            held=found,
            lease=leases.get(found.lock.id) if found is not None else None,
            policy=policies[(service, environment)],
            places=_places(conn, found, entries),
        )

    states = {}
    for item in held:
        lock = item.lock
        states[lock.id] = state(lock.service, lock.environment, lock.resource, item)
    taken = {(h.lock.service, h.lock.environment, h.lock.resource) for h in held}
    free = [found for key in sorted(queued - taken) if (found := state(*key, None)).places]
    policies_set = queue_store.list_policies(conn) if queues_known else []
    return LocksPage(
        held=held, states=states, free=free, policies=policies_set, queues_known=queues_known
    )


# --------------------------------------------------------------- the approval gate
@dataclass(frozen=True)
class Decision:
    """An approval or rejection of an event: who, when, and their comment (the changelog
    line without its "Deployment approved by X" preamble)."""

    approved: bool
    by: str
    at: datetime | None
    comment: str


@dataclass(frozen=True)
class Approval:
    """What the event page says of an approval gate: whether the event waits for one, who
    asked (the token's name; the owner when auth is off) and when, and the decisions."""

    waiting: bool
    requested_by: str
    requested_at: datetime | None
    decisions: list[Decision]


def approval(event: Event) -> Approval | None:
    """The approval gate of an event, from its status and changelog (None: it never had
    one: not waiting, never approved nor rejected)."""
    from tracker_ci.models import ChangeType
    from tracker_server.operations import APPROVAL_REQUESTED_BY

    decisions = []
    requested = None
    for entry in event.changelog:
        if entry.field == APPROVAL_REQUESTED_BY and requested is None:
            requested = entry
        if entry.change_type in (ChangeType.approved, ChangeType.rejected):
            approved = entry.change_type is ChangeType.approved
            verb = "approved" if approved else "rejected"
            said = entry.comment  # ours, or upstream's Approve (a PUT changing the owner)
            for preamble in (f"Deployment {verb} by {entry.user}", f"Event {verb} by {entry.user}"):
                said = said.removeprefix(preamble)
            decisions.append(
                Decision(
                    approved=approved,
                    by=entry.user,
                    at=entry.timestamp,
                    comment=said.removeprefix(":").strip(),
                )
            )
    waiting = event.attributes.status is Status.waiting_approval
    if not waiting and not decisions and requested is None:
        return None
    return Approval(
        waiting=waiting,
        requested_by=requested.user if requested is not None else event.attributes.owner,
        requested_at=(requested.timestamp if requested is not None else event.metadata.created_at),
        decisions=decisions,
    )


def find_event(conn: Connection, event_id: str) -> Event | None:
    """An event by id (changelog included); None when unknown."""
    return event_store.get_event(conn, event_id=event_id.lower())


def lock_queue_of(conn: Connection, lock: Lock, now: datetime) -> list[Any]:
    """Who waits for a lock's key, in order (the API's queue entries)."""
    from tracker_server.store import queue as queue_store

    return queue_store.queue_of(
        conn, service=lock.service, environment=lock.environment, resource=lock.resource, now=now
    )
