"""Waiting for a deployment's approval (``deploy run|start --require-approval``).

The lifecycle (:mod:`tracker_ci.deploy`) opens the deployment event as
``waiting_approval``, which takes no lock by itself, and waits here for a reviewer's
decision. Approved (``tracker-ci event approve``: status ``open``; or upstream's Approve, an
owner-only ``PUT /event`` that leaves the status and writes an ``approved`` changelog
entry) answers the event. Rejected (``tracker-ci event reject``: status ``failure``),
closed by anything else, or not decided within the timeout raises :class:`NotApproved`
(exit 10). An outage while waiting is waited through until the timeout: the command never
runs unapproved.

:func:`wait_in_line_for_approval` (a deploy with ``--wait`` on a server with a lock queue)
holds the deploy's place in the queue meanwhile: it joins at once and keeps its ticket
alive, so the deploys that queue later wait behind it; when its turn comes first it takes
the lock for its event (an unclaimed turn would pass on) and holds it, lease renewed, until
the decision. Leaving unserved (refused, timed out, cancelled) gives the ticket back or
frees that lock. :func:`wait_for_approval` waits for the decision alone (then the
lifecycle queues as any deploy does). The queue is used through the client's classic
protocol (a ticket's turn, then ``POST /lock`` naming it), not through the lock waiter.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import (
    LockHeld,
    LockWaitTimeout,
    NotApproved,
    NotFound,
    TrackerError,
    is_outage,
)
from tracker_ci.models import ChangeType, Status

if TYPE_CHECKING:  # the models and the waiter (pydantic) load when a deploy waits
    from tracker_ci.models import Event, Lock, QueueResponse
    from tracker_ci.waiter import OnWait, QueuePlace

__all__ = [
    "DEFAULT_APPROVAL_TIMEOUT",
    "LineKey",
    "NoQueue",
    "is_approved",
    "wait_for_approval",
    "wait_in_line_for_approval",
]

#: How long a deploy waits for its approval unless told otherwise (seconds).
DEFAULT_APPROVAL_TIMEOUT = 3600.0


def is_approved(event: Event) -> bool | None:
    """True when approved, False when rejected or closed otherwise, None while undecided."""
    status = event.attributes.status
    if status == Status.waiting_approval:
        # Upstream's Approve keeps the status and writes an ``approved`` entry.
        return True if _last(event, ChangeType.approved) is not None else None
    return status in (Status.open, Status.start, Status.in_progress)


def _last(event: Event, change: ChangeType) -> str | None:
    """The comment of the event's last changelog entry of this kind (None: there is none)."""
    for entry in reversed(event.changelog):
        if entry.change_type == change:
            return entry.comment
    return None


def wait_for_approval(
    client: TrackerClient,
    event_id: str,
    *,
    timeout: float,
    poll_interval: float,
    cancel: threading.Event,
) -> Event:
    """The event once approved; NotApproved when rejected or not approved within
    ``timeout`` s; WaitCancelled when ``cancel`` is set (a signal)."""
    from tracker_ci.waiter import WaitCancelled

    deadline = time.monotonic() + timeout
    delay = min(0.25, poll_interval)
    while True:
        try:
            event = client.get_event(event_id)
        except TrackerError as error:
            if not is_outage(error):
                raise
        else:
            decided = is_approved(event)
            if decided:
                return event
            if decided is False:
                why = _last(event, ChangeType.rejected) or f"closed as {event.attributes.status}"
                raise NotApproved(
                    f"deployment {event_id} was not approved: {why}; the command did not run",
                    event_id=event_id,
                    reason=why,
                )
        left = deadline - time.monotonic()
        if left <= 0:
            raise NotApproved(
                f"deployment {event_id} was not approved within {timeout:g} s "
                "(--approval-timeout); the command did not run",
                event_id=event_id,
                reason=f"not approved within {timeout:g} s",
            )
        if cancel.wait(min(delay, left)):
            raise WaitCancelled
        delay = min(delay * 2, poll_interval)


