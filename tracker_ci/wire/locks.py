"""Deployment locks: the lock, its bodies and answers."""

from typing import Annotated

from pydantic import Field

from tracker_ci.wire.base import (
    BUILT_ON_FIRST_USE,
    Int64,
    Text,
    Timestamp,
    WholeNumber,
    WireModel,
    new_list,
)

__all__ = [
    "CreateLockRequest",
    "Lock",
    "LockListResponse",
    "LockResponse",
    "ReleaseLockRequest",
    "RenewLockRequest",
    "UnlockResponse",
    "UpdateLockRequest",
]


class Lock(WireModel):
    """A deployment lock. ``expiresAt`` is our extension (null: never expires)."""

    id: Text = ""
    service: Text = ""
    who: Text = ""
    created_at: Timestamp | None = None
    environment: Text = ""
    resource: Text = ""
    event_id: Text = ""
    expires_at: Timestamp | None = None
    #: Our extensions (queue issue): the grant's fencing token (only grows per key), why
    #: it is held, and the CI job holding it.
    fence: int = 0
    reason: Text = ""
    job_url: Text = ""


class CreateLockRequest(WireModel):
    """Body of ``POST /lock``; ``ttlSeconds`` is our extension (0 or absent: no expiry)."""

    service: Text = ""
    who: Text = ""
    environment: Text = ""
    resource: Text = ""
    event_id: Text = ""
    ttl_seconds: Annotated[WholeNumber, Field(ge=0, le=7 * 24 * 3600)] = 0
    #: Extensions: why, the CI job, and a reason to pass a hard freeze.
    reason: Text = ""
    job_url: Text = ""
    break_glass: Text = ""
    #: The caller's queue ticket when its turn came (the waiter sends it).
    queue_ticket: Text = ""


class UpdateLockRequest(WireModel):
    """Body of ``PUT /lock/{id}``: empty fields keep their value."""

    service: Text = ""
    who: Text = ""
    environment: Text = ""
    resource: Text = ""
    event_id: Text = ""


class RenewLockRequest(WireModel):
    """Body of ``POST /lock/{id}/renew`` (extension): the new TTL from now."""

    ttl_seconds: Annotated[WholeNumber, Field(gt=0, le=7 * 24 * 3600)]


class ReleaseLockRequest(WireModel):
    """Body of ``POST /unlock`` (extension): release by key, naming the holder.

    ``who`` must match the holder; when ``id`` or ``eventId`` is given it must match
    too, so a job can never release a lock another job took after its own expired.
    """

    service: Text = ""
    environment: Text = ""
    resource: Text = "deployment"
    who: Text = ""
    id: Text = ""
    event_id: Text = ""


class LockResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    lock: Lock | None = None


class UnlockResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    message: Text = ""
    id: Text = ""
    count: Int64 = 0


class LockListResponse(WireModel):
    model_config = BUILT_ON_FIRST_USE

    locks: list[Lock] = Field(default_factory=new_list)
    total_count: int = 0
