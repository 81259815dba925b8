"""The planner's statistics, kept current: without them SQLite picks the wrong index.

SQLite never gathers statistics by itself: a database that was never ANALYZEd makes the
planner guess, and at a million events it guesses (type, status) for the CLI's own
"open deployment of this service" lookup (186 ms instead of 0.1 ms). So:

* at start, ``refresh(engine)`` analyzes each table that has no statistics yet, or whose
  size moved more than ``REANALYZE_FACTOR`` times from what its statistics say (its rowid
  high-water mark tells, in one index step); ANALYZE is approximate, bounded by
  ``analysis_limit`` rows per index (about 0.3 s at a million events, and only when the
  size moved) (SQLite 3.40's ``PRAGMA optimize`` only looks at tables the connection has
  queried, so it cannot do this at start);
* after a bulk write (a batch, an import) and every few thousand changes, upkeep.py runs
  ``refresh(engine, bulk=True)`` in the background.

PostgreSQL's autovacuum keeps its statistics by itself; after a bulk write ``refresh``
ANALYZEs the events table at once rather than waiting for autovacuum's next round.

The same statistics give ``estimate_matches``: how many events a search's conditions
match, without counting them (the ``totalCount`` of a search past its counting cap).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, ClauseElement
from sqlalchemy.sql.expression import Executable

from tracker_server.tables import events

#: Rows ANALYZE reads per index on SQLite (from the index's start): enough for the planner
#: to tell a selective index (service: 5,000 rows a value at a million events) from an
#: unselective one (priority: 200,000); 2,000 made every leading column look alike and
#: the planner read a million rows for priority + service. 0.3 s at a million events.
SQLITE_ANALYSIS_LIMIT = 100_000
#: The tables whose statistics the served queries depend on.
ANALYZED_TABLES = ("events", "changelog", "locks", "journal")
#: Re-analyze a table once its size is this many times what its statistics say (or less).
REANALYZE_FACTOR = 2.0


def refresh(engine: Engine, *, bulk: bool = False) -> None:
    """Bring the planner's statistics up to date (see the module's docstring)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            _refresh_sqlite(connection)
        elif bulk:
            connection.execute(text("ANALYZE events"))
        connection.commit()


def _refresh_sqlite(connection: Connection) -> None:
    connection.exec_driver_sql(f"PRAGMA analysis_limit={SQLITE_ANALYSIS_LIMIT}")
    known = _analyzed_sizes(connection)
    for table in ANALYZED_TABLES:
        if not _has_table(connection, table):
            continue
        size = connection.exec_driver_sql(f"SELECT coalesce(max(rowid), 0) FROM {table}")
        rows = int(size.scalar_one())
        analyzed = known.get(table)
        if analyzed is None or not (
            analyzed / REANALYZE_FACTOR <= max(rows, 1) <= analyzed * REANALYZE_FACTOR
        ):
            connection.exec_driver_sql(f"ANALYZE {table}")


def _analyzed_sizes(connection: Connection) -> dict[str, int]:
    """The row count each analyzed table had at its last ANALYZE (sqlite_stat1's first
    number: the rows of the table, or of its index)."""
    if not _has_table(connection, "sqlite_stat1"):
        return {}
    sizes: dict[str, int] = {}
    for table, stat in connection.exec_driver_sql("SELECT tbl, stat FROM sqlite_stat1"):
        first = str(stat or "0").split(" ", 1)[0]
        sizes[table] = max(sizes.get(table, 0), int(first) if first.isdigit() else 0, 1)
    return sizes


def _has_table(connection: Connection, name: str) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return connection.exec_driver_sql(query, (name,)).first() is not None


# ------------------------------------------------------------------ estimates
#: SQLSTATE of a statement cancelled by statement_timeout (PostgreSQL).
_QUERY_CANCELED = "57014"


def count_within(conn: Connection, statement: Any, *, budget_ms: float) -> int | None:
    """The number ``statement`` answers, or None when it would take longer than
    ``budget_ms`` (it is then stopped; ``budget_ms <= 0`` runs nothing). PostgreSQL: a
    statement_timeout for this statement only (a savepoint, rolled back after); SQLite: a
    progress handler that interrupts the statement once its time is up."""
    if budget_ms <= 0:
        return None
    if conn.dialect.name == "postgresql":
        savepoint = conn.begin_nested()
        try:
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, round(budget_ms))}")
            return int(conn.execute(statement).scalar_one())
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != _QUERY_CANCELED:
                raise
            return None
        finally:
            savepoint.rollback()  # also ends the SET LOCAL
    sqlite = conn.connection.driver_connection
    assert sqlite is not None
    deadline = time.perf_counter() + budget_ms / 1000
    # Called every 1,000 virtual machine steps; a true answer interrupts the statement.
    sqlite.set_progress_handler(lambda: time.perf_counter() > deadline, 1000)
    try:
        return int(conn.execute(statement).scalar_one())
    except OperationalError as exc:
        if "interrupted" not in str(exc.orig):
            raise
        return None
    finally:
        sqlite.set_progress_handler(None, 0)


class Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON) <statement>`` on PostgreSQL, its parameters bound as usual."""

    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")
def _explain_postgresql(element: Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + str(compiler.process(element.statement, **kw))


def estimate_matches(conn: Connection, where: Sequence[Any]) -> int:
    """About how many events match ``where``, from the planner's statistics (not a count).

    PostgreSQL: the planner's own row estimate (``EXPLAIN``). SQLite: the table's size times
    the share the conditions keep, taken as independent (as PostgreSQL's planner does):
    equalities keep sqlite_stat1's average rows per key of the index whose leading columns
    cover the most of them (times the values of an IN); a range on a timestamp keeps the
    share of the column's [min, max] span it covers. Without statistics, a condition
    counts as keeping everything.
    """
    if conn.dialect.name == "postgresql":
        plan = conn.execute(Explain(select(1).select_from(events).where(*where))).scalar_one()
        if isinstance(plan, str):
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])
    return _estimate_sqlite(conn, where)


def _estimate_sqlite(conn: Connection, where: Sequence[Any]) -> int:
    rows = int(conn.exec_driver_sql("SELECT coalesce(max(rowid), 0) FROM events").scalar_one())
    equal: dict[str, int] = {}  # column -> how many values it may take
    ranges: dict[str, list[datetime | None]] = {}
    for clause in where:
        parts = _condition(clause)
        if parts is None:
            continue
        column, operator, value = parts
        if operator in (operators.eq, operators.in_op):
            equal[column] = len(value) if operator is operators.in_op else 1
        elif operator in (operators.ge, operators.gt, operators.le, operators.lt):
            bounds = ranges.setdefault(column, [None, None])
            bounds[0 if operator in (operators.ge, operators.gt) else 1] = value
    share = _equality_share(_index_stats(conn), equal)
    for column, (low, high) in ranges.items():
        share *= _span_share(conn, column, low, high)
    return round(rows * share)


def _equality_share(stats: dict[tuple[str, ...], list[int]], equal: dict[str, int]) -> float:
    """The share of rows the equalities keep: the index whose leading columns cover the
    most of them answers for those (its average rows per leading key), each other one
    through the index it leads, as independent."""
    share, left = 1.0, dict(equal)
    while left:
        best: tuple[int, list[int], tuple[str, ...]] = (0, [], ())
        for columns, numbers in stats.items():
            covered = 0
            while covered < len(columns) and columns[covered] in left:
                covered += 1
            if covered > best[0] and len(numbers) > covered:
                best = (covered, numbers, columns)
        covered, numbers, columns = best
        if covered == 0:
            break  # no statistics for the rest: taken as keeping everything
        share *= min(1.0, numbers[covered] / max(numbers[0], 1))
        for column in columns[:covered]:
            share = min(1.0, share * left.pop(column))
    return share


def _index_stats(conn: Connection) -> dict[tuple[str, ...], list[int]]:
    """Each events index's columns -> its sqlite_stat1 numbers: the rows it holds, then the
    average rows per value of its first column, of its first two, and so on."""
    if not _has_table(conn, "sqlite_stat1"):
        return {}
    columns = {index.name: tuple(c.name for c in index.columns) for index in events.indexes}
    stats: dict[tuple[str, ...], list[int]] = {}
    query = "SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'events'"
    for name, stat in conn.exec_driver_sql(query):
        numbers = [int(n) for n in str(stat or "").split() if n.isdigit()]
        if name in columns and len(numbers) > 1:
            stats[columns[name]] = numbers
    return stats


def _condition(clause: Any) -> tuple[str, Any, Any] | None:
    """(column name, operator, value) of ``events.column <op> value``, else None."""
    if not isinstance(clause, BinaryExpression):
        return None
    column = getattr(clause.left, "name", None)
    if getattr(clause.left, "table", None) is not events or column is None:
        return None
    right = clause.right
    value = right.value if isinstance(right, BindParameter) else getattr(right, "value", None)
    return column, clause.operator, value


def _span_share(conn: Connection, column: str, low: Any, high: Any) -> float:
    """The share of the column's [min, max] span that [low, high] covers."""
    # Two queries: SQLite reads a lone min() or max() from the index's end, not both.
    first = conn.execute(select(func.min(events.c[column]))).scalar()
    last = conn.execute(select(func.max(events.c[column]))).scalar()
    if first is None or last is None or last <= first:
        return 1.0
    start = max(first, low) if isinstance(low, datetime) else first
    end = min(last, high) if isinstance(high, datetime) else last
    return max(0.0, min(1.0, (end - start) / (last - first)))
