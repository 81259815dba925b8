"""Waiting for a deployment's approval (``deploy run|start --require-approval``).

The lifecycle (:mod:`tracker_ci.deploy`) opens the deployment event as
``waiting_approval``, which takes no lock, and calls :func:`wait_for_approval`: it reads the
event until a reviewer decided. Approved (``tracker-ci event approve``: status ``open``;
or upstream's Approve, an owner-only ``PUT /event`` that leaves the status and writes an
``approved`` changelog entry) answers the event; the lifecycle then queues for the lock as
any deploy does. Rejected (``tracker-ci event reject``: status ``failure``), closed by
anything else, or not decided within the timeout raises :class:`NotApproved` (exit 10).
An outage while waiting is waited through until the timeout: the command never runs
unapproved.
"""

from __future__ import annotations

import threading
import time

from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import NotApproved, TrackerError, is_outage
from tracker_ci.models import ChangeType, Event, Status
from tracker_ci.waiter import WaitCancelled

__all__ = ["DEFAULT_APPROVAL_TIMEOUT", "is_approved", "wait_for_approval"]

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
