"""The journal: a typed record of every change, kept in the change's own transaction.

Stores record :class:`JournalEntry` objects on the request's :class:`Journal`. Before the
write transaction commits, :meth:`Journal.persist` inserts them into the ``journal`` table
on the same connection, so an entry exists exactly when its change does (a rolled-back
request leaves none). After the commit, :meth:`Journal.flush` announces them: audit log
lines and metric observations, as before. The table is the seam a notification outbox
hangs on: :func:`read_journal` gives entries in ``id`` order.

Ids are handed out at insert, not at commit: on PostgreSQL a transaction can commit an
entry with a smaller id after a larger one is visible. A reader that must see every entry
claims rows (``FOR UPDATE SKIP LOCKED``) rather than keeping only the highest id it read.

The entries are in ``journal/entries.py``, the audit log lines in ``journal/audit.py``;
every name is importable from ``tracker_server.journal``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from tracker_server.journal.audit import (
    AuditLine,
    JsonLineFormatter,
    audit_logger,
    configure_audit_log,
    event_log_fields,
    lock_log_fields,
)
from tracker_server.journal.entries import (
    ApprovalDecided,
    CatalogEntryDeleted,
    CatalogEntrySet,
    ChangelogAdded,
    EventCreated,
    EventDeleted,
    EventsImported,
    EventUpdated,
    FreezeCreated,
    FreezeDeleted,
    FreezeUpdated,
    GlassBroken,
    JournalEntry,
    LockAcquired,
    LockEvicted,
    LockOverridden,
    LockReleased,
    LockRenewed,
    LockUpdated,
    MetricsSink,
    QueueGranted,
    QueueJoined,
    QueueLeft,
    QueuePolicySet,
    QueueWaiterSuperseded,
    SlackIdSet,
    TokenCreated,
    TokenRevoked,
)
from tracker_server.tables import journal as journal_table

__all__ = [
    "AuditLine",
    "ApprovalDecided",
    "CatalogEntryDeleted",
    "CatalogEntrySet",
    "ChangelogAdded",
    "EventCreated",
    "EventDeleted",
    "EventUpdated",
    "EventsImported",
    "FreezeCreated",
    "FreezeDeleted",
    "FreezeUpdated",
    "GlassBroken",
    "Journal",
    "JournalEntry",
    "JournalRecord",
    "JsonLineFormatter",
    "LockAcquired",
    "LockEvicted",
    "LockOverridden",
    "LockReleased",
    "LockRenewed",
    "LockUpdated",
    "MetricsSink",
    "QueueGranted",
    "QueueJoined",
    "QueueLeft",
    "QueuePolicySet",
    "QueueWaiterSuperseded",
    "SlackIdSet",
    "TokenCreated",
    "TokenRevoked",
    "audit_logger",
    "configure_audit_log",
    "event_log_fields",
    "lock_log_fields",
    "persist_together",
    "read_journal",
]


@dataclass(frozen=True)
class JournalRecord:
    """A stored entry: its place in the journal and when it happened."""

    id: int
    occurred_at: datetime
    entry: JournalEntry


_INSERT_RETURNING_ID = insert(journal_table).returning(
    journal_table.c.id, sort_by_parameter_order=True
)
#: The same without an order: SQLAlchemy keeps the order above on SQLite only by sending
#: one statement per row (a batch of 1,000 events: 1,000 inserts); see ``insert_entries``.
_INSERT_RETURNING_IDS = insert(journal_table).returning(journal_table.c.id)


def insert_entries(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the journal's rows in one statement; their ids, in the order of the rows.

    SQLite inserts a statement's rows in the order given, each with a rowid above every
    one before it (the journal's id is its rowid), but returns them in no promised order:
    the ids of the rows are the returned ids in ascending order. PostgreSQL's insert
    keeps the order itself (SQLAlchemy's sentinel), in one statement too."""
    if conn.dialect.name == "sqlite":
        return sorted(conn.execute(_INSERT_RETURNING_IDS, rows).scalars().all())
    return list(conn.execute(_INSERT_RETURNING_ID, rows).scalars().all())


