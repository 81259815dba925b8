"""The lock queue: wait your turn (a long poll that is also the heartbeat), leave, look
at a key's holder and waiters, and set the queue policy of an environment or service."""

from __future__ import annotations

import dataclasses
import functools
import time
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from tracker_ci.models import (
    API_PREFIX,
    Event,
    EvictLockRequest,
    Lock,
    LockStatusResponse,
    QueueEntry,
    QueuePolicy,
    QueuePolicyListResponse,
    QueueRequest,
    QueueResponse,
    UnlockResponse,
    takes_lock,
)
from tracker_server import operations, wakeup
from tracker_server.auth import authorize
from tracker_server.deps import DatabaseDep, Now, WriteDep, require_reader
from tracker_server.domain import InvalidInput
from tracker_server.errors import ERROR_RESPONSES, NOT_FOUND_RESPONSE
from tracker_server.journal import Journal
from tracker_server.operations import FROZEN_RESOURCES, check_environment
from tracker_server.routes.common import wire, wire_with_warnings
from tracker_server.store import events as event_store
from tracker_server.store import freezes as freeze_store
from tracker_server.store import locks as lock_store
from tracker_server.store import queue as queue_store
from tracker_server.store.queue import LockKey, TicketNotFound, Timeouts
from tracker_server.validation import (
    check_event,
    check_lock_key,
    check_text,
    check_urls,
    require_uuid,
)
from tracker_server.writes import Write

router = APIRouter(prefix=API_PREFIX, tags=["queue"], dependencies=[Depends(require_reader)])

TicketId = Annotated[uuid.UUID, Path(description="The queue ticket (a UUID).")]
LockId = Annotated[uuid.UUID, Path(description="The lock's id (a UUID).")]
#: What a grant took: the lock, the event it opened with it (``openEvent``), the warnings.
_Taken = tuple[Lock, Event | None, list[str]]


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
) -> tuple[QueueResponse, list[str]]:
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
        try:
            queue_store.heartbeat(conn, key, ticket=ticket, now=now, journal=write.journal)
        except TicketNotFound:
            # Its turn may have come as a grant: asking again answers it (and claims it).
            claimed = _claim(conn, key, body, ticket, write) if body.grant else None
            if claimed is None:
                raise
            return claimed, []
    else:
        check_environment(conn, write, service=key.service, environment=key.environment)
        ticket = queue_store.join(
            conn,
            key,
            who=body.who,
            reason=body.reason,
            job_url=body.job_url,
            now=now,
            journal=write.journal,
        )
    entries, holder_row = queue_store.settle(
        conn, key, now=now, timeouts=timeouts, journal=write.journal
    )
    mine = next((entry for entry in entries if entry.ticket == ticket), None)
    if mine is None:
        raise TicketNotFound(f"queue ticket {ticket} for {key.describe()} was dropped")
    frozen = ""
    if mine.state == "granted":
        stretch = _holding_freeze(conn, key, body, now)
        if stretch is not None:
            queue_store.hold_turn(conn, key, ticket=ticket, now=now)
            mine = mine.model_copy(update={"state": "frozen"})
            frozen = freeze_store.blocked_message(stretch)
    if mine.state == "granted" and body.grant:
        lock, event, warnings = _grant(conn, key, body, ticket, write, timeouts)
        # The head left the line: the others move up, their expected waits unchanged (the
        # new holder's expected rest is the head's place it took).
        rest = [
            entry.model_copy(update={"position": entry.position - 1})
            for entry in entries
            if entry.ticket != ticket
        ]
        return _granted(ticket, lock, rest, event), warnings
    holder = lock_store.row_to_lock(holder_row) if holder_row is not None else None
    # A ticket is its waiter's to use: the others see only its place.
    answer = QueueResponse(ticket=mine, lock=holder, queue=_anonymous(entries), frozen_by=frozen)
    return answer, []


