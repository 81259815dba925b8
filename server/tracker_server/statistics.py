"""The planner's statistics, kept current: without them SQLite picks the wrong index.

SQLite never gathers statistics by itself: a database that was never ANALYZEd makes the
planner guess, and at a million events it guesses (type, status) for the CLI's own
"open deployment of this service" lookup (186 ms instead of 0.1 ms). So:

* at start, ``refresh(engine)`` analyzes each table that has no statistics yet, or whose
  size moved more than ``REANALYZE_FACTOR`` times from what its statistics say (its rowid
  high-water mark tells, in one index step); ANALYZE is approximate, bounded by
  ``analysis_limit`` rows per index, so it takes milliseconds even at a million rows
  (SQLite 3.40's ``PRAGMA optimize`` only looks at tables the connection has queried, so
  it cannot do this at start);
* after a bulk write (a batch, an import) ``refresh(engine, bulk=True)`` does the same.

PostgreSQL's autovacuum keeps its statistics by itself; after a bulk write ``refresh``
ANALYZEs the events table at once rather than waiting for autovacuum's next round.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

#: Rows ANALYZE samples per index on SQLite: enough for the planner to tell a selective
#: index from an unselective one, cheap enough to run at every start.
SQLITE_ANALYSIS_LIMIT = 2000
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
