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

Log lines are one JSON object each on stdout, with upstream's field names, so that Loki
or OpenSearch can ingest them like upstream's.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, insert, select

from tracker_ci.models import (
    DURATION_STATUSES,
    ChangelogEntry,
    Event,
    EventType,
    FreezeWindow,
    Lock,
    QueueEntry,
    QueuePolicy,
    Status,
    TokenInfo,
    format_timestamp,
    utcnow,
)
from tracker_server.db import JsonText
from tracker_server.metrics import Metrics
from tracker_server.tables import journal as journal_table

audit_logger = logging.getLogger("tracker_server.audit")

AuditLine = tuple[str, dict[str, Any]]


class JsonLineFormatter(logging.Formatter):
    """``{"time", "level", "msg", ...fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        # The time the line is written (a process-wide logger has no app, hence no clock).
        line = {
            "time": format_timestamp(utcnow()),
            "level": record.levelname,
            "msg": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        return json.dumps(line, ensure_ascii=False)


def configure_audit_log(level: str) -> None:
    """Send audit lines to stdout as JSON (once per process)."""
    audit_logger.setLevel(level.upper())
    audit_logger.propagate = False
    if not any(getattr(h, "tracker_audit", False) for h in audit_logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonLineFormatter())
        handler.tracker_audit = True  # type: ignore[attr-defined]
        audit_logger.addHandler(handler)


def event_log_fields(event: Event) -> dict[str, Any]:
    """The fields upstream logs for a created event."""
    attributes = event.attributes
    created_at = event.metadata.created_at
    return {
        "title": event.title,
        "message": attributes.message,
        "priority": attributes.priority.value,
        "environment": attributes.environment.value,
        "owner": attributes.owner,
        "impact": attributes.impact,
        "service": attributes.service,
        "status": attributes.status.value,
        "type": attributes.type.value,
        "pull_request": event.links.pull_request_link,
        "id": event.metadata.id,
        "created_at": format_timestamp(created_at) if created_at else "",
    }


def lock_log_fields(lock: Lock) -> dict[str, Any]:
    """The fields of a lock's audit lines."""
    return {
        "service": lock.service,
        "environment": lock.environment,
        "resource": lock.resource,
        "who": lock.who,
        "id": lock.id,
        "event_id": lock.event_id,
    }


def _count_status(metrics: Metrics, event: Event) -> None:
    attributes = event.attributes
    metrics.count_status(
        service=attributes.service,
        status=attributes.status.value,
        environment=attributes.environment.value,
    )


def _observe_deployment(metrics: Metrics, event: Event) -> None:
    """A deployment reached a status: count it; once ended, its duration and lead times."""
    from tracker_server.dora import event_ended_at, lead_times

    attributes = event.attributes
    if attributes.type is not EventType.deployment:
        return
    metrics.count_deployment(
        service=attributes.service,
        environment=attributes.environment.value,
        status=attributes.status.value,
    )
    if attributes.status not in (Status.success, Status.failure):
        return
    ended = event_ended_at(event)
    started = attributes.start_date or event.metadata.created_at
    if event.metadata.duration is not None:
        metrics.observe_deployment_duration(event.metadata.duration.total_seconds())
    elif ended is not None and started is not None and ended >= started:
        metrics.observe_deployment_duration((ended - started).total_seconds())
    for seconds in lead_times(event):
        metrics.observe_lead_time(seconds)


