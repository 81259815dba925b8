"""Deployment locks. The UNIQUE (service, environment, resource) constraint decides every
race, on one server or on several sharing a PostgreSQL; an expired lock counts as free.
Refusals are domain errors: ``LockConflict`` (naming the holder), ``LockNotFound``.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tracker_ci.models import ChangelogEntry, ChangeType, Lock
from tracker_server.domain import InternalError, LockConflict, LockNotFound
from tracker_server.journal import (
    Journal,
    LockAcquired,
    LockEvicted,
    LockReleased,
    LockRenewed,
    LockUpdated,
)
from tracker_server.store import backend_insert
from tracker_server.store import queue as queue_store
from tracker_server.tables import changelog, events, lock_fences, locks

# A holder can vanish between our failed insert and our look-up; try again this often.
_ACQUIRE_ATTEMPTS = 5
_CHANGING_HANDS = "the lock kept changing hands; try again"


def row_to_lock(row: Any) -> Lock:
    """The wire model of a ``locks`` row."""
    return Lock(
        id=row.id,
        service=row.service,
        who=row.who,
        created_at=row.created_at,
        environment=row.environment,
        resource=row.resource,
        event_id=row.event_id,
        expires_at=row.expires_at,
        fence=row.fence,
        reason=row.reason,
        job_url=row.job_url,
    )


# Statements built once, their values bound at each execution (see store/events.py).
_LIVE_NOW = queue_store.LIVE_LOCK
_LOCK_BY_ID = select(locks).where(locks.c.id == bindparam("lock_key"), _LIVE_NOW)
_EVENT_LOCKS = select(locks).where(locks.c.event_id == bindparam("event_key"), _LIVE_NOW)
#: The key's next fencing token: the one stored per key (lock_fences) + 1, read by the
#: lock's own insert; the grant then stores it (:func:`_store_fence`), so it only grows.
_NEXT_FENCE = (
    func.coalesce(
        select(lock_fences.c.fence)
        .where(queue_store.LockKey.bound_where(lock_fences))
        .scalar_subquery(),
        0,
    )
    + 1
)
_LIVE_LOCKS = select(locks).where(_LIVE_NOW).order_by(locks.c.created_at.desc(), locks.c.id)
#: Sets ``expires_at`` (given with the values).
_RENEW = update(locks).where(locks.c.id == bindparam("lock_key"), _LIVE_NOW).returning(*locks.c)
_DELETE_EXPIRED = (
    delete(locks)
    .where(queue_store.LockKey.bound_where(locks), locks.c.expires_at < bindparam("now"))
    .returning(*locks.c)
)


def find_lock(conn: Connection, *, lock_id: str, now: datetime) -> Lock | None:
    """The live lock with this id."""
    row = conn.execute(_LOCK_BY_ID, {"lock_key": lock_id, "now": now}).first()
    return row_to_lock(row) if row else None


def require_lock(conn: Connection, *, lock_id: str, now: datetime) -> Lock:
    """The live lock with this id, or :class:`LockNotFound`."""
    lock = find_lock(conn, lock_id=lock_id, now=now)
    if lock is None:
        raise LockNotFound(f"lock {lock_id} not found (released or expired)")
    return lock


def find_lock_by_key(
    conn: Connection, *, service: str, environment: str, resource: str, now: datetime
) -> Lock | None:
    """The live lock holding this key."""
    params = queue_store.LockKey(service, environment, resource).params()
    row = conn.execute(queue_store.HOLDER, {**params, "now": now}).first()
    return row_to_lock(row) if row else None


def list_locks(conn: Connection, *, now: datetime) -> list[Lock]:
    """Every live lock, newest first."""
    return [row_to_lock(row) for row in conn.execute(_LIVE_LOCKS, {"now": now})]


def event_locks(conn: Connection, *, event_id: str, now: datetime) -> list[tuple[Lock, str]]:
    """The live locks an event holds (by the ``event_id`` index), each with the id of the
    token that took it (as :func:`lock_token`)."""
    rows = conn.execute(_EVENT_LOCKS, {"event_key": event_id, "now": now})
    return [(row_to_lock(row), row.token_id or "") for row in rows]


@dataclass
class Grant:
    """The queue's grant of a key to the waiter whose turn came, taken in the transaction
    that settled the key (``lock_key`` and :func:`expire_key` at its moment): the lock's
    id (``queue_store.grant_id`` of the ticket) and when it expires unless claimed; once
    taken (by the event it opens), ``taken`` is the lock as written."""

    lock_id: str
    claim_by: datetime
    #: The key's queue as that transaction read it (for update): the gate's rows.
    line: list[Any] | None = None
    taken: Lock | None = None


def acquire_lock(
    conn: Connection,
    *,
    service: str,
    environment: str,
    resource: str,
    who: str,
    event_id: str,
    ttl_seconds: int,
    now: datetime,
    journal: Journal,
    reason: str = "",
    job_url: str = "",
    ticket: str = "",
    token_id: str = "",
    lock_id: str = "",
    claim_by: datetime | None = None,
    key_settled: bool = False,
    changelog_entry: bool = True,
    line: list[Any] | None = None,
) -> Lock:
    """Take the key or raise :class:`LockConflict` naming the holder. A free key with
    waiters goes only to the first of them (``ticket``); the grant gets the next fence.
    The lock belongs to ``token_id`` (the caller's token; release and renew check it).
    The queue's grant names the lock's id and expires it at ``claim_by`` until claimed.
    ``key_settled``: the caller's transaction already took the key (``lock_key``) and ran
    :func:`expire_key` at ``now`` (the queue's grant): neither is done again.
    ``changelog_entry``: the ``locked`` entry on its event, when that event exists (False:
    the caller writes it, its event not inserted yet). ``line``: the key's queue as this
    transaction read it for update, unchanged since (the gate reads it otherwise)."""
    key = queue_store.LockKey(service, environment, resource)
    if not key_settled:
        queue_store.lock_key(conn, key)  # first: see lock_key
    expires_at = now + timedelta(seconds=ttl_seconds) if ttl_seconds else None
    if claim_by is not None:
        expires_at = min(expires_at, claim_by) if expires_at else claim_by
    lock = Lock(
        id=lock_id or str(uuid.uuid4()),
        service=service,
        who=who,
        created_at=now,
        environment=environment,
        resource=resource,
        event_id=event_id,
        expires_at=expires_at,
        reason=reason,
        job_url=job_url,
    )
    for attempt in range(_ACQUIRE_ATTEMPTS):
        if attempt or not key_settled:
            _delete_expired(
                conn,
                service=service,
                environment=environment,
                resource=resource,
                now=now,
                journal=journal,
            )
        # Nothing inserted when the key is held: no savepoint, the transaction stays usable.
        values = {**_lock_values(lock), **key.params(), "token_id": token_id}
        inserted = conn.execute(_take_key(conn.dialect.name), values).first()
        if inserted is None:
            holder = find_lock_by_key(
                conn, service=service, environment=environment, resource=resource, now=now
            )
            if holder is not None:
                raise LockConflict(holder) from None
            continue  # released (or expired) meanwhile: try again
        # Ours now (the UNIQUE key holds it for this transaction): check the queue's order.
        # A retry follows a change of the key (a lease expired): the line is read again.
        known = line if not attempt else None
        queue_store.gate(conn, key, ticket=ticket, now=now, journal=journal, rows=known)
        lock = lock.model_copy(update={"fence": inserted.fence})
        conn.execute(_store_fence(conn.dialect.name), {**key.params(), "fence": lock.fence})
        journal.record(LockAcquired(lock=lock))
        if changelog_entry:
            write_lock_changelog(conn, lock=lock, change=ChangeType.locked, now=now)
        return lock
    raise InternalError(_CHANGING_HANDS)


def _lock_values(lock: Lock) -> dict[str, Any]:
    return {
        "id": lock.id,
        "service": lock.service,
        "environment": lock.environment,
        "resource": lock.resource,
        "who": lock.who,
        "event_id": lock.event_id,
        "created_at": lock.created_at,
        "expires_at": lock.expires_at,
        "reason": lock.reason,
        "job_url": lock.job_url,
    }


@functools.cache
def _take_key(dialect: str) -> Any:
    """The lock's insert, taking its key unless held (``ON CONFLICT DO NOTHING``: then no
    row, and no savepoint needed), with the key's next fence (``RETURNING`` it). Every
    grant of a key holds it first (:func:`queue_store.lock_key`; SQLite's one writer), so
    the fence read is the latest stored."""
    statement = backend_insert(dialect, locks).values(fence=_NEXT_FENCE)
    return statement.on_conflict_do_nothing().returning(locks.c.fence)


@functools.cache
def _store_fence(dialect: str) -> Any:
    """Store the key's fence, the first grant of the key inserting its row."""
    statement = backend_insert(dialect, lock_fences).values(
        service=bindparam("key_service"),
        environment=bindparam("key_environment"),
        resource=bindparam("key_resource"),
        fence=bindparam("fence"),
    )
    return statement.on_conflict_do_update(
        index_elements=list(lock_fences.primary_key), set_={"fence": statement.excluded.fence}
    )


def _delete_expired(
    conn: Connection,
    *,
    service: str,
    environment: str,
    resource: str,
    now: datetime,
    journal: Journal,
) -> None:
    params = queue_store.LockKey(service, environment, resource).params()
    expired = conn.execute(_DELETE_EXPIRED, {**params, "now": now}).all()
    for row in expired:
        lock = row_to_lock(row)
        journal.record(LockReleased(lock=lock, reason="expired"))
        write_lock_changelog(conn, lock=lock, change=ChangeType.unlocked, now=now)
        queue_store.grant_after_release(conn, lock, now=now, journal=journal)


def expire_key(
    conn: Connection,
    *,
    service: str,
    environment: str,
    resource: str,
    now: datetime,
    journal: Journal,
) -> None:
    """Delete the key's lock if its lease ran out (noticed lazily, e.g. by a waiter)."""
    _delete_expired(
        conn, service=service, environment=environment, resource=resource, now=now, journal=journal
    )


def write_lock_changelog(
    conn: Connection, *, lock: Lock, change: ChangeType, now: datetime
) -> ChangelogEntry | None:
    """A ``locked`` / ``unlocked`` entry on the lock's event, when that event exists (a
    caller that writes the event itself takes :func:`lock_changelog_entry`)."""
    if not lock.event_id:
        return None
    found = conn.execute(select(events.c.id).where(events.c.id == lock.event_id)).first()
    if found is None:
        return None
    entry = lock_changelog_entry(lock, change, now)
    conn.execute(insert(changelog), changelog_values(lock.event_id, entry))
    return entry


def lock_changelog_entry(lock: Lock, change: ChangeType, now: datetime) -> ChangelogEntry:
    """The ``locked`` / ``unlocked`` entry of this lock, for its event's changelog."""
    verb = "locked" if change is ChangeType.locked else "unlocked"
    return ChangelogEntry(
        timestamp=now,
        user=lock.who or "system",
        change_type=change,
        field="lock",
        old_value=lock.id if change is ChangeType.unlocked else "",
        new_value=lock.id if change is ChangeType.locked else "",
        comment=f"{lock.resource} of {lock.service} in {lock.environment} {verb}",
    )


def changelog_values(event_id: str, entry: ChangelogEntry) -> dict[str, Any]:
    """The ``changelog`` row of an entry."""
    return {
        "event_id": event_id,
        "timestamp": entry.timestamp,
        "user": entry.user,
        "change_type": entry.change_type.value,
        "field": entry.field,
        "old_value": entry.old_value,
        "new_value": entry.new_value,
        "comment": entry.comment,
    }


def delete_locks(
    conn: Connection,
    *,
    where: Any,
    now: datetime,
    journal: Journal,
    entries: list[ChangelogEntry] | None = None,
) -> int:
    """Delete the locks matching ``where``; the number of LIVE locks deleted. Each writes
    its ``unlocked`` entry on its event's changelog, or with ``entries`` (their event is
    the caller's) gets it there for the caller to write with its own."""
    queue_store.lock_keys(
        conn, select(locks.c.service, locks.c.environment, locks.c.resource).where(where)
    )
    rows = conn.execute(delete(locks).where(where).returning(*locks.c)).all()
    live = 0
    for row in rows:
        lock = row_to_lock(row)
        expired = lock.expires_at is not None and lock.expires_at < now
        live += not expired
        journal.record(LockReleased(lock=lock))
        if entries is None:
            write_lock_changelog(conn, lock=lock, change=ChangeType.unlocked, now=now)
        else:
            entries.append(lock_changelog_entry(lock, ChangeType.unlocked, now))
        queue_store.grant_after_release(conn, lock, now=now, journal=journal)
    return live


def release_lock(conn: Connection, *, lock_id: str, now: datetime, journal: Journal) -> int:
    """Delete the lock with this id; 1 when a live lock was released, else 0."""
    return delete_locks(conn, where=locks.c.id == lock_id, now=now, journal=journal)


def release_event_locks(
    conn: Connection, *, event_id: str, now: datetime, journal: Journal
) -> list[ChangelogEntry]:
    """Release every lock taken for this event (its callers hold the event, read for
    update); the ``unlocked`` entries for its changelog, which the caller writes."""
    where = locks.c.event_id == event_id
    entries: list[ChangelogEntry] = []
    delete_locks(conn, where=where, now=now, journal=journal, entries=entries)
    return entries


def release_lock_by_key(
    conn: Connection,
    *,
    service: str,
    environment: str,
    resource: str,
    who: str,
    lock_id: str,
    event_id: str,
    now: datetime,
    journal: Journal,
) -> tuple[Lock, int]:
    """Release the live lock on the key when ``who`` (and ``lock_id`` / ``event_id`` when
    given) match its holder: the holder and the count released. ``LockNotFound`` when
    the key is free, ``LockConflict`` when someone else holds it."""
    holder = find_lock_by_key(
        conn, service=service, environment=environment, resource=resource, now=now
    )
    if holder is None:
        raise LockNotFound(
            f"no lock on {resource} of {service} in {environment} (released or expired)"
        )
    if (
        holder.who != who
        or (lock_id and holder.id != lock_id)
        or (event_id and holder.event_id != event_id)
    ):
        raise LockConflict(holder)
    return holder, release_lock(conn, lock_id=holder.id, now=now, journal=journal)


def evict_lock(
    conn: Connection, *, lock: Lock, by: str, why: str, now: datetime, journal: Journal
) -> int:
    """Delete a dead holder's lock (its CI job ended), audited: who evicted it and why;
    the next waiter's turn comes in this transaction."""
    count = release_lock(conn, lock_id=lock.id, now=now, journal=journal)
    if count:
        journal.record(LockEvicted(lock=lock, by=by, why=why))
        on_event = conn.execute(select(events.c.id).where(events.c.id == lock.event_id))
        if lock.event_id and on_event.first():
            entry = ChangelogEntry(
                timestamp=now,
                user=by or "system",
                change_type=ChangeType.unlocked,
                field="lock",
                old_value=lock.id,
                comment=f"lock evicted by {by or 'system'}: {why}",
            )
            conn.execute(insert(changelog), changelog_values(lock.event_id, entry))
    return count


def renew_lock(
    conn: Connection, *, lock_id: str, ttl_seconds: int, now: datetime, journal: Journal
) -> Lock:
    """Move a live lock's expiry to now + TTL (0: never, the queue's claim of a grant
    without one); :class:`LockNotFound` when gone or expired."""
    expires_at = now + timedelta(seconds=ttl_seconds) if ttl_seconds else None
    params = {"lock_key": lock_id, "now": now, "expires_at": expires_at}
    result = conn.execute(_RENEW, params).first()
    if result is None:
        raise LockNotFound(f"lock {lock_id} not found (released or expired)")
    lock = row_to_lock(result)
    journal.record(LockRenewed(lock=lock))
    return lock


def update_lock(
    conn: Connection, *, lock: Lock, changes: dict[str, str], now: datetime, journal: Journal
) -> Lock:
    """Apply non-empty field changes to a live lock; :class:`LockConflict` on a key clash."""
    if not changes:
        return lock
    new_key = {
        "service": changes.get("service", lock.service),
        "environment": changes.get("environment", lock.environment),
        "resource": changes.get("resource", lock.resource),
    }
    try:
        with conn.begin_nested():
            params = queue_store.LockKey(**new_key).params()
            expired = conn.execute(_DELETE_EXPIRED, {**params, "now": now}).all()
            row = conn.execute(
                update(locks).where(locks.c.id == lock.id).values(**changes).returning(*locks.c)
            ).first()
    except IntegrityError:
        holder = find_lock_by_key(conn, now=now, **new_key)
        if holder is None:
            raise InternalError(_CHANGING_HANDS) from None
        raise LockConflict(holder) from None
    assert row is not None
    # Recorded only now: a savepoint that rolled back changed nothing.
    for gone in expired:
        journal.record(LockReleased(lock=row_to_lock(gone), reason="expired"))
    updated = row_to_lock(row)
    journal.record(LockUpdated(before=lock, after=updated))
    return updated


# ------------------------------------------------------------------- ownership
def lock_token(conn: Connection, *, lock_id: str) -> str:
    """The id of the token that took the lock ("" when none was recorded)."""
    found = conn.execute(select(locks.c.token_id).where(locks.c.id == lock_id)).scalar()
    return str(found or "")
