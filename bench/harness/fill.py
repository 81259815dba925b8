"""The benchmark's data set: N events (each with its "created" changelog entry), bulk-loaded.

The schema comes from the server's own migrations (``tracker_server.db.upgrade_schema``);
then the secondary indexes of ``events`` and ``changelog`` (and, on PostgreSQL, their
keys) are read back from the database the migrations made, dropped, the rows loaded in
bulk, and the indexes built again: a B-tree built once from sorted keys costs a fraction
of a million random inserts into thirteen of them. SQLite loads through the ``sqlite3``
module (``executemany`` in one transaction, synchronous off, in-memory journal);
PostgreSQL through ``COPY`` (psycopg 3). Then ``statistics.refresh(engine, bulk=True)``,
as the server does after a bulk write; on PostgreSQL also ``VACUUM ANALYZE`` (what
autovacuum would have done to a table that grew this large, so the visibility map lets
counts use index-only scans, as on a database in service).

A filled database is kept under the work dir (SQLite) or as a PostgreSQL database
(``tracker_bench_c<N>_<key>``), keyed by the event count, the fill's format and the
schema (the alembic heads and the index definitions of ``tracker_server.tables``), so
a change of indexes or migrations refills it; so does a new UTC day (the newest events
are dated at the fill, and ``GET /events/today`` should find today's). Each run
measures on a fresh copy of it (a file copy; ``CREATE DATABASE ... TEMPLATE``), so what
a run writes never leaks into the next one.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, Table
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex
from tracker_server import statistics
from tracker_server.db import (
    MIGRATIONS_DIR,
    create_database_engine,
    normalize_database_url,
    upgrade_schema,
)
from tracker_server.tables import changelog, events, metadata

from tracker_ci.models import Environment, EventType, Priority

#: Bump when the generated rows change: every cached database is then rebuilt.
FILL_FORMAT = 2
SEED = 42
SPAN_DAYS = 730
CHUNK = 50_000
SERVICES = [f"service-{i:03d}" for i in range(200)]
ENVIRONMENTS = Environment.choices()
TYPES = EventType.choices()
STATUSES = ["success", "failure", "start", "open", "close", "done", "in_progress"]
PRIORITIES = Priority.choices()
SOURCES = ("github", "gitlab", "jenkins")
#: Every SLACK_EVERY-th event carries a Slack message id (searchable by slack_id).
SLACK_EVERY = 20
#: Ids kept for the lookups by id (GET /event/{id}, search by slack_id).
SAMPLES = 200
LOADED_TABLES = ("events", "changelog")
POSTGRES_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
#: The database every run measures on (a copy of the cached one), dropped and recreated.
POSTGRES_RUN_DB = "tracker_bench"
CACHE_PREFIX = "tracker_bench_c"

#: The event columns the generator writes, in its tuple order; any other column of the
#: table (a migration added it) gets its declared default.
GENERATED = (
    "id",
    "title",
    "message",
    "source",
    "type",
    "priority",
    "related_id",
    "service",
    "status",
    "environment",
    "impact",
    "start_date",
    "end_date",
    "owner",
    "stake_holders",
    "notification",
    "notifications",
    "pull_request_link",
    "ticket",
    "slack_id",
    "created_at",
    "duration_seconds",
    "revision",
    "changes",
)
CHANGELOG_GENERATED = (
    "event_id",
    "timestamp",
    "user",
    "change_type",
    "field",
    "old_value",
    "new_value",
    "comment",
)


@dataclass
class DataSet:
    """What was loaded: enough for the measurements to pick real ids and windows."""

    events: int
    anchor: str  # ISO time of the newest event (the fill's "now")
    sample_ids: list[str] = field(default_factory=list)
    slack_ids: list[str] = field(default_factory=list)
    fill_seconds: float = 0.0
    fill_date: str = ""

    @property
    def anchor_time(self) -> datetime:
        return datetime.fromisoformat(self.anchor)


@dataclass
class Prepared:
    """A database ready for a run: a fresh copy of the cached fill."""

    backend: str
    database_url: str
    data: DataSet
    cache_key: str
    reused: bool  # the cached fill was reused (no fill in this run)
    copy_seconds: float


# ---- the cache key -----------------------------------------------------------------------


def schema_key(backend: str) -> str:
    """A digest of the alembic heads and of every index the tables declare (this dialect's
    DDL), plus the fill's format: any change of them means another cached database."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    heads = sorted(ScriptDirectory.from_config(config).get_heads())
    dialect = sqlite_dialect.dialect() if backend == "sqlite" else pg_dialect.dialect()
    ddl = sorted(
        str(CreateIndex(index).compile(dialect=dialect)).strip()
        for table in metadata.tables.values()
        for index in table.indexes
    )
    text = json.dumps({"format": FILL_FORMAT, "heads": heads, "indexes": ddl})
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def list_cursor(data: DataSet, depth: int) -> str:
    """The list's ``nextCursor`` after its ``depth`` newest events in this data set (its
    events are spread evenly over SPAN_DAYS, so the key at a depth is known to within one
    event; a cursor needs a key, not an existing event)."""
    from types import SimpleNamespace

    from tracker_server.store.events import Order, encode_cursor

    step = SPAN_DAYS * 86_400 / data.events
    oldest = data.anchor_time - timedelta(days=SPAN_DAYS)
    key = SimpleNamespace(
        created_at=oldest + timedelta(seconds=(data.events - depth) * step),
        id="ffffffff-ffff-4fff-afff-ffffffffffff",
    )
    return encode_cursor(Order.CREATED, key, depth)


