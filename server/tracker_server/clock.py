"""The server's one source of "now": an injectable clock.

Everything that stamps or compares times (createdAt, changelog timestamps, lock TTLs and
their expiry, idempotency key lifetimes, token use, the journal) reads ``app.state.clock``
through the ``Now`` dependency, so a test can move time instead of sleeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

from tracker_ci.models import utcnow


class Clock(Protocol):
    """Anything with ``now()``: a timezone-aware UTC datetime."""

    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        ...


class SystemClock:
    """The real time (the default)."""

    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        return utcnow()


class ManualClock:
    """A clock that moves only when told to (tests, demos of expiry)."""

    def __init__(self, start: datetime | None = None) -> None:
        moment = start or utcnow()
        if moment.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = moment.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The time it was last set or moved to."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta``; the new time."""
        if delta < timedelta(0):
            raise ValueError("time only moves forward")
        with self._lock:
            self._now += delta
            return self._now
