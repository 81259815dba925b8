"""The database: engine creation, per-request transactions and schema migrations.

SQLite runs in WAL mode with a busy timeout and foreign keys on; its write transactions
start with ``BEGIN IMMEDIATE``, and go through one writer per process (``Database.write``
takes a FIFO lock first): SQLite's own busy wait is not fair, so 50 concurrent writers
would otherwise see "database is locked" after its timeout. Its WAL is checkpointed by a
thread of its own (``WalCheckpoints``), not by the commit that crosses SQLite's threshold.
PostgreSQL (psycopg 3) is for several server replicas sharing one database.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

logger = logging.getLogger("tracker_server.db")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Sized for a small machine (2 cores): the memory of the process is the pool times the
# page cache, plus the map. 40 connections of 32 MB pages each grew a loaded server from
# 75 MB to 2 GB; now at most 16 x 8 MB + 64 MiB. Every write waits its turn anyway (one
# writer), two cores run no more than a few reads at once, and a request beyond the pool
# waits for a connection (SQLITE_POOL_TIMEOUT, then 503 busy) instead of opening one more.
SQLITE_POOL_SIZE = 8
SQLITE_MAX_OVERFLOW = 8
SQLITE_POOL_TIMEOUT = 10
SQLITE_CACHE_KIB = 8_000
SQLITE_MMAP_BYTES = 64 * 1024 * 1024
# The WAL's checkpoints (copying committed pages into the database file, with its fsyncs)
# run in a background thread (WalCheckpoints), not in the commit that crossed SQLite's
# automatic threshold: that one runs under the writer's turn and held every create behind
# it. The committing connection's own checkpoint stays as a bound: at
# SQLITE_AUTOCHECKPOINT_PAGES (4 KiB each) of WAL it copies what the background thread has
# not yet (PASSIVE ones cannot catch up with a writer that never pauses, so only this one
# lets the WAL start over), and a WAL file grown past SQLITE_WAL_LIMIT_BYTES (a backup
# holding its snapshot, a burst) is cut back to it when the WAL starts over.
SQLITE_AUTOCHECKPOINT_PAGES = 10_000
SQLITE_WAL_LIMIT_BYTES = 64 * 1024 * 1024
#: Least seconds between two background checkpoints (taken only after a commit).
CHECKPOINT_INTERVAL = 1.0
PG_STATEMENT_TIMEOUT_MS = 5_000
PG_LOCK_TIMEOUT_MS = 3_000
# A fixed key for pg_advisory_xact_lock, so replicas starting together migrate one at a time.
_MIGRATION_LOCK_KEY = 0x7472_6163_6B65_72  # "tracker"


class JsonText(str):
    """A value already encoded as JSON (pydantic's ``model_dump_json``, several times faster
    than ``model_dump`` + ``json.dumps``): a JSON column stores it as it is."""


def _json_serializer(value: Any) -> str:
    if isinstance(value, JsonText):
        return value
    if isinstance(value, list) and not value:  # most events' lists (stakeholders, changes)
        return "[]"
    return json.dumps(value)


def normalize_database_url(database_url: str) -> URL:
    """Parse a database URL; ``postgres://`` and ``postgresql://`` use psycopg 3."""
    url = make_url(database_url)
    if url.drivername in ("postgres", "postgresql", "postgresql+psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(
            f"unsupported database {url.drivername!r}: use sqlite:///PATH or postgresql://..."
        )
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ValueError("an in-memory SQLite database cannot be shared: use sqlite:///PATH")
    return url


def create_database_engine(database_url: str) -> Engine:
    """An engine for the URL, tuned for the server's threadpool."""
    url = normalize_database_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    # Modest per process: several replicas share PostgreSQL's max_connections (100 by
    # default); requests beyond the pool wait for a connection (pool_timeout) instead.
    engine = create_engine(
        url,
        json_serializer=_json_serializer,
        pool_size=5,
        max_overflow=10,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={
            "connect_timeout": 5,
            # No server-side prepared statements: behind a pooler in transaction mode
            # (PgBouncer) the next transaction may run on a server connection that never
            # saw the statement prepared ("prepared statement ... does not exist").
            "prepare_threshold": None,
        },
    )
    _set_timeouts_per_transaction(engine)
    return engine


