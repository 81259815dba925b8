"""Events and their changelog, with upstream's semantics: linked-event and own durations,
changelog entries on every change, and the automatic deployment lock. Refusals are domain
errors (``EventNotFound``, ``InvalidInput``, ``LockConflict``); every change is recorded on
the request's journal.
"""

from __future__ import annotations

import base64
import binascii
import enum
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import (
    Connection,
    Text,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)

from tracker_ci.models import (
    CLOSING_STATUSES,
    DURATION_STATUSES,
    ChangelogEntry,
    ChangeType,
    CreateEventRequest,
    Environment,
    Event,
    EventAttributes,
    EventLinks,
    EventMetadata,
    EventType,
    Priority,
    ShippedChange,
    Status,
    UpdateEventRequest,
    WireEnum,
    takes_lock,
)
from tracker_ci.wire.light import parse_timestamp
from tracker_server import statistics
from tracker_server.domain import EventNotFound, InvalidInput, LockConflict
from tracker_server.journal import (
    ApprovalDecided,
    ChangelogAdded,
    EventCreated,
    EventDeleted,
    EventUpdated,
    Journal,
    SlackIdSet,
)
from tracker_server.store import locks as lock_store
from tracker_server.store import ranks
from tracker_server.store.locks import changelog_values
from tracker_server.tables import changelog, events
from tracker_server.validation import is_uuid


@dataclass(frozen=True)
class EventFilter:
    """Exact-match filters of search and stats; None means "any"."""

    source: str | None = None
    service: str | None = None
    slack_id: str | None = None
    impact: bool | None = None
    types: Sequence[EventType] = ()
    priorities: Sequence[Priority] = ()
    statuses: Sequence[Status] = ()
    environments: Sequence[Environment] = ()

    def is_empty(self) -> bool:
        """True when no filter is set."""
        return (
            self.source is None
            and self.service is None
            and self.slack_id is None
            and self.impact is None
            and not (self.types or self.priorities or self.statuses or self.environments)
        )

    def clauses(self) -> list[Any]:
        """SQL conditions for the filters that are set."""
        clauses: list[Any] = []
        for column, value in (
            (events.c.source, self.source),
            (events.c.service, self.service),
            (events.c.slack_id, self.slack_id),
            (events.c.impact, self.impact),
        ):
            if value is not None:
                clauses.append(column == value)
        for column, members in (
            (events.c.type, self.types),
            (events.c.priority, self.priorities),
            (events.c.status, self.statuses),
            (events.c.environment, self.environments),
        ):
            if len(members) == 1:
                clauses.append(column == members[0].value)
            elif members:
                clauses.append(column.in_([m.value for m in members]))
        return clauses


# ------------------------------------------------------------------ conversions
def event_values(event: Event) -> dict[str, Any]:
    """The ``events`` row of an event (its changelog lives in its own table)."""
    attributes, links, metadata = event.attributes, event.links, event.metadata
    return {
        "id": metadata.id,
        "title": event.title,
        "message": attributes.message,
        "source": attributes.source,
        "type": attributes.type.value,
        "priority": attributes.priority.value,
        "related_id": attributes.related_id,
        "service": attributes.service,
        "status": attributes.status.value,
        "environment": attributes.environment.value,
        "impact": attributes.impact,
        "start_date": attributes.start_date,
        "end_date": attributes.end_date,
        "owner": attributes.owner,
        "stake_holders": list(attributes.stake_holders),
        "notification": attributes.notification,
        "notifications": list(attributes.notifications),
        "pull_request_link": links.pull_request_link,
        "ticket": links.ticket,
        "slack_id": metadata.slack_id,
        "created_at": metadata.created_at,
        "duration_seconds": (
            metadata.duration.total_seconds() if metadata.duration is not None else None
        ),
        "revision": attributes.revision,
        "changes": [change.to_wire() for change in attributes.changes],
    }


