"""The journal's entries: one typed record per kind of change (``KIND`` names it in the
``journal`` table; the other fields are its payload), each saying its audit line and its
metric observations. A new kind of change is one class here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from tracker_ci.models import (
    DURATION_STATUSES,
    Catalog,
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
)
from tracker_server.db import JsonText
from tracker_server.journal.audit import AuditLine, event_log_fields, lock_log_fields

__all__ = [
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
    "JournalEntry",
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
]


class MetricsSink(Protocol):
    """What the entries observe on (``tracker_server.metrics.Metrics``, handed in by the app:
    the metrics read the stores, which write here, so the journal never imports them)."""

    def count_status(self, *, service: str, status: str, environment: str) -> None: ...

    def count_deployment(self, *, service: str, environment: str, status: str) -> None: ...

    def observe_duration(self, seconds: float) -> None: ...

    def observe_deployment_duration(self, seconds: float) -> None: ...

    def observe_lead_time(self, seconds: float) -> None: ...


def _count_status(metrics: MetricsSink, event: Event) -> None:
    attributes = event.attributes
    metrics.count_status(
        service=attributes.service,
        status=attributes.status.value,
        environment=attributes.environment.value,
    )


def _observe_deployment(metrics: MetricsSink, event: Event) -> None:
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


class JournalEntry(BaseModel):
    """One change. ``KIND`` names it in the table; the other fields are its payload."""

    model_config = ConfigDict(frozen=True)

    KIND: ClassVar[str] = ""
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

    def observe(self, metrics: MetricsSink) -> None:
        """The metric observations of this change, if any."""


class EventCreated(JournalEntry):
    """An event was created (with its automatic lock, which has its own entry)."""

    KIND = "event_created"
    event: Event

    def audit_line(self) -> AuditLine:
        return "event created", event_log_fields(self.event)

    def observe(self, metrics: MetricsSink) -> None:
        _count_status(metrics, self.event)
        _observe_deployment(metrics, self.event)


class EventsImported(JournalEntry):
    """Events were imported as history (a batch's items carrying ``metadata.createdAt``)."""

    KIND = "events_imported"
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
    before: Event
    after: Event

    def observe(self, metrics: MetricsSink) -> None:
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
    event: Event


class ChangelogAdded(JournalEntry):
    """A changelog entry was appended to an event by a client."""

    KIND = "changelog_added"
    event_id: str
    entry: ChangelogEntry


class SlackIdSet(JournalEntry):
    """A Slack message id was attached to an event."""

    KIND = "slack_id_set"
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
    token: TokenInfo


class TokenRevoked(JournalEntry):
    """An API token was revoked."""

    KIND = "token_revoked"
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


class ApprovalDecided(JournalEntry):
    """A deployment waiting for approval was approved or rejected (operations.decide_approval)."""

    KIND = "approval_decided"
    event: Event
    approved: bool
    by: str
    comment: str

    def audit_line(self) -> AuditLine:
        action = "deployment approved" if self.approved else "deployment rejected"
        return action, {**event_log_fields(self.event), "by": self.by}


# ------------------------------------------------------------------ the catalog
def _catalog_log_fields(entry: Catalog) -> dict[str, Any]:
    return {"name": entry.name, "owner": entry.owner, "version": entry.version}


class CatalogEntrySet(JournalEntry):
    """A service's catalog entry was created or replaced, or its versions or dependencies
    were set: as it was (None: created) and as it is."""

    KIND = "catalog_set"
    before: Catalog | None
    after: Catalog

    def audit_line(self) -> AuditLine:
        action = "catalog entry created" if self.before is None else "catalog entry changed"
        return action, _catalog_log_fields(self.after)


class CatalogEntryDeleted(JournalEntry):
    """A service's catalog entry was deleted (as it was)."""

    KIND = "catalog_deleted"
    entry: Catalog

    def audit_line(self) -> AuditLine:
        return "catalog entry deleted", _catalog_log_fields(self.entry)
