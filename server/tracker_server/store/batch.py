"""SQL of the batch endpoint: the items' idempotency keys in a few statements, and history.

Every key of a batch is claimed in one statement (``INSERT ... ON CONFLICT DO NOTHING
RETURNING``: on PostgreSQL a key a concurrent request holds waits for that request, as
``idempotency.claim`` does), answered in one ``executemany`` (``idempotency.remember_all``)
and, for refused items, forgotten in one ``DELETE``: the same rules as single creates
(``store/idempotency.py``), without a round trip per item.

History (items carrying ``metadata.createdAt``) is inserted as it was, with one
``executemany`` per table, and journalled as one :class:`EventsImported` entry: it takes
no lock, is not frozen and notifies nobody (no webhook names ``events_imported``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Table, delete, insert, select
from sqlalchemy.sql.dml import Insert

from tracker_ci.models import (
    ChangelogEntry,
    ChangeType,
    CreateEventRequest,
    Event,
    EventMetadata,
)
from tracker_server.journal import EventsImported
from tracker_server.store import insert_ignoring_conflicts
from tracker_server.store.events import event_values, row_to_event, trusted
from tracker_server.store.idempotency import StoredAnswer, purge_expired
from tracker_server.store.locks import changelog_values
from tracker_server.tables import changelog, events, idempotency_keys

#: The idempotency scope of batch items (a key of ``POST /event`` is another request).
SCOPE = "POST /events/batch"


def imported(history: Sequence[Event]) -> EventsImported:
    """The journal entry of these imported events (at least one)."""
    created = [event.metadata.created_at for event in history if event.metadata.created_at]
    return EventsImported(ids=[e.id for e in history], oldest=min(created), newest=max(created))


# ------------------------------------------------------------------ idempotency
@dataclass
class KeyClaims:
    """What the store knows of a batch's keys: answered before (same request or not).
    A key in neither map was claimed by this batch (a placeholder row, to answer or forget)."""

    stored: dict[str, StoredAnswer] = field(default_factory=dict)
    reused: set[str] = field(default_factory=set)


def claim_keys(
    conn: Connection, *, scope: str, fingerprints: Mapping[str, str], now: datetime
) -> KeyClaims:
    """Reserve every new key (key -> request fingerprint); read the answers of the others."""
    claims = KeyClaims()
    if not fingerprints:
        return claims
    purge_expired(conn, now, always=True)  # a key of the batch is then new or live
    rows = [
        {
            "scope": scope,
            "key": key,
            "request_hash": fingerprint,
            "status_code": 0,
            "response_body": "",
            "created_at": now,
        }
        # In key order: two batches sharing keys in different orders would otherwise each
        # wait on the other's first row (a deadlock on PostgreSQL).
        for key, fingerprint in sorted(fingerprints.items())
    ]
    # One statement, cached: SQLAlchemy sends the rows as multi-row VALUES pages.
    statement = insert_ignoring_conflicts(conn, idempotency_keys, idempotency_keys.c.key)
    claimed = set(conn.execute(statement, rows).scalars())
    known = [key for key in fingerprints if key not in claimed]
    if not known:
        return claims
    found = conn.execute(
        select(
            idempotency_keys.c.key,
            idempotency_keys.c.request_hash,
            idempotency_keys.c.status_code,
            idempotency_keys.c.response_body,
        ).where(idempotency_keys.c.scope == scope, idempotency_keys.c.key.in_(known))
    )
    for row in found:
        if row.request_hash != fingerprints[row.key]:
            claims.reused.add(row.key)
        else:
            claims.stored[row.key] = StoredAnswer(row.status_code, row.response_body)
    return claims


def forget_keys(conn: Connection, *, scope: str, keys: Iterable[str]) -> None:
    """Drop the placeholders of refused items: only successful answers are kept."""
    keys = list(keys)
    if keys:
        conn.execute(
            delete(idempotency_keys).where(
                idempotency_keys.c.scope == scope, idempotency_keys.c.key.in_(keys)
            )
        )


# ---------------------------------------------------------------------- history
def created_at_of(conn: Connection, *, ids: Iterable[str]) -> dict[str, datetime]:
    """The createdAt of each of these events that exists, by id (one query)."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(select(events.c.id, events.c.created_at).where(events.c.id.in_(wanted)))
    return {row.id: row.created_at for row in rows}


