"""SQL of the batch endpoint: the items' idempotency keys in a few statements, and history.

Every key of a batch is claimed in one statement (``INSERT ... ON CONFLICT DO NOTHING
RETURNING``: on PostgreSQL a key a concurrent request holds waits for that request, as
``idempotency.claim`` does), answered in one ``executemany`` and, for refused items,
forgotten in one ``DELETE``: the same rules as single creates (``store/idempotency.py``),
without a round trip per item.

History (items carrying ``metadata.createdAt``) is inserted as it was, with one
``executemany`` per table, and journalled as one :class:`EventsImported` entry: it takes
no lock, is not frozen and notifies nobody (no webhook names ``events_imported``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, insert, select, update
from sqlalchemy.sql.dml import Insert

from tracker_ci.models import Event
from tracker_server.journal import EventsImported
from tracker_server.store.events import event_values, row_to_event
from tracker_server.store.idempotency import KEY_LIFETIME, StoredAnswer
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


def _insert_ignoring_conflicts(conn: Connection) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` into the keys (both backends spell it so)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(idempotency_keys).on_conflict_do_nothing()
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(idempotency_keys).on_conflict_do_nothing()


def claim_keys(
    conn: Connection, *, scope: str, fingerprints: Mapping[str, str], now: datetime
) -> KeyClaims:
    """Reserve every new key (key -> request fingerprint); read the answers of the others."""
    claims = KeyClaims()
    if not fingerprints:
        return claims
    conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < now - KEY_LIFETIME))
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
    statement = _insert_ignoring_conflicts(conn).returning(idempotency_keys.c.key)
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


def remember_answers(
    conn: Connection, *, scope: str, answers: Sequence[tuple[str, int, str]]
) -> None:
    """Store (key, status, body) for the keys this batch claimed, in one executemany."""
    if not answers:
        return
    statement = (
        update(idempotency_keys)
        .where(
            idempotency_keys.c.scope == scope,
            idempotency_keys.c.key == bindparam("claimed_key"),
        )
        .values(status_code=bindparam("answer_status"), response_body=bindparam("answer_body"))
    )
    conn.execute(
        statement,
        [
            {"claimed_key": key, "answer_status": status, "answer_body": body}
            for key, status, body in answers
        ],
    )


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
            conn.execute(insert(table), rows)
