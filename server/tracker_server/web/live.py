"""Live updates: server-sent events read from the journal table by id.

Every replica writes its changes to the one ``journal`` table, so a stream served by any
replica sees the changes of all of them. Ids are handed out at insert, not at commit (on
PostgreSQL a smaller id can become visible after a larger one): each poll looks back
``LOOKBACK`` ids behind the newest it announced and skips those it already sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from tracker_server.db import Database
from tracker_server.tables import journal

POLL_SECONDS = 0.5
LOOKBACK = 100
#: A stream ends after this long; the browser's EventSource reconnects on its own (so a
#: server shutting down never waits on an open page for long).
STREAM_SECONDS = 25.0
RETRY_MILLISECONDS = 1000


def newest_journal_id(database: Database) -> int:
    """The largest journal id now (0: empty)."""
    with database.read() as conn:
        return int(conn.execute(select(func.coalesce(func.max(journal.c.id), 0))).scalar_one())


def _entries_after(database: Database, after: int) -> list[tuple[int, str]]:
    with database.read() as conn:
        rows = conn.execute(
            select(journal.c.id, journal.c.kind)
            .where(journal.c.id > max(after - LOOKBACK, 0))
            .order_by(journal.c.id)
            .limit(LOOKBACK + 200)
        ).all()
    return [(int(row.id), str(row.kind)) for row in rows]


def _message(entry_id: int, kind: str) -> str:
    data = json.dumps({"id": entry_id, "kind": kind})
    return f"id: {entry_id}\nevent: change\ndata: {data}\n\n"


async def changes(
    database: Database, *, after: int, disconnected: Any, seconds: float = STREAM_SECONDS
) -> AsyncIterator[str]:
    """Server-sent ``change`` events for journal entries past ``after``, until the client
    leaves or ``seconds`` pass."""
    yield f"retry: {RETRY_MILLISECONDS}\n\n"
    sent: set[int] = set()
    newest = after
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await disconnected():
            return
        for entry_id, kind in await run_in_threadpool(_entries_after, database, newest):
            if entry_id > after and entry_id not in sent:
                sent.add(entry_id)
                newest = max(newest, entry_id)
                yield _message(entry_id, kind)
        # Ids far behind the look-back window can no longer arrive: forget them.
        sent = {i for i in sent if i > newest - LOOKBACK}
        await asyncio.sleep(POLL_SECONDS)
