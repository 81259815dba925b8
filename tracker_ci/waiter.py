"""The one lock waiter: every command that waits for a held lock waits here.

``deploy start/run --wait``, ``lock acquire --wait``, ``lock wait`` and the GitHub Action
all call :meth:`LockWaiter.run` with the attempt to make (create the deployment event,
take the lock, or just look at it). While the attempt answers :class:`LockHeld`, the
waiter reads the holder, reports it to ``on_wait``, sleeps with jittered backoff, and
tries again until the attempt succeeds or the time allowed runs out
(:class:`LockWaitTimeout`, naming the holder). A ``cancel`` event (set by a signal
handler) ends the wait at once with :class:`WaitCancelled`.

This is the place where a server-side queue will replace polling.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import LockHeld, LockWaitTimeout, TrackerError
from tracker_ci.models import Lock

__all__ = ["DEFAULT_POLL_INTERVAL", "LockWaiter", "OnWait", "WaitCancelled"]

T = TypeVar("T")

#: Called while waiting: the holder's lock (or the error when it could not be read) and
#: the seconds waited so far.
OnWait = Callable[[Lock | LockHeld, float], None]

#: The longest pause between two attempts; the first ones come sooner.
DEFAULT_POLL_INTERVAL = 2.0
_FIRST_DELAY = 0.25
_GROWTH = 1.6
_JITTER = 0.2


class WaitCancelled(Exception):
    """The wait was cancelled (SIGINT/SIGTERM) before the lock came free."""


class LockWaiter:
    """Waits up to ``wait`` seconds for the lock of (service, environment, resource)."""

    def __init__(
        self,
        client: TrackerClient,
        *,
        service: str,
        environment: str,
        resource: str = "deployment",
        wait: float = 0.0,
        on_wait: OnWait | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        cancel: threading.Event | None = None,
        option: str = "--wait",
    ) -> None:
        self.client = client
        self.service = service
        self.environment = environment
        self.resource = resource or "deployment"
        self.wait = max(0.0, wait)
        self.on_wait = on_wait
        self.poll_interval = poll_interval
        self.cancel = cancel or threading.Event()
        #: The option that sets the wait, named in the timeout's advice.
        self.option = option

    def run(self, attempt: Callable[[], T]) -> T:
        """Call ``attempt`` until it stops raising LockHeld; raise when the wait runs out."""
        began = time.monotonic()
        delay = min(_FIRST_DELAY, self.poll_interval)
        while True:
            if self.cancel.is_set():
                raise WaitCancelled
            try:
                return attempt()
            except LockHeld as error:
                held = error
            waited = time.monotonic() - began
            holder = self.holder(held)
            if isinstance(holder, Lock):
                held = held.with_lock(holder)
            remaining = self.wait - waited
            if remaining <= 0:
                if self.wait > 0:
                    raise self._timed_out(held, waited) from None
                raise held from None
            if self.on_wait is not None:
                self.on_wait(holder, waited)
            pause = delay * random.uniform(1 - _JITTER, 1 + _JITTER)
            if self.cancel.wait(min(pause, remaining)):
                raise WaitCancelled
            delay = min(delay * _GROWTH, self.poll_interval)

    def until_free(self) -> None:
        """Wait until nobody holds the lock (without taking it)."""

        def look() -> None:
            lock = self.client.find_lock(
                service=self.service, environment=self.environment, resource=self.resource
            )
            if lock is not None:
                raise LockHeld("").with_lock(lock)

        self.run(look)

    def _timed_out(self, held: LockHeld, waited: float) -> LockWaitTimeout:
        timeout = LockWaitTimeout.from_held(held, waited)
        if self.option != "--wait":  # `lock wait` calls it --timeout
            text = timeout.message.replace("(--wait SECONDS)", f"({self.option} SECONDS)")
            timeout.message = text
            timeout.args = (text,)
        return timeout

    def holder(self, held: LockHeld) -> Lock | LockHeld:
        """The holder's lock record when it can be read, else the error as it came."""
        if held.lock is not None:
            return held.lock
        try:
            lock = self.client.find_lock(
                service=self.service,
                environment=self.environment,
                resource=held.resource or self.resource,
            )
        except TrackerError:
            return held
        return lock if lock is not None else held
