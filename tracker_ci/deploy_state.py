"""What a deployment's surfaces see of it: its state, where to see its event, the live line
of its wait, and the Reporter protocol a surface implements (it decides nothing).

The lifecycle (``tracker_ci.deploy``) produces these; the CLI and the GitHub Action read
them. Values only: no requests are made here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from tracker_ci.exceptions import LockHeld
from tracker_ci.models import API_PREFIX
from tracker_ci.wire.light import parse_timestamp
from tracker_ci.wire.vocabulary import format_timestamp

if TYPE_CHECKING:
    from tracker_ci.deploy import Deployment
    from tracker_ci.models import Event, Lock

__all__ = ["DeploymentState", "Reporter", "describe_wait", "event_url"]


def event_url(base_url: str, event_id: str, *, page: bool = False) -> str:
    """Where a person sees an event: its dashboard page ``<base>/events/<id>`` on our server
    (``page``), else its API address ``<base>/api/v1alpha1/event/<id>`` (upstream)."""
    if page:
        return f"{base_url.rstrip('/')}/events/{event_id}"
    return f"{base_url.rstrip('/')}{API_PREFIX}/event/{event_id}"


#: The camelCase names ``to_dict`` writes, in order; the other fields are not written.
_WRITTEN = {
    "event_id": "eventId",
    "lock_id": "lockId",
    "service": "service",
    "environment": "environment",
    "status": "status",
    "started_at": "startedAt",
    "duration": "duration",
    "event_url": "eventUrl",
}


@dataclass(kw_only=True)
class DeploymentState:
    """Where a deployment stands; ``to_dict()`` is what the CLI prints and outputs.

    A plain dataclass (no pydantic: a ``deploy start``/``finish`` process builds no model).
    ``started_at`` takes an RFC 3339 string too (read as the wire reads timestamps)."""

    event_id: str = ""
    lock_id: str = ""
    service: str = ""
    environment: str = ""
    #: ``start``, then the closing status; ``untracked`` when the open fail policy let
    #: the deploy go on without an event.
    status: str = ""
    #: When it started: a datetime once made (RFC 3339 text given is read as the wire
    #: reads timestamps).
    started_at: datetime | str | None = None
    #: Seconds, once the event is closed.
    duration: float | None = None
    event_url: str = ""
    #: The event had been closed before ``close`` was asked to close it (nothing changed).
    closed_before: bool = False
    #: Why it closed as it did, when there is more to say ("the deploy command exited
    #: with code 2", "cancelled by SIGTERM"); the closing message added to the event.
    detail: str = ""
    #: ``finish`` could not close the event (the open fail policy let it go on): the event
    #: is still open on the server and its lock held until ``lock_expires_at``.
    left_open: bool = False
    #: When the server frees the lock unless renewed (None: never, or unknown).
    lock_expires_at: datetime | None = None
    #: The grant's fencing token (0: unknown, or a server without fences).
    fence: int = 0

    def __post_init__(self) -> None:
        self.started_at = parse_timestamp(self.started_at)
        self.lock_expires_at = parse_timestamp(self.lock_expires_at)
        if self.duration is not None and not isinstance(self.duration, float):
            self.duration = float(self.duration)

    @property
    def tracked(self) -> bool:
        """Whether an event records this deployment."""
        return bool(self.event_id)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready camelCase dict (eventId, lockId, ..., eventUrl)."""
        values = {name: getattr(self, name) for name in _WRITTEN}
        if isinstance(self.started_at, datetime):
            values["started_at"] = format_timestamp(self.started_at)
        return {wire: values[name] for name, wire in _WRITTEN.items()}

    def model_copy(self, *, update: dict[str, Any] | None = None) -> DeploymentState:
        """A copy with ``update``'s fields changed (the name pydantic models use)."""
        return replace(self, **(update or {}))

    @classmethod
    def of_event(
        cls, event: Event | Any, base_url: str, *, page: bool = False, **fields: Any
    ) -> DeploymentState:
        """The state an event records (its status, dates and duration); ``page``: link to
        the event's dashboard page (our server) rather than its API address. ``event`` is
        the wire model or its plain record (``tracker_ci.wire.light``)."""
        duration = event.metadata.duration
        values: dict[str, Any] = {
            "event_id": event.id,
            "service": event.attributes.service,
            "environment": str(event.attributes.environment),
            "status": event.attributes.status.value,
            "started_at": event.attributes.start_date or event.metadata.created_at,
            "duration": None if duration is None else duration.total_seconds(),
            "event_url": event_url(base_url, event.id, page=page),
        }
        return cls(**{**values, **fields})


class Reporter(Protocol):
    """What a surface (CLI, GitHub Action) shows of a deployment; it decides nothing."""

    def opened(self, deployment: Deployment, state: DeploymentState) -> None:
        """The event is open (or the deploy goes on untracked); the command runs next."""

    def closed(self, deployment: Deployment, state: DeploymentState) -> None:
        """The event is closed (or was closed before: ``state.closed_before``)."""


def describe_wait(holder: Lock | LockHeld, waited: float) -> str:
    """The live line of a wait: ``waiting for lock: held by W since T (event E)``."""
    if isinstance(holder, LockHeld):
        text = holder.describe_holder()
    else:  # a Lock (the model or its plain record)
        text = f"held by {holder.who or 'unknown'}"
        if holder.created_at is not None:
            text += f" since {holder.created_at.strftime('%Y-%m-%d %H:%M:%SZ')}"
        if holder.event_id:
            text += f" (event {holder.event_id})"
    return f"waiting for lock: {text}, waited {waited:.0f}s"
