"""Idempotency keys: a repeated create answers the first result and writes nothing.

The key row is inserted FIRST in the request's transaction, as a placeholder: a
concurrent request with the same key waits on the primary key until the first commits,
then reads its answer. Only successful answers are kept: a 409 (lock held) or a 400 rolls
the placeholder back, so a client that retries later with the same key can still succeed.
Keys are forgotten after a day: an older key is a new one, and the rows of old keys are
deleted by a write with a key at most once a minute (``PURGE_EVERY``), not by each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, select, update

from tracker_server.domain import InvalidInput
from tracker_server.store import insert_ignoring_conflicts
from tracker_server.tables import idempotency_keys

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 200
#: The longest time between two deletions of this process's expired keys.
PURGE_EVERY = timedelta(minutes=1)
#: The moment (the writes' clock) this process last deleted them.
_purged_at: datetime | None = None


@dataclass(frozen=True)
class StoredAnswer:
    """The answer given to the first request with a key."""

    status_code: int
    body: str


def request_fingerprint(body: str) -> str:
    """The sha256 of the request, to tell a true repeat from a reused key."""
    return hashlib.sha256(body.encode()).hexdigest()


def check_key(key: str) -> str:
    """A usable key, or a 400."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(
            f"invalid request: Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters"
        )
    return key


#: Built once, its values bound at each execution (see store/events.py).
_REMEMBER = update(idempotency_keys).where(
    idempotency_keys.c.scope == bindparam("key_scope"),
    idempotency_keys.c.key == bindparam("key_name"),
)


def purge_expired(conn: Connection, now: datetime, *, always: bool = False) -> None:
    """Delete the expired keys, unless this process did less than ``PURGE_EVERY`` ago."""
    global _purged_at
    last = _purged_at
    if not always and last is not None and last <= now < last + PURGE_EVERY:
        return
    conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < now - KEY_LIFETIME))
    _purged_at = now


def claim(
    conn: Connection, *, scope: str, key: str, fingerprint: str, now: datetime
) -> StoredAnswer | None:
    """Reserve the key for this request, or the answer a previous request already got."""
    purge_expired(conn, now)
    placeholder = {"request_hash": fingerprint, "status_code": 0, "response_body": ""}
    values = {"scope": scope, "key": key, "created_at": now, **placeholder}
    inserted = insert_ignoring_conflicts(conn, idempotency_keys, idempotency_keys.c.key)
    if conn.execute(inserted, values).first() is not None:
        return None
    where = (idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
    row = conn.execute(select(idempotency_keys).where(*where)).one()
    if row.created_at < now - KEY_LIFETIME:  # expired, not deleted yet: a new key
        conn.execute(update(idempotency_keys).where(*where).values(created_at=now, **placeholder))
        return None
    if row.request_hash != fingerprint:
        raise InvalidInput("Idempotency-Key reused with a different request")
    return StoredAnswer(status_code=row.status_code, body=row.response_body)


def remember(conn: Connection, *, scope: str, key: str, status_code: int, body: str) -> None:
    """Store the answer of the request that claimed the key."""
    remember_all(conn, scope=scope, answers=[(key, status_code, body)])


def remember_all(conn: Connection, *, scope: str, answers: Sequence[tuple[str, int, str]]) -> None:
    """Store (key, status, body) for keys claimed in this scope, in one statement (a
    batch's items: one ``executemany``)."""
    rows = [
        {"key_scope": scope, "key_name": key, "status_code": status, "response_body": body}
        for key, status, body in answers
    ]
    if rows:
        conn.execute(_REMEMBER, rows[0] if len(rows) == 1 else rows)