# ------------------------------------------------------------ holding a place in line
@dataclass(frozen=True, kw_only=True)
class LineKey:
    """The lock a gated deploy queues for, and what the others in line see of it."""

    service: str
    environment: str
    resource: str = "deployment"
    who: str = ""
    reason: str = ""
    job_url: str = ""
    break_glass: str = ""
    new_environment: bool = False


class NoQueue(Exception):
    """The server has no lock queue (upstream, or an older one): approve, then queue."""


#: The longest long poll while in line (the approval is read between two polls).
_LINE_POLL = 2.0


def wait_in_line_for_approval(
    client: TrackerClient,
    event_id: str,
    *,
    key: LineKey,
    take: Callable[[str], Lock],
    renew: Callable[[Lock], None] | None,
    renew_every: float,
    timeout: float,
    lock_wait: float,
    poll_interval: float,
    cancel: threading.Event,
    on_wait: OnWait | None = None,
) -> tuple[Event, Lock]:
    """Queue for the lock at once and wait there for the approval: the approved event and
    its lock. The ticket is kept alive while the approval is pending (those behind wait, as
    behind GitHub's pending reviews); when the turn comes first, the lock is taken with it
    (``take(ticket)``; its lease kept by ``renew`` every ``renew_every`` s) and held while
    the approval is pending. Once approved, the lock is waited for up to ``lock_wait`` more
    seconds (LockWaitTimeout). Rejected or not approved within ``timeout``: NotApproved;
    ``cancel`` set: WaitCancelled; the server has no queue: NoQueue. Leaving unserved
    leaves the queue and frees a lock taken for it.
    """
    from tracker_ci.waiter import WaitCancelled

    line = _Line(client, key, renew=renew, renew_every=renew_every)
    pending = _Pending(client, event_id, timeout=timeout, lock_wait=lock_wait)
    delay = min(0.25, poll_interval)
    try:
        line.join()
        while True:
            if cancel.is_set():
                raise WaitCancelled
            try:
                line.step(take, slice_seconds=min(delay, _LINE_POLL), on_wait=on_wait)
                pending.read()
            except TrackerError as error:
                if not is_outage(error):
                    raise
                cancel.wait(min(delay, 1.0))  # waited through until a deadline passes
            if pending.approved is not None and line.lock is not None:
                served = (pending.approved, line.lock)
                line.lock = None  # ours now: not freed on the way out
                return served
            left = pending.check(line)
            # In line, the long poll paces the loop; holding the lock, only the approval
            # is awaited: pace the reads.
            if line.lock is not None and cancel.wait(min(delay, left)):
                raise WaitCancelled
            delay = min(delay * 2, poll_interval)
    finally:
        line.leave()


class _Pending:
    """The approval awaited, and the deadlines: the approval's, then the lock's."""

    def __init__(
        self, client: TrackerClient, event_id: str, *, timeout: float, lock_wait: float
    ) -> None:
        self.client = client
        self.event_id = event_id
        self.timeout = timeout
        self.lock_wait = lock_wait
        self.began = time.monotonic()
        self.deadline = self.began + timeout
        self.approved: Event | None = None

    def read(self) -> None:
        """Read the decision while none is known (NotApproved when refused)."""
        if self.approved is None:
            self.approved = _decision(self.client, self.event_id)
            if self.approved is not None:  # from now on, the lock's own wait
                self.deadline = time.monotonic() + self.lock_wait

    def check(self, line: _Line) -> float:
        """Seconds left; raise when the approval (NotApproved) or then the lock
        (LockWaitTimeout) was not had in time."""
        left = self.deadline - time.monotonic()
        if left > 0:
            return left
        if self.approved is None:
            raise NotApproved(
                f"deployment {self.event_id} was not approved within {self.timeout:g} s "
                "(--approval-timeout); the command did not run",
                event_id=self.event_id,
                reason=f"not approved within {self.timeout:g} s",
            )
        raise line.timed_out(time.monotonic() - self.began)


