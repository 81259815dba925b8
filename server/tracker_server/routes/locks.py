"""Deployment locks: take, read, change, renew and release (by id or by key)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response
from sqlalchemy import Connection, select

from tracker_ci.models import (
    API_PREFIX,
    CreateLockRequest,
    Lock,
    LockListResponse,
    LockResponse,
    ReleaseLockRequest,
    RenewLockRequest,
    UnlockResponse,
    UpdateLockRequest,
    utcnow,
)
from tracker_server.auth import Principal
from tracker_server.deps import DatabaseDep, JournalDep, Writer, require_reader
from tracker_server.errors import (
    CONFLICT_RESPONSE,
    ERROR_RESPONSES,
    NOT_FOUND_RESPONSE,
    Conflict,
    InvalidInput,
    NotFound,
)
from tracker_server.routes.common import IdempotencyKey, wire, write_once
from tracker_server.store import locks as lock_store
from tracker_server.tables import events
from tracker_server.validation import (
    MAX_ENVIRONMENT,
    MAX_NAME,
    check_lock_key,
    check_text,
    require_uuid,
)

router = APIRouter(prefix=API_PREFIX, tags=["locks"], dependencies=[Depends(require_reader)])

LockId = Annotated[uuid.UUID, Path(description="The lock's id (a UUID).")]
DEFAULT_RESOURCE = "deployment"


def held_message(holder: Lock) -> str:
    """Upstream's conflict message; it names the holder so a client can say who."""
    return (
        f"service {holder.service} is already locked for {holder.resource} in "
        f"{holder.environment} by {holder.who} (lock_id: {holder.id}, event_id: {holder.event_id})"
    )


def _check_event_id(conn: Connection, event_id: str) -> None:
    if (
        event_id
        and conn.execute(select(events.c.id).where(events.c.id == event_id)).first() is None
    ):
        raise InvalidInput(
            f"invalid request: eventId {event_id} names no event; give an existing event id "
            "or leave it empty"
        )