def _grant(
    conn: Connection,
    key: LockKey,
    body: QueueRequest,
    ticket: str,
    write: Write,
    timeouts: Timeouts,
    line: list[Any] | None = None,
) -> _Taken:
    """Take the lock for the waiter whose turn came, as ``POST /lock`` naming its ticket
    would (the gate, the fence, the freezes and their glass), or open its event with the
    lock as ``POST /event`` naming it would (``openEvent``); the lock expires after the
    claim window until claimed (:func:`_claim`). The lock, the event, the warnings.
    ``line``: the key's queue as this transaction read it for update (the gate's rows)."""
    grant = lock_store.Grant(
        lock_id=queue_store.grant_id(ticket),
        claim_by=write.now + timedelta(seconds=timeouts.claim),
        line=line,
    )
    if body.open_event is not None:
        opening = body.open_event.model_copy(update={"queue_ticket": ticket})
        event, told = operations.open_event(conn, opening, write, grant)
        assert grant.taken is not None  # the event took it, or open_event raised
        return grant.taken, event, told
    event_store.check_event_exists(conn, event_id=body.event_id, field="eventId")
    lock = lock_store.acquire_lock(
        conn,
        service=key.service,
        environment=key.environment,
        resource=key.resource,
        who=body.who,
        event_id=body.event_id,
        ttl_seconds=body.ttl_seconds,
        now=write.now,
        journal=write.journal,
        reason=body.reason,
        job_url=body.job_url,
        ticket=ticket,
        token_id=write.principal.lock_owner,
        lock_id=grant.lock_id,
        claim_by=grant.claim_by,
        key_settled=True,  # _visit took the key and expired its lease at this moment
        line=line,
    )
    warnings: list[str] = []
    if key.resource in FROZEN_RESOURCES:
        warnings = operations.enforce_freezes(
            conn,
            write,
            service=key.service,
            environment=key.environment,
            who=body.who or write.principal.name,
            break_glass=body.break_glass,
            event_id=body.event_id,
        )
    return lock, None, warnings


def _claim(
    conn: Connection, key: LockKey, body: QueueRequest, ticket: str, write: Write
) -> QueueResponse | None:
    """The ticket's grant asked for again (its answer was lost, or the waiter claims it):
    the same lock (and the event it opened), now with the TTL asked for; None when the
    ticket holds no grant."""
    lock = lock_store.find_lock(conn, lock_id=queue_store.grant_id(ticket), now=write.now)
    if lock is None or LockKey(lock.service, lock.environment, lock.resource) != key:
        return None
    write.check_holder(conn, lock, "claim")
    lock = lock_store.renew_lock(
        conn, lock_id=lock.id, ttl_seconds=body.ttl_seconds, now=write.now, journal=write.journal
    )
    event = None
    if body.open_event is not None and lock.event_id:
        event = event_store.require_event(conn, event_id=lock.event_id)
    entries = queue_store.queue_of(
        conn, service=key.service, environment=key.environment, resource=key.resource, now=write.now
    )
    return _granted(ticket, lock, entries, event)


def _granted(
    ticket: str, lock: Lock, entries: list[QueueEntry], event: Event | None = None
) -> QueueResponse:
    # Out of the line (position 0): the ticket's waiter holds the lock.
    mine = QueueEntry(
        ticket=ticket,
        who=lock.who,
        since=lock.created_at,
        reason=lock.reason,
        job_url=lock.job_url,
        state="granted",
    )
    return QueueResponse(
        ticket=mine, lock=lock, queue=_anonymous(entries), granted=lock, event=event
    )


def _holding_freeze(
    conn: Connection, key: LockKey, body: QueueRequest, now: datetime
) -> freeze_store.InForce | None:
    """The hard freeze that holds this waiter's turn back now (None: none, its resource is
    not frozen, or it breaks glass)."""
    if key.resource not in FROZEN_RESOURCES or body.break_glass:
        return None
    return freeze_store.hard_freeze_now(
        conn, service=key.service, environment=key.environment, now=now
    )


