"""Wake-ups for long-polling lock waiters: a change that may move a queue wakes them.

In one process a :class:`threading.Condition` with a version counter does it: every
committed write bumps the version (:func:`notify`), and a waiter sleeps until the version
differs from the one it saw (:func:`wait_for_change`), so a change between its look and
its sleep is never missed. Replicas sharing PostgreSQL hear each other through
``LISTEN/NOTIFY`` (:class:`PostgresListener`): a write transaction sends ``NOTIFY``, which
PostgreSQL delivers at commit, and each replica's listener thread turns it into a local
wake-up. A waiter also looks again at least every ``MAX_SLICE`` seconds, which notices
expired leases and dropped waiters no write announced.

Behind a connection pooler (PgBouncer in transaction mode) a LISTEN through the pool hears
nothing: the listener then LISTENs on the direct URL (``--direct-database-url``) when one
is set. It proves it hears by sending itself a NOTIFY through the main URL (the way writes
announce); when that probe is not heard, it polls the queue table instead (every
``POLL_SECONDS``) and wakes local waiters when it changed.

A stopping server (:func:`begin_shutdown`) wakes every waiter, whose long poll then answers
at once: the waiter comes back (to another replica, or to this one restarted).
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from sqlalchemy import Connection, Engine, text

logger = logging.getLogger("tracker_server.wakeup")

CHANNEL = "tracker_queue"
#: The longest a waiter sleeps without looking again.
MAX_SLICE = 1.0
#: How long the listener waits to hear its own probe before it falls back to polling.
PROBE_SECONDS = 2.0
#: The polling fallback's period: a waiter's turn is seen this late at most.
POLL_SECONDS = 0.1
#: What the polling fallback compares: any join, leave or grant of any queue moves it.
_QUEUE_STATE = "SELECT count(*), coalesce(max(seq), 0), max(granted_at) FROM lock_queue"

_condition = threading.Condition()
_version = 0
_stopping = False


def version() -> int:
    """The current wake-up version (read before looking, pass to :func:`wait_for_change`)."""
    with _condition:
        return _version


def notify() -> None:
    """Wake every local waiter: something committed."""
    global _version
    with _condition:
        _version += 1
        _condition.notify_all()


def wait_for_change(seen: int, timeout: float) -> bool:
    """Sleep until the version moves past ``seen`` or ``timeout`` passes (or the server
    stops); True if it moved."""
    with _condition:
        return _condition.wait_for(lambda: _version != seen or _stopping, timeout=max(0.0, timeout))


def begin_shutdown() -> None:
    """The server is stopping: every long poll answers now (see :func:`stopping`)."""
    global _stopping
    with _condition:
        _stopping = True
        _condition.notify_all()


def stopping() -> bool:
    """True once the server began stopping: long polls answer at once."""
    return _stopping


def resume() -> None:
    """Forget a :func:`begin_shutdown` (tests that run several apps in one process)."""
    global _stopping
    with _condition:
        _stopping = False


def announce(conn: Connection) -> None:
    """Inside a write transaction on PostgreSQL: tell the other replicas at commit."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"NOTIFY {CHANNEL}"))


class PostgresListener:
    """A thread LISTENing on PostgreSQL: every NOTIFY from any replica wakes local waiters;
    polling the queue table when LISTEN does not hear (see the module's docstring)."""

    def __init__(self, engine: Engine, direct_database_url: str | None = None) -> None:
        self.engine = engine
        self.direct_database_url = direct_database_url
        #: "listen" or "poll" once the probe told; "" before (tests, logs).
        self.mode = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen in the background (PostgreSQL only)."""
        if self.engine.dialect.name != "postgresql" or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="queue-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._listen():
                    continue
                self._poll()
            except Exception:  # the database went away: wait, then listen again
                logger.warning("queue listener lost its connection; retrying", exc_info=True)
                self._stop.wait(1.0)

    def _dsn(self) -> Any:
        from tracker_server.db import normalize_database_url

        direct = self.direct_database_url
        url = normalize_database_url(direct) if direct else self.engine.url
        return url.set(drivername="postgresql").render_as_string(hide_password=False)

    def _listen(self) -> bool:
        """LISTEN until stopped (True), or False when the probe was not heard."""
        import psycopg

        with psycopg.connect(self._dsn(), autocommit=True, connect_timeout=5) as conn:
            try:
                conn.execute(f"LISTEN {CHANNEL}")
            except psycopg.Error as exc:  # refused by a pooler: LISTEN is not possible
                self._cannot_hear(f"LISTEN refused ({exc})")
                return False
            if not self._probe(conn):
                return False
            self.mode = "listen"
            while not self._stop.is_set():
                for _ in conn.notifies(timeout=0.5, stop_after=1):
                    notify()
        return True

    def _probe(self, conn: Any) -> bool:
        """Send a NOTIFY the way writes do (through the main URL) and wait to hear it."""
        token = f"probe-{uuid.uuid4().hex}"
        with self.engine.begin() as sender:
            sender.execute(
                text("SELECT pg_notify(:channel, :token)"), {"channel": CHANNEL, "token": token}
            )
        waited = 0.0
        while waited < PROBE_SECONDS and not self._stop.is_set():
            for heard in conn.notifies(timeout=0.2, stop_after=1):
                if heard.payload == token:
                    return True
                notify()  # a real change meanwhile
            waited += 0.2
        if not self._stop.is_set():
            self._cannot_hear("LISTEN does not hear NOTIFY (a pooler in transaction mode?)")
        return False

    def _cannot_hear(self, why: str) -> None:
        direct = self.direct_database_url
        logger.warning(
            "%s on %s: polling the queue every %.1f s instead; set --direct-database-url "
            "(TRACKER_DIRECT_DATABASE_URL) to a direct connection for instant wake-ups",
            why,
            "the direct URL" if direct else "the database URL",
            POLL_SECONDS,
        )

    def _poll(self) -> None:
        """Until stopped: wake local waiters whenever any queue changed."""
        seen = self._queue_state()
        self.mode = "poll"
        while not self._stop.wait(POLL_SECONDS):
            state = self._queue_state()
            if state != seen:
                notify()
            seen = state

    def _queue_state(self) -> tuple[Any, ...]:
        with self.engine.connect() as conn:
            state = tuple(conn.execute(text(_QUEUE_STATE)).one())
            conn.rollback()
        return state