# ---- the rows ----------------------------------------------------------------------------


def _column_default(column: Column[Any]) -> Any:
    default = column.default
    value: Any = None
    if default is not None and getattr(default, "is_scalar", False):
        value = default.arg  # type: ignore[attr-defined]
    elif default is not None and getattr(default, "is_callable", False):
        value = default.arg(None)  # type: ignore[attr-defined]
    elif not column.nullable:
        raise SystemExit(f"bench fill: no value for the new column {column.table.name}.{column}")
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value


def _columns(table: Table, generated: Sequence[str]) -> tuple[list[str], tuple[Any, ...]]:
    """The column names to load (generated first) and the defaults of the others."""
    missing = [name for name in generated if name not in table.c]
    if missing:
        raise SystemExit(f"bench fill: table {table.name} has no column {missing}: update fill.py")
    # An integer primary key numbers itself (SQLite's rowid, PostgreSQL's sequence).
    extra = [
        c
        for c in table.c
        if c.name not in generated and not (c.primary_key and isinstance(c.type, Integer))
    ]
    return [*generated, *(c.name for c in extra)], tuple(_column_default(c) for c in extra)


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="microseconds")


class Rows:
    """Events ``start`` to ``total`` - 1, oldest first, evenly over SPAN_DAYS before
    ``anchor``; each chunk is seeded by its position, so a fill is reproducible."""

    def __init__(self, total: int, anchor: datetime, start: int = 0) -> None:
        self.total, self.start = total, start
        self.anchor = anchor.astimezone(UTC).replace(tzinfo=None)
        self.event_columns, self.event_extra = _columns(events, GENERATED)
        self.changelog_columns, self.changelog_extra = _columns(changelog, CHANGELOG_GENERATED)
        self.sample_every = max(1, total // SAMPLES)
        self.sample_ids: list[str] = []
        self.slack_ids: list[str] = []

    def chunks(self) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
        for first in range(self.start, self.total, CHUNK):
            yield self._chunk(first, min(first + CHUNK, self.total))

    def _chunk(self, first: int, last: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        rng = random.Random(SEED * 1_000_003 + first)
        step = SPAN_DAYS * 86_400 / max(self.total, 1)
        oldest = self.anchor - timedelta(days=SPAN_DAYS)
        rows, entries = [], []
        for i in range(first, last):
            bits = f"{rng.getrandbits(128):032x}"
            event_id = f"{bits[:8]}-{bits[8:12]}-4{bits[13:16]}-a{bits[17:20]}-{bits[20:]}"
            stamp = _timestamp(oldest + timedelta(seconds=(i + rng.random()) * step))
            slack_id = f"{1_600_000_000 + i}.{i % 1_000_000:06d}" if i % SLACK_EVERY == 0 else ""
            if i % self.sample_every == 0:
                self.sample_ids.append(event_id)
                if slack_id:
                    self.slack_ids.append(slack_id)
            rows.append(
                (
                    event_id,
                    "deploy",
                    "benchmark event",
                    rng.choice(SOURCES),
                    rng.choice(TYPES),
                    rng.choice(PRIORITIES),
                    "",
                    rng.choice(SERVICES),
                    rng.choice(STATUSES),
                    rng.choice(ENVIRONMENTS),
                    rng.random() < 0.1,
                    stamp,
                    None,
                    "bench",
                    "[]",
                    False,
                    "[]",
                    "",
                    "",
                    slack_id,
                    stamp,
                    None,
                    "",
                    "[]",
                    *self.event_extra,
                )
            )
            entries.append(
                (event_id, stamp, "bench", "created", "", "", "", "Event created")
                + self.changelog_extra
            )
        return rows, entries


# ---- SQLite ------------------------------------------------------------------------------


def load_sqlite(path: Path, rows: Rows) -> None:
    """Migrate ``path`` to the current schema, then bulk-load ``rows`` into it."""
    engine = create_database_engine(f"sqlite:///{path}")
    upgrade_schema(engine)
    engine.dispose()
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=MEMORY")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-1000000")
        con.execute("PRAGMA temp_store=MEMORY")
        placeholders = ", ".join("?" for _ in LOADED_TABLES)
        indexes = con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({placeholders}) ORDER BY name",
            LOADED_TABLES,
        ).fetchall()
        for name, _ in indexes:
            con.execute(f'DROP INDEX "{name}"')
        insert_events = _insert_sql("events", rows.event_columns)
        insert_changelog = _insert_sql("changelog", rows.changelog_columns)
        con.execute("BEGIN")
        for event_rows, entries in rows.chunks():
            con.executemany(insert_events, event_rows)
            con.executemany(insert_changelog, entries)
        con.execute("COMMIT")
        for _, sql in indexes:
            con.execute(sql)
        con.execute("PRAGMA journal_mode=DELETE")
    finally:
        con.close()
    engine = create_database_engine(f"sqlite:///{path}")
    statistics.refresh(engine, bulk=True)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=DELETE")  # one file, to copy
    con.close()


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in columns)})"