def _set_timeouts_per_transaction(engine: Engine) -> None:
    """Every transaction starts with its statement and lock timeouts (``SET LOCAL``).

    Below the shutdown grace (10 s): a stuck statement ends as a 503, never holds a
    SIGTERM'd server past its grace, and a row lock held by a stalled transaction cannot
    queue every writer behind it. Not a libpq startup ``options`` (PgBouncer refuses it:
    "unsupported startup parameter"), nor a session ``SET`` (in transaction pooling the
    next transaction runs on another server connection): per transaction, it holds
    whatever pooler sits in between.
    """

    @event.listens_for(engine, "begin")
    def _timeouts(connection: Connection) -> None:
        connection.exec_driver_sql(_SET_TIMEOUTS)


_SET_TIMEOUTS = (
    f"SELECT set_config('statement_timeout', '{PG_STATEMENT_TIMEOUT_MS}', true), "
    f"set_config('lock_timeout', '{PG_LOCK_TIMEOUT_MS}', true)"
)
#: The longest a starting replica waits for another's migration (then it exits, and says).
MIGRATION_WAIT_MS = 600_000
_MIGRATION_TIMEOUTS = (
    "SELECT set_config('statement_timeout', '0', true), "
    f"set_config('lock_timeout', '{MIGRATION_WAIT_MS}', true)"
)