class _Handover:
    """The grant of a long poll asking for it, taken while it sleeps by the transaction
    that gives its ticket the turn (``queue_store.await_turn``), as its own look would
    (:func:`_visit`): a hard freeze holds the turn back for that look to say; the lock
    belongs to the waiter's token, its changes go to that transaction's journal."""

    def __init__(self, key: LockKey, body: QueueRequest, write: Write, timeouts: Timeouts) -> None:
        self.key, self.body, self.write, self.timeouts = key, body, write, timeouts
        self.ticket = ""
        #: The lock, its event, the freeze warnings and the queue behind it, as the
        #: transaction that took them wrote them: set once that transaction committed
        #: (``Journal.on_commit``), so the answer reads nothing back.
        self.taken: tuple[_Taken, list[QueueEntry]] | None = None

    def __call__(
        self, conn: Connection, key: LockKey, now: datetime, journal: Journal, line: list[Any]
    ) -> None:
        if key != self.key:
            return
        write = dataclasses.replace(self.write, now=now, journal=journal)
        # A hard freeze refuses the grant as it would the waiter's own look: the refusal
        # undoes the savepoint, the turn stays granted, and that look answers it (frozen).
        taken = _grant(conn, key, self.body, self.ticket, write, self.timeouts, line)
        behind = [row for row in line if row.id != self.ticket]
        rest = queue_store.queue_behind(conn, key, behind, taken[0], now)
        # A refusal later in the savepoint drops this hook (queue_store._hand_over); a
        # rollback of the transaction never runs it.
        journal.on_commit.append(functools.partial(setattr, self, "taken", (taken, rest)))

    def answer(self) -> Response | None:
        """The granted answer once the transaction that took the grant committed (None
        before: the waiter looks for itself)."""
        committed, self.taken = self.taken, None
        if committed is None:
            return None
        (lock, event, warnings), rest = committed
        return wire_with_warnings(_granted(self.ticket, lock, rest, event), warnings)


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
    granted; then take the lock naming ``queueTicket``), else when the time is up. With
    ``grant`` the lock is taken for the caller when its turn comes and answered as
    ``granted`` (``POST /lock``'s rules and errors), expiring after the claim window
    until the caller asks again with the same ticket, which answers the same grant and
    claims it (``ttlSeconds`` from then). With ``openEvent`` (a ``POST /event`` body for
    this key; implies ``grant``) the grant opens that event with its lock, as ``POST
    /event`` naming the ticket would, answered as ``event``; asking again answers the same
    event. A hard freeze holds a turn back (``state``
    frozen, ``frozenBy``). 409 (code 10) when a newer waiter superseded this one; 404
    when the ticket was dropped."""
    resource = body.resource or "deployment"
    check_lock_key(body.service, body.environment, resource, body.who)
    check_text(body.reason, "reason", max_length=1000)
    ticket = require_uuid(body.ticket, "ticket") if body.ticket else ""
    if body.event_id:
        body = body.model_copy(update={"event_id": require_uuid(body.event_id, "eventId")})
    check_urls(body)
    write.allow(body.service)
    key = LockKey(body.service, body.environment, resource)
    if body.open_event is not None:
        body = _opening(body, key)
    timeouts = _timeouts(request)
    clock = request.app.state.clock
    deadline = time.monotonic() + body.wait_seconds
    look = True
    looked = time.monotonic()
    every = wakeup.MAX_SLICE
    bell = wakeup.Bell()
    handover = _Handover(key, body, write, timeouts) if body.grant else None
    seen = wakeup.version()
    try:
        while True:
            if look:
                _moment(write, clock.now())
                with write.transaction() as conn:
                    answer, warnings = _visit(conn, key, body, ticket, write, timeouts)
                assert answer.ticket is not None
                ticket = answer.ticket.ticket
                looked = time.monotonic()
                # A stopping server answers at once: the waiter comes back (it polls again).
                if answer.ticket.state == "granted" or deadline - looked <= 0 or wakeup.stopping():
                    return wire_with_warnings(answer, warnings)
                # The first in line looks every slice (an expired lease, a silent holder
                # of the turn, a freeze holding it); the others only keep their heartbeat,
                # so their writes do not queue in front of the handoff.
                every = wakeup.MAX_SLICE if answer.ticket.position <= 1 else _quiet(timeouts)
            # Rung for what committed since ``seen`` (read before the look) too.
            bell.arm(ticket, seen)
            left = deadline - time.monotonic()
            slice_left = every - (time.monotonic() - looked)
            if handover is not None:
                handover.ticket = ticket
                queue_store.await_turn(ticket, handover)
            rung = bell.wait(min(left, slice_left))
            if handover is not None:
                queue_store.stop_awaiting(ticket, handover)
            seen = wakeup.version()  # before anything that decides: see Bell.arm
            served = _served(handover, bell, write, key, body, ticket, clock.now())
            if served is not None:
                return served
            # A wake for everyone (a freeze changed): only a waiter whose turn came
            # writes again at once (a read tells); the others when their slice is over.
            look = (
                not rung
                or bell.mine
                or wakeup.stopping()
                or time.monotonic() - looked >= every
                or time.monotonic() >= deadline
                or _turn_came(write, ticket)
            )
    finally:
        bell.close()
        if handover is not None:
            queue_store.stop_awaiting(ticket, handover)


def _opening(body: QueueRequest, key: LockKey) -> QueueRequest:
    """A request that opens its event with the grant, checked as ``POST /event`` checks
    its body (its URLs were, with the request's): an event of this key that takes its lock.
    The request asks for the grant, with the event's TTL and glass."""
    opening = body.open_event
    assert opening is not None
    attributes = opening.attributes
    check_event(opening.title, attributes, opening.links, opening.slack_id)
    opens = LockKey(attributes.service, attributes.environment.value, attributes.type.value)
    if opens != key or not takes_lock(attributes.type, attributes.status):
        raise InvalidInput(
            f"invalid request: openEvent must open a {key.resource} of {key.service} in "
            f"{key.environment} that takes its lock (a {attributes.type.value} of "
            f"{attributes.service} in {attributes.environment.value}, status "
            f"{attributes.status.value}); send the event of the key you queue for"
        )
    if body.event_id:
        raise InvalidInput(
            "invalid request: eventId and openEvent: the lock belongs to the event the "
            "grant opens; send one of them"
        )
    return body.model_copy(
        update={
            "grant": True,
            "ttl_seconds": opening.lock_ttl_seconds,
            "break_glass": body.break_glass or opening.break_glass,
        }
    )


def _quiet(timeouts: Timeouts) -> float:
    """How often a waiter behind the first looks during its long poll: often enough to
    stay alive (a third of the heartbeat window), never more often than the first."""
    return max(wakeup.MAX_SLICE, timeouts.heartbeat / 3)


def _served(
    handover: _Handover | None,
    bell: wakeup.Bell,
    write: Write,
    key: LockKey,
    body: QueueRequest,
    ticket: str,
    now: datetime,
) -> Response | None:
    """The answer a woken long poll gives without a write of its own: the grant handed
    over to it, or (without ``grant``) the turn its bell rang for; None: it looks."""
    if handover is not None:
        granted = handover.answer()
        if granted is not None:
            return granted
    if bell.mine and not body.grant:
        turn = _turn(write, key, body, ticket, now)
        if turn is not None:
            return wire(turn)
    return None


def _turn(
    write: Write, key: LockKey, body: QueueRequest, ticket: str, now: datetime
) -> QueueResponse | None:
    """The answer of a waiter without ``grant`` rung for its turn, read: the transaction
    that rang it gave it the turn, so no write is needed to say so (it takes the lock
    next). None when a look must write: the ticket moved otherwise, or a hard freeze
    holds the turn back (the look keeps it from timing out)."""
    with write.database.read() as conn:
        entries = queue_store.queue_of(
            conn, service=key.service, environment=key.environment, resource=key.resource, now=now
        )
        mine = next((entry for entry in entries if entry.ticket == ticket), None)
        if mine is None or mine.state != "granted":
            return None
        if _holding_freeze(conn, key, body, now) is not None:
            return None
        holder = lock_store.find_lock_by_key(
            conn, service=key.service, environment=key.environment, resource=key.resource, now=now
        )
    return QueueResponse(ticket=mine, lock=holder, queue=_anonymous(entries))


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
