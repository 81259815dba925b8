"""The storage floor of a batch: how many events a second the database itself takes when
it is handed the rows ``POST /events/batch`` writes, prebuilt, 1,000 a transaction.

The rows are built beforehand by the server's own code (``PlainEvents``, ``plain_rows``,
the journal's ``EventCreated`` entry) from the bench's event bodies; then each batch is
written in one write transaction of the server's own kind (``Database.write``: its
pragmas, SQLite's writer turn) through the server's own inserts (``insert_held``, the
journal's one statement). Only the time inside the database driver counts: its
``execute`` / ``executemany`` calls and the commit. What is left of a batch's time on
the server is Python (reading, checking and answering the items), so no batch can go
faster than this, and a capacity target above it cannot be met on this storage.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event

from harness.report import Figure, spread

ROWS_NOTE = "events + changelog + journal rows, prebuilt"


def measure_storage_floor(
    database_url: str,
    backend: str,
    *,
    batches: int,
    size: int,
    single_rate: float,
    batch_rate: float,
    make_body: Any,
) -> Figure:
    """The floor in events/s (``batches`` transactions of ``size`` events, in all),
    as a multiple of the single creates' rate (the highest batch capacity ratio this
    storage allows); the batch's capacity is reported as a share of it."""
    from tracker_server.db import Database, create_database_engine
    from tracker_server.journal import EventCreated, insert_entries
    from tracker_server.store.batch import PlainEvents, insert_held, plain_rows

    from tracker_ci.models import CreateEventRequest

    database = Database(create_database_engine(database_url))
    inside = [0.0]
    began = [0.0]

    def before(*_: Any) -> None:
        began[0] = time.perf_counter()

    def after(*_: Any) -> None:
        inside[0] += time.perf_counter() - began[0]

    rates: list[float] = []
    seconds = 0.0
    try:
        event.listen(database.engine, "before_cursor_execute", before)
        event.listen(database.engine, "after_cursor_execute", after)
        for index in range(batches):
            now = datetime.now(UTC)
            plain = PlainEvents(now)
            helds, journal_rows = [], []
            for n in range(size):
                request = CreateEventRequest.model_validate(make_body(9_000 + index, n))
                made = plain.event(request)
                helds.append(plain_rows(made))
                entry = EventCreated(event=made)
                journal_rows.append(
                    {"occurred_at": now, "kind": entry.KIND, "payload": entry.payload_json()}
                )
            inside[0] = 0.0
            with database.write() as conn:
                insert_held(conn, helds)
                insert_entries(conn, journal_rows)
                committing = time.perf_counter()
            spent = inside[0] + time.perf_counter() - committing
            seconds += spent
            rates.append(size / spent)
    finally:
        event.remove(database.engine, "before_cursor_execute", before)
        event.remove(database.engine, "after_cursor_execute", after)
        database.dispose()
    # Sustained: SQLite's checkpoint lands in every other commit or so (its WAL bound),
    # so the floor is all the events over all the time, not a median of transactions.
    floor = size * len(rates) / seconds
    return Figure(
        "batch",
        f"POST /events/batch x{size}: storage floor ({ROWS_NOTE})",
        backend,
        "events/s",
        floor,
        f"{floor:,.0f} events/s = {floor / single_rate:.1f}x single; "
        f"batch at {batch_rate / floor:.0%} of it",
        baseline=single_rate,
        baseline_text=f"single {single_rate:,.0f}/s",
        ratio=floor / single_rate,
        repeats=len(rates),
        detail={"rates": rates, "batch_rate": batch_rate, "batch_share": batch_rate / floor},
        **spread(rates),
    )