@router.post(
    "/lock",
    response_model=LockResponse,
    responses={**ERROR_RESPONSES, **CONFLICT_RESPONSE},
)
def acquire_lock(
    body: CreateLockRequest,
    database: DatabaseDep,
    journal: JournalDep,
    principal: Writer,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Take the lock on (service, environment, resource); 409 naming the holder if held.
    An empty resource means "deployment"; ``ttlSeconds`` makes the lock expire."""
    resource = body.resource or DEFAULT_RESOURCE
    check_lock_key(body.service, body.environment, resource, body.who)
    event_id = require_uuid(body.event_id, "eventId") if body.event_id else ""
    principal.require_service(body.service)
    now = utcnow()

    def work(conn: Connection) -> Response:
        _check_event_id(conn, event_id)
        try:
            lock = lock_store.acquire_lock(
                conn,
                service=body.service,
                environment=body.environment,
                resource=resource,
                who=body.who,
                event_id=event_id,
                ttl_seconds=body.ttl_seconds,
                now=now,
                journal=journal,
            )
        except lock_store.LockHeld as held:
            raise Conflict(held_message(held.holder)) from None
        return wire(LockResponse(lock=lock))

    return write_once(
        database,
        journal,
        scope=f"POST /lock {principal.token_id}",
        key=idempotency_key,
        body=body,
        now=now,
        work=work,
    )


@router.get(
    "/lock/{id}",
    response_model=LockResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def get_lock(id: LockId, database: DatabaseDep) -> Response:
    """One live lock (an expired lock is gone)."""
    with database.read() as conn:
        lock = lock_store.find_lock(conn, lock_id=str(id), now=utcnow())
    if lock is None:
        raise NotFound(f"lock {id} not found (released or expired)")
    return wire(LockResponse(lock=lock))


def _require_lock(conn: Connection, lock_id: str, principal: Principal) -> Lock:
    lock = lock_store.find_lock(conn, lock_id=lock_id, now=utcnow())
    if lock is None:
        raise NotFound(f"lock {lock_id} not found (released or expired)")
    principal.require_service(lock.service)
    return lock


@router.put(
    "/lock/{id}",
    response_model=LockResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE, **CONFLICT_RESPONSE},
)
def update_lock(
    id: LockId, body: UpdateLockRequest, database: DatabaseDep, principal: Writer
) -> Response:
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
        principal.require_service(changes["service"])
    now = utcnow()
    with database.write() as conn:
        lock = _require_lock(conn, str(id), principal)
        _check_event_id(conn, changes.get("event_id", ""))
        try:
            updated = lock_store.update_lock(conn, lock=lock, changes=changes, now=now)
        except lock_store.LockHeld as held:
            raise Conflict(held_message(held.holder)) from None
    return wire(LockResponse(lock=updated))


def _release_by_id(
    lock_id: str, database: DatabaseDep, journal: JournalDep, principal: Principal
) -> Response:
    now = utcnow()
    with database.write() as conn:
        lock = lock_store.find_lock(conn, lock_id=lock_id, now=now)
        if lock is not None:
            principal.require_service(lock.service)
        count = lock_store.release_lock(conn, lock_id=lock_id, now=now, journal=journal)
    journal.flush()
    return wire(UnlockResponse(message="lock deleted", id=lock_id, count=count))


@router.get("/unlock/{id}", response_model=UnlockResponse, responses=ERROR_RESPONSES)
def release_lock(
    id: LockId, database: DatabaseDep, journal: JournalDep, principal: Writer
) -> Response:
    """Release a lock by id (a GET, as upstream); ``count`` is "0" when there was none."""
    return _release_by_id(str(id), database, journal, principal)


@router.delete("/lock/{id}", response_model=UnlockResponse, responses=ERROR_RESPONSES)
def delete_lock(
    id: LockId, database: DatabaseDep, journal: JournalDep, principal: Writer
) -> Response:
    """Release a lock by id (the same as ``GET /unlock/{id}``)."""
    return _release_by_id(str(id), database, journal, principal)


@router.post(
    "/unlock",
    response_model=UnlockResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE, **CONFLICT_RESPONSE},
)
def release_lock_by_key(
    body: ReleaseLockRequest, database: DatabaseDep, journal: JournalDep, principal: Writer
) -> Response:
    """Release the lock on (service, environment, resource), naming its holder: ``who``
    (and ``id`` / ``eventId`` when given) must match, or the answer is 409."""
    resource = body.resource or DEFAULT_RESOURCE
    check_lock_key(body.service, body.environment, resource, body.who)
    check_text(body.who, "who", max_length=MAX_NAME, required=True)
    lock_id = require_uuid(body.id, "id") if body.id else ""
    event_id = require_uuid(body.event_id, "eventId") if body.event_id else ""
    principal.require_service(body.service)
    now = utcnow()
    with database.write() as conn:
        holder = lock_store.find_lock_by_key(
            conn, service=body.service, environment=body.environment, resource=resource, now=now
        )
        if holder is None:
            raise NotFound(
                f"no lock on {resource} of {body.service} in {body.environment} "
                "(released or expired)"
            )
        if (
            holder.who != body.who
            or (lock_id and holder.id != lock_id)
            or (event_id and holder.event_id != event_id)
        ):
            raise Conflict(held_message(holder))
        count = lock_store.release_lock(conn, lock_id=holder.id, now=now, journal=journal)
    journal.flush()
    return wire(UnlockResponse(message="lock deleted", id=holder.id, count=count))


@router.post(
    "/lock/{id}/renew",
    response_model=LockResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def renew_lock(
    id: LockId, body: RenewLockRequest, database: DatabaseDep, principal: Writer
) -> Response:
    """Push a live lock's expiry to now + ``ttlSeconds``; 404 when gone or expired."""
    now = utcnow()
    with database.write() as conn:
        _require_lock(conn, str(id), principal)
        lock = lock_store.renew_lock(conn, lock_id=str(id), ttl_seconds=body.ttl_seconds, now=now)
    if lock is None:
        raise NotFound(f"lock {id} not found (released or expired)")
    return wire(LockResponse(lock=lock))


@router.get("/locks/list", response_model=LockListResponse, responses=ERROR_RESPONSES)
def list_locks(database: DatabaseDep) -> Response:
    """Every live lock, newest first."""
    with database.read() as conn:
        found = lock_store.list_locks(conn, now=utcnow())
    return wire(LockListResponse(locks=found, total_count=len(found)))
