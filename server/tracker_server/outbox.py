"""The outbox: journal entries become deliveries, in the transaction of their change.

:data:`NOTIFICATIONS` is the one table from a journal kind to the notification a webhook
receives (``deployment.finished``, ``lock.expired``...): a new kind of change is one row.
:class:`Outbox` is the journal's hook (``Journal.outbox``): for every stored entry that
names a notification, it writes one ``webhook_deliveries`` row per matching webhook on the
same connection, so a delivery exists exactly when its change does and a crash between
the commit and the send loses nothing (the dispatcher finds the row). No high-water mark
is kept, so an entry whose transaction commits late (PostgreSQL hands out ids at insert)
is never skipped. A notification about a service with a catalog entry carries its owner
and channel (``service``), as the catalog says in that same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import Connection, insert, select

from tracker_ci.models import (
    CLOSED_STATUSES,
    FINISH_STATUSES,
    WEBHOOK_EVENTS,
    Event,
    EventType,
    Lock,
    Status,
    format_timestamp,
)
from tracker_server.journal import JournalEntry, JournalRecord
from tracker_server.store import catalog as catalog_store
from tracker_server.store import events as event_store
from tracker_server.tables import webhook_deliveries, webhooks

#: A delivery waiting for its (next) attempt, sent, or given up on.
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
#: The notification ``webhook test`` sends (not a subscribable event).
TEST_EVENT = "webhook.test"
#: Read in every write transaction: built once (see store/events.py).
_ENABLED_WEBHOOKS = select(webhooks).where(webhooks.c.disabled_at.is_(None))


@dataclass(frozen=True)
class Notification:
    """What a webhook is told: the event name, the Tracker event and lock concerned."""

    type: str
    event: Event | None = None
    lock: Lock | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: The catalog's word on the service (name, owner, channel), when it has an entry.
    service: dict[str, Any] | None = None

    def body(self, occurred_at: datetime) -> dict[str, Any]:
        """The JSON document every sink starts from (the generic sink sends it as is)."""
        document: dict[str, Any] = {
            "type": self.type,
            "event": self.event.to_wire() if self.event is not None else None,
        }
        if self.lock is not None:
            document["lock"] = self.lock.to_wire()
        if self.details:
            document["details"] = self.details
        if self.service:
            document["service"] = self.service
        document["occurredAt"] = format_timestamp(occurred_at)
        return document


def _is_deployment(event: Event) -> bool:
    return event.attributes.type == EventType.deployment


def _event_created(entry: Any) -> Notification | None:
    event: Event = entry.event
    if not _is_deployment(event):
        return None
    status = event.attributes.status
    if status in (Status.start, Status.in_progress):
        return Notification("deployment.started", event=event)
    # Upstream's way of closing: a new event with relatedId and a final status.
    if status.value in FINISH_STATUSES:
        return Notification("deployment.finished", event=event)
    return None


def _event_updated(entry: Any) -> Notification | None:
    before: Event = entry.before
    after: Event = entry.after
    if not _is_deployment(after) or after.attributes.status == before.attributes.status:
        return None
    if before.attributes.status.value in CLOSED_STATUSES:
        return None
    if after.attributes.status.value in FINISH_STATUSES:
        return Notification("deployment.finished", event=after)
    return None


def _lock_released(entry: Any) -> Notification:
    name = "lock.expired" if entry.reason == "expired" else "lock.released"
    return Notification(name, lock=entry.lock)


def _details(name: str) -> Callable[[Any], Notification]:
    """A notification carrying the entry's own fields (kinds without an event or lock)."""

    def notify(entry: Any) -> Notification:
        payload = entry.payload()
        event = payload.pop("event", None)
        lock = payload.pop("lock", None)
        return Notification(
            name,
            event=Event.model_validate(event) if isinstance(event, dict) else None,
            lock=Lock.model_validate(lock) if isinstance(lock, dict) else None,
            details=payload,
        )

    return notify


#: Journal kind -> the notification of that change (None: this change notifies nobody).
#: A new kind of change that notifies is one row here.
NOTIFICATIONS: dict[str, Callable[[Any], Notification | None]] = {
    "event_created": _event_created,
    "event_updated": _event_updated,
    "lock_acquired": lambda entry: Notification("lock.acquired", lock=entry.lock),
    "lock_released": _lock_released,
    "lock_evicted": _details("lock.evicted"),
    "queue_joined": _details("queue.joined"),
    "queue_superseded": _details("queue.superseded"),
    "glass_broken": _details("freeze.broken"),
    "freeze_window_started": _details("freeze.started"),
    "freeze_window_ended": _details("freeze.ended"),
    "alert_fired": _details("alert.fired"),
    "approval_decided": lambda entry: Notification(
        "deployment.approved" if entry.approved else "deployment.rejected",
        event=entry.event,
        details={"by": entry.by, "comment": entry.comment},
    ),
}


