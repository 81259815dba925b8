"""The lock queue (extension): tickets, the long poll, the queue's status and policies."""

from typing import Annotated

from pydantic import Field

from tracker_ci.wire.base import (
    BUILT_ON_FIRST_USE,
    Flag,
    Text,
    Timestamp,
    WholeNumber,
    WireModel,
    new_list,
)
from tracker_ci.wire.events import CreateEventRequest, Event
from tracker_ci.wire.locks import Lock

__all__ = [
    "QUEUE_POLICIES",
    "EvictLockRequest",
    "LockStatusResponse",
    "QueueEntry",
    "QueuePolicy",
    "QueuePolicyListResponse",
    "QueueRequest",
    "QueueResponse",
]


#: How waiters of one environment (optionally one service) are served.
QUEUE_POLICIES: tuple[str, ...] = ("fifo", "newest")


class QueueEntry(WireModel):
    """One waiter in a lock's queue (extension); ``position`` is 1-based."""

    ticket: Text = ""
    position: int = 0
    who: Text = ""
    since: Timestamp | None = None
    reason: Text = ""
    job_url: Text = ""
    state: Text = "waiting"
    expected_wait_seconds: float | None = None


class QueueRequest(WireModel):
    """Body of ``POST /lock/queue`` (extension): join (no ticket) or heartbeat and wait
    up to ``waitSeconds`` for the turn (a long poll)."""

    service: Text = ""
    environment: Text = ""
    resource: Text = ""
    who: Text = ""
    reason: Text = ""
    job_url: Text = ""
    ticket: Text = ""
    wait_seconds: Annotated[float, Field(ge=0, le=60)] = 0
    #: A waiter that will break glass is not held back by a hard freeze.
    break_glass: Text = ""
    #: Take the lock for the caller when its turn comes, in the same transaction, and
    #: answer it as ``granted`` (one round trip); with the lock's TTL and event. Asking
    #: again with the same ticket answers the same grant and claims it (see docs/queue.md).
    grant: Flag = False
    ttl_seconds: Annotated[WholeNumber, Field(ge=0, le=7 * 24 * 3600)] = 0
    event_id: Text = ""
    #: The event to open when the turn comes (``POST /event``'s body, for this key): the
    #: grant opens it and its lock in one transaction, answered as ``event`` beside
    #: ``granted`` (implies ``grant``; the lock's TTL is its ``lockTtlSeconds``). A server
    #: without it ignores it and answers the turn: the waiter then creates the event
    #: naming its ticket (see docs/queue.md).
    open_event: CreateEventRequest | None = None


class QueueResponse(WireModel):
    """The caller's ticket (``state`` waiting or granted), the holder and the queue;
    ``granted``: the lock taken for the caller (it asked with ``grant``); ``event``: the
    event opened with it (it asked with ``openEvent``)."""

    model_config = BUILT_ON_FIRST_USE

    ticket: QueueEntry | None = None
    lock: Lock | None = None
    queue: list[QueueEntry] = Field(default_factory=new_list)
    frozen_by: Text = ""
    granted: Lock | None = None
    event: Event | None = None


class LockStatusResponse(WireModel):
    """``GET /locks/status`` (extension): the holder and who waits, in order."""

    model_config = BUILT_ON_FIRST_USE

    locked: Flag = False
    lock: Lock | None = None
    queue: list[QueueEntry] = Field(default_factory=new_list)
    policy: Text = "fifo"


class EvictLockRequest(WireModel):
    """Body of ``POST /lock/{id}/evict`` (extension): who evicts a dead holder, and why."""

    by: Text = ""
    why: Text = ""


class QueuePolicy(WireModel):
    """A queue policy for an environment (all services when ``service`` is empty)."""

    environment: Text = ""
    service: Text = ""
    policy: Text = "fifo"


class QueuePolicyListResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    policies: list[QueuePolicy] = Field(default_factory=new_list)
    total_count: int = 0