# ------------------------------------------------------------------- entries
class JournalEntry(BaseModel):
    """One change. ``KIND`` names it in the table; the other fields are its payload."""

    model_config = ConfigDict(frozen=True)

    KIND: ClassVar[str] = ""
    #: Whether this change can move a lock queue, so its waiters (on every replica) must
    #: look again. An event's own lock changes are entries of their own.
    WAKES_WAITERS: ClassVar[bool] = True
    _registry: ClassVar[dict[str, type[JournalEntry]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.KIND:
            if cls.KIND in JournalEntry._registry:
                raise TypeError(f"journal kind {cls.KIND!r} is defined twice")
            JournalEntry._registry[cls.KIND] = cls

    @classmethod
    def kinds(cls) -> dict[str, type[JournalEntry]]:
        """Every entry type by its kind."""
        return dict(JournalEntry._registry)

    @classmethod
    def from_row(cls, kind: str, payload: dict[str, Any]) -> JournalEntry:
        """The entry a journal row stores."""
        return JournalEntry._registry[kind].model_validate(payload)

    def payload(self) -> dict[str, Any]:
        """The JSON stored in the table (wire models in their wire form)."""
        return self.model_dump(mode="json")

    def payload_json(self) -> JsonText:
        """:meth:`payload`, encoded: what the table stores."""
        return JsonText(self.model_dump_json())

    def audit_line(self) -> AuditLine | None:
        """The audit log line announcing this change, if it has one."""
        return None

    def rows(self) -> int:
        """How many stored records this change wrote (the statistics upkeep counts them)."""
        return 1

    def observe(self, metrics: Metrics) -> None:
        """The metric observations of this change, if any."""


class EventCreated(JournalEntry):
    """An event was created (with its automatic lock, which has its own entry)."""

    KIND = "event_created"
    WAKES_WAITERS = False
    event: Event

    def audit_line(self) -> AuditLine:
        return "event created", event_log_fields(self.event)

    def observe(self, metrics: Metrics) -> None:
        _count_status(metrics, self.event)
        _observe_deployment(metrics, self.event)


class EventsImported(JournalEntry):
    """Events were imported as history (a batch's items carrying ``metadata.createdAt``)."""

    KIND = "events_imported"
    WAKES_WAITERS = False  # history takes no lock
    ids: list[str]
    oldest: datetime
    newest: datetime

    def rows(self) -> int:
        return len(self.ids)

    def audit_line(self) -> AuditLine:
        return "events imported", {
            "count": len(self.ids),
            "oldest_created_at": format_timestamp(self.oldest),
            "newest_created_at": format_timestamp(self.newest),
        }


class EventUpdated(JournalEntry):
    """An event was replaced (PUT /event): as it was and as it is."""

    KIND = "event_updated"
    WAKES_WAITERS = False
    before: Event
    after: Event

    def observe(self, metrics: Metrics) -> None:
        if self.after.attributes.status == self.before.attributes.status:
            return
        _count_status(metrics, self.after)
        duration = self.after.metadata.duration
        if self.after.attributes.status in DURATION_STATUSES and duration is not None:
            metrics.observe_duration(duration.total_seconds())
        _observe_deployment(metrics, self.after)


class EventDeleted(JournalEntry):
    """An event was deleted, with its changelog (its locks have their own entries)."""

    KIND = "event_deleted"
    WAKES_WAITERS = False
    event: Event


class ChangelogAdded(JournalEntry):
    """A changelog entry was appended to an event by a client."""

    KIND = "changelog_added"
    WAKES_WAITERS = False
    event_id: str
    entry: ChangelogEntry


class SlackIdSet(JournalEntry):
    """A Slack message id was attached to an event."""

    KIND = "slack_id_set"
    WAKES_WAITERS = False
    event_id: str
    slack_id: str
    previous: str


class LockAcquired(JournalEntry):
    """A lock was taken (explicitly, or automatically by an event)."""

    KIND = "lock_acquired"
    lock: Lock

    def audit_line(self) -> AuditLine:
        return "lock created", lock_log_fields(self.lock)


class LockReleased(JournalEntry):
    """A lock was deleted: released (by id, key or its event) or found expired."""

    KIND = "lock_released"
    lock: Lock
    reason: Literal["released", "expired"] = "released"

    def audit_line(self) -> AuditLine:
        fields = lock_log_fields(self.lock)
        if self.reason == "expired":
            fields["reason"] = "expired"
        return "lock deleted", fields


class LockOverridden(JournalEntry):
    """An admin acted on a lock another token took (break glass), saying why."""

    KIND = "lock_overridden"
    lock: Lock
    by: str
    action: str
    reason: str

    def audit_line(self) -> AuditLine:
        fields = lock_log_fields(self.lock)
        fields.update(by=self.by, action=self.action, reason=self.reason)
        return "lock overridden by admin", fields


class LockUpdated(JournalEntry):
    """A lock's fields were changed (PUT /lock/{id})."""

    KIND = "lock_updated"
    before: Lock
    after: Lock


class LockRenewed(JournalEntry):
    """A lock's expiry was moved."""

    KIND = "lock_renewed"
    lock: Lock


class TokenCreated(JournalEntry):
    """An API token was created (never its secret)."""

    KIND = "token_created"
    WAKES_WAITERS = False
    token: TokenInfo


class TokenRevoked(JournalEntry):
    """An API token was revoked."""

    KIND = "token_revoked"
    WAKES_WAITERS = False
    token: TokenInfo


# ------------------------------------------------ the lock queue and freeze windows
class QueueJoined(JournalEntry):
    """A waiter joined a lock's queue."""

    KIND = "queue_joined"
    entry: QueueEntry
    service: str
    environment: str
    resource: str


class QueueLeft(JournalEntry):
    """A waiter left a queue: ``reason`` left (it asked), claimed (it took the lock),
    dropped (its heartbeat stopped) or unclaimed (its turn passed)."""

    KIND = "queue_left"
    ticket: str
    who: str
    service: str
    environment: str
    resource: str
    reason: Literal["left", "claimed", "dropped", "unclaimed"] = "left"


class QueueGranted(JournalEntry):
    """The key came free for the head of its queue (in the release's transaction)."""

    KIND = "queue_granted"
    ticket: str
    who: str
    service: str
    environment: str
    resource: str


class QueueWaiterSuperseded(JournalEntry):
    """A newer waiter took an older one's place (the ``newest`` policy)."""

    KIND = "queue_superseded"
    ticket: str
    who: str
    superseded_by: str
    service: str
    environment: str
    resource: str


class QueuePolicySet(JournalEntry):
    """An environment's (or a service's) queue policy was set."""

    KIND = "queue_policy_set"
    policy: QueuePolicy


class FreezeCreated(JournalEntry):
    """A freeze window was created."""

    KIND = "freeze_created"
    window: FreezeWindow


class FreezeUpdated(JournalEntry):
    """A freeze window was replaced."""

    KIND = "freeze_updated"
    before: FreezeWindow
    after: FreezeWindow


class FreezeDeleted(JournalEntry):
    """A freeze window was deleted."""

    KIND = "freeze_deleted"
    window: FreezeWindow


class GlassBroken(JournalEntry):
    """A hard freeze was passed with a reason (``--break-glass``)."""

    KIND = "glass_broken"
    window: FreezeWindow
    who: str
    reason: str
    service: str
    environment: str
    event_id: str = ""

    def audit_line(self) -> AuditLine:
        return "freeze broken", {
            "title": self.window.title,
            "who": self.who,
            "reason": self.reason,
            "service": self.service,
            "environment": self.environment,
            "event_id": self.event_id,
        }


class LockEvicted(JournalEntry):
    """A dead holder's lock was evicted: its CI job had ended."""

    KIND = "lock_evicted"
    lock: Lock
    by: str
    why: str


# ------------------------------------------------------------------- the journal
@dataclass(frozen=True)
class JournalRecord:
    """A stored entry: its place in the journal and when it happened."""

    id: int
    occurred_at: datetime
    entry: JournalEntry


_INSERT_RETURNING_ID = insert(journal_table).returning(
    journal_table.c.id, sort_by_parameter_order=True
)


@dataclass
class Journal:
    """The entries of one request: persisted with its transaction, announced after.

    ``now`` is the request's moment (from the app's clock): the ``occurred_at`` of its
    entries, the same instant the changes themselves carry (createdAt, timestamps).
    """

    metrics: Metrics
    now: datetime
    pending: list[JournalEntry] = field(default_factory=list)
    committed: list[JournalEntry] = field(default_factory=list)
    #: Called with the stored records inside the transaction (the webhook outbox).
    outbox: Callable[[Connection, list[JournalRecord]], None] | None = None

    def record(self, entry: JournalEntry) -> None:
        """Note a change made in the current transaction."""
        self.pending.append(entry)

    def persist(self, conn: Connection) -> None:
        """Insert the pending entries on ``conn``: call it inside the write transaction.

        The ``outbox`` (if any) is handed the stored records on the same connection, so
        the notifications of a change commit (or roll back) with it.
        """
        if not self.pending:
            return
        rows = [
            {"occurred_at": self.now, "kind": entry.KIND, "payload": entry.payload_json()}
            for entry in self.pending
        ]
        # One statement for every entry of the transaction (a batch of events is one
        # round trip, not one per event), its ids in the order of the rows.
        ids = conn.execute(_INSERT_RETURNING_ID, rows).scalars().all()
        records = [
            JournalRecord(id=key, occurred_at=self.now, entry=entry)
            for key, entry in zip(ids, self.pending, strict=True)
        ]
        if records and self.outbox is not None:
            self.outbox(conn, records)
        self.committed.extend(self.pending)
        self.pending.clear()

    def wakes_waiters(self) -> bool:
        """True when a pending change can move a lock queue."""
        return any(entry.WAKES_WAITERS for entry in self.pending)

    def discard(self) -> None:
        """Forget the pending entries (their transaction rolled back)."""
        self.pending.clear()

    def flush(self) -> None:
        """Write the audit lines and record the metrics of what was committed."""
        for entry in self.committed:
            line = entry.audit_line()
            if line is not None:
                message, fields = line
                audit_logger.info(message, extra={"fields": fields})
            entry.observe(self.metrics)
        self.committed.clear()


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