# ---- PostgreSQL --------------------------------------------------------------------------

_CONSTRAINTS = """
SELECT c.conname, c.conrelid::regclass::text, pg_get_constraintdef(c.oid), c.contype
FROM pg_constraint c
WHERE c.contype IN ('p', 'u', 'f')
  AND (c.conrelid = ANY(%(tables)s::regclass[]) OR c.confrelid = ANY(%(tables)s::regclass[]))
ORDER BY c.contype = 'f' DESC, c.conname
"""
_INDEXES = """
SELECT i.relname, pg_get_indexdef(i.oid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = ANY(%(tables)s::regclass[])
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid
                  AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x'))
ORDER BY i.relname
"""


def _pg_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    return str(value)


def load_postgres(database_url: str, rows: Rows) -> None:
    """Migrate the database to the current schema, then COPY ``rows`` into it."""
    import psycopg

    engine = create_database_engine(database_url)
    upgrade_schema(engine)
    engine.dispose()
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    tables = list(LOADED_TABLES)
    with psycopg.connect(conninfo) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        keys = conn.execute(_CONSTRAINTS, {"tables": tables}).fetchall()
        indexes = conn.execute(_INDEXES, {"tables": tables}).fetchall()
        for name, table, _, _ in keys:  # foreign keys first (they depend on the others)
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        pending: list[str] = []
        with conn.cursor().copy(_copy_sql("events", rows.event_columns)) as copy:
            for event_rows, entries in rows.chunks():
                copy.write("".join("\t".join(map(_pg_text, r)) + "\n" for r in event_rows))
                pending.append("".join("\t".join(map(_pg_text, e)) + "\n" for e in entries))
        with conn.cursor().copy(_copy_sql("changelog", rows.changelog_columns)) as copy:
            for block in pending:
                copy.write(block)
        pending.clear()
        for _, definition in indexes:
            conn.execute(definition)
        for name, table, definition, _ in reversed(keys):  # keys, then foreign keys
            conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        conn.commit()
    engine = create_database_engine(database_url)
    statistics.refresh(engine, bulk=True)
    engine.dispose()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table in LOADED_TABLES:
            conn.execute(f"VACUUM (ANALYZE) {table}")


def _copy_sql(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f"COPY {table} ({names}) FROM STDIN"


def _admin() -> Any:
    import psycopg

    return psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5)


def _pg_databases(prefix: str) -> list[str]:
    with _admin() as conn:
        found = conn.execute(
            "SELECT datname FROM pg_database WHERE left(datname, %s) = %s",
            (len(prefix), prefix),
        ).fetchall()
    return [name for (name,) in found]


def _drop_pg(name: str) -> None:
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def forget_postgres(names: PostgresNames) -> None:
    """Drop the run database and every cached fill named with ``names``."""
    for name in [names.run, *_pg_databases(names.cache_prefix)]:
        _drop_pg(name)


def _create_pg(name: str, template: str | None = None) -> None:
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if template:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        else:
            conn.execute(f'CREATE DATABASE "{name}"')


# ---- the cache ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresNames:
    """The PostgreSQL databases of the bench: ``<cache_prefix><N>_<key>`` (cached fills)
    and ``run`` (the copy a run measures on)."""

    cache_prefix: str = CACHE_PREFIX
    run: str = POSTGRES_RUN_DB


