"""Wake-ups for long-polling lock waiters: a change that may move a queue wakes them.

In one process a :class:`threading.Condition` with a version counter does it: every
committed write bumps the version (:func:`notify`), and a waiter sleeps until the version
differs from the one it saw (:func:`wait_for_change`), so a change between its look and
its sleep is never missed. Replicas sharing PostgreSQL hear each other through
``LISTEN/NOTIFY`` (:class:`PostgresListener`): a write transaction sends ``NOTIFY``, which
PostgreSQL delivers at commit, and each replica's listener thread turns it into a local
wake-up. A waiter also looks again at least every ``MAX_SLICE`` seconds, which notices
expired leases and dropped waiters no write announced.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Connection, Engine, text

logger = logging.getLogger("tracker_server.wakeup")

CHANNEL = "tracker_queue"
#: The longest a waiter sleeps without looking again.
MAX_SLICE = 1.0

_condition = threading.Condition()
_version = 0


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
    """Sleep until the version moves past ``seen`` or ``timeout`` passes; True if it moved."""
    with _condition:
        return _condition.wait_for(lambda: _version != seen, timeout=max(0.0, timeout))


def announce(conn: Connection) -> None:
    """Inside a write transaction on PostgreSQL: tell the other replicas at commit."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"NOTIFY {CHANNEL}"))


class PostgresListener:
    """A thread LISTENing on PostgreSQL: every NOTIFY from any replica wakes local waiters."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
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
                self._listen()
            except Exception:  # the database went away: wait, then listen again
                logger.warning("queue listener lost its connection; retrying", exc_info=True)
                self._stop.wait(1.0)

    def _listen(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql")
        dsn: Any = url.render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            while not self._stop.is_set():
                for _ in conn.notifies(timeout=0.5, stop_after=1):
                    notify()
