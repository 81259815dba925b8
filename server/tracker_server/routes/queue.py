"""The lock queue: wait your turn (a long poll that is also the heartbeat), leave, look
at a key's holder and waiters, and set the queue policy of an environment or service."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from tracker_ci.models import (
    API_PREFIX,
    EvictLockRequest,
    LockStatusResponse,
    QueueEntry,
    QueuePolicy,
    QueuePolicyListResponse,
    QueueRequest,
    QueueResponse,
    UnlockResponse,
)
from tracker_server import wakeup
from tracker_server.auth import authorize
from tracker_server.deps import DatabaseDep, Now, WriteDep, require_reader
from tracker_server.errors import ERROR_RESPONSES, NOT_FOUND_RESPONSE
from tracker_server.operations import FROZEN_RESOURCES
from tracker_server.routes.common import wire
from tracker_server.store import freezes as freeze_store
from tracker_server.store import locks as lock_store
from tracker_server.store import queue as queue_store
from tracker_server.store.queue import LockKey, TicketNotFound, Timeouts
from tracker_server.validation import check_lock_key, check_text, check_urls, require_uuid
from tracker_server.writes import Write

router = APIRouter(prefix=API_PREFIX, tags=["queue"], dependencies=[Depends(require_reader)])

TicketId = Annotated[uuid.UUID, Path(description="The queue ticket (a UUID).")]
LockId = Annotated[uuid.UUID, Path(description="The lock's id (a UUID).")]
#: Resources a freeze holds back (the others are not deployments).


def _timeouts(request: Request) -> Timeouts:
    settings = request.app.state.settings
    return Timeouts(
        heartbeat=settings.queue_heartbeat_seconds,
        claim=settings.queue_claim_seconds,
        started=request.app.state.started_at,  # create_app sets it
    )


def _visit(
    conn: Connection,
    key: LockKey,
    body: QueueRequest,
    ticket: str,
    write: Write,
    timeouts: Timeouts,
) -> QueueResponse:
    now = write.now
    queue_store.lock_key(conn, key)  # first: see lock_key
    lock_store.expire_key(
        conn,
        service=key.service,
        environment=key.environment,
        resource=key.resource,
        now=now,
        journal=write.journal,
    )
    if ticket:
        queue_store.heartbeat(conn, key, ticket=ticket, now=now, journal=write.journal)
    else:
        ticket = queue_store.join(
            conn,
            key,
            who=body.who,
            reason=body.reason,
            job_url=body.job_url,
            now=now,
            journal=write.journal,
        )
    queue_store.tidy(conn, key, now=now, timeouts=timeouts, journal=write.journal)
    queue_store.grant_head(conn, key, now=now, journal=write.journal)
    entries = queue_store.queue_of(
        conn, service=key.service, environment=key.environment, resource=key.resource, now=now
    )
    mine = next((entry for entry in entries if entry.ticket == ticket), None)
    if mine is None:
        raise TicketNotFound(f"queue ticket {ticket} for {key.describe()} was dropped")
    frozen = ""
    if mine.state == "granted" and key.resource in FROZEN_RESOURCES and not body.break_glass:
        stretch = freeze_store.hard_freeze_now(
            conn, service=key.service, environment=key.environment, now=now
        )
        if stretch is not None:
            queue_store.hold_turn(conn, key, ticket=ticket, now=now)
            mine = mine.model_copy(update={"state": "frozen"})
            frozen = freeze_store.blocked_message(stretch)
    holder = lock_store.find_lock_by_key(
        conn, service=key.service, environment=key.environment, resource=key.resource, now=now
    )
    # A ticket is its waiter's to use: the others see only its place.
    return QueueResponse(ticket=mine, lock=holder, queue=_anonymous(entries), frozen_by=frozen)


def _anonymous(entries: list[QueueEntry]) -> list[QueueEntry]:
    return [entry.model_copy(update={"ticket": ""}) for entry in entries]


def _moment(write: Write, now: datetime) -> None:
    # A long poll lives on: each look is its own moment.
    write.now = now
    write.journal.now = now


@router.post(
    "/lock/queue",
    response_model=QueueResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def wait_in_queue(body: QueueRequest, write: WriteDep, request: Request) -> Response:
    """Join the key's queue (no ``ticket``) or keep a ticket alive, and wait up to
    ``waitSeconds`` for its turn: the answer comes as soon as the turn comes (``state``
    granted; then take the lock naming ``queueTicket``), else when the time is up. A hard
    freeze holds a turn back (``state`` frozen, ``frozenBy``). 409 (code 10) when a newer
    waiter superseded this one; 404 when the ticket was dropped."""
    resource = body.resource or "deployment"
    check_lock_key(body.service, body.environment, resource, body.who)
    check_text(body.reason, "reason", max_length=1000)
    ticket = require_uuid(body.ticket, "ticket") if body.ticket else ""
    check_urls(body)
    write.allow(body.service)
    key = LockKey(body.service, body.environment, resource)
    timeouts = _timeouts(request)
    clock = request.app.state.clock
    deadline = time.monotonic() + body.wait_seconds
    look = True
    looked = time.monotonic()
    while True:
        seen = wakeup.version()
        if look:
            _moment(write, clock.now())
            with write.transaction() as conn:
                answer = _visit(conn, key, body, ticket, write, timeouts)
            assert answer.ticket is not None
            ticket = answer.ticket.ticket
            looked = time.monotonic()
            # A stopping server answers at once: the waiter comes back (it polls again).
            if answer.ticket.state == "granted" or deadline - looked <= 0 or wakeup.stopping():
                return wire(answer)
        left = deadline - time.monotonic()
        slice_left = wakeup.MAX_SLICE - (time.monotonic() - looked)
        changed = wakeup.wait_for_change(seen, max(0.0, min(left, slice_left)))
        # A change wakes every waiter: only the one whose turn came writes again at once
        # (a read tells); the others look again when their slice is over.
        look = (
            not changed
            or wakeup.stopping()
            or time.monotonic() - looked >= wakeup.MAX_SLICE
            or time.monotonic() >= deadline
            or _turn_came(write, ticket)
        )


def _turn_came(write: Write, ticket: str) -> bool:
    with write.database.read() as conn:
        return queue_store.turn_came(conn, ticket=ticket)


@router.delete("/lock/queue/{ticket}", response_model=UnlockResponse, responses=ERROR_RESPONSES)
def leave_queue(ticket: TicketId, write: WriteDep) -> Response:
    """Leave a queue (Ctrl-C, SIGTERM, the wait ran out); ``count`` "0" when already gone."""
    with write.transaction() as conn:
        key = queue_store.find_ticket(conn, ticket=str(ticket))
        if key is not None:
            write.allow(key.service)
            queue_store.lock_key(conn, key)
        left = queue_store.leave(conn, ticket=str(ticket), journal=write.journal)
        if left and key is not None:
            queue_store.grant_head(conn, key, now=write.now, journal=write.journal)
    return wire(UnlockResponse(message="left the queue", id=str(ticket), count=int(left)))


@router.get("/locks/status", response_model=LockStatusResponse, responses=ERROR_RESPONSES)
def lock_status(
    database: DatabaseDep,
    now: Now,
    service: Annotated[str, Query(description="The service.")],
    environment: Annotated[str, Query(description="The environment.")],
    resource: Annotated[str, Query(description="The resource.")] = "deployment",
) -> Response:
    """The key's holder (with its fence, reason and CI job) and its waiters in order, each
    with the expected wait (from the median of recent successful deployments)."""
    check_lock_key(service, environment, resource or "deployment", "")
    resource = resource or "deployment"
    with database.read() as conn:
        holder = lock_store.find_lock_by_key(
            conn, service=service, environment=environment, resource=resource, now=now
        )
        queue = queue_store.queue_of(
            conn, service=service, environment=environment, resource=resource, now=now
        )
        policy = queue_store.policy_for(conn, service=service, environment=environment)
    return wire(
        LockStatusResponse(
            locked=holder is not None, lock=holder, queue=_anonymous(queue), policy=policy
        )
    )


@router.put("/locks/policy", response_model=QueuePolicy, responses=ERROR_RESPONSES)
def set_policy(body: QueuePolicy, write: WriteDep) -> Response:
    """Set the queue policy (``fifo`` or ``newest``) of an environment, or of one service
    in it; an environment-wide policy needs an admin token when auth is on."""
    check_text(body.environment, "environment", max_length=100, required=True)
    if body.service:
        write.allow(body.service)
    else:
        authorize(write.principal, "set an environment's queue policy", admin=True)
    with write.transaction() as conn:
        policy = queue_store.set_policy(
            conn,
            environment=body.environment,
            service=body.service,
            policy=body.policy,
            journal=write.journal,
        )
    return wire(policy)


@router.get("/locks/policies", response_model=QueuePolicyListResponse, responses=ERROR_RESPONSES)
def list_policies(database: DatabaseDep) -> Response:
    """Every queue policy set (keys with none are fifo)."""
    with database.read() as conn:
        policies = queue_store.list_policies(conn)
    return wire(QueuePolicyListResponse(policies=policies, total_count=len(policies)))


@router.post(
    "/lock/{id}/evict",
    response_model=UnlockResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def evict_lock(id: LockId, body: EvictLockRequest, write: WriteDep) -> Response:
    """Evict a dead holder (a waiter found its CI job ended): the lock is deleted, the
    eviction journaled and written on the holder's event, and the next waiter's turn
    comes. ``why`` is required."""
    check_text(body.by, "by", max_length=200)
    check_text(body.why, "why", max_length=1000, required=True)
    with write.transaction() as conn:
        lock = write.owned_lock(conn, str(id))
        count = lock_store.evict_lock(
            conn,
            lock=lock,
            by=body.by or write.principal.name,
            why=body.why,
            now=write.now,
            journal=write.journal,
        )
    return wire(UnlockResponse(message="lock evicted", id=str(id), count=count))
