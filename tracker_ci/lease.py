"""The lease of a held deployment lock: when it was taken, and its renewal while a deploy runs.

A lock taken with a TTL expires on the server unless renewed. :class:`Lease` remembers when
the request that took (or last renewed) it was sent: the server's expiry is at least the TTL
after that moment, so the lease is known to last until then without asking. While the deploy
command runs, :meth:`Lease.kept` renews it in a background thread every ``interval``; it
tells ``on_lost`` when the server says the lock is gone or when no renewal succeeded within
the TTL (a paused runner noticing on its own clock), and ``on_renewed`` with each renewal.
A failed renewal is retried sooner and said on stderr: the deploy goes on while the lease
lasts, whatever the fail policy (stopping it would leave a half-done deploy).

A lock the server's queue granted lasts only the grant's claim window until it is claimed
(:meth:`Lease.granted`): then the keeper's first act is the claim, sent once the command
had ``CLAIM_DELAY`` to start, and again until it lands; if the window passes first, the
lock is lost as a lease is (the command is stopped before the next holder can start).
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
#: After a failed claim, try again this soon, then twice as late each time up to this.
CLAIM_RETRY_FIRST = 0.1
CLAIM_RETRY_MAX = 1.0
#: A grant's claim goes this long after the keeping starts (at most a quarter of what is
#: left of the claim window): its request would otherwise compete with the command's own
#: start for the CPU (a deploy pair's second command started 2.3 ms later, median of 16).
CLAIM_DELAY = 0.05


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
        #: The claim of a lock the queue granted, still to send (:meth:`granted`), and the
        #: grant's claim window: until the claim lands, the lock lasts that long from
        #: ``sent``.
        self._claim: Callable[[], Lock | None] | None = None
        self._window = 0.0

    def sending(self) -> None:
        """The request that takes the lock goes now."""
        self.sent = time.monotonic()

    def granted(self, claim: Callable[[], Lock | None], window: float) -> None:
        """The queue granted the lock (asked for at ``sent``) for ``window`` seconds until
        claimed: :meth:`kept` sends ``claim`` first (it answers the claimed lock, None when
        the grant ran out, and raises what the request raises)."""
        self._claim, self._window = claim, window

    def remaining(self) -> float | None:
        """Seconds the lease is known to last (None: no lease, the lock never expires)."""
        if not self.sent:
            return None
        if self._claim is not None:
            return max(0.0, self.sent + self._window - time.monotonic())
        if self.ttl <= 0:
            return None
        return max(0.0, self.sent + self.ttl - time.monotonic())

    @contextlib.contextmanager
    def kept(self, lock_id: str, heartbeat: float | None = None) -> Iterator[Callable[[], None]]:
        """Renew the lease while the block runs (every ``heartbeat`` s, default a third of
        the TTL) from the moment the block calls what it is given (once the command has
        started: starting a thread waits for it to run, which the command need not);
        nothing to do for a lock without TTL or against upstream's server."""
        expires = self.ttl > 0 or self._claim is not None
        if not (lock_id and expires) or self.client.server_is_bundled is False:
            yield lambda: None
            return
        interval = heartbeat if heartbeat and heartbeat > 0 else max(self.ttl, 1) / 3
        stop = threading.Event()
        thread = threading.Thread(
            target=self._keep,
            args=(lock_id, interval, stop),
            name="tracker-ci-lock-renewal",
            daemon=True,
        )

        def start() -> None:
            if thread.ident is None:
                thread.start()

        try:
            yield start
        finally:
            stop.set()
            if thread.ident is not None:
                thread.join(timeout=self.client.timeout + 1)

    def _keep(self, lock_id: str, interval: float, stop: threading.Event) -> None:
        """Renew every ``interval`` s; lose the lock on "gone" or a passed local deadline."""
        held_from = self.sent or time.monotonic()
        if self._claim is not None:
            claimed_at = self._claimed(held_from, stop)
            if claimed_at is None or self.ttl <= 0:
                return  # lost (said), stopped, or claimed without a TTL: nothing to renew
            held_from = claimed_at
        self._renew_every(lock_id, interval, held_from, stop)

    def _renew_every(
        self, lock_id: str, interval: float, held_from: float, stop: threading.Event
    ) -> None:
        ttl = self.ttl
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

    def _claimed(self, held_from: float, stop: threading.Event) -> float | None:
        """Send the grant's claim until it lands (when it was sent), the window passes or
        the block ends (None; a lost lock is said)."""
        claim, window = self._claim, self._window
        assert claim is not None
        deadline = held_from + window
        if stop.wait(min(CLAIM_DELAY, max(0.0, deadline - time.monotonic()) / 4)):
            return None  # the command is over already: closing its event frees the lock
        delay = CLAIM_RETRY_FIRST
        while not stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                self.on_lost(f"its claim did not land within the grant's {window:.0f}s window")
                return None
            try:
                lock = claim()
            except TrackerError as error:
                self._failed(error, deadline, "claim")
                if stop.wait(min(delay, max(0.0, deadline - time.monotonic()))):
                    return None
                delay = min(delay * 2, CLAIM_RETRY_MAX)
                continue
            if lock is None:
                self.on_lost("its grant ran out before the claim landed")
                return None
            self._claim, self.sent = None, now  # closing is retried until this lease ends
            if self.on_renewed is not None:
                self.on_renewed(lock)
            return now
        return None

    @staticmethod
    def _failed(error: TrackerError, held_until: float, what: str = "renew") -> None:
        left = max(0.0, held_until - time.monotonic())
        print(
            f"tracker-ci: warning: could not {what} the lock ({error}); the deploy goes on "
            f"and it is tried again: the lease lasts {left:.0f}s more",
            file=sys.stderr,
        )
