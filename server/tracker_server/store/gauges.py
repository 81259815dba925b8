"""What is true of the database now, counted for the metrics' gauges and the pages.

Each scrape of ``/metrics`` reads these (:func:`tracker_server.metrics.database_gauges`), so
every replica answers the same; the board reads :func:`queue_lengths` too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, select

from tracker_server.store import freezes as freeze_store
from tracker_server.store import locks as lock_store
from tracker_server.tables import lock_queue

#: A lock key: (service, environment, resource).
LockKey = tuple[str, str, str]


def queue_lengths(conn: Connection) -> dict[LockKey, int]:
    """Deployments waiting per lock key (granted entries no longer wait)."""
    query = (
        select(lock_queue.c.service, lock_queue.c.environment, lock_queue.c.resource, func.count())
        .where(lock_queue.c.granted_at.is_(None))
        .group_by(lock_queue.c.service, lock_queue.c.environment, lock_queue.c.resource)
    )
    return {(row[0], row[1], row[2]): int(row[3]) for row in conn.execute(query)}


def locks_held(conn: Connection, now: datetime) -> int:
    """How many locks are held (live) at ``now``."""
    return len(lock_store.list_locks(conn, now=now))


def freezes_active(conn: Connection, now: datetime) -> int:
    """How many freeze windows are in force at ``now``, whatever their scope."""
    return len(freeze_store.active_freezes(conn, now))