def _sqlite_engine(url: URL) -> Engine:
    if url.database:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        json_serializer=_json_serializer,
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=SQLITE_MAX_OVERFLOW,
        pool_timeout=SQLITE_POOL_TIMEOUT,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the driver: see _begin below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Reads through a memory map (shared by every connection: the OS's page cache)
        # and a page cache of its own: a search over a million events then costs index
        # look-ups, not system calls.
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit={SQLITE_WAL_LIMIT_BYTES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # A deferred transaction that later writes can fail at once with "database is
        # locked"; an immediate one waits for the write lock (busy_timeout) instead.
        writing = connection.get_execution_options().get("tracker_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    return engine


#: Longest wait for the SQLite writer before answering 503 (busy): below the shutdown grace
#: (10 s), so a SIGTERM'd server never cuts a request that is still waiting to write.
WRITER_TIMEOUT = 5.0


class FairLock:
    """A FIFO lock: threads get it in the order they asked (``threading.Lock`` does not
    promise any order, and a writer could starve)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        """Take the lock within ``timeout`` s; False when it did not come."""
        with self._mutex:
            if not self._held and not self._waiters:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over just as the wait ended
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        """Hand the lock to the longest waiter, or free it."""
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()  # stays held, by the next one
            else:
                self._held = False


class GroupedWrite(Protocol):
    """One write that may share its transaction with others (:class:`GroupCommit`)."""

    def apply(self, conn: Connection) -> None:
        """Make the change on ``conn`` (inside a savepoint of the shared transaction);
        raise to refuse it. May run again, alone, when its group could not commit."""

    def settle(self, error: BaseException | None) -> Callable[[], None] | None:
        """Told once, after the commit (``None``: the change is durable) or the refusal.
        May answer a callable to call once the whole group is settled (called once
        however many writes answer the same one): waking the requests' event loop once
        per group, not once per write.

        A write whose ``shares_freely`` is true locks no row another transaction may
        want (it only inserts new rows): it may join a group beyond ``max_group``.

        A write's class may also define ``finish_group(conn, writes)``: called once per
        transaction, after every write applied, with those of that class that were not
        refused (outside their savepoints): what they hold back to send together (their
        rows, their journals), in a statement per table for them all. Its error fails the
        whole group (each write then runs again alone, finished alone)."""


#: The most writes one transaction carries. PostgreSQL keeps the first 64 subtransactions
#: (savepoints that wrote) of a transaction in shared memory, and looks beyond them on
#: disk: 24 writes with their savepoints, and one more each (an idempotency key), stay
#: under that.
MAX_GROUP = 24
#: Committer threads on PostgreSQL (each holds one pooled connection while it commits).
PG_COMMITTERS = 3
#: PostgreSQL's groups carry one write each: a transaction holding many keys' rows until
#: its commit deadlocked with closes and releases of those keys (a 503 in the 50-job
#: contention test), and PostgreSQL already shares one WAL flush between concurrent
#: commits. SQLite, whose single writer runs one transaction at a time, cannot deadlock.
PG_MAX_GROUP = 1
#: ... except writes that lock no row another transaction may want (``shares_freely``: a
#: create that takes no lock and carries no idempotency key only inserts new rows): up to
#: ``MAX_GROUP`` of those share a transaction on PostgreSQL too, one commit for them all.
#: Every write of a group opens the savepoint of this name; a rollback to it undoes the
#: latest one only (the write that failed).
_SAVEPOINT = "SAVEPOINT tracker_grouped_write"
_ROLLBACK_TO_SAVEPOINT = "ROLLBACK TO SAVEPOINT tracker_grouped_write"


class GroupCommit:
    """Concurrent writes of this process share one transaction, one commit, one fsync.

    A write is queued (:meth:`submit`); a committer thread takes every write waiting
    (up to ``MAX_GROUP``), opens one write transaction (the SQLite writer's turn first,
    as every write), runs each in its own savepoint and commits once, then settles each:
    its answer leaves only after the commit. A write that refuses (its own error) rolls
    back its savepoint only; one that fails with a database error, and every write of a
    group whose commit failed, runs again alone, so its outcome is the one it would have
    had without company. While a group commits, the next one gathers.
    """

    def __init__(self, database: Database, committers: int = 1, max_group: int = MAX_GROUP) -> None:
        self._database = database
        #: The most writes one group carries (``MAX_GROUP``; ``PG_MAX_GROUP``).
        self.max_group = max_group
        #: Committer threads: one on SQLite (one writer anyway); on PostgreSQL a few, so
        #: that a group's round trips overlap the next group's.
        self.committers = committers
        self._queue: deque[GroupedWrite] = deque()
        self._ready = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        #: Called with the size of each committed group (``tracker_write_group_size``).
        self.observe: Callable[[int], None] | None = None

    def submit(self, write: GroupedWrite) -> None:
        """Queue a write; its ``settle`` is called from a committer thread."""
        with self._ready:
            if not self._threads:
                self._stopping = False
                self._threads = [
                    threading.Thread(target=self._run, name=f"group-commit-{n}", daemon=True)
                    for n in range(self.committers)
                ]
                for thread in self._threads:
                    thread.start()
            self._queue.append(write)
            self._ready.notify()

    @property
    def waiting(self) -> int:
        """How many writes wait for the next group."""
        with self._ready:
            return len(self._queue)

    def stop(self) -> None:
        """Commit what is queued, then end the committer threads."""
        with self._ready:
            threads, self._threads = self._threads, []
            self._stopping = True
            self._ready.notify_all()
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._stopping:
                    self._ready.wait()
                if not self._queue:
                    return
                group = self._take()
            try:
                self._commit(group)
            except Exception:  # noqa: BLE001 - the committer must go on for the next writes
                logger.exception("a group of writes failed to commit")

    def _take(self) -> list[GroupedWrite]:
        """The next group, in arrival order: up to ``max_group`` writes, or up to
        ``MAX_GROUP`` while every one ``shares_freely``."""
        group = [self._queue.popleft()]
        free = _shares_freely(group[0])
        while self._queue:
            if len(group) < self.max_group:
                group.append(self._queue.popleft())
                free = free and _shares_freely(group[-1])
            elif free and len(group) < MAX_GROUP and _shares_freely(self._queue[0]):
                group.append(self._queue.popleft())
            else:
                break
        return group

    def _commit(self, group: list[GroupedWrite]) -> None:
        refused: dict[int, BaseException] = {}
        alone: list[int] = []
        began = False
        try:
            with self._database.write() as conn:
                began = True
                alone = _apply_each(conn, group, refused)
                _finish(
                    conn, [w for i, w in enumerate(group) if i not in refused and i not in alone]
                )
        except BaseException as error:  # noqa: BLE001 - nothing of the group committed
            if not began:  # no turn to write, no connection: the same answer for each
                _wake([_settle(write, error) for write in group])
                return
            # A refusal too may owe something to the writes before it: each decides alone.
            refused, alone = {}, list(range(len(group)))
        self._observe(len(group) - len(refused) - len(alone))
        _wake(
            [
                _settle(write, refused.get(index))
                for index, write in enumerate(group)
                if index not in alone
            ]
        )
        for index in alone:
            self._commit_alone(group[index])

    def _commit_alone(self, write: GroupedWrite) -> None:
        try:
            with self._database.write() as conn:
                write.apply(conn)
                _finish(conn, [write])
        except BaseException as error:  # noqa: BLE001 - its answer
            _wake([_settle(write, error)])
            return
        self._observe(1)
        _wake([_settle(write, None)])

    def _observe(self, committed: int) -> None:
        if committed and self.observe is not None:
            try:
                self.observe(committed)
            except Exception:  # noqa: BLE001 - a metric must not keep an answer back
                logger.exception("the size of a group of writes could not be observed")


def _apply_each(
    conn: Connection, group: list[GroupedWrite], refused: dict[int, BaseException]
) -> list[int]:
    """Apply each write in its savepoint; note the refused; answer those to run alone."""
    alone = []
    for index, write in enumerate(group):
        savepoint = _LazySavepoint(conn)
        try:
            write.apply(cast(Connection, savepoint))
        except SQLAlchemyError:
            savepoint.roll_back()
            # Maybe its company's doing (a deadlock with another replica's group):
            # decided alone, after the group.
            alone.append(index)
        except BaseException as error:  # noqa: BLE001 - the write's own answer
            savepoint.roll_back()
            refused[index] = error
    return alone


class _LazySavepoint:
    """The connection a write of a group is given: its savepoint opens on the first use
    (any attribute but the dialect), so a write that sends nothing itself (a create whose
    rows wait for ``finish_group``) or refuses before it touches the database costs no
    statement. Never released (the commit ends them all): one statement per write, and
    SQLAlchemy compiles none (a nested transaction compiles two)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._opened = False

    def __getattr__(self, name: str) -> Any:
        if not self._opened and name != "dialect":
            self._conn.exec_driver_sql(_SAVEPOINT)
            self._opened = True
        return getattr(self._conn, name)

    def roll_back(self) -> None:
        """Undo what the write did (nothing to undo when it never used the connection)."""
        if self._opened:
            self._conn.exec_driver_sql(_ROLLBACK_TO_SAVEPOINT)


def _shares_freely(write: GroupedWrite) -> bool:
    """Whether the write may share a transaction beyond ``max_group`` (see PG_MAX_GROUP)."""
    return bool(getattr(write, "shares_freely", False))


def _finish(conn: Connection, writes: list[GroupedWrite]) -> None:
    """Each write class's ``finish_group``, once, with its applied writes (see
    :class:`GroupedWrite`)."""
    finishing: dict[Callable[..., None], list[GroupedWrite]] = {}
    for write in writes:
        finish = getattr(type(write), "finish_group", None)
        if finish is not None:
            finishing.setdefault(finish, []).append(write)
    for finish, same in finishing.items():
        finish(conn, same)


def _settle(write: GroupedWrite, error: BaseException | None) -> Callable[[], None] | None:
    try:
        return write.settle(error)
    except Exception:  # noqa: BLE001 - one write's answer must not stop the committer
        logger.exception("a grouped write failed to settle")
        return None


def _wake(wakes: list[Callable[[], None] | None]) -> None:
    """Call each distinct wake-up once, after every write of the group was settled."""
    for wake in dict.fromkeys(wake for wake in wakes if wake is not None):
        try:
            wake()
        except Exception:  # noqa: BLE001 - e.g. an event loop already closed
            logger.exception("grouped writes could not be answered")


class WalCheckpoints:
    """SQLite's WAL checkpoints in a thread of their own: after a commit, at most every
    ``interval`` seconds, a PASSIVE checkpoint (it waits for no reader nor writer, and
    none waits for it) on a connection of its own."""

    def __init__(self, path: str, interval: float = CHECKPOINT_INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self._wrote = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def wrote(self) -> None:
        """Note a commit: a checkpoint follows within ``interval`` seconds."""
        self._wrote.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopping.is_set():
                    self._thread = threading.Thread(
                        target=self._run, name="wal-checkpoints", daemon=True
                    )
                    self._thread.start()

    def stop(self) -> None:
        """End the thread (closing the engine's last connection checkpoints the rest)."""
        with self._lock:
            self._stopping.set()
            thread, self._thread = self._thread, None
        self._wrote.set()
        if thread is not None:
            thread.join()
        self._stopping.clear()

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint now: (busy, frames in the WAL, frames copied)."""
        connection = sqlite3.connect(self.path, timeout=0)
        try:
            row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            connection.close()
        return int(row[0]), int(row[1]), int(row[2])

    def _run(self) -> None:
        while True:
            self._wrote.wait()
            self._wrote.clear()
            try:
                self.checkpoint()
            except sqlite3.Error:  # never let upkeep hurt a write; the next commit retries
                logger.warning("WAL checkpoint failed", exc_info=True)
            if self._stopping.wait(self.interval):
                return


class Database:
    """The engine plus the two kinds of transaction a request uses."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: SQLite's one writer in this process (None for PostgreSQL).
        self._writer = FairLock() if engine.dialect.name == "sqlite" else None
        #: Single-row writes sharing transactions (``Write.grouped``).
        self.groups = (
            GroupCommit(self, 1, MAX_GROUP)
            if self._writer is not None
            else GroupCommit(self, PG_COMMITTERS, PG_MAX_GROUP)
        )
        self.checkpoints = (
            WalCheckpoints(str(engine.url.database)) if self._writer is not None else None
        )

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction."""
        with self.engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed at the end, rolled back on any error."""
        with self.writer_turn(), self.engine.connect() as connection:
            connection = connection.execution_options(tracker_write=True)
            with connection.begin():
                yield connection
        if self.checkpoints is not None:
            self.checkpoints.wrote()

    @contextmanager
    def writer_turn(self) -> Iterator[None]:
        """This process's turn to write to SQLite, in arrival order (nothing on PostgreSQL):
        for maintenance that writes through its own connection (ANALYZE)."""
        writer = self._writer
        if writer is not None and not writer.acquire(WRITER_TIMEOUT):
            from sqlalchemy.exc import TimeoutError as PoolTimeout

            raise PoolTimeout("database is busy: no turn to write came in time")
        try:
            yield
        finally:
            if writer is not None:
                writer.release()

    def ping(self) -> None:
        """Raise when the database cannot answer a trivial query."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Commit the writes queued, then close every pooled connection."""
        self.groups.stop()
        if self.checkpoints is not None:
            self.checkpoints.stop()
        self.engine.dispose()


def alembic_config(connection: Connection) -> Any:
    """An Alembic config bound to the connection; needs no alembic.ini in the cwd."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*(?::[^=\n]+)?=\s*(.+)$", re.MULTILINE)


def migration_heads() -> frozenset[str]:
    """The newest revisions of the migrations (those no other revision follows), read from
    the revision files without importing Alembic (a fifth of a second at every start)."""
    revisions: set[str] = set()
    followed: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = _REVISION_LINE.findall(path.read_text(encoding="utf-8"))
        if [name for name, _ in found].count("revision") != 1:
            return frozenset()  # a file this reading does not understand: ask Alembic
        for name, value in found:
            named = set(re.findall(r"[\"']([^\"']+)[\"']", value))
            (revisions if name == "revision" else followed).update(named)
    return frozenset(revisions - followed)


def schema_is_current(engine: Engine) -> bool:
    """True when the database is at every head already: nothing to migrate."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:  # no alembic_version table: a new database
        return False
    heads = migration_heads()
    return bool(heads) and frozenset(row[0] for row in rows) == heads


def upgrade_schema(engine: Engine, revision: str = "heads") -> None:
    """Create the schema, or upgrade it to ``revision``, keeping every stored row.

    ``heads``: every branch of the migrations (features developed side by side each add
    a revision after the same parent; a merge revision joins them later). A database at
    the heads already costs one query (a restarted server answers at once).
    """
    if revision == "heads" and schema_is_current(engine):
        return
    from alembic import command

    with engine.connect() as connection:
        if engine.dialect.name != "postgresql":
            command.upgrade(alembic_config(connection), revision)
            connection.commit()
            return
        # One transaction (PostgreSQL's DDL is transactional) holding a transaction-level
        # lock: replicas starting together migrate one at a time, and the lock ends with
        # the transaction whatever happens (a session lock stayed held by a pooled
        # connection behind PgBouncer, and by a killed process's session until PostgreSQL
        # noticed). Alembic runs inside it (it sees the transaction already begun).
        with connection.begin():
            # Not a request's timeouts: a replica waits for another's migration (an index
            # on a million events takes longer than lock_timeout), within MIGRATION_WAIT_MS.
            connection.exec_driver_sql(_MIGRATION_TIMEOUTS)
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
            command.upgrade(alembic_config(connection), revision)


def downgrade_schema(engine: Engine, revision: str) -> None:
    """Downgrade the schema to ``revision`` (used by tests of the upgrade path)."""
    from alembic import command

    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), revision)
        connection.commit()