def _decision(client: TrackerClient, event_id: str) -> Event | None:
    """The event once approved, None while undecided; NotApproved when refused."""
    event = client.get_event(event_id)
    decided = is_approved(event)
    if decided is False:
        why = _last(event, ChangeType.rejected) or f"closed as {event.attributes.status}"
        raise NotApproved(
            f"deployment {event_id} was not approved: {why}; the command did not run",
            event_id=event_id,
            reason=why,
        )
    return event if decided else None


class _Line:
    """One place in a lock's queue (the classic protocol: the ticket's turn, then
    ``POST /lock`` naming it), or the lock once taken with it."""

    def __init__(
        self,
        client: TrackerClient,
        key: LineKey,
        *,
        renew: Callable[[Lock], None] | None,
        renew_every: float,
    ) -> None:
        self.client = client
        self.key = key
        self.renew = renew
        self.renew_every = renew_every
        self.ticket = ""
        self.lock: Lock | None = None
        self.holder: Lock | None = None
        self._renewed = self._began = time.monotonic()

    def _visit(self, wait_seconds: float) -> QueueResponse:
        key = self.key
        return self.client.wait_in_queue(
            service=key.service,
            environment=key.environment,
            resource=key.resource,
            who=key.who,
            reason=key.reason,
            job_url=key.job_url,
            ticket=self.ticket,
            wait_seconds=wait_seconds,
            break_glass=key.break_glass,
            new_environment=key.new_environment,
        )

    def join(self) -> None:
        """Take a ticket at the end of the line (NoQueue: the server has no queue)."""
        if self.client.server_is_bundled is False:
            raise NoQueue
        try:
            answer = self._visit(0.0)
        except NotFound:
            raise NoQueue from None
        self._seen(answer)

    def step(
        self, take: Callable[[str], Lock], *, slice_seconds: float, on_wait: OnWait | None
    ) -> None:
        """Keep the place (a short long poll: the answer comes early when the turn
        comes), take the lock when the turn came, or keep the lock's lease."""
        if self.lock is not None:
            if self.renew is not None and time.monotonic() - self._renewed >= self.renew_every:
                self.renew(self.lock)
                self._renewed = time.monotonic()
            return
        if not self.ticket:
            self.join()
        else:
            try:
                self._seen(self._visit(slice_seconds))
            except NotFound:  # the ticket was dropped (a long pause): join again
                self.ticket = ""
                return
        if self.lock is None and self.ticket and self._turn:
            try:
                self.lock = take(self.ticket)
            except LockHeld:  # taken meanwhile by a caller outside the queue
                self.ticket = ""
                return
            self.ticket = ""  # used up by the lock
            self._renewed = time.monotonic()
        elif on_wait is not None and self._place is not None:
            on_wait(self._place, time.monotonic() - self._began)

    _turn = False
    _place: QueuePlace | None = None

    def _seen(self, answer: QueueResponse) -> None:
        assert answer.ticket is not None
        self.ticket = answer.ticket.ticket
        self._turn = answer.ticket.state == "granted"
        self.holder = answer.lock
        from tracker_ci.waiter import QueuePlace

        holder = answer.lock.model_dump() if answer.lock is not None else {}
        self._place = QueuePlace(
            **holder,
            position=answer.ticket.position,
            waiting=len(answer.queue),
            expected_wait_seconds=answer.ticket.expected_wait_seconds,
            frozen_by=answer.frozen_by,
        )

    def timed_out(self, waited: float) -> LockWaitTimeout:
        """The lock still held (or reserved) when the wait after the approval ran out."""
        key = self.key
        holder = self.holder
        return LockWaitTimeout(
            "",
            waited=waited,
            service=key.service,
            environment=key.environment,
            resource=key.resource,
            holder=holder.who if holder is not None else "",
            lock_id=holder.id if holder is not None else "",
            event_id=holder.event_id if holder is not None else "",
        )

    def leave(self) -> None:
        """Leave unserved: give the ticket back, free a lock taken for this deploy."""
        with contextlib.suppress(TrackerError):
            if self.ticket:
                self.client.leave_queue(self.ticket)
            if self.lock is not None:
                self.client.release_lock(self.lock.id)
        self.ticket, self.lock = "", None