def read_events(conn: Connection, *, ids: Iterable[str]) -> dict[str, Event]:
    """These events with their changelogs, by id, in two queries (not two per event)."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(select(events).where(events.c.id.in_(wanted))).all()
    entries: dict[str, list[Any]] = {row.id: [] for row in rows}
    query = select(changelog).where(changelog.c.event_id.in_(wanted)).order_by(changelog.c.id)
    for entry in conn.execute(query):
        entries[entry.event_id].append(entry)
    return {row.id: row_to_event(row, entries[row.id]) for row in rows}


def insert_history(conn: Connection, *, history: Sequence[Event]) -> None:
    """Insert events exactly as given (id, createdAt, duration, changelog): two executemany."""
    if not history:
        return
    conn.execute(insert(events), [event_values(event) for event in history])
    entries = [changelog_values(event.id, entry) for event in history for entry in event.changelog]
    if entries:
        conn.execute(insert(changelog), entries)


# ------------------------------------------------------------------ live events
class PlainEvents:
    """Makes, at one time ``now``, the events ``store.events.create_event`` makes of
    requests that take no lock and name no related event (tests/server/test_batch_plain.py
    holds the two equal): the parts every event shares (the timestamp, each author's
    "created" entry) are validated once, the rest is taken as the request validated it."""

    def __init__(self, now: datetime) -> None:
        self.now = EventMetadata(created_at=now).created_at
        self._created: dict[str, dict[str, Any]] = {}
        self._ids: Iterator[str] = iter(())

    def event(self, request: CreateEventRequest) -> Event:
        """The event of this request, with a new id and its "created" changelog entry."""
        attributes = request.attributes
        author = attributes.owner or "system"
        created = self._created.get(author)
        if created is None:
            created = self._created[author] = dict(
                ChangelogEntry(
                    timestamp=self.now,
                    user=author,
                    change_type=ChangeType.created,
                    comment="Event created",
                ).__dict__
            )
        event_id = next(self._ids, None) or self._more_ids()
        metadata = trusted(
            EventMetadata,
            created_at=self.now,
            duration=None,
            id=event_id,
            slack_id=request.slack_id,
        )
        return trusted(
            Event,
            title=request.title,
            attributes=attributes,
            links=request.links,
            metadata=metadata,
            changelog=[trusted(ChangelogEntry, **created)],
        )

    def _more_ids(self) -> str:
        self._ids = _random_uuids(256)
        return next(self._ids)


def _random_uuids(count: int) -> Iterator[str]:
    """``count`` random (version 4) UUIDs as text, what ``str(uuid.uuid4())`` gives, from
    one read of the system's random source (``uuid4`` reads it once per id)."""
    random = os.urandom(16 * count)
    for start in range(0, 16 * count, 16):
        number = int.from_bytes(random[start : start + 16])
        number = (number & _UUID_CLEAR) | _UUID_V4
        text = f"{number:032x}"
        yield f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


#: The bits version 4 and the RFC 4122 variant set (see ``uuid.UUID(version=4)``).
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_V4 = (0x4000 << 64) | (0x8000 << 48)


def plain_rows(event: Event) -> HeldRows:
    """The rows of an event and its changelog, as :class:`BufferedInserts` holds them."""
    event_id = event.metadata.id
    return {
        events: [event_values(event)],
        changelog: [changelog_values(event_id, entry) for entry in event.changelog],
    }


#: Rows held back by :class:`BufferedInserts`, by table.
HeldRows = dict[Table, list[Mapping[str, Any]]]


