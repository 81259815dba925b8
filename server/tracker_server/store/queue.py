"""The queue of each lock key: waiters in arrival order, served one at a time.

A waiter joins with a ticket (:func:`visit` without one) and keeps it alive by calling
:func:`visit` again (its long poll is its heartbeat). When the key comes free, in the
transaction that frees it (:func:`grant_head`, called by the lock store), the head's turn
comes (``granted_at``); from then until the lock is claimed (``POST /lock`` or a deployment
event naming the ticket) nobody else may take the free key (:func:`gate`). A waiter whose
heartbeat stops is dropped; a turn not claimed in time passes to the next. With the
``newest`` policy a new waiter supersedes the older waiting ones.

A waiter may ask the long poll to take the lock for it when its turn comes (``grant``):
the route then takes it in the same transaction, under the id :func:`grant_id` derives
from the ticket (so the same ticket finds the same grant again), expiring after the claim
window until the waiter claims it by asking again: a waiter that died before the answer
reached it loses the turn as an unclaimed one does. While such a waiter's long poll sleeps
in this process, it is handed over (:func:`await_turn`): the transaction that gives it its
turn (a release, a leave, a drop) takes its lock too, in a savepoint, so its answer needs
no write of its own; anything that refuses that grant leaves it to the waiter's own look.

Every function runs inside the caller's transaction; the rows of a key are read
``FOR UPDATE`` on PostgreSQL (SQLite's write lock serialises writers), and the UNIQUE key
of ``locks`` still decides any race: no replica can grant a key twice.
"""

from __future__ import annotations

import hashlib
import logging
import statistics
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Select,
    String,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import BIT

from tracker_ci.models import QUEUE_POLICIES, Lock, QueueEntry, QueuePolicy
from tracker_server.domain import InvalidInput, LockConflict, NotFound, QueueSuperseded
from tracker_server.journal import (
    Journal,
    QueueGranted,
    QueueJoined,
    QueueLeft,
    QueuePolicySet,
    QueueWaiterSuperseded,
)
from tracker_server.tables import events, lock_policies, lock_queue, locks

#: How many recent successful deployments the expected wait is the median of.
HISTORY = 20
#: The namespace of the ids of the locks granted to waiters (:func:`grant_id`).
_GRANTS = uuid.UUID("a3abf2a7-b7bc-436c-9d90-1087f89daf49")

logger = logging.getLogger("tracker_server.queue")


class TicketNotFound(NotFound):
    """No such ticket: it left, was dropped, or its turn passed."""


@dataclass(frozen=True)
class Timeouts:
    """How long a silent waiter and an unclaimed turn are kept."""

    heartbeat: float = 15.0
    claim: float = 10.0
    #: When this server process started (None: not known). A waiter cannot heartbeat
    #: a server that is down: its silence counts from the start at the earliest, so
    #: tickets survive a crash and restart (deadline = max(last heartbeat, start) + timeout).
    started: datetime | None = None

    def expired(self, since: datetime, seconds: float, now: datetime) -> bool:
        """Whether a silence since ``since`` has lasted past ``seconds`` by ``now``."""
        if self.started is not None:
            since = max(since, self.started)
        return since < now - timedelta(seconds=seconds)


@dataclass(frozen=True)
class LockKey:
    """A lock key: (service, environment, resource)."""

    service: str
    environment: str
    resource: str

    def where(self, table: Any) -> Any:
        return and_(
            table.c.service == self.service,
            table.c.environment == self.environment,
            table.c.resource == self.resource,
        )

    @staticmethod
    def bound_where(table: Any) -> Any:
        """A key's condition on ``table`` for a statement built once: its values are
        bound at each execution (:meth:`params`)."""
        return and_(
            table.c.service == bindparam("key_service"),
            table.c.environment == bindparam("key_environment"),
            table.c.resource == bindparam("key_resource"),
        )

    def params(self) -> dict[str, str]:
        """This key's values for :meth:`bound_where`."""
        return {
            "key_service": self.service,
            "key_environment": self.environment,
            "key_resource": self.resource,
        }

    def describe(self) -> str:
        return f"{self.resource} of {self.service} in {self.environment}"


def lock_key(conn: Connection, key: LockKey) -> None:
    """Serialise every change of one key's lock and queue for the rest of the transaction.

    On PostgreSQL a transaction-scoped advisory lock on the key, taken FIRST by every
    transaction that changes the key (take, release, expire, join, heartbeat, leave), so
    two of them never hold row locks in opposite orders (a deadlock). SQLite's write
    transactions are serialised already.
    """
    if conn.dialect.name != "postgresql":
        return
    name = _KEY_SEPARATOR.join((key.service, key.environment, key.resource)).encode()
    number = int.from_bytes(hashlib.sha256(name).digest()[:8], "big", signed=True)
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": number})