def row_to_event(row: Any, entries: Sequence[Any] = ()) -> Event:
    """The wire model of an ``events`` row and its changelog rows.

    Built without validation (:func:`trusted`): the row was validated when it was
    written, and validating every field of every event again was the largest part of a
    search's time (18 events: 1.6 of its 2.4 ms). The values still go through the fields'
    own readers where the database's type differs from the model's (enums, timestamps);
    tests/server/test_event_rows.py checks the result equals the validated model."""
    r = row._mapping  # by key: a Row's attributes cost ten times more
    return trusted(
        Event,
        title=r["title"],
        attributes=trusted(
            EventAttributes,
            message=r["message"],
            source=r["source"],
            type=_member(EventType, r["type"]),
            priority=_member(Priority, r["priority"]),
            related_id=r["related_id"],
            service=r["service"],
            status=_member(Status, r["status"]),
            environment=_member(Environment, r["environment"]),
            impact=bool(r["impact"]),
            start_date=parse_timestamp(r["start_date"]),
            end_date=parse_timestamp(r["end_date"]),
            owner=r["owner"],
            stake_holders=list(r["stake_holders"] or ()),
            notification=bool(r["notification"]),
            notifications=list(r["notifications"] or ()),
            revision=r["revision"],
            # Rare and nested: validated as before.
            changes=[ShippedChange.model_validate(change) for change in r["changes"] or ()],
        ),
        links=trusted(EventLinks, pull_request_link=r["pull_request_link"], ticket=r["ticket"]),
        metadata=trusted(
            EventMetadata,
            created_at=parse_timestamp(r["created_at"]),
            duration=(
                timedelta(seconds=r["duration_seconds"])
                if r["duration_seconds"] is not None
                else None
            ),
            id=r["id"],
            slack_id=r["slack_id"],
        ),
        changelog=[row_to_entry(entry) for entry in entries],
    )


def row_to_entry(row: Any) -> ChangelogEntry:
    """The wire model of a ``changelog`` row (built as :func:`row_to_event` builds events)."""
    r = row._mapping
    return trusted(
        ChangelogEntry,
        timestamp=parse_timestamp(r["timestamp"]),
        user=r["user"],
        change_type=_member(ChangeType, r["change_type"]),
        field=r["field"],
        old_value=r["old_value"],
        new_value=r["new_value"],
        comment=r["comment"],
    )


_Model = TypeVar("_Model", bound=BaseModel)


def trusted(model: type[_Model], **values: Any) -> _Model:
    """A model of values that are already its fields' (every field given): what pydantic's
    ``model_construct`` builds, without its search of each field's aliases (which cost more
    than validating)."""
    built = model.__new__(model)
    object.__setattr__(built, "__dict__", values)
    object.__setattr__(built, "__pydantic_fields_set__", set(values))
    object.__setattr__(built, "__pydantic_extra__", None)
    object.__setattr__(built, "__pydantic_private__", None)
    return built


#: Enum members by (enum, stored name): ``parse_wire`` searches the members one by one.
_MEMBERS: dict[tuple[type[WireEnum], str], Any] = {}
#: Environments are open-ended (any name of the pattern): keep the memo bounded.
_MEMBERS_MAX = 1_000


def _member(enum_type: type[WireEnum], stored: str) -> Any:
    """The member a stored enum name reads as, the way the model's field reads it."""
    member = _MEMBERS.get((enum_type, stored))
    if member is None:
        member = enum_type.parse_wire(stored)
        if len(_MEMBERS) < _MEMBERS_MAX:
            _MEMBERS[(enum_type, stored)] = member
    return member


# ----------------------------------------------------------------------- reads
# Statements built once, their values bound at each execution: building and keying a
# statement cost SQLAlchemy three to four times what SQLite takes to run it (45 against
# 11 us for a one-row select here), on every look-up and write of an event.
_EVENT_BY_ID = select(events).where(events.c.id == bindparam("event_key"))
_EVENT_BY_ID_FOR_UPDATE = _EVENT_BY_ID.with_for_update()
_CHANGELOGS = (
    select(changelog)
    .where(changelog.c.event_id.in_(bindparam("event_keys", expanding=True)))
    .order_by(changelog.c.id)
)
_UPDATE_EVENT = update(events).where(events.c.id == bindparam("event_key"))


