"""The one lock waiter: every command that waits for a held lock waits here.

``deploy start/run --wait``, ``lock acquire --wait``, ``lock wait`` and the GitHub Action
all call :meth:`LockWaiter.run` with the attempt to make (create the deployment event,
take the lock, or just look at it). While the attempt answers :class:`LockHeld`:

* against our bundled server the waiter joins the key's **queue** and long-polls it
  (``POST /lock/queue``, which is also its heartbeat): the server answers the moment the
  turn comes, in arrival order (or the ``newest`` policy's), and the waiter repeats the
  attempt naming its ticket (the attempt's one argument). A caller that can use the lock
  itself (``run(attempt, granted=...)``) asks the server to take it when the turn comes:
  the long poll's answer carries the lock, which the waiter claims (asking again with the
  ticket; an answer lost on the way is answered again the same) and hands to ``granted``
  instead of repeating the attempt. A waiter made with ``claim_later`` hands the lock on
  at once and leaves its claim to the caller (:attr:`LockWaiter.claim`): ``deploy run``
  starts its command and claims in its lease's thread. A waiter given the event to open
  (``open_event``: ``deploy start/run``) has the grant open it too: the answer carries the event
  (:attr:`LockWaiter.event`); a server without that answers the turn only, and the
  attempt (which creates the event naming the ticket) runs. Leaving for any reason (the
  wait ran out, Ctrl-C, SIGTERM, an error) removes the ticket; a killed waiter's ticket is
  dropped by the server when its heartbeat stops.
* against upstream's Go server, which has no queue, it polls: it reads the holder, sleeps
  with jittered backoff, and tries again.

Either way ``on_wait`` hears who holds the lock (with the place in the queue and the
expected wait when known) until the attempt succeeds or the time allowed runs out
(:class:`LockWaitTimeout`, naming the holder). A ``cancel`` event (set by a signal
handler) ends the wait with :class:`WaitCancelled`.

**An outage never ends a wait early.** Once the waiter has seen a holder, a deploy is
running: losing the server (unreachable, 5xx) means waiting for it to come back, within
the same ``wait`` budget, keeping the queue ticket (the server keeps tickets across a
restart), and ``on_wait`` hears the outage. When the budget runs out during the outage
the wait ends with :class:`OutageWhileWaiting` (exit 4), which no fail policy turns into
an untracked, unlocked deploy.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ConfigDict

from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import (
    LockHeld,
    LockWaitTimeout,
    NotFound,
    ServerUnreachable,
    TrackerError,
    is_outage,
)
from tracker_ci.models import Lock
from tracker_ci.supervisor import exit_on_sigterm, signals_deferred

if TYPE_CHECKING:  # the queue's models load when a wait goes through the queue
    from tracker_ci.models import Event, QueueResponse

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "LockWaiter",
    "OnWait",
    "OutageWhileWaiting",
    "QueuePlace",
    "WaitCancelled",
]

T = TypeVar("T")


class QueuePlace(Lock):
    """The holder's lock (empty fields when the key is free but the turn is not ours yet)
    and where a queued waiter stands: its place (1-based) among ``waiting``, the expected
    wait (None: no history yet), and the hard freeze holding its turn back."""

    # Built on first use: most deploys never wait in a queue.
    model_config = ConfigDict(defer_build=True)

    position: int = 0
    waiting: int = 0
    expected_wait_seconds: float | None = None
    frozen_by: str = ""


#: Called while waiting: the holder's lock (or the error when it could not be read, or
#: the place in the server's queue, or the outage the waiter waits through) and the
#: seconds waited so far.
OnWait = Callable[[Lock | LockHeld | QueuePlace | TrackerError, float], None]
#: The attempt a waiter repeats; its argument is the queue ticket whose turn it claims
#: ("" outside the queue).
Attempt = Callable[[str], T]

#: The longest pause between two attempts; the first ones come sooner.
DEFAULT_POLL_INTERVAL = 2.0
#: The longest one long poll of the queue lasts: a cancel is noticed at least this often.
LONG_POLL = 2.0
#: How often one holder's CI job is asked about (``evict_dead_holder``).
EVICT_CHECK_INTERVAL = 10.0
_FIRST_DELAY = 0.25
_GROWTH = 1.6
_JITTER = 0.2
#: The longest pause between two tries to reach a server that went away during a wait.
OUTAGE_RETRY_INTERVAL = 2.0


class WaitCancelled(Exception):
    """The wait was cancelled (SIGINT/SIGTERM) before the lock came free."""


class OutageWhileWaiting(ServerUnreachable):
    """The server went away while we waited behind a holder, and did not come back
    within the wait: the deploy must not run (a holder was seen), whatever the fail
    policy. Exit 4."""

    #: Never an outage the open fail policy may go on through: a deploy is running.
    outage = False

    @classmethod
    def after(cls, error: TrackerError, waited: float, option: str) -> OutageWhileWaiting:
        """The error that ends a wait spent partly without a server."""
        return cls(
            f"{error} -- the server went away while this deploy waited for the lock behind "
            f"a running deploy, and did not come back within the wait ({waited:.0f}s); the "
            f"deploy did not run (a longer {option} waits longer; it keeps its place)",
            url=getattr(error, "url", ""),
        )


class _Outage:
    """The outage a wait goes through: the last error and the next pause (backoff)."""

    def __init__(self) -> None:
        self.error: TrackerError | None = None
        self._delay = _FIRST_DELAY

    def hit(self, error: TrackerError) -> float:
        """Record an outage error; the pause before the next try."""
        if not is_outage(error):
            raise error
        self.error = error
        pause = self._delay * random.uniform(1 - _JITTER, 1 + _JITTER)
        self._delay = min(self._delay * _GROWTH, OUTAGE_RETRY_INTERVAL)
        return pause

    def over(self) -> None:
        """The server answered again."""
        self.error = None
        self._delay = _FIRST_DELAY


class _NoQueue(Exception):
    """The server has no queue (upstream, or an older bundled server)."""


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
        who: str = "",
        reason: str = "",
        job_url: str = "",
        break_glass: str = "",
        queue: bool = True,
        evict_dead_holder: Callable[[Lock], str | None] | None = None,
        ttl_seconds: int = 0,
        event_id: str = "",
        open_event: Mapping[str, Any] | None = None,
        claim_later: bool = False,
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
        #: Shown to the others in the queue.
        self.who = who
        self.reason = reason
        self.job_url = job_url
        self.break_glass = break_glass
        #: The lease and event of a lock the queue takes for us (``run(..., granted=)``).
        self.ttl_seconds = ttl_seconds
        self.event_id = event_id
        #: The event a grant opens with its lock (``POST /event``'s body, the lock's TTL
        #: in ``lockTtlSeconds``; the attempt creates the same event), and the event it
        #: opened, once granted.
        self.open_event = open_event
        self.event: Event | None = None
        #: Events grants opened for us that ran out before our claim (left open).
        self.unclaimed: list[Event] = []
        #: Hand a granted lock on before claiming it (``claim_later``): then ``claim`` is
        #: the claim still to send (it answers the claimed lock, or None when the grant ran
        #: out first); until it lands the lock lasts only the server's claim window.
        self.claim_later = claim_later
        self.claim: Callable[[], Lock | None] | None = None
        #: When the last request to the queue went (monotonic): a lock its answer took or
        #: claimed for us has its lease from no earlier.
        self.asked_at = 0.0
        #: Wait in the server's queue when it has one (False: always poll).
        self.queue = queue
        #: Given the holder's lock, why its CI job has ended (None: it runs, or unknown):
        #: then the holder is evicted instead of waiting out its lease.
        self.evict_dead_holder = evict_dead_holder
        self._checked: dict[str, float] = {}

    def run(self, attempt: Attempt[T], granted: Callable[[Lock], T] | None = None) -> T:
        """Call ``attempt`` until it stops raising LockHeld; raise when the wait runs out.
        With ``granted``, a lock the server's queue takes for us (our who, reason, job,
        glass, ``ttl_seconds`` and ``event_id``) becomes the result without the attempt."""
        began = time.monotonic()
        if self.cancel.is_set():
            raise WaitCancelled
        try:
            return attempt("")
        except LockHeld as error:
            held = error
        if self.wait > 0 and self.queue and self.client.server_is_bundled:
            with contextlib.suppress(_NoQueue):
                return self._in_queue(attempt, held, began, granted)
        return self._poll(attempt, held, began)

    # ------------------------------------------------------------------ the queue
    def _in_queue(
        self,
        attempt: Attempt[T],
        held: LockHeld,
        began: float,
        granted: Callable[[Lock], T] | None = None,
    ) -> T:
        ticket = ""
        claimed = False
        grant = granted is not None
        taken: Lock | None = None  # taken for us by the queue, not claimed yet
        outage = _Outage()
        try:
            with exit_on_sigterm():
                while True:
                    if self.cancel.is_set():
                        raise WaitCancelled
                    waited = time.monotonic() - began
                    remaining = self.wait - waited
                    if remaining <= 0:
                        raise self._ran_out(held, waited, outage) from None
                    try:
                        # A join's answer names the ticket (and may carry the lock) the
                        # ``finally`` gives back: a signal during it waits until both are known.
                        with signals_deferred(not ticket):
                            ticket, held, turn = self._turn(ticket, held, remaining, began, grant)
                            taken = turn if isinstance(turn, Lock) and grant else None
                        if taken is not None and granted is not None:
                            lock = taken if self._whole(taken) else self._claimed(ticket, taken)
                            if lock is None:  # the grant ran out before our claim
                                ticket, taken = "", None
                                continue
                            claimed = True
                            return granted(lock)
                        if turn:  # (an older server takes no lock for us)
                            result = attempt(ticket)
                            claimed = True
                            return result
                    except LockHeld as error:  # taken meanwhile (an upstream-style caller)
                        held = error
                        self.cancel.wait(0.05)
                    except TrackerError as error:
                        self._through(outage, error, time.monotonic() - began, remaining)
                        continue
                    outage.over()
        finally:
            if not claimed:
                self._leave(ticket, taken)

    def _leave(self, ticket: str, taken: Lock | None) -> None:
        """Leave the queue unserved: the ticket goes, and a lock the queue took for us (not
        ours to keep) is released, so the next waiter's turn comes now."""
        if ticket:
            with contextlib.suppress(TrackerError):
                self.client.leave_queue(ticket)
        if taken is not None:
            with contextlib.suppress(TrackerError):
                self.client.release_lock(taken.id)

    def _turn(
        self, ticket: str, held: LockHeld, remaining: float, began: float, grant: bool = False
    ) -> tuple[str, LockHeld, bool | Lock]:
        """One visit to the queue (join, or heartbeat and long poll): our ticket, the
        holder, and whether our turn came (the lock when the server took it for us)."""
        answer = self._visit(ticket, min(remaining, LONG_POLL) if ticket else 0.0, grant)
        if answer is None:  # our ticket was dropped (a long pause): join again
            return "", held, False
        assert answer.ticket is not None
        ticket = answer.ticket.ticket
        if answer.granted is not None:
            self.event = answer.event
            return ticket, held, answer.granted
        if answer.lock is not None:
            held = held.with_lock(answer.lock)
            if self._evicted(answer.lock):
                return ticket, held, False  # the turn comes at the next look
        if answer.ticket.state == "granted":
            return ticket, held, True
        self._tell(_place(answer), time.monotonic() - began)
        return ticket, held, False

    def _through(
        self, outage: _Outage, error: TrackerError, waited: float, remaining: float
    ) -> None:
        """Wait through an outage (tell ``on_wait``, back off); raise anything else."""
        pause = outage.hit(error)
        self._tell(error, waited)
        if self.cancel.wait(min(pause, remaining)):
            raise WaitCancelled

    def _ran_out(self, held: LockHeld, waited: float, outage: _Outage) -> TrackerError:
        if outage.error is not None:
            return OutageWhileWaiting.after(outage.error, waited, self.option)
        return self._timed_out(held, waited)

    def _whole(self, lock: Lock) -> bool:
        """Whether a granted lock already has the lease we asked for (a TTL no longer than
        the server's claim window): then there is nothing to claim."""
        if not (self.ttl_seconds and lock.expires_at and lock.created_at):
            return False
        return (lock.expires_at - lock.created_at).total_seconds() >= self.ttl_seconds

    def _claimed(self, ticket: str, taken: Lock) -> Lock | None:
        """The granted lock claimed now, or handed on with its claim left to the caller
        (``claim_later``)."""
        if not (self.claim_later and taken.expires_at and taken.created_at):
            return self._claim(ticket)
        self.claim = lambda: self._claim_again(ticket)
        return taken

    def _claim_again(self, ticket: str) -> Lock | None:
        """The claim sent after the lock was handed on: the lock with our TTL, None when
        the grant ran out (its event is the caller's either way); raises outages."""
        answer = self._visit(ticket, 0.0, grant=True)
        return None if answer is None else answer.granted

    def _claim(self, ticket: str) -> Lock | None:
        """Claim the lock the queue took for our ticket (until then it expires after the
        server's claim window, as an unclaimed turn passes): the lock with our TTL, or
        None when it is gone (then we queue again)."""
        answer = self._visit(ticket, 0.0, grant=True)
        if answer is None or answer.granted is None:
            if self.event is not None:  # the event it opened is not ours now
                self.unclaimed.append(self.event)
                self.event = None
            return None
        self.event = answer.event or self.event
        return answer.granted

    def _visit(self, ticket: str, wait_seconds: float, grant: bool = False) -> QueueResponse | None:
        self.asked_at = time.monotonic()
        try:
            return self.client.wait_in_queue(
                service=self.service,
                environment=self.environment,
                resource=self.resource,
                who=self.who,
                reason=self.reason,
                job_url=self.job_url,
                ticket=ticket,
                wait_seconds=wait_seconds,
                break_glass=self.break_glass,
                # With an event to open, no bare ``grant``: a server that cannot open it
                # would take a lock without it; it answers the turn instead.
                grant=grant and self.open_event is None,
                ttl_seconds=self.ttl_seconds if grant and self.open_event is None else 0,
                event_id=self.event_id if grant else "",
                open_event=self.open_event if grant else None,
            )
        except NotFound:
            if not ticket:
                raise _NoQueue from None
            return None

    def _tell(self, what: Lock | LockHeld | QueuePlace | TrackerError, waited: float) -> None:
        if self.on_wait is not None:
            self.on_wait(what, waited)

    # ------------------------------------------------------------------ polling
    def _poll(self, attempt: Attempt[T], held: LockHeld, began: float) -> T:
        delay = min(_FIRST_DELAY, self.poll_interval)
        outage = _Outage()
        while True:
            waited = time.monotonic() - began
            holder = self.holder(held)
            evicted = False
            if isinstance(holder, Lock):
                held = held.with_lock(holder)
                evicted = self._evicted(holder)
            remaining = self.wait - waited
            if remaining <= 0:
                if self.wait > 0:
                    raise self._ran_out(held, waited, outage) from None
                raise held from None
            self._tell(outage.error or holder, waited)
            pause = 0.0 if evicted else delay * random.uniform(1 - _JITTER, 1 + _JITTER)
            if self.cancel.wait(min(pause, remaining)):
                raise WaitCancelled
            delay = min(delay * _GROWTH, self.poll_interval)
            try:
                return attempt("")
            except LockHeld as error:
                held = error
                outage.over()
            except TrackerError as error:
                outage.hit(error)  # a holder was seen: wait through the outage

    def _evicted(self, holder: Lock) -> bool:
        """Evict the holder when its CI job has ended (checked at most every so often)."""
        if self.evict_dead_holder is None or not holder.id or not holder.job_url:
            return False
        now = time.monotonic()
        if now - self._checked.get(holder.id, -EVICT_CHECK_INTERVAL) < EVICT_CHECK_INTERVAL:
            return False
        self._checked[holder.id] = now
        why = self.evict_dead_holder(holder)
        if not why:
            return False
        try:
            by = self.who or "tracker-ci"
            return bool(self.client.evict_lock(holder.id, by=by, why=f"{holder.who}: {why}"))
        except TrackerError:
            return False

    def until_free(self) -> None:
        """Wait until nobody holds the lock (without taking it, so without queueing)."""

        def look(ticket: str) -> None:
            lock = self.client.find_lock(
                service=self.service, environment=self.environment, resource=self.resource
            )
            if lock is not None:
                raise LockHeld("").with_lock(lock)

        queue, self.queue = self.queue, False
        try:
            self.run(look)
        finally:
            self.queue = queue

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


def _place(answer: QueueResponse) -> QueuePlace:
    from tracker_ci.models import QueueEntry

    mine = answer.ticket or QueueEntry()
    holder = answer.lock.model_dump() if answer.lock is not None else {}
    return QueuePlace(
        **holder,
        position=mine.position,
        waiting=len(answer.queue),
        expected_wait_seconds=mine.expected_wait_seconds,
        frozen_by=answer.frozen_by,
    )