_KEY_SEPARATOR = "\x1f"


def lock_keys(conn: Connection, keys: Select[Any]) -> None:
    """:func:`lock_key` for each key the query selects (service, environment, resource),
    in one order (the keys' code points), in one statement; SQLite runs no query."""
    if conn.dialect.name == "postgresql":
        conn.execute(_advisory_locks(keys))


def _advisory_locks(keys: Select[Any]) -> Select[Any]:
    """``pg_advisory_xact_lock`` of each distinct key of ``keys``, numbered as
    :func:`lock_key` numbers it (the first 8 bytes of the SHA-256 of its UTF-8 name, signed),
    taken in the keys' order (PostgreSQL calls a volatile function of the select list after
    the sort): every transaction taking several keys takes them in that one order."""
    found = keys.distinct().subquery()
    columns = (found.c.service, found.c.environment, found.c.resource)
    separator = literal(_KEY_SEPARATOR, String)
    name = func.convert_to(columns[0] + separator + columns[1] + separator + columns[2], "UTF8")
    digest = func.left(func.encode(func.sha256(name), "hex"), 16)
    number = cast(cast(literal("x", String) + digest, BIT(64)), BigInteger)
    ordered = [column.collate("C") for column in columns]
    return select(func.pg_advisory_xact_lock(number)).order_by(*ordered)


# Statements built once, their values bound at each execution (see store/events.py).
#: A lock not expired at ``now`` (the lock store's condition too).
LIVE_LOCK = or_(locks.c.expires_at.is_(None), locks.c.expires_at >= bindparam("now"))
#: The live lock holding a key (:meth:`LockKey.params` and ``now``; the lock store's
#: look-up by key too).
HOLDER = select(locks).where(LockKey.bound_where(locks), LIVE_LOCK)
_ROWS = select(lock_queue).where(LockKey.bound_where(lock_queue)).order_by(lock_queue.c.seq)
_ROWS_FOR_UPDATE = _ROWS.with_for_update()
_GRANT_ROW = update(lock_queue).where(lock_queue.c.seq == bindparam("row_seq"))
_DELETE_ROW = delete(lock_queue).where(lock_queue.c.seq == bindparam("row_seq"))


def _rows(conn: Connection, key: LockKey, *, lock: bool = False) -> list[Any]:
    return list(conn.execute(_ROWS_FOR_UPDATE if lock else _ROWS, key.params()).all())


def _holder(conn: Connection, key: LockKey, now: datetime) -> Any:
    return conn.execute(HOLDER, {**key.params(), "now": now}).first()


def _left(row: Any, key: LockKey, reason: Any) -> QueueLeft:
    return QueueLeft(
        ticket=row.id,
        who=row.who,
        service=key.service,
        environment=key.environment,
        resource=key.resource,
        reason=reason,
    )


# ---------------------------------------------------------------- upkeep
def tidy(
    conn: Connection, key: LockKey, *, now: datetime, timeouts: Timeouts, journal: Journal
) -> list[Any]:
    """Drop silent waiters and unclaimed turns, grant the head if the key is free; the
    remaining rows in order (read FOR UPDATE)."""
    rows = _rows(conn, key, lock=True)
    kept = []
    for row in rows:
        if row.granted_at is not None and timeouts.expired(row.granted_at, timeouts.claim, now):
            reason = "unclaimed"
        elif timeouts.expired(row.heartbeat_at, timeouts.heartbeat, now):
            reason = "dropped"
        else:
            kept.append(row)
            continue
        conn.execute(_DELETE_ROW, {"row_seq": row.seq})
        journal.record(_left(row, key, reason))
    if len(kept) != len(rows):
        grant_head(conn, key, now=now, journal=journal)
        return _rows(conn, key)
    return kept


def grant_head(
    conn: Connection, key: LockKey, *, now: datetime, journal: Journal, free: bool = False
) -> None:
    """When the key is free, the head's turn comes now (in the freeing transaction); a
    head handed over here (:func:`await_turn`) gets its lock in it too. ``free``: the
    caller just deleted the key's lock row, no need to look for a holder."""
    if not free and _holder(conn, key, now) is not None:
        return
    rows = _rows(conn, key, lock=True)
    head = _next_turn(rows)
    if head is None:
        return
    row = rows[head]
    journal.record(_granted(row, key))
    # A head handed its lock here has left the line (the gate deleted its row): its turn
    # is stored only when the handover could not take the lock.
    if not _hand_over(conn, key, row.id, rows, now=now, journal=journal):
        conn.execute(_GRANT_ROW, {"row_seq": row.seq, "granted_at": now})