def _with_changelog(conn: Connection, rows: Sequence[Any]) -> list[Event]:
    if not rows:
        return []
    entries: dict[str, list[Any]] = defaultdict(list)
    ids = [row._mapping["id"] for row in rows]
    for entry in conn.execute(_CHANGELOGS, {"event_keys": ids}):
        entries[entry._mapping["event_id"]].append(entry)
    return [row_to_event(row, entries[id_]) for row, id_ in zip(rows, ids, strict=True)]


def get_event(conn: Connection, *, event_id: str, for_update: bool = False) -> Event | None:
    """The event with this id (a UUID), changelog included."""
    query = _EVENT_BY_ID_FOR_UPDATE if for_update else _EVENT_BY_ID
    row = conn.execute(query, {"event_key": event_id}).first()
    return _with_changelog(conn, [row])[0] if row else None


def find_event(conn: Connection, *, key: str) -> Event | None:
    """Look a UUID up as the event id, anything else as a Slack id (newest first)."""
    if is_uuid(key):
        return get_event(conn, event_id=key.lower())
    row = conn.execute(
        select(events)
        .where(events.c.slack_id == key)
        .order_by(events.c.created_at.desc(), events.c.id.desc())
        .limit(1)
    ).first()
    return _with_changelog(conn, [row])[0] if row else None


def require_event(conn: Connection, *, event_id: str, for_update: bool = False) -> Event:
    """The event, or :class:`EventNotFound`."""
    event = get_event(conn, event_id=event_id, for_update=for_update)
    if event is None:
        raise EventNotFound(f"event {event_id} not found")
    return event


def check_event_exists(conn: Connection, *, event_id: str, field: str) -> None:
    """:class:`InvalidInput` when ``event_id`` (given in ``field``) names no event."""
    if (
        event_id
        and conn.execute(select(events.c.id).where(events.c.id == event_id)).first() is None
    ):
        raise InvalidInput(
            f"invalid request: {field} {event_id} names no event; give an existing event id "
            "or leave it empty"
        )


#: ``totalCount`` is exact up to this many matches; above it, the planner's estimate
#: (``totalCountExact`` false): counting a million matches would take longer than the page.
COUNT_CAP = 10_000
#: ... and while counting them takes at most this long: a filter no index answers alone
#: (source + type + priority) may read a hundred rows per match; past the budget the count
#: stops and the estimate answers. An index-only count of COUNT_CAP entries takes ~2 ms.
COUNT_BUDGET_MS = 5.0
#: No count is tried when the statistics expect more matches than this: it would only
#: reach the cap, or be stopped by its budget first (type + priority: 40,000 of a million
#: events, no index for the pair; the stopped count cost 5-18 ms of every such page).
ESTIMATE_ONLY_ABOVE = COUNT_CAP


class Order(enum.Enum):
    """The order a page is read in, newest first; the value names it in a cursor."""

    #: Newest createdAt first: list, and a search without a date window.
    CREATED = "c"
    #: Newest startDate first (then createdAt): a date-window search and today, read along
    #: the (start_date, created_at, id) index from the window's end.
    STARTED = "s"

    def columns(self) -> list[Any]:
        """The sort key, every column descending; id makes it unique."""
        if self is Order.STARTED:
            return [events.c.start_date, events.c.created_at, events.c.id]
        return [events.c.created_at, events.c.id]


@dataclass(frozen=True)
class EventPage:
    """One page of events, how many match in all, and where the next page starts."""

    events: list[Event]
    total: int
    #: False when ``total`` is an estimate (more than ``COUNT_CAP`` matches).
    total_exact: bool
    #: Opaque: the sort key of the page's last event; "" on the last page.
    next_cursor: str


_BAD_CURSOR = (
    "invalid request: query parameter cursor is not a cursor this query answered; pass the "
    "nextCursor of the previous page unchanged, or leave it out for the first page"
)