def notification_of(entry: JournalEntry) -> Notification | None:
    """The notification a journal entry gives, if any."""
    rule = NOTIFICATIONS.get(entry.KIND)
    return rule(entry) if rule is not None else None


def is_known_pattern(pattern: str) -> bool:
    """True when ``pattern`` names or matches (``*``) at least one event name."""
    return any(fnmatchcase(name, pattern) for name in WEBHOOK_EVENTS)


def _environment_of(notification: Notification) -> str:
    if notification.event is not None:
        return notification.event.attributes.environment.value
    if notification.lock is not None:
        return notification.lock.environment
    return str(notification.details.get("environment", ""))


def _service_of(notification: Notification) -> str:
    if notification.event is not None:
        return notification.event.attributes.service
    if notification.lock is not None:
        return notification.lock.service
    return str(notification.details.get("service", ""))


def subscribed(hook: Any, notification: Notification) -> bool:
    """Whether a ``webhooks`` row wants this notification."""
    if not any(fnmatchcase(notification.type, pattern) for pattern in hook.events):
        return False
    if hook.service and hook.service != _service_of(notification):
        return False
    return not hook.environment or hook.environment == _environment_of(notification)


def _with_event(
    conn: Connection, notification: Notification, known: dict[str, Event]
) -> Notification:
    """A lock notification also carries the lock's event when it has one (taken from the
    same transaction's entries when it is there, else read)."""
    lock = notification.lock
    if notification.event is not None or lock is None or not lock.event_id:
        return notification
    event = known.get(lock.event_id) or event_store.get_event(conn, event_id=lock.event_id)
    if event is None:
        return notification
    return Notification(notification.type, event=event, lock=lock, details=notification.details)


def delivery_row(
    *, hook: Any, notification: Notification, journal_id: int, occurred_at: datetime
) -> dict[str, Any]:
    """A pending ``webhook_deliveries`` row of ``notification`` to ``hook`` (a new id)."""
    return {
        "id": str(uuid.uuid4()),
        "webhook_id": hook.id,
        "journal_id": journal_id,
        "type": notification.type,
        "body": notification.body(occurred_at),
        "state": PENDING,
        "attempts": 0,
        "created_at": occurred_at,
        "next_attempt_at": occurred_at,
        "lease_until": None,
        "last_attempt_at": None,
        "response_code": None,
        "error": "",
    }


def enqueue(
    conn: Connection,
    *,
    hook: Any,
    notification: Notification,
    journal_id: int,
    occurred_at: datetime,
) -> str:
    """Write one pending delivery of ``notification`` to ``hook``; its id."""
    row = delivery_row(
        hook=hook, notification=notification, journal_id=journal_id, occurred_at=occurred_at
    )
    conn.execute(insert(webhook_deliveries).values(row))
    return str(row["id"])


def _events_of(records: list[JournalRecord]) -> dict[str, Event]:
    """The events the entries of one transaction carry, by id."""
    found: dict[str, Event] = {}
    for record in records:
        event = getattr(record.entry, "after", None) or getattr(record.entry, "event", None)
        if isinstance(event, Event) and event.id:
            found[event.id] = event
    return found


class Outbox:
    """The journal's hook: deliveries for the entries of one transaction."""

    def __call__(self, conn: Connection, records: list[JournalRecord]) -> None:
        """Write the deliveries of ``records`` on ``conn`` (inside their transaction)."""
        notified = [(r, n) for r in records if (n := notification_of(r.entry)) is not None]
        if not notified:
            return
        hooks = conn.execute(_ENABLED_WEBHOOKS).all()
        if not hooks:
            return
        known = _events_of(records)
        services = {_service_of(n) for _, n in notified} - {""}
        contacts = catalog_store.service_contacts(conn, services) if services else {}
        rows = []
        for record, notification in notified:
            wanted = [hook for hook in hooks if subscribed(hook, notification)]
            if not wanted:
                continue
            notification = _with_event(conn, notification, known)
            notification = replace(notification, service=contacts.get(_service_of(notification)))
            rows += [
                delivery_row(
                    hook=hook,
                    notification=notification,
                    journal_id=record.id,
                    occurred_at=record.occurred_at,
                )
                for hook in wanted
            ]
        if rows:
            conn.execute(insert(webhook_deliveries), rows)