#: Takes the lock for a sleeping long poll whose turn came: (conn, key, now, journal, the
#: key's queue as read for update, its row included and unchanged since).
Handover = Callable[[Connection, LockKey, datetime, Journal, list[Any]], None]
#: The long polls of this process sleeping with ``grant``, by ticket (:func:`await_turn`).
_handovers: dict[str, Handover] = {}
_handovers_lock = threading.Lock()


def await_turn(ticket: str, take: Handover) -> None:
    """While a long poll asking for the grant sleeps: the transaction that gives its
    ticket the turn calls ``take`` (in a savepoint), which takes its lock there."""
    with _handovers_lock:
        _handovers[ticket] = take


def stop_awaiting(ticket: str, take: Handover) -> None:
    """The long poll woke (it looks for itself now): no more handover. Only its own: a
    repeated poll of the same ticket (an answer lost on the way) may sleep meanwhile."""
    with _handovers_lock:
        if _handovers.get(ticket) is take:
            del _handovers[ticket]


def _hand_over(
    conn: Connection,
    key: LockKey,
    ticket: str,
    line: list[Any],
    *,
    now: datetime,
    journal: Journal,
) -> bool:
    """Take the lock for ``ticket``'s sleeping long poll, if one sleeps here; whether it
    was taken."""
    take = _handovers.get(ticket)
    if take is None:
        return False
    mark, hooks = len(journal.pending), len(journal.on_commit)
    try:
        with conn.begin_nested():  # a refusal undoes the grant, never the release
            take(conn, key, now, journal, line)
    except Exception:  # noqa: BLE001 - the waiter's own look meets it and answers it
        del journal.pending[mark:]
        del journal.on_commit[hooks:]
        logger.debug("the handover of ticket %s was refused", ticket, exc_info=True)
        return False
    return True


def _next_turn(rows: list[Any]) -> int | None:
    """The index of the row whose turn comes now that the key is free (the first that
    is not superseded, if its turn has not come yet), else None."""
    for index, row in enumerate(rows):
        if row.superseded_by is None:
            return index if row.granted_at is None else None
    return None


def _granted(row: Any, key: LockKey) -> QueueGranted:
    return QueueGranted(
        ticket=row.id,
        who=row.who,
        service=key.service,
        environment=key.environment,
        resource=key.resource,
    )


def _grant_first(
    conn: Connection, key: LockKey, rows: list[Any], *, now: datetime, journal: Journal
) -> list[Any]:
    """The key is free: the turn of the first waiter of ``rows`` (read FOR UPDATE) comes
    now; the rows as they are after it (the granted one a new object)."""
    head = _next_turn(rows)
    if head is None:
        return rows
    row = rows[head]
    conn.execute(_GRANT_ROW, {"row_seq": row.seq, "granted_at": now})
    journal.record(_granted(row, key))
    granted = SimpleNamespace(**{**row._mapping, "granted_at": now})
    return [*rows[:head], granted, *rows[head + 1 :]]


def settle(
    conn: Connection, key: LockKey, *, now: datetime, timeouts: Timeouts, journal: Journal
) -> tuple[list[QueueEntry], Any]:
    """A waiter's look: :func:`tidy`, then the head's turn if the key is free; the
    waiters in order (as :func:`queue_of`) and the live holder's row (None when free),
    each read once."""
    rows = tidy(conn, key, now=now, timeouts=timeouts, journal=journal)
    holder = _holder(conn, key, now)
    if holder is None:
        rows = _grant_first(conn, key, rows, now=now, journal=journal)
    return _entries(conn, key, rows, holder, now), holder


def grant_after_release(conn: Connection, lock: Lock, *, now: datetime, journal: Journal) -> None:
    """The lock store freed ``lock``'s key (deleted its row: a key has one) in this
    transaction: the next waiter's turn comes."""
    key = LockKey(lock.service, lock.environment, lock.resource)
    grant_head(conn, key, now=now, journal=journal, free=True)