def prepare(
    backend: str,
    total: int,
    workdir: Path,
    log: Any = print,
    names: PostgresNames = PostgresNames(),  # noqa: B008 - frozen, never mutated
) -> Prepared:
    """A fresh copy of the cached fill of ``total`` events (filled first when missing)."""
    key = schema_key(backend)
    cache_dir = workdir / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    _forget_stale(backend, key, cache_dir, names.cache_prefix)
    meta_path = cache_dir / f"{backend}-{total}-{key}.json"
    cache_name = f"{names.cache_prefix}{total}_{key}"
    cache_file = cache_dir / f"sqlite-{total}-{key}.db"
    cached = meta_path.exists() and (
        cache_file.exists() if backend == "sqlite" else cache_name in _pg_databases(cache_name)
    )
    data = DataSet(**json.loads(meta_path.read_text())) if cached else None
    # Its newest events were "now" when it was filled: a fill of another UTC day has
    # none today (GET /events/today would answer an empty page), so it is filled again.
    reused = data is not None and data.anchor_time.date() == datetime.now(UTC).date()
    if data is not None and reused:
        log(f"{backend}: reusing the cached fill of {total:,} events (key {key})")
    else:
        if data is not None:
            log(f"{backend}: the cached fill is of {data.anchor_time.date()}, not today")
        data = _fill_cache(backend, total, cache_file, cache_name, log)
        meta_path.write_text(json.dumps(asdict(data), indent=1))
    began = time.monotonic()
    if backend == "sqlite":
        run_dir = workdir / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        run_file = run_dir / "sqlite.db"
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{run_file}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(cache_file, run_file)
        url = f"sqlite:///{run_file}"
    else:
        _create_pg(names.run, template=cache_name)
        url = POSTGRES_URL.format(name=names.run)
    copied = time.monotonic() - began
    return Prepared(backend, url, data, key, reused, copied)


def _fill_cache(backend: str, total: int, cache_file: Path, cache_name: str, log: Any) -> DataSet:
    anchor = datetime.now(UTC).replace(microsecond=0)
    rows = Rows(total, anchor)
    log(f"{backend}: filling {total:,} events (bulk load, indexes built after) ...")
    began = time.monotonic()
    if backend == "sqlite":
        partial = cache_file.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        load_sqlite(partial, rows)
        partial.rename(cache_file)
    else:
        partial_name = cache_name + "_partial"
        _create_pg(partial_name)
        load_postgres(POSTGRES_URL.format(name=partial_name), rows)
        _drop_pg(cache_name)  # a fill whose description was lost
        with _admin() as conn:
            conn.execute(f'ALTER DATABASE "{partial_name}" RENAME TO "{cache_name}"')
    seconds = time.monotonic() - began
    log(f"{backend}: filled {total:,} events in {seconds:.1f} s")
    return DataSet(
        events=total,
        anchor=anchor.isoformat(),
        sample_ids=rows.sample_ids,
        slack_ids=rows.slack_ids,
        fill_seconds=round(seconds, 2),
        fill_date=anchor.isoformat(),
    )


def _forget_stale(backend: str, key: str, cache_dir: Path, prefix: str) -> None:
    """Drop cached fills of another schema (any event count): they are never reused."""
    for path in cache_dir.glob(f"{backend}-*.json"):
        if not path.stem.endswith(key):
            path.unlink()
    if backend == "sqlite":
        for path in cache_dir.glob("sqlite-*"):
            if key not in path.name:
                path.unlink()
        return
    for name in _pg_databases(prefix):
        if not name.endswith(key):
            _drop_pg(name)


def fill_in_place(database_url: str, total: int) -> None:
    """Bring the database at ``database_url`` to ``total`` events by bulk load (for the
    benchmarks that manage their own database, e.g. bench/web_bench.py): the rows after
    the ones present, dated up to now."""
    from sqlalchemy import func, select

    engine = create_database_engine(database_url)
    upgrade_schema(engine)
    with engine.connect() as conn:
        present = int(conn.execute(select(func.count()).select_from(events)).scalar_one())
    backend = engine.dialect.name
    engine.dispose()
    if present >= total:
        return
    rows = Rows(total, datetime.now(UTC), start=present)
    if backend == "sqlite":
        from sqlalchemy.engine import make_url

        load_sqlite(Path(str(make_url(database_url).database)), rows)
    else:
        url = normalize_database_url(database_url).render_as_string(hide_password=False)
        load_postgres(url, rows)
