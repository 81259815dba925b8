"""Statistics upkeep while the server runs: a table that grows from nothing to a million
events between two restarts would otherwise keep the statistics of its first rows.

Every write transaction tells :class:`StatisticsUpkeep` how many changes it committed; after
``every`` of them it runs :func:`tracker_server.statistics.refresh` once, in a background
thread, in the writers' queue (SQLite) so no request waits on SQLite's busy handler. The
refresh itself only re-analyzes a table whose size moved a lot, so most checks cost a few
index look-ups.
"""

from __future__ import annotations

import logging
import threading

from tracker_server import statistics
from tracker_server.db import Database

log = logging.getLogger(__name__)

#: Changes between two checks of the statistics.
CHECK_EVERY = 5000


class StatisticsUpkeep:
    """Counts committed changes; refreshes the statistics every ``every`` of them."""

    def __init__(self, database: Database, every: int = CHECK_EVERY) -> None:
        self.database = database
        self.every = every
        self._lock = threading.Lock()
        self._since = 0
        self._running: threading.Thread | None = None

    def wrote(self, changes: int) -> None:
        """Note ``changes`` committed changes; may start a refresh in the background."""
        with self._lock:
            self._since += changes
            if self._since >= self.every:
                self._start()

    def refresh_soon(self) -> None:
        """Refresh now, in the background (after a bulk write)."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self._running is not None:
            return
        self._since = 0
        self._running = threading.Thread(
            target=self._refresh, name="statistics-upkeep", daemon=True
        )
        self._running.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for a refresh in progress (tests, shutdown)."""
        running = self._running
        if running is not None:
            running.join(timeout)

    def _refresh(self) -> None:
        try:
            with self.database.writer_turn():
                statistics.refresh(self.database.engine, bulk=True)
        except Exception:  # never let upkeep hurt a write; the next check tries again
            log.warning("statistics upkeep failed", exc_info=True)
        finally:
            with self._lock:
                self._running = None
