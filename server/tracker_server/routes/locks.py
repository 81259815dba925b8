"""Deployment locks: take, read, change, renew and release (by id or by key)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response
from sqlalchemy import Connection

from tracker_ci.models import (
    API_PREFIX,
    CreateLockRequest,
    LockListResponse,
    LockResponse,
    ReleaseLockRequest,
    RenewLockRequest,
    UnlockResponse,
    UpdateLockRequest,
)
from tracker_server import operations
from tracker_server.deps import DatabaseDep, Now, WriteDep, require_reader
from tracker_server.domain import InvalidInput
from tracker_server.errors import CONFLICT_RESPONSE, ERROR_RESPONSES, NOT_FOUND_RESPONSE
from tracker_server.operations import FROZEN_RESOURCES
from tracker_server.routes.common import IdempotencyKey, wire, wire_with_warnings
from tracker_server.store import events as event_store
from tracker_server.store import locks as lock_store
from tracker_server.validation import (
    MAX_ENVIRONMENT,
    MAX_NAME,
    check_lock_key,
    check_text,
    check_urls,
    require_uuid,
)

router = APIRouter(prefix=API_PREFIX, tags=["locks"], dependencies=[Depends(require_reader)])

LockId = Annotated[uuid.UUID, Path(description="The lock's id (a UUID).")]
DEFAULT_RESOURCE = "deployment"


@router.post(
    "/lock",
    response_model=LockResponse,
    responses={**ERROR_RESPONSES, **CONFLICT_RESPONSE},
)
def acquire_lock(
    body: CreateLockRequest, write: WriteDep, idempotency_key: IdempotencyKey = None
) -> Response:
    """Take the lock on (service, environment, resource); 409 naming the holder if held.
    An empty resource means "deployment"; ``ttlSeconds`` makes the lock expire."""
    resource = body.resource or DEFAULT_RESOURCE
    check_lock_key(body.service, body.environment, resource, body.who)
    check_urls(body)
    event_id = require_uuid(body.event_id, "eventId") if body.event_id else ""
    write.allow(body.service)

    def work(conn: Connection) -> Response:
        event_store.check_event_exists(conn, event_id=event_id, field="eventId")
        operations.check_environment(
            conn, write, service=body.service, environment=body.environment
        )
        lock = lock_store.acquire_lock(
            conn,
            service=body.service,
            environment=body.environment,
            resource=resource,
            who=body.who,
            event_id=event_id,
            ttl_seconds=body.ttl_seconds,
            now=write.now,
            journal=write.journal,
            reason=body.reason,
            job_url=body.job_url,
            ticket=body.queue_ticket,
            token_id=write.principal.lock_owner,
        )
        warnings: list[str] = []
        if resource in FROZEN_RESOURCES:
            warnings = operations.enforce_freezes(
                conn,
                write,
                service=body.service,
                environment=body.environment,
                who=body.who or write.principal.name,
                break_glass=body.break_glass,
                event_id=event_id,
            )
        return wire_with_warnings(LockResponse(lock=lock), warnings)

    return write.once(
        scope=f"POST /lock {write.principal.token_id}",
        key=idempotency_key,
        body=body,
        work=work,
    )


@router.get(
    "/lock/{id}",
    response_model=LockResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def get_lock(id: LockId, database: DatabaseDep, now: Now) -> Response:
    """One live lock (an expired lock is gone)."""
    with database.read() as conn:
        lock = lock_store.require_lock(conn, lock_id=str(id), now=now)
    return wire(LockResponse(lock=lock))


@router.put(
    "/lock/{id}",
    response_model=LockResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE, **CONFLICT_RESPONSE},
)
def update_lock(id: LockId, body: UpdateLockRequest, write: WriteDep) -> Response:
    """Change a lock's fields (empty ones keep their value); answers the lock after."""
    changes = {
        name: value for name, value in body.model_dump(exclude_defaults=False).items() if value
    }
    for name, value in changes.items():
        limit = MAX_ENVIRONMENT if name == "environment" else MAX_NAME
        check_text(value, name, max_length=limit)
    if "event_id" in changes:
        changes["event_id"] = require_uuid(changes["event_id"], "eventId")
    if "service" in changes:
        write.allow(changes["service"])
    with write.transaction() as conn:
        lock = write.owned_lock(conn, str(id))
        event_store.check_event_exists(conn, event_id=changes.get("event_id", ""), field="eventId")
        updated = lock_store.update_lock(
            conn, lock=lock, changes=changes, now=write.now, journal=write.journal
        )
    return wire(LockResponse(lock=updated))


def _release_by_id(lock_id: str, write: WriteDep) -> Response:
    count = operations.release_lock(write, lock_id)
    return wire(UnlockResponse(message="lock deleted", id=lock_id, count=count))


@router.get("/unlock/{id}", response_model=UnlockResponse, responses=ERROR_RESPONSES)
def release_lock(id: LockId, write: WriteDep) -> Response:
    """Release a lock by id (a GET, as upstream); ``count`` is "0" when there was none."""
    return _release_by_id(str(id), write)


@router.delete("/lock/{id}", response_model=UnlockResponse, responses=ERROR_RESPONSES)
def delete_lock(id: LockId, write: WriteDep) -> Response:
    """Release a lock by id (the same as ``GET /unlock/{id}``)."""
    return _release_by_id(str(id), write)


@router.post(
    "/unlock",
    response_model=UnlockResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE, **CONFLICT_RESPONSE},
)
def release_lock_by_key(body: ReleaseLockRequest, write: WriteDep) -> Response:
    """Release the lock on (service, environment, resource) the caller holds: ``who`` and
    the ``id`` or ``eventId`` it got when it took the lock must match (409 otherwise);
    ``who`` alone is never enough (400)."""
    resource = body.resource or DEFAULT_RESOURCE
    check_lock_key(body.service, body.environment, resource, body.who)
    check_text(body.who, "who", max_length=MAX_NAME, required=True)
    lock_id = require_uuid(body.id, "id") if body.id else ""
    event_id = require_uuid(body.event_id, "eventId") if body.event_id else ""
    write.allow(body.service)
    if not (lock_id or event_id):
        # A job whose lock expired would otherwise release the next job's lock.
        raise InvalidInput(
            "invalid request: id or eventId: releasing by key needs the id of the lock "
            "(or of its event) the caller took; who alone is not enough"
        )
    holder, count = operations.release_lock_by_key(
        write,
        service=body.service,
        environment=body.environment,
        resource=resource,
        who=body.who,
        lock_id=lock_id,
        event_id=event_id,
    )
    return wire(UnlockResponse(message="lock deleted", id=holder.id, count=count))


@router.post(
    "/lock/{id}/renew",
    response_model=LockResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def renew_lock(id: LockId, body: RenewLockRequest, write: WriteDep) -> Response:
    """Push a live lock's expiry to now + ``ttlSeconds``; 404 when gone or expired."""
    with write.transaction() as conn:
        write.owned_lock(conn, str(id), "renew")
        lock = lock_store.renew_lock(
            conn,
            lock_id=str(id),
            ttl_seconds=body.ttl_seconds,
            now=write.now,
            journal=write.journal,
        )
    return wire(LockResponse(lock=lock))


@router.get("/locks/list", response_model=LockListResponse, responses=ERROR_RESPONSES)
def list_locks(database: DatabaseDep, now: Now) -> Response:
    """Every live lock, newest first."""
    with database.read() as conn:
        found = lock_store.list_locks(conn, now=now)
    return wire(LockListResponse(locks=found, total_count=len(found)))
