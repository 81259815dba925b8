"""Deep page-number paging in a seek: every ``STEP``-th key of the newest-first list,
kept per process, so page 10,000 of the unfiltered list reads at most ``STEP`` index
entries instead of half a million (31 ms on SQLite, 50 on PostgreSQL at a million events).

The anchors are counted below a *stamp*: the newest event dated ``MARGIN`` or more before
the build. Events created since are dated by the server's clock at their creation, so they
land above the stamp and are counted fresh on each request (a short index range). Only a
write the database's triggers see (revision 0014: a delete, a changed key, an insert dated
more than 10 minutes back) can move an event below it; each bumps the ``event_order``
epoch, and anchors of an older epoch are dropped and built again (one ``row_number()``
scan, a few hundred milliseconds at a million events). A margin twice the triggers' covers
ten minutes of clock difference between replicas and in-flight transactions.

A page read while such a write commits can be off by that write, as with OFFSET.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, func, literal, select, tuple_
from sqlalchemy.exc import DBAPIError

from tracker_server.tables import event_order, events

#: One anchor every STEP events: a deep page reads at most this many index entries.
STEP = 1_000
#: Pages shallower than this are read with OFFSET: as fast, and nothing to build.
DEEP = 20_000
#: The stamp is at least this much older than the build (see the module's docstring).
MARGIN = timedelta(minutes=20)
#: Build again when this many events are newer than the stamp (each request counts them).
FRESH_MAX = 20_000
#: The build's own statement timeout (PostgreSQL): it reads every older event once.
BUILD_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class _Anchors:
    """``keys[i]``: the (created_at, id) of the event ``i * STEP`` places below the stamp,
    newest first (``keys[0]`` is the stamp itself), as they stood at ``epoch``."""

    epoch: int
    keys: list[tuple[datetime, str]]


_anchors: WeakKeyDictionary[Engine, _Anchors] = WeakKeyDictionary()
#: Epochs a build failed at (a statement timeout at many millions): not tried again.
_failed: WeakKeyDictionary[Engine, int] = WeakKeyDictionary()
_building = threading.Lock()


def key_before(created_at: Any, event_id: Any) -> Any:
    """The clause "at or below (created_at, id)" in the newest-first order."""
    key = (events.c.created_at, events.c.id)
    bound = (literal(created_at, events.c.created_at.type), literal(event_id, events.c.id.type))
    return tuple_(*key) <= tuple_(*bound)


def seek(conn: Connection, offset: int) -> tuple[tuple[datetime, str], int] | None:
    """Where the unfiltered newest-first list's row number ``offset`` (0-based) starts: a
    key to read from (inclusive) and how many rows below it to skip; None to use OFFSET."""
    if offset < DEEP:
        return None
    epoch = conn.execute(select(event_order.c.epoch).where(event_order.c.id == 1)).scalar()
    if epoch is None:
        return None
    engine = conn.engine
    anchors = _anchors.get(engine)
    if anchors is None or anchors.epoch != epoch:
        anchors = _build(conn, engine, epoch)
        if anchors is None:
            return None
    stamp = anchors.keys[0]
    newer = conn.execute(
        select(func.count()).select_from(events).where(~key_before(*stamp))
    ).scalar_one()
    if newer > FRESH_MAX:  # the stamp has aged: count below a newer one
        _anchors.pop(engine, None)
        return None
    below = offset - newer
    if below < 0:
        return None
    index = min(below // STEP, len(anchors.keys) - 1)
    return anchors.keys[index], below - index * STEP


def _build(conn: Connection, engine: Engine, epoch: int) -> _Anchors | None:
    """Count the anchors at ``epoch`` (one request builds; the others use OFFSET)."""
    if _failed.get(engine) == epoch or not _building.acquire(blocking=False):
        return None
    try:
        threshold = datetime.now(UTC) - MARGIN
        stamp = conn.execute(
            select(events.c.created_at, events.c.id)
            .where(events.c.created_at < threshold)
            .order_by(events.c.created_at.desc(), events.c.id.desc())
            .limit(1)
        ).first()
        if stamp is None:
            return None
        order = (events.c.created_at.desc(), events.c.id.desc())
        numbered = (
            select(
                events.c.created_at,
                events.c.id,
                func.row_number().over(order_by=order).label("place"),
            )
            .where(key_before(stamp.created_at, stamp.id))
            .subquery("numbered")
        )
        query = (
            select(numbered.c.created_at, numbered.c.id)
            .where((numbered.c.place - 1) % STEP == 0)
            .order_by(numbered.c.place)
        )
        # In a savepoint rolled back after: a failed build leaves the request's reads
        # alone, and the longer statement timeout ends with it (PostgreSQL).
        savepoint = conn.begin_nested()
        try:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {BUILD_TIMEOUT_MS}")
            keys = [(row.created_at, row.id) for row in conn.execute(query)]
        except DBAPIError:
            _failed[engine] = epoch
            return None
        finally:
            savepoint.rollback()
        built = _Anchors(epoch=epoch, keys=keys)
        _anchors[engine] = built
        return built
    finally:
        _building.release()