@dataclass
class Journal:
    """The entries of one request: persisted with its transaction, announced after.

    ``now`` is the request's moment (from the app's clock): the ``occurred_at`` of its
    entries, the same instant the changes themselves carry (createdAt, timestamps).
    """

    metrics: MetricsSink
    now: datetime
    pending: list[JournalEntry] = field(default_factory=list)
    committed: list[JournalEntry] = field(default_factory=list)
    #: Called with the stored records inside the transaction (the webhook outbox).
    outbox: Callable[[Connection, list[JournalRecord]], None] | None = None
    #: :meth:`persist` leaves the entries pending: :func:`persist_together` stores them
    #: with the other writes' of the same transaction.
    held: bool = False
    #: Called once the transaction committed, before its waiters are woken
    #: (``writes.Write._announce``): the queue's handover answers from what it wrote.
    on_commit: list[Callable[[], None]] = field(default_factory=list)

    def record(self, entry: JournalEntry) -> None:
        """Note a change made in the current transaction."""
        self.pending.append(entry)

    def persist(self, conn: Connection) -> None:
        """Insert the pending entries on ``conn``: call it inside the write transaction.

        The ``outbox`` (if any) is handed the stored records on the same connection, so
        the notifications of a change commit (or roll back) with it. A journal ``held``
        for its group (``writes._Grouped``) is persisted with the others, by
        :func:`persist_together`, after every write of the group.
        """
        if not self.held:
            persist_together(conn, [self])

    def discard(self) -> None:
        """Forget the pending entries (their transaction rolled back)."""
        self.pending.clear()
        self.on_commit.clear()

    def flush(self) -> None:
        """Write the audit lines and record the metrics of what was committed."""
        # The lines' fields are built only when they are written (not below --log-level).
        audited = audit_logger.isEnabledFor(logging.INFO)
        for entry in self.committed:
            line = entry.audit_line() if audited else None
            if line is not None:
                message, fields = line
                audit_logger.info(message, extra={"fields": fields})
            entry.observe(self.metrics)
        self.committed.clear()


def persist_together(conn: Connection, journals: Sequence[Journal]) -> None:
    """Insert the pending entries of these journals (writes of one transaction) and hand
    each outbox its records, on ``conn``; the entries are then committed (to announce)."""
    entries = [(journal, entry) for journal in journals for entry in journal.pending]
    if not entries:
        return
    rows = [
        {"occurred_at": journal.now, "kind": entry.KIND, "payload": entry.payload_json()}
        for journal, entry in entries
    ]
    # One statement for every entry of the transaction (a batch of events, a group of
    # creates: one round trip, not one per event), its ids in the order of the rows.
    ids = insert_entries(conn, rows)
    # Each outbox once, with all its records: one look at the webhooks per transaction.
    outboxes: dict[int, tuple[Callable[[Connection, list[JournalRecord]], None], list[Any]]]
    outboxes = {}
    for key, (journal, entry) in zip(ids, entries, strict=True):
        if journal.outbox is not None:
            _, records = outboxes.setdefault(id(journal.outbox), (journal.outbox, []))
            records.append(JournalRecord(id=key, occurred_at=journal.now, entry=entry))
    for outbox, records in outboxes.values():
        outbox(conn, records)
    for journal in journals:
        journal.committed.extend(journal.pending)
        journal.pending.clear()


def read_journal(conn: Connection, *, after: int = 0, limit: int = 100) -> list[JournalRecord]:
    """Up to ``limit`` stored entries with an id above ``after``, in id order."""
    rows: Sequence[Any] = conn.execute(
        select(journal_table)
        .where(journal_table.c.id > after)
        .order_by(journal_table.c.id)
        .limit(limit)
    ).all()
    return [
        JournalRecord(
            id=row.id,
            occurred_at=row.occurred_at,
            entry=JournalEntry.from_row(row.kind, row.payload),
        )
        for row in rows
    ]
