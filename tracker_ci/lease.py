"""The lease of a held deployment lock: when it was taken, and its renewal while a deploy runs.

A lock taken with a TTL expires on the server unless renewed. :class:`Lease` remembers when
the request that took (or last renewed) it was sent: the server's expiry is at least the TTL
after that moment, so the lease is known to last until then without asking. While the deploy
command runs, :meth:`Lease.kept` renews it in a background thread every ``interval``; it
tells ``on_lost`` when the server says the lock is gone or when no renewal succeeded within
the TTL (a paused runner noticing on its own clock), and ``on_renewed`` with each renewal.
A failed renewal is retried sooner and said on stderr: the deploy goes on while the lease
lasts, whatever the fail policy (stopping it would leave a half-done deploy).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import LockLost, NotFound, TrackerError

if TYPE_CHECKING:  # renew_lock answers the model: pydantic loads when a lease is renewed
    from tracker_ci.models import Lock

__all__ = ["LEASE_CHECK_INTERVAL", "RENEW_RETRY_INTERVAL", "Lease"]

#: How often the keeper looks at its local deadline between renewals: a runner paused past
#: the lease notices within this long once it runs again.
LEASE_CHECK_INTERVAL = 0.25
#: After a failed renewal, try again this soon (never later than the normal interval).
RENEW_RETRY_INTERVAL = 2.0


class Lease:
    """The lease of one lock of ``ttl`` seconds (0: the lock never expires)."""

    def __init__(
        self,
        client: TrackerClient,
        ttl: int,
        *,
        on_lost: Callable[[str], None],
        on_renewed: Callable[[Lock], None] | None = None,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.on_lost = on_lost
        self.on_renewed = on_renewed
        #: When the request that took or last renewed the lock was sent (monotonic; 0:
        #: not yet).
        self.sent = 0.0

    def sending(self) -> None:
        """The request that takes the lock goes now."""
        self.sent = time.monotonic()

    def remaining(self) -> float | None:
        """Seconds the lease is known to last (None: no lease, the lock never expires)."""
        if self.ttl <= 0 or not self.sent:
            return None
        return max(0.0, self.sent + self.ttl - time.monotonic())

    @contextlib.contextmanager
    def kept(self, lock_id: str, heartbeat: float | None = None) -> Iterator[None]:
        """Renew the lease while the block runs (every ``heartbeat`` s, default a third of
        the TTL); nothing to do for a lock without TTL or against upstream's server."""
        if not (lock_id and self.ttl > 0) or self.client.server_is_bundled is False:
            yield
            return
        interval = heartbeat if heartbeat and heartbeat > 0 else self.ttl / 3
        stop = threading.Event()
        thread = threading.Thread(
            target=self._keep,
            args=(lock_id, interval, stop),
            name="tracker-ci-lock-renewal",
            daemon=True,
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=self.client.timeout + 1)

    def _keep(self, lock_id: str, interval: float, stop: threading.Event) -> None:
        """Renew every ``interval`` s; lose the lock on "gone" or a passed local deadline."""
        ttl = self.ttl
        held_from = self.sent or time.monotonic()
        next_renewal = held_from + interval
        while not stop.wait(max(0.0, min(LEASE_CHECK_INTERVAL, next_renewal - time.monotonic()))):
            now = time.monotonic()
            if now - held_from >= ttl:
                self.on_lost(f"no renewal succeeded within its {ttl}s lease")
                return
            if now < next_renewal:
                continue
            try:
                renewed = self.client.renew_lock(lock_id, ttl)
            except (NotFound, LockLost) as error:
                if self.client.server_is_bundled:
                    self.on_lost(f"the server says it is gone: {error}")
                return  # an upstream server has no renewal (its locks never expire)
            except TrackerError as error:
                if not self.client.server_is_bundled:
                    return
                self._failed(error, held_from + ttl)
                next_renewal = time.monotonic() + min(interval, RENEW_RETRY_INTERVAL)
                continue
            held_from, next_renewal = now, now + interval
            self.sent = now  # closing is retried until this lease ends
            if self.on_renewed is not None:
                self.on_renewed(renewed)

    @staticmethod
    def _failed(error: TrackerError, held_until: float) -> None:
        left = max(0.0, held_until - time.monotonic())
        print(
            f"tracker-ci: warning: could not renew the lock ({error}); the deploy goes on "
            f"and renewal is retried: the lease lasts {left:.0f}s more",
            file=sys.stderr,
        )