class BufferedInserts:
    """The connection ``create_event`` writes through (a batch's plain events, a grouped
    ``POST /event``): its inserts of ``events`` and ``changelog`` rows are held back and
    sent as one ``executemany`` per table; anything else done with the connection (a
    statement, a savepoint, any attribute but its dialect) first sends what is held, so
    it still sees the rows before it. ``flush()`` (or hand them over with ``take()``)
    before the transaction ends."""

    #: The tables whose plain inserts are held back (events first: changelog rows refer
    #: to them).
    TABLES = (events, changelog)
    #: What may be read without sending the rows held (it does not touch the database).
    _INERT = frozenset({"dialect"})

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._held: HeldRows = {}

    def execute(self, statement: Any, parameters: Any = None, **options: Any) -> Any:
        """Hold a plain insert of one row; send anything else (after what is held)."""
        table = self._plain_table(statement, parameters)
        if table is not None:
            self._held.setdefault(table, []).append(parameters)
            return None
        self.flush()
        return self.conn.execute(statement, parameters, **options)

    def _plain_table(self, statement: Any, parameters: Any) -> Table | None:
        """The table of ``insert(table)`` executed with one row, else None. Plain: nothing
        was set on the statement but its table (``.values()``, ``.returning()``, prefixes
        each set an attribute; memoized caches do not count)."""
        if not isinstance(statement, Insert) or not isinstance(parameters, Mapping):
            return None
        caches = {"_memoized_keys", *getattr(statement, "_memoized_keys", ())}
        if statement.table not in self.TABLES or set(vars(statement)) - caches != {"table"}:
            return None
        return statement.table  # type: ignore[return-value]

    def hold(self, rows: HeldRows) -> None:
        """Hold these rows too (built by the caller, not by an ``insert`` statement)."""
        for table, held in rows.items():
            self._held.setdefault(table, []).extend(held)

    def flush(self) -> None:
        """Send the rows held, one executemany per table (events first)."""
        insert_held(self.conn, [self.take()])

    def take(self) -> HeldRows:
        """The rows held, handed over (to be sent with others' by :func:`insert_held`)."""
        held, self._held = self._held, {}
        return held

    def __getattr__(self, name: str) -> Any:
        if name not in self._INERT:
            self.flush()
        return getattr(self.conn, name)


def insert_held(conn: Connection, helds: Sequence[HeldRows]) -> None:
    """Insert the rows several buffers held, one executemany per table (events first)."""
    for table in BufferedInserts.TABLES:
        rows = [row for held in helds for row in held.get(table, ())]
        if rows:
            insert_rows(conn, table, rows)


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """``conn.execute(insert(table), rows)`` for rows that all set the same columns, sent
    as one executemany of the driver: the statement SQLAlchemy compiles for it and the
    values through its columns' own bind processors (so what is stored is the same), but
    without its per-row parameter processing (a third of a 1,000-event batch's insert)."""
    keys = tuple(rows[0])
    shape = rows[0].keys()
    if any(row.keys() != shape for row in rows):  # not one shape: let SQLAlchemy sort it
        conn.execute(insert(table), rows)
        return
    plan = _insert_plan(conn.dialect, table, keys)
    if plan is None:
        conn.execute(insert(table), rows)
        return
    processors = [(name, _remembering(plan.processors.get(name))) for name in plan.names]
    if plan.positional:
        sent: list[Any] = [
            tuple(row[name] if fn is None else fn(row[name]) for name, fn in processors)
            for row in rows
        ]
    else:
        sent = [
            {name: row[name] if fn is None else fn(row[name]) for name, fn in processors}
            for row in rows
        ]
    conn.exec_driver_sql(plan.sql, sent)


def _remembering(process: Any) -> Any:
    """``process`` that converts each value once (the rows of a batch share their times,
    flags and empty lists); lists other than the empty one are converted every time."""
    if process is None:
        return None
    done: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        if value.__class__ is list:
            if value:
                return process(value)
            key: Any = _EMPTY_LIST
        else:
            key = (value.__class__, value)
        try:
            return done[key]
        except KeyError:
            converted = done[key] = process(value)
            return converted
        except TypeError:  # unhashable (a mapping): converted every time
            return process(value)

    return convert


_EMPTY_LIST = object()


@dataclass(frozen=True)
class _InsertPlan:
    """A compiled executemany insert: its SQL, its parameters' names in order (positional
    drivers take tuples in that order, the others dicts) and their bind processors."""

    sql: str
    names: tuple[str, ...]
    positional: bool
    processors: Mapping[str, Any]


@functools.lru_cache(maxsize=64)
def _insert_plan(dialect: Dialect, table: Table, keys: tuple[str, ...]) -> _InsertPlan | None:
    """The plan of inserting these columns; None if a parameter is not named as its column
    (not seen: then SQLAlchemy sends the rows itself)."""
    compiled: Any = insert(table).compile(dialect=dialect, column_keys=keys, for_executemany=True)
    names = tuple(compiled.positiontup) if compiled.positional else keys
    if set(names) != set(keys) or set(compiled.binds) != set(keys):
        return None
    return _InsertPlan(str(compiled), names, compiled.positional, compiled._bind_processors)