# ---------------------------------------------------------------- the gate
def gate(
    conn: Connection,
    key: LockKey,
    *,
    ticket: str,
    now: datetime,
    journal: Journal,
    rows: list[Any] | None = None,
) -> None:
    """Let a caller take the free key only when nobody waits or it is first in line (then
    its ticket is used up); otherwise :class:`LockConflict` naming the first waiter.
    ``rows``: the key's queue as this transaction read it for update (else read here)."""
    if rows is None:
        rows = _rows(conn, key, lock=True)
    waiting = [row for row in rows if row.superseded_by is None]
    if not waiting:
        return
    head = waiting[0]
    if ticket and head.id == ticket:
        conn.execute(_DELETE_ROW, {"row_seq": head.seq})
        journal.record(_left(head, key, "claimed"))
        return
    reserved = Lock(
        service=key.service,
        environment=key.environment,
        resource=key.resource,
        who=head.who,
        created_at=head.joined_at,
        reason=head.reason,
        job_url=head.job_url,
    )
    raise LockConflict(
        reserved,
        f"the {key.resource} lock of {key.service} in {key.environment} is reserved for "
        f"{head.who}, first of {len(waiting)} waiting in its queue: wait your turn (--wait)",
    )


def grant_id(ticket: str) -> str:
    """The id of the lock the queue takes for this ticket's waiter: derived from the
    ticket (never the ticket itself, which stays its waiter's secret)."""
    return str(uuid.uuid5(_GRANTS, ticket))


# ---------------------------------------------------------------- waiters
def join(
    conn: Connection,
    key: LockKey,
    *,
    who: str,
    reason: str,
    job_url: str,
    now: datetime,
    journal: Journal,
) -> str:
    """Add a waiter at the end of the queue; under ``newest`` it supersedes older waiters."""
    ticket = str(uuid.uuid4())
    conn.execute(
        insert(lock_queue),
        {
            "id": ticket,
            "service": key.service,
            "environment": key.environment,
            "resource": key.resource,
            "who": who,
            "reason": reason,
            "job_url": job_url,
            "joined_at": now,
            "heartbeat_at": now,
        },
    )
    if policy_for(conn, service=key.service, environment=key.environment) == "newest":
        for row in _rows(conn, key, lock=True):
            if row.id == ticket or row.granted_at is not None or row.superseded_by is not None:
                continue
            conn.execute(
                update(lock_queue).where(lock_queue.c.seq == row.seq).values(superseded_by=who)
            )
            journal.record(
                QueueWaiterSuperseded(
                    ticket=row.id,
                    who=row.who,
                    superseded_by=who,
                    service=key.service,
                    environment=key.environment,
                    resource=key.resource,
                )
            )
    entry = QueueEntry(ticket=ticket, who=who, since=now, reason=reason, job_url=job_url)
    journal.record(
        QueueJoined(
            entry=entry,
            service=key.service,
            environment=key.environment,
            resource=key.resource,
        )
    )
    return ticket


def heartbeat(
    conn: Connection, key: LockKey, *, ticket: str, now: datetime, journal: Journal
) -> None:
    """Keep a ticket alive; :class:`QueueSuperseded` (and it leaves) when a newer one took
    its place, :class:`TicketNotFound` when it is gone."""
    alive = conn.execute(
        update(lock_queue)
        .where(
            lock_queue.c.id == ticket,
            key.where(lock_queue),
            lock_queue.c.superseded_by.is_(None),
        )
        .values(heartbeat_at=now)
        .returning(lock_queue.c.seq)
    ).first()
    if alive is not None:  # the usual case: one statement per look
        return
    row = conn.execute(
        select(lock_queue).where(lock_queue.c.id == ticket, key.where(lock_queue))
    ).first()
    if row is None:
        raise TicketNotFound(
            f"queue ticket {ticket} for {key.describe()} not found (it left, its heartbeat "
            "stopped, or its turn passed unclaimed)"
        )
    if row.superseded_by is not None:
        conn.execute(_DELETE_ROW, {"row_seq": row.seq})
        journal.record(_left(row, key, "left"))
        raise QueueSuperseded(
            f"{key.describe()}: {row.who}'s wait was superseded by {row.superseded_by}'s deploy"
        )


def leave(conn: Connection, *, ticket: str, journal: Journal) -> bool:
    """Remove a ticket (Ctrl-C, SIGTERM, the wait ran out); False when it was gone."""
    row = conn.execute(select(lock_queue).where(lock_queue.c.id == ticket)).first()
    if row is None:
        return False
    conn.execute(_DELETE_ROW, {"row_seq": row.seq})
    key = LockKey(row.service, row.environment, row.resource)
    journal.record(_left(row, key, "left"))
    return True


def turn_came(conn: Connection, *, ticket: str) -> bool:
    """Whether this ticket's turn has come (or it is gone, which its waiter must learn)."""
    row = conn.execute(
        select(lock_queue.c.granted_at, lock_queue.c.superseded_by).where(lock_queue.c.id == ticket)
    ).first()
    return row is None or row.granted_at is not None or row.superseded_by is not None