def encode_cursor(order: Order, row: Any, shown: int) -> str:
    """The cursor after ``row``: urlsafe base64 of the order, how many events the pages
    before it showed (a floor for ``totalCount``), and the row's sort key."""
    key = [order.value, str(shown)]
    for column in order.columns():
        value = getattr(row, column.name)
        key.append(value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value)
    return base64.urlsafe_b64encode("|".join(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: Order) -> tuple[int, list[Any]]:
    """How many events came before, and the sort key, that a cursor of ``order`` carries;
    :class:`InvalidInput` otherwise."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, shown, *values = text.split("|")
        if kind != order.value or len(values) != len(order.columns()) or not is_uuid(values[-1]):
            raise ValueError(text)
        before = int(shown)
        moments = [datetime.fromisoformat(value) for value in values[:-1]]
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(_BAD_CURSOR) from None
    if before < 0 or any(moment.tzinfo is None for moment in moments):
        raise InvalidInput(_BAD_CURSOR)
    return before, [*moments, values[-1]]


def find_page(
    conn: Connection,
    *,
    where: Sequence[Any],
    per_page: int,
    page: int = 1,
    cursor: str = "",
    order: Order = Order.CREATED,
) -> EventPage:
    """One page of the matching events in ``order``: the one after ``cursor`` when given
    (keyset paging), else page ``page`` (offset paging)."""
    columns = order.columns()
    descending = [column.desc() for column in columns]
    query = select(events).where(*where)
    offset = before = 0
    if cursor:
        before, after = decode_cursor(cursor, order)
        bounds = [literal(value, column.type) for value, column in zip(after, columns, strict=True)]
        query = query.where(tuple_(*columns) < tuple_(*bounds))
    else:
        offset = (page - 1) * per_page
    if offset:
        # A deferred join: the rows skipped are index entries (the sort key, and the filter
        # when the index leads with it: an index-only scan), then the page's own rows are
        # read by id. OFFSET over whole rows read every skipped row from the table.
        # Deep in the unfiltered list, an anchor leaves fewer than ranks.STEP to skip.
        start = ranks.seek(conn, offset) if not where and order is Order.CREATED else None
        below, skip = ([ranks.key_before(*start[0])], start[1]) if start else ([], offset)
        keys = (
            select(events.c.id)
            .where(*where, *below)
            .order_by(*descending)
            .limit(per_page + 1)
            .offset(skip)
            .subquery("page_keys")
        )
        query = select(events).join(keys, keys.c.id == events.c.id).order_by(*descending)
        rows = conn.execute(query).all()
    else:
        rows = conn.execute(query.order_by(*descending).limit(per_page + 1)).all()
    more = len(rows) > per_page
    rows = rows[:per_page]
    if not cursor and not more and (rows or not offset):
        total, exact = offset + len(rows), True  # the last page: nothing left to count
    else:
        seen = before + offset + len(rows) + more  # known to exist
        total, exact = count_matches(conn, where=where, at_least=seen)
    return EventPage(
        events=_with_changelog(conn, rows),
        total=total,
        total_exact=exact,
        next_cursor=encode_cursor(order, rows[-1], before + offset + len(rows)) if more else "",
    )


def page_events(
    conn: Connection, *, where: Sequence[Any], page: int, per_page: int
) -> tuple[list[Event], int]:
    """One page of the matching events, newest first, and how many match (exact up to
    ``COUNT_CAP``, estimated above)."""
    found = find_page(conn, where=where, page=page, per_page=per_page)
    return found.events, found.total


def count_matches(conn: Connection, *, where: Sequence[Any], at_least: int = 0) -> tuple[int, bool]:
    """How many events match, and whether that is exact: counted up to ``COUNT_CAP`` (over
    at most ``COUNT_CAP + 1`` matches) within ``COUNT_BUDGET_MS`` unless the estimate is
    above ``ESTIMATE_ONLY_ABOVE``; otherwise the planner's estimate, never below what is
    known to exist (``at_least``, or ``COUNT_CAP + 1`` once counted past the cap)."""
    estimate = statistics.estimate_matches(conn, where)
    counted = None
    if estimate <= ESTIMATE_ONLY_ABOVE:
        capped = select(literal(1)).select_from(events).where(*where).limit(COUNT_CAP + 1)
        query = select(func.count()).select_from(capped.subquery())
        counted = statistics.count_within(conn, query, budget_ms=COUNT_BUDGET_MS)
    if counted is not None and counted <= COUNT_CAP:
        return counted, True
    known = max(at_least, COUNT_CAP + 1) if counted is not None else at_least
    return max(estimate, known), False


def start_date_between(start: datetime | None, end: datetime | None) -> list[Any]:
    """Conditions on attributes.startDate, both bounds inclusive."""
    clauses: list[Any] = []
    if start is not None:
        clauses.append(events.c.start_date >= start)
    if end is not None:
        clauses.append(events.c.start_date <= end)
    return clauses


def distinct_values(conn: Connection, column: Any) -> list[str]:
    """Every distinct non-empty value of an events column that leads an index, ascending:
    one index seek per value (a loose index scan written as a recursive query), so the
    pages' service and environment lists cost their length, not the table's size (a GROUP
    BY read every row: 100-300 ms at a million events; PostgreSQL has no skip scan)."""
    query = _DISTINCT.get(column.name)
    if query is None:  # built once per column: building it cost more than running it

        def after(bound: Any) -> Any:
            following = select(column).where(column > bound).order_by(column).limit(1)
            # As text: PostgreSQL wants both terms of a recursive query of one type.
            return cast(following.scalar_subquery(), Text)

        found = select(after(literal(""))).cte("found", recursive=True)
        value = found.c[found.c.keys()[0]]
        found = found.union_all(select(after(value)).where(value.is_not(None)))
        value = found.c[found.c.keys()[0]]
        query = _DISTINCT[column.name] = select(value).where(value.is_not(None))
    return [str(v) for v in conn.execute(query).scalars()]


_DISTINCT: dict[str, Any] = {}


def count_events(conn: Connection, *, where: Sequence[Any]) -> int:
    """How many events match."""
    return int(conn.execute(select(func.count()).select_from(events).where(*where)).scalar_one())


def monthly_counts(
    conn: Connection, *, where: Sequence[Any], group_by_service: bool
) -> list[tuple[int, int, str, int]]:
    """(year, month, service, count) of matching events by UTC month of createdAt."""
    year = func.extract("year", events.c.created_at)
    month = func.extract("month", events.c.created_at)
    columns = [year.label("year"), month.label("month")]
    if group_by_service:
        columns.append(events.c.service.label("service"))
    query = select(*columns, func.count().label("matches")).where(*where)
    query = query.group_by(*columns).order_by(*columns)
    return [
        (int(row.year), int(row.month), row.service if group_by_service else "", int(row.matches))
        for row in conn.execute(query)
    ]


def get_changelog(
    conn: Connection, *, event_id: str, page: int, per_page: int
) -> tuple[list[ChangelogEntry], int]:
    """One page of an event's changelog (oldest first) and its length."""
    total = conn.execute(
        select(func.count()).select_from(changelog).where(changelog.c.event_id == event_id)
    ).scalar_one()
    rows = conn.execute(
        select(changelog)
        .where(changelog.c.event_id == event_id)
        .order_by(changelog.c.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return [row_to_entry(row) for row in rows], int(total)


# ---------------------------------------------------------------------- writes
def _author(owner: str) -> str:
    return owner or "system"


def create_event(
    conn: Connection,
    *,
    request: CreateEventRequest,
    now: datetime,
    journal: Journal,
    token_id: str = "",
    grant: lock_store.Grant | None = None,
) -> Event:
    """Insert an event: its duration when linked, its changelog, its automatic lock (which
    belongs to ``token_id``, the caller's token; the queue's ``grant`` when its turn came
    with the event to open)."""
    attributes = request.attributes
    event_id = str(uuid.uuid4())
    duration: timedelta | None = None
    if attributes.related_id:
        related_created = conn.execute(
            select(events.c.created_at).where(events.c.id == attributes.related_id.lower())
        ).scalar()
        if related_created is None:
            raise InvalidInput(
                f"invalid request: attributes.relatedId {attributes.related_id} names no "
                "event; link to an existing event id or leave it empty"
            )
        duration = now - related_created

    auto_lock = None
    if takes_lock(attributes.type, attributes.status):
        try:
            auto_lock = lock_store.acquire_lock(
                conn,
                service=attributes.service,
                environment=attributes.environment.value,
                resource=attributes.type.value,
                who=_author(attributes.owner),
                event_id=event_id,
                ttl_seconds=request.lock_ttl_seconds,
                now=now,
                journal=journal,
                reason=request.lock_reason,
                job_url=request.job_url,
                ticket=request.queue_ticket,
                token_id=token_id,
                lock_id=grant.lock_id if grant is not None else "",
                claim_by=grant.claim_by if grant is not None else None,
                key_settled=grant is not None,
                changelog_entry=False,  # below, once the event row exists
                line=grant.line if grant is not None else None,
            )
        except LockConflict as held:
            # Upstream's message for a refused event; the holder stays on the error.
            raise LockConflict(
                held.holder,
                f"cannot create event: service {attributes.service} is already locked in "
                f"{attributes.environment.value}. Please unlock it first",
            ) from None

    created = ChangelogEntry(
        timestamp=now,
        user=_author(attributes.owner),
        change_type=ChangeType.created,
        comment="Event created",
    )
    event = Event(
        title=request.title,
        attributes=attributes,
        links=request.links,
        metadata=EventMetadata(
            created_at=now, duration=duration, id=event_id, slack_id=request.slack_id
        ),
        changelog=[created],
    )
    if auto_lock is not None:
        # The lock was taken before the event row existed: recorded on the event with it.
        event.changelog.append(lock_store.lock_changelog_entry(auto_lock, ChangeType.locked, now))
        if grant is not None:
            grant.taken = auto_lock
    conn.execute(insert(events), event_values(event))
    _write_changelog(conn, event_id, event.changelog)
    # What was written is exactly what a read would answer: no need to read it back.
    journal.record(EventCreated(event=event))
    return event


def _write_changelog(conn: Connection, event_id: str, entries: Sequence[ChangelogEntry]) -> None:
    """Insert these entries of one event, in order: one statement (one row: a plain insert,
    which a batch's or a group's buffer holds back)."""
    if len(entries) == 1:
        conn.execute(insert(changelog), changelog_values(event_id, entries[0]))
    elif entries:
        conn.execute(insert(changelog), [changelog_values(event_id, e) for e in entries])


def update_event(
    conn: Connection,
    *,
    request: UpdateEventRequest,
    event_id: str,
    now: datetime,
    journal: Journal,
    before: Event | None = None,
) -> Event:
    """Replace title, attributes and links; log each change; close durations and locks.
    ``before``: the event as this transaction read it for update (None: read here)."""
    if before is None:
        before = require_event(conn, event_id=event_id, for_update=True)
    old, new = before.attributes, request.attributes
    user = _author(new.owner or old.owner)
    entries: list[ChangelogEntry] = []
    duration = before.metadata.duration

    def log(change_type: ChangeType, field: str, old_value: str, new_value: str) -> None:
        entries.append(
            ChangelogEntry(
                timestamp=now,
                user=user,
                change_type=change_type,
                field=field,
                old_value=old_value,
                new_value=new_value,
            )
        )

    if new.status != old.status:
        log(ChangeType.status_changed, "status", old.status.value, new.status.value)
        if new.status in DURATION_STATUSES:
            assert before.metadata.created_at is not None
            duration = now - before.metadata.created_at
    if request.links.ticket and request.links.ticket != before.links.ticket:
        log(ChangeType.linked, "ticket", before.links.ticket, request.links.ticket)
    if new.priority != old.priority:
        log(ChangeType.updated, "priority", old.priority.value, new.priority.value)
    if request.title != before.title:
        log(ChangeType.updated, "title", before.title, request.title)
    entries += _approved_or_updated(entries, old.owner, new.owner, now=now, user=user)
    after = Event(
        title=request.title,
        attributes=new,
        links=request.links,
        metadata=EventMetadata(
            created_at=before.metadata.created_at,
            duration=duration,
            id=event_id,
            slack_id=request.slack_id or before.metadata.slack_id,
        ),
    )
    values = event_values(after)
    del values["id"]
    # Values as parameters (not .values()): the statement stays cached and cheap.
    conn.execute(_UPDATE_EVENT, {**values, "event_key": event_id})
    if new.status in CLOSING_STATUSES:
        entries += lock_store.release_event_locks(conn, event_id=event_id, now=now, journal=journal)
    _write_changelog(conn, event_id, entries)
    # What was written is exactly what a read would answer: no need to read it back.
    after.changelog = [*before.changelog, *entries]
    journal.record(EventUpdated(before=before, after=after))
    return after


def _approved_or_updated(
    entries: list[ChangelogEntry], old_owner: str, new_owner: str, *, now: datetime, user: str
) -> list[ChangelogEntry]:
    """Upstream's entries when status, ticket, priority and title did not change: a new
    owner alone is an approval by that owner (upstream's Approve button; the status, even
    ``waiting_approval``, stays), anything else one ``updated`` entry. Clearing the
    owner approves nothing: it is an update."""
    if entries:
        return []
    if new_owner and new_owner != old_owner:
        return [
            ChangelogEntry(
                timestamp=now,
                user=new_owner,
                change_type=ChangeType.approved,
                comment=f"Event approved by {new_owner}",
            )
        ]
    return [
        ChangelogEntry(
            timestamp=now, user=user, change_type=ChangeType.updated, comment="Event updated"
        )
    ]


def decide_approval(
    conn: Connection,
    *,
    event_id: str,
    approved: bool,
    by: str,
    comment: str,
    now: datetime,
    journal: Journal,
) -> Event:
    """Approve (status ``open``: approved, not started, no lock yet) or reject (status
    ``failure``, closed, duration set) an event the caller checked is waiting for approval;
    one ``approved``/``rejected`` changelog entry carries who and why."""
    before = require_event(conn, event_id=event_id, for_update=True)
    status = Status.open if approved else Status.failure
    values: dict[str, Any] = {"status": status.value}
    if not approved and before.metadata.created_at is not None:
        values["duration_seconds"] = (now - before.metadata.created_at).total_seconds()
    conn.execute(update(events).where(events.c.id == event_id).values(**values))
    verb = "approved" if approved else "rejected"
    entry = ChangelogEntry(
        timestamp=now,
        user=by,
        change_type=ChangeType.approved if approved else ChangeType.rejected,
        field="status",
        old_value=before.attributes.status.value,
        new_value=status.value,
        comment=f"Deployment {verb} by {by}" + (f": {comment}" if comment else ""),
    )
    conn.execute(insert(changelog), changelog_values(event_id, entry))
    after = require_event(conn, event_id=event_id)
    journal.record(ApprovalDecided(event=after, approved=approved, by=by, comment=comment))
    return after


def delete_event(conn: Connection, *, event_id: str, now: datetime, journal: Journal) -> Event:
    """Delete an event, its changelog and the locks it holds."""
    event = require_event(conn, event_id=event_id, for_update=True)
    # Its changelog goes with it: the ``unlocked`` entries are not written.
    lock_store.release_event_locks(conn, event_id=event_id, now=now, journal=journal)
    conn.execute(delete(changelog).where(changelog.c.event_id == event_id))
    conn.execute(delete(events).where(events.c.id == event_id))
    journal.record(EventDeleted(event=event))
    return event


def add_changelog_entry(
    conn: Connection, *, event_id: str, entry: ChangelogEntry, now: datetime, journal: Journal
) -> Event:
    """Append an entry (timestamped now unless it carries a timestamp)."""
    require_event(conn, event_id=event_id, for_update=True)
    if entry.timestamp is None:
        entry = entry.model_copy(update={"timestamp": now})
    conn.execute(insert(changelog), changelog_values(event_id, entry))
    journal.record(ChangelogAdded(event_id=event_id, entry=entry))
    return require_event(conn, event_id=event_id)


def set_slack_id(conn: Connection, *, event_id: str, slack_id: str, journal: Journal) -> Event:
    """Attach a Slack message id to an event."""
    before = require_event(conn, event_id=event_id, for_update=True)
    conn.execute(update(events).where(events.c.id == event_id).values(slack_id=slack_id))
    journal.record(
        SlackIdSet(event_id=event_id, slack_id=slack_id, previous=before.metadata.slack_id)
    )
    return require_event(conn, event_id=event_id)