def find_ticket(conn: Connection, *, ticket: str) -> LockKey | None:
    """The key a ticket waits for."""
    row = conn.execute(select(lock_queue).where(lock_queue.c.id == ticket)).first()
    return LockKey(row.service, row.environment, row.resource) if row else None


def hold_turn(conn: Connection, key: LockKey, *, ticket: str, now: datetime) -> None:
    """Keep a granted turn from timing out while a hard freeze holds it back."""
    conn.execute(
        update(lock_queue)
        .where(lock_queue.c.id == ticket, lock_queue.c.granted_at.is_not(None))
        .values(granted_at=now)
    )


# ---------------------------------------------------------------- reading
def median_duration(conn: Connection, *, service: str, environment: str) -> float | None:
    """The median duration (seconds) of this service's recent successful deployments in
    this environment; None when there is none yet."""
    durations = conn.execute(
        select(events.c.duration_seconds)
        .where(
            events.c.service == service,
            events.c.environment == environment,
            events.c.type == "deployment",
            events.c.status == "success",
            events.c.duration_seconds.is_not(None),
        )
        .order_by(events.c.created_at.desc())
        .limit(HISTORY)
    ).scalars()
    found = [float(d) for d in durations if d is not None]
    return statistics.median(found) if found else None


def queue_of(
    conn: Connection, *, service: str, environment: str, resource: str, now: datetime
) -> list[QueueEntry]:
    """The waiters of a key in order (superseded ones left out), with expected waits."""
    key = LockKey(service, environment, resource)
    rows = _rows(conn, key)
    if all(row.superseded_by is not None for row in rows):
        return []
    return _entries(conn, key, rows, _holder(conn, key, now), now)


def queue_behind(
    conn: Connection, key: LockKey, rows: list[Any], holder: Lock, now: datetime
) -> list[QueueEntry]:
    """:func:`queue_of` from rows read before (for update, in this transaction) and the
    holder just granted: what it would read (with expected waits once any wait)."""
    return _entries(conn, key, rows, holder, now)


def _entries(
    conn: Connection, key: LockKey, rows: list[Any], holder: Any, now: datetime
) -> list[QueueEntry]:
    rows = [row for row in rows if row.superseded_by is None]
    if not rows:
        return []
    typical = median_duration(conn, service=key.service, environment=key.environment)
    left = 0.0
    if typical is not None and holder is not None:
        left = max(0.0, typical - (now - holder.created_at).total_seconds())
    entries = []
    for position, row in enumerate(rows, start=1):
        expected = None
        if typical is not None:
            expected = round(left + (position - 1) * typical, 1)
        entries.append(
            QueueEntry(
                ticket=row.id,
                position=position,
                who=row.who,
                since=row.joined_at,
                reason=row.reason,
                job_url=row.job_url,
                state="granted" if row.granted_at is not None else "waiting",
                expected_wait_seconds=expected,
            )
        )
    return entries


# ---------------------------------------------------------------- policies
def policy_for(conn: Connection, *, service: str, environment: str) -> str:
    """The policy of a service in an environment: its own, else the environment's, else fifo."""
    rows = conn.execute(
        select(lock_policies.c.service, lock_policies.c.policy).where(
            lock_policies.c.environment == environment,
            lock_policies.c.service.in_([service, ""]),
        )
    ).all()
    by_service = {row.service: row.policy for row in rows}
    return str(by_service.get(service) or by_service.get("") or "fifo")


def set_policy(
    conn: Connection, *, environment: str, service: str, policy: str, journal: Journal
) -> QueuePolicy:
    """Set (or replace) the policy of an environment, or of one service in it."""
    if policy not in QUEUE_POLICIES:
        raise InvalidInput(
            f"invalid request: policy {policy!r} is not one of: {', '.join(QUEUE_POLICIES)}"
        )
    if not environment:
        raise InvalidInput("invalid request: environment is required")
    conn.execute(
        delete(lock_policies).where(
            lock_policies.c.environment == environment, lock_policies.c.service == service
        )
    )
    conn.execute(
        insert(lock_policies), {"environment": environment, "service": service, "policy": policy}
    )
    stored = QueuePolicy(environment=environment, service=service, policy=policy)
    journal.record(QueuePolicySet(policy=stored))
    return stored


def list_policies(conn: Connection) -> list[QueuePolicy]:
    """Every policy set."""
    rows = conn.execute(
        select(lock_policies).order_by(lock_policies.c.environment, lock_policies.c.service)
    )
    return [
        QueuePolicy(environment=r.environment, service=r.service, policy=r.policy) for r in rows
    ]
