"""The deployment lifecycle: every decision about a deployment is made here.

``Deployment.start`` creates a deployment event with status ``start``; the server takes
the deployment lock for (service, environment) at the same time, upstream's Go Tracker
included. When the lock is held it waits in the one lock waiter
(:class:`tracker_ci.waiter.LockWaiter`). ``finish`` closes the event with its final status
(the server sets the duration and releases the lock) and releases the lock itself if a
server did not; ``close`` does the same for an event found by id or as the newest open
deployment, and never rewrites one closed before. ``run`` does the whole thing around a
command: it keeps the lease renewed and closes the event as a failure when the job is
cancelled (SIGINT/SIGTERM).

The fail policy says what a tracking problem does to the deploy: ``closed`` (the default:
a deploy takes the lock, and a lock that cannot be checked protects nothing) raises it;
``open``, an explicit choice, lets an outage (unreachable server, 5xx) before the server
was ever reached go on untracked, telling ``on_warning``. Anything else (a held lock, a
refused token, a bad request) always stops the deploy, and so does an outage during a
wait behind a holder (:class:`tracker_ci.waiter.OutageWhileWaiting`): a deploy is running,
so this one never runs unlocked beside it. Closing is retried through an outage until it
lands or the lease ends (``close_within`` when the lock never expires), so no event is
left open by a short outage.

What the CLI or the GitHub Action show of a deployment is theirs: they pass a
:class:`Reporter`, which is told when the event opened and closed, and decides nothing.

An uncontended ``deploy start`` or ``finish`` builds no pydantic model and imports none:
its bodies are written as the models' ``to_wire()`` would write them (checked by
tests/client/test_light_answers.py) and its answers read as plain records
(``tracker_ci.wire.light``); the waiter and the approval load only when a deploy waits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from tracker_ci.approval import DEFAULT_APPROVAL_TIMEOUT
from tracker_ci.client import TrackerClient, idempotency_key_for
from tracker_ci.deploy_state import DeploymentState, Reporter
from tracker_ci.exceptions import (
    ConfigError,
    InvalidRequest,
    LockHeld,
    LockLost,
    NotApproved,
    NotFound,
    TrackerError,
    is_outage,
)
from tracker_ci.lease import Lease
from tracker_ci.models import (
    CLOSED_STATUSES,
    CLOSING_STATUSES,
    Environment,
    EventType,
    Priority,
    Status,
    format_timestamp,
    parse_finish_status,
    utcnow,
)
from tracker_ci.supervisor import DEFAULT_KILL_AFTER, Supervisor
from tracker_ci.tracing import deploy_trace
from tracker_ci.wire import light
from tracker_ci.wire.vocabulary import NO_SUCH_ROUTE, close_attributes, replacing_body

if TYPE_CHECKING:
    # The waiter, the approval and the models load pydantic: an uncontended deploy
    # start or finish reads plain records (tracker_ci.wire.light) and never needs them.
    from tracker_ci.changes import Shipped
    from tracker_ci.models import Event, Lock
    from tracker_ci.waiter import DEFAULT_POLL_INTERVAL, LockWaiter, OnWait

__all__ = [
    "DEFAULT_APPROVAL_TIMEOUT",
    "DEFAULT_CLOSE_WITHIN",
    "DEFAULT_KILL_AFTER",
    "DEFAULT_POLL_INTERVAL",
    "Deployment",
    "DeploymentOptions",
    "FailPolicy",
    "OnLockLost",
    "OnWait",
    "OnWarning",
    "find_deployment",
    "find_open_deployment",
    "tolerate",
]

FailPolicy = Literal["open", "closed"]
#: What ``run`` does when its lease is lost: stop the command (exit 9), or go on.
OnLockLost = Literal["stop", "continue"]
#: Called with a tracking error that the ``open`` fail policy turned into a warning.
OnWarning = Callable[[TrackerError], None]

#: A key refused as reused means an earlier deployment of the same job took it; give up
#: after this many fresh keys.
_MAX_KEY_GENERATIONS = 20
#: Our server's answer to a key sent again with another body.
_KEY_REUSED = "Idempotency-Key reused"
#: How long closing an event is retried through an outage when no lease bounds it.
DEFAULT_CLOSE_WITHIN = 60.0
#: ... and when the job is being cancelled (the runner's SIGKILL comes ~10 s after).
_CANCELLED_CLOSE_WITHIN = 4.0


def __getattr__(name: str) -> Any:
    """The waiter's names this module gives too, imported when asked for (pydantic)."""
    if name in ("DEFAULT_POLL_INTERVAL", "OnWait"):
        from tracker_ci import waiter

        return getattr(waiter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def find_deployment(
    client: TrackerClient,
    *,
    event_id: str | None = None,
    service: str = "",
    environment: Environment | str = "",
) -> Event:
    """The deployment event named by id, else the newest open deployment of the service
    (its plain record, ``tracker_ci.wire.light``: it reads like the model)."""
    if event_id:
        return client.get_event(event_id, light=True)
    env = Environment.parse(environment)
    answer = client.search_events(
        service=service,
        environment=env,
        type=EventType.deployment,
        status=Status.start,
        light=True,
    )
    if not answer.events:  # opened without a lock (``lock=False``)
        answer = client.search_events(
            service=service,
            environment=env,
            type=EventType.deployment,
            status=Status.open,
            light=True,
        )
    if not answer.events:
        raise NotFound(
            f"no open deployment of {service} in {env.value} to finish "
            "(give --event-id or set TRACKER_EVENT_ID)",
            status_code=404,
        )
    return max(
        answer.events,
        key=lambda e: (e.metadata.created_at is not None, e.metadata.created_at),
    )


def find_open_deployment(
    client: TrackerClient,
    *,
    fail_policy: FailPolicy,
    on_warning: OnWarning | None = None,
    event_id: str | None = None,
    service: str = "",
    environment: Environment | str = "",
) -> Event | None:
    """``find_deployment`` under the fail policy: None when ``open`` lets an outage pass
    (the deployment is then not closed, and ``on_warning`` is told)."""
    try:
        return find_deployment(client, event_id=event_id, service=service, environment=environment)
    except TrackerError as error:
        tolerate(fail_policy, error, on_warning)
        return None


def tolerate(fail_policy: FailPolicy, error: TrackerError, on_warning: OnWarning | None) -> None:
    """THE fail policy: raise a tracking error, or (``open`` and an outage) tell
    ``on_warning`` and let the caller go on untracked."""
    if fail_policy != "open" or not is_outage(error):
        raise error
    if on_warning is not None:
        on_warning(error)


@dataclass(frozen=True, kw_only=True)
class DeploymentOptions:
    """What a deployment is and how it behaves: the lifecycle's one typed input.

    Built by the CLI from its options, settings and CI context (the GitHub Action goes
    through the CLI); checked here, so a bad value is a ConfigError (exit 2) wherever it
    comes from."""

    service: str
    environment: Environment | str
    title: str = ""
    message: str = ""
    priority: Priority | str = Priority.P3
    owner: str = ""
    pr_url: str = ""
    ticket: str = ""
    source: str = "tracker-ci"
    #: The lease in seconds, renewed while ``run`` runs (0: the lock never expires).
    lock_ttl: int = 0
    fail_policy: FailPolicy = "closed"
    on_lock_lost: OnLockLost = "stop"
    #: Why this deploy holds the lock; a reason to pass a hard freeze; the CI job.
    reason: str = ""
    break_glass: str = ""
    job_url: str = ""
    idempotency_key: str | None = None
    #: Seconds between two looks while waiting (None: the waiter's DEFAULT_POLL_INTERVAL).
    poll_interval: float | None = None
    #: How long closing is retried through an outage at most (None: until the lease ends,
    #: or DEFAULT_CLOSE_WITHIN when the lock never expires).
    close_within: float | None = None
    #: False: open the event with status ``open``, which takes no lock on either server
    #: (the action's ``lock_enable: false``); nothing keeps another deploy out.
    lock: bool = True
    #: Open the event as ``waiting_approval`` (no lock) and go on only once another token
    #: approved it (tracker_ci.approval); rejected or not approved in time: NotApproved.
    require_approval: bool = False
    #: How long to wait for the approval, in seconds.
    approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT
    #: The environment is a new name, not a misspelling (our server refuses a name close
    #: to one the service used unless told: ``--new-environment``).
    new_environment: bool = False

    def __post_init__(self) -> None:
        if not self.service or not self.service.strip():
            raise ConfigError("a deployment needs a service name (--service or TRACKER_SERVICE)")
        if self.fail_policy not in ("open", "closed"):
            raise ConfigError(f"fail policy must be 'open' or 'closed', not {self.fail_policy!r}")
        if self.on_lock_lost not in ("stop", "continue"):
            raise ConfigError(
                f"on lock lost must be 'stop' or 'continue', not {self.on_lock_lost!r}"
            )
        if self.lock_ttl < 0:
            raise ConfigError(f"the lock TTL must be 0 (none) or more seconds, not {self.lock_ttl}")
        if self.approval_timeout <= 0:
            raise ConfigError(
                f"the approval timeout must be more than 0 seconds, not {self.approval_timeout}"
            )
        try:
            environment = Environment.parse(self.environment)
            priority = Priority.parse(self.priority)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        object.__setattr__(self, "service", self.service.strip())
        object.__setattr__(self, "environment", environment)
        object.__setattr__(self, "priority", priority)


class Deployment:
    """One deployment of a service to an environment, tracked on a Tracker server."""

    #: What it ships (revision, changes): ``start`` asks ``ship_lookup`` once, which never
    #: raises (tracker_ci.changes.find_shipped); the event records it on our server.
    ship_lookup: Callable[[], Shipped] | None = None
    shipped: Shipped | None = None
    #: Told once the event waits for its approval (``require_approval``): the surface
    #: prints where to approve it.
    announce_approval: Callable[[DeploymentState], None] | None = None

    def __init__(
        self,
        client: TrackerClient,
        options: DeploymentOptions,
        *,
        reporter: Reporter | None = None,
        on_warning: OnWarning | None = None,
        evict_dead_holder: Callable[[Lock], str | None] | None = None,
    ) -> None:
        self.client = client
        #: What this deployment is and how it behaves (validated, normalised).
        self.options = options
        self.service = options.service
        self.environment = Environment.parse(options.environment)
        self.priority = Priority.parse(options.priority)
        self.title = options.title or f"Deploy {self.service} to {self.environment}"
        self.owner = options.owner
        self.pr_url = options.pr_url
        self.lock_ttl = options.lock_ttl
        self.reporter = reporter
        self.on_warning = on_warning
        #: Why a holder's CI job has ended (then it is evicted), or None: see ci/jobs.py.
        self.evict_dead_holder = evict_dead_holder
        #: Why the lease was lost while ``run`` ran its command ("" while held).
        self.lock_lost = ""
        #: The lock's lease: when it was taken, renewed while ``run`` runs its command.
        self.lease = Lease(client, self.lock_ttl, on_lost=self._lose_lock, on_renewed=self._renewed)
        #: The last state this deployment reached (opened or closed).
        self.last_state: DeploymentState | None = None
        #: The lock the queue's grant took with the event it opened (no need to look it up).
        self._granted_lock: Lock | None = None
        #: Leave a granted lock's claim to the lease (``run``, which keeps it while the
        #: command runs; ``start`` claims before it answers).
        self._claim_later = False
        #: Close by id in one request while the server has the route (``_close_by_id``).
        self._closes_by_id = True
        # The owner of signals and of the command while ``run`` runs; its ``wake`` cancels
        # any wait at once.
        self.supervisor = Supervisor()

    # ------------------------------------------------------------------- policy
    def _tolerate(self, error: TrackerError) -> None:
        """Apply the fail policy to a tracking error: raise it, or warn and go on."""
        tolerate(self.options.fail_policy, error, self.on_warning)

    def _untracked(self) -> DeploymentState:
        return DeploymentState(
            service=self.service,
            environment=self.environment.value,
            status="untracked",
            started_at=utcnow(),
        )

    def _report(self, stage: Literal["opened", "closed"], state: DeploymentState) -> None:
        self.last_state = state
        if self.reporter is not None:
            getattr(self.reporter, stage)(self, state)

    def _state_of(self, event: Event, **fields: Any) -> DeploymentState:
        """The state of an event, linking to its dashboard page on our server."""
        page = bool(self.client.server_is_bundled)
        return DeploymentState.of_event(event, self.client.base_url, page=page, **fields)

    # -------------------------------------------------------------------- start
    def _create_body(
        self,
        status: Status | None = None,
        *,
        started: Any = None,
        ended: Any = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        """The deployment event's CreateEventRequest as ``to_wire()`` writes it, without
        pydantic (tests/client/test_light_answers.py checks it against the model)."""
        if status is None:
            status = Status.start if self.options.lock else Status.open
        text = self.options.message
        if message:
            text = f"{text}\n{message}" if text else message
        shipped = self.shipped
        attributes = light.build(
            "EventAttributes",
            message=text,
            source=self.options.source,
            type=EventType.deployment.value,
            priority=self.priority.value,
            service=self.service,
            status=status.value,
            environment=self.environment.value,
            start_date=format_timestamp(started or utcnow()),
            end_date=format_timestamp(ended) if ended is not None else None,
            owner=self.owner,
            revision=shipped.revision if shipped else "",
            changes=[change.to_wire() for change in shipped.changes] if shipped else [],
        )
        links = light.build("EventLinks", pull_request_link=self.pr_url, ticket=self.options.ticket)
        return {
            "title": self.title,
            "attributes": attributes.to_wire(),
            "links": links.to_wire(),
            "slackId": "",
            "lockTtlSeconds": 0,
            "lockReason": self.options.reason,
            "jobUrl": self.options.job_url,
            "breakGlass": self.options.break_glass,
            "queueTicket": "",
        }

    @property
    def poll_interval(self) -> float:
        """Seconds between two looks while waiting (the waiter's default unless set)."""
        if self.options.poll_interval is not None:
            return self.options.poll_interval
        from tracker_ci.waiter import DEFAULT_POLL_INTERVAL

        return DEFAULT_POLL_INTERVAL

    def waiter(
        self,
        wait: float,
        on_wait: OnWait | None,
        open_event: dict[str, Any] | None = None,
        claim_later: bool = False,
    ) -> LockWaiter:
        """The lock waiter of this deployment's lock (cancelled by ``run``'s signals);
        with ``open_event`` (the event's create body) its grant opens the event too;
        ``claim_later``: a granted lock's claim is left to the lease (``run``)."""
        from tracker_ci.waiter import LockWaiter

        return LockWaiter(
            self.client,
            service=self.service,
            environment=self.environment.value,
            wait=wait,
            on_wait=on_wait,
            poll_interval=self.poll_interval,
            cancel=self.supervisor.wake,
            who=self.owner,
            reason=self.options.reason,
            job_url=self.options.job_url,
            break_glass=self.options.break_glass,
            evict_dead_holder=self.evict_dead_holder,
            ttl_seconds=self.lock_ttl,  # a grant's lease (only a grant sends it)
            open_event=(
                {**open_event, "lockTtlSeconds": self.lock_ttl} if open_event is not None else None
            ),
            claim_later=claim_later,
        )

    def start(self, wait: float = 0, on_wait: OnWait | None = None) -> DeploymentState:
        """Open the deployment event and its lock, waiting up to ``wait`` s for a held lock."""
        if self.ship_lookup is not None and self.shipped is None:
            self.shipped = self.ship_lookup()
        try:
            if self.options.require_approval:
                event = self._approved(wait, on_wait)
            else:
                event = self._open(wait, on_wait)
            lock = self._lock_of(event) if self.options.lock else None
        except TrackerError as error:
            if self.options.require_approval:
                raise  # never deploy unapproved, whatever the fail policy
            self._tolerate(error)
            state = self._untracked()
        else:
            state = self._state_of(
                event,
                lock_id=lock.id if lock is not None else "",
                lock_expires_at=lock.expires_at if lock is not None else None,
                fence=lock.fence if lock is not None else 0,
                service=self.service,
                environment=self.environment.value,
                status=event.attributes.status.value or Status.start.value,
                duration=None,
            )
        self._report("opened", state)
        return state

    def _open(self, wait: float, on_wait: OnWait | None) -> Event:
        """Create the event; only when its lock is held does the waiter (imported then) go
        on waiting, from that answer, as if it had sent the first try itself. In the
        server's queue the grant opens the event (one answer carries the event and its
        lock, which the waiter claims); a server that cannot answers the turn, and the
        waiter creates it naming its ticket."""
        body = self._create_body()
        create = self._creator(body=body)
        self._granted_lock = None
        if self.supervisor.wake.is_set():  # cancelled already: the waiter says so
            return self.waiter(wait, on_wait).run(create)
        try:
            return create("")
        except LockHeld as error:
            held: LockHeld | None = error

        def attempt(ticket: str) -> Event:
            nonlocal held
            if held is not None:  # the waiter's first try: the answer already received
                error, held = held, None
                raise error
            return create(ticket)

        waiter = self.waiter(wait, on_wait, open_event=body, claim_later=self._claim_later)

        try:
            return waiter.run(attempt, granted=lambda lock: self._granted(waiter, lock))
        except BaseException:
            # Cancelled (or failed) after a grant opened our event, before our claim: the
            # waiter gave the lock back; the event never ran.
            if waiter.event is not None and self._granted_lock is None:
                waiter.unclaimed.append(waiter.event)
            raise
        finally:
            for event in waiter.unclaimed:
                self._close_unrun(event.id, "its lock was granted but never claimed")

    def _granted(self, waiter: LockWaiter, lock: Lock) -> Event:
        """The event of a lock the queue granted us (opened with it, as a rule)."""
        # The lease runs from the request whose answer took (or claimed) the lock.
        self.lease.sent = waiter.asked_at
        self._granted_lock = lock
        if waiter.claim is not None:  # claimed by the lease while the command starts
            self.lease.granted(waiter.claim, _claim_window(lock))
        if waiter.event is not None:
            return waiter.event
        return self.client.get_event(lock.event_id, light=True)

    def record(
        self, status: Status | str, message: str | None = None, *, started_at: Any = None
    ) -> DeploymentState:
        """Record a deployment that has already ended: one event created closed, with no
        lock (upstream's one-step use of its action). ``started_at`` (a datetime), when
        known, is its start date and gives the reported duration."""
        final = self._final_status(status)
        ended = utcnow()
        body = self._create_body(final, started=started_at or ended, ended=ended, message=message)
        key = self.options.idempotency_key or idempotency_key_for(
            self.service, self.environment.value, "deploy-record"
        )
        try:
            event = self.client.create_event(body, idempotency_key=key, light=True)
        except TrackerError as error:
            self._tolerate(error)
            result = replace(self._untracked(), status=final.value)
        else:
            took = (ended - started_at).total_seconds() if started_at else None
            result = self._state_of(event, status=final.value, detail=message or "")
            if result.duration is None and took is not None:
                result = replace(result, duration=max(took, 0.0))
        self._report("closed", result)
        return result

    def _creator(
        self, status: Status | None = None, body: dict[str, Any] | None = None
    ) -> Callable[[str], Event]:
        """The attempt the waiter repeats: create the event (one body, one key per try)."""
        if body is None:
            body = self._create_body(status)  # written once: a repeat sends the same body
        base_key = self.options.idempotency_key or idempotency_key_for(
            self.service, self.environment.value, "deploy-start"
        )
        generation = 0

        def create(ticket: str) -> Event:
            nonlocal generation
            while True:
                # The same key while waiting: the server keeps only successful answers.
                key = f"{base_key}.{generation}" if base_key else None
                self.lease.sending()
                try:
                    return self.client.create_event(
                        body,
                        idempotency_key=key,
                        lock_ttl_seconds=self.lock_ttl,
                        queue_ticket=ticket,
                        new_environment=self.options.new_environment,
                        light=True,
                    )
                except InvalidRequest as error:
                    # The key went to another request of this job (an earlier deploy of
                    # the same service and environment): this one needs a fresh key.
                    reused = key and _KEY_REUSED in error.server_message
                    if not reused or generation + 1 >= _MAX_KEY_GENERATIONS:
                        raise
                    generation += 1

        return create

    # ------------------------------------------------------------------ approval
    def _approved(self, wait: float, on_wait: OnWait | None) -> Event:
        """Open the event as ``waiting_approval`` (no lock), wait for its approval, then
        queue for the lock like any deploy and mark the event started. Rejected or not
        approved in time: the event is closed as failure and NotApproved raised."""
        from tracker_ci.waiter import WaitCancelled

        event = self._creator(Status.waiting_approval)("")
        if self.announce_approval is not None:
            self.announce_approval(self._state_of(event))
        with self._signals_while_approving() as own_signals:
            try:
                approved = self._approval_of(event, wait, on_wait)
            except WaitCancelled:
                self._close_unrun(event.id, "cancelled while waiting for approval")
                if own_signals:  # `deploy start`: no `run` turns the cancel into its code
                    signum = self.supervisor.interrupted or signal.SIGTERM
                    raise SystemExit(128 + signum) from None
                raise
        status = Status.start if self.options.lock else Status.open
        if approved.attributes.status == status:
            return approved
        return self.client.update_event(
            _update_body(approved, status, event_id=event.id, close=False), light=True
        )

    @contextlib.contextmanager
    def _signals_while_approving(self) -> Iterator[bool]:
        """SIGINT/SIGTERM cancel the approval wait (so that the event is closed, not left
        waiting_approval): ``run``'s supervisor already owns them; ``deploy start`` takes
        them here (True: taken here)."""
        owned = signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        if owned or threading.current_thread() is not threading.main_thread():
            yield False
            return
        with self.supervisor.signals():
            yield True

    def _approval_of(self, event: Event, wait: float, on_wait: OnWait | None) -> Event:
        """The approved event, its lock taken (``lock``). With a wait and a lock queue the
        deploy holds its place in line while the approval is pending (and takes the lock
        when its turn comes first); otherwise it queues once approved. Not approved, or
        the lock not taken: the event is closed as failure and the error raised."""
        from tracker_ci.approval import (
            LineKey,
            NoQueue,
            wait_for_approval,
            wait_in_line_for_approval,
        )
        from tracker_ci.waiter import WaitCancelled

        if self.options.lock and wait > 0:
            try:
                approved, _lock = wait_in_line_for_approval(
                    self.client,
                    event.id,
                    key=LineKey(
                        service=self.service,
                        environment=self.environment.value,
                        who=self.owner,
                        reason=self.options.reason,
                        job_url=self.options.job_url,
                        break_glass=self.options.break_glass,
                        new_environment=self.options.new_environment,
                    ),
                    take=lambda ticket: self._lock_for(event.id, ticket),
                    renew=self._renew_while_approving if self.lock_ttl else None,
                    renew_every=max(1.0, self.lock_ttl / 3),
                    timeout=self.options.approval_timeout,
                    lock_wait=wait,
                    poll_interval=self.poll_interval,
                    cancel=self.supervisor.wake,
                    on_wait=on_wait,
                )
                return approved
            except NoQueue:
                pass  # no queue on this server: approve first, then queue
            except NotApproved as refused:
                self._close_unrun(event.id, f"not approved: {refused.reason}")
                raise
            except TrackerError as error:
                self._close_unrun(event.id, f"the lock was not taken: {error}")
                raise
        try:
            approved = wait_for_approval(
                self.client,
                event.id,
                timeout=self.options.approval_timeout,
                poll_interval=self.poll_interval,
                cancel=self.supervisor.wake,
            )
        except NotApproved as refused:
            self._close_unrun(event.id, f"not approved: {refused.reason}")
            raise
        if self.options.lock:
            try:
                self.waiter(wait, on_wait).run(lambda ticket: self._lock_for(event.id, ticket))
            except (TrackerError, WaitCancelled) as error:
                self._close_unrun(
                    event.id, f"approved, but the lock was not taken: {error or 'cancelled'}"
                )
                raise
        return approved

    def _renew_while_approving(self, lock: Lock) -> None:
        """Keep the lease of a lock taken in line while the approval is pending."""
        self.lease.sending()
        self.client.renew_lock(lock.id, self.lock_ttl)

    def _lock_for(self, event_id: str, ticket: str) -> Lock:
        """Take the deployment lock for an approved event (its turn, with a ticket)."""
        self.lease.sending()
        return self.client.acquire_lock(
            service=self.service,
            environment=self.environment,
            who=self.owner,
            event_id=event_id,
            ttl_seconds=self.lock_ttl,
            reason=self.options.reason,
            job_url=self.options.job_url,
            break_glass=self.options.break_glass,
            queue_ticket=ticket,
            new_environment=self.options.new_environment,
        )

    def _close_unrun(self, event_id: str, why: str) -> None:
        """Close a deployment that never ran as failure (a rejected one is closed already)."""
        try:
            event = self.client.get_event(event_id, light=True)
            if event.attributes.status.value not in CLOSED_STATUSES:
                self._close(event, Status.failure, why)
        except TrackerError as error:
            print(f"tracker-ci: could not close event {event_id}: {error}", file=sys.stderr)

    def _lock_of(self, event: Event) -> Lock | None:
        granted = self._granted_lock
        if granted is not None and granted.event_id == event.id:
            return granted
        try:
            locks = self.client.locks_for_event(event.id, light=True)
        except TrackerError:
            return None  # the event exists and holds its lock; only the id is unknown
        return locks[0] if locks else None

    # ------------------------------------------------------------------- finish
    def finish(
        self,
        state_or_event_id: DeploymentState | str,
        status: Status | str,
        message: str | None = None,
    ) -> DeploymentState:
        """Close the event with ``status`` (keeping its other fields) and free its lock."""
        final = self._final_status(status)
        if isinstance(state_or_event_id, DeploymentState):
            state = state_or_event_id
        else:
            state = DeploymentState(
                event_id=state_or_event_id,
                service=self.service,
                environment=self.environment.value,
            )
        untouched = replace(state, status=final.value, detail=message or "")
        if not state.tracked:
            result = untouched
        else:
            key = str(uuid.uuid4())  # the same for every try: a repeat closes once
            try:
                result = self._retrying(
                    lambda: self._close_by_id(
                        state.event_id, final, message, lock_id=state.lock_id, key=key
                    )
                )
            except TrackerError as error:
                self._tolerate(error)
                result = replace(untouched, left_open=True)
        self._report("closed", result)
        return result

    def _retrying(self, close: Callable[[], DeploymentState]) -> DeploymentState:
        """Close through an outage: again with backoff until it lands or the lease ends
        (DEFAULT_CLOSE_WITHIN without a lease; at most ``close_within`` when set; a few
        seconds when the job is cancelled)."""
        budget = DEFAULT_CLOSE_WITHIN
        lease_left = self.lease.remaining()
        if lease_left is not None:
            budget = lease_left
        if self.options.close_within is not None:
            budget = min(budget, self.options.close_within)
        if self.supervisor.interrupted is not None:
            budget = min(budget, _CANCELLED_CLOSE_WITHIN)
        deadline = time.monotonic() + budget
        delay = 0.25
        while True:
            try:
                return close()
            except TrackerError as error:
                left = deadline - time.monotonic()
                if not is_outage(error) or left <= 0:
                    raise
                print(
                    f"tracker-ci: could not close the deployment event yet ({error}); "
                    f"trying again for up to {left:.0f}s",
                    file=sys.stderr,
                )
                time.sleep(min(delay, left))
                delay = min(delay * 2, 5.0)

    def close(
        self,
        event: Event,
        status: Status | str,
        message: str | None = None,
        *,
        if_open: bool = False,
    ) -> DeploymentState:
        """Close a deployment event found before; one closed before is never rewritten.

        Closing it again would move its status, duration and changelog (a retried job, a
        script that finished before the post step did). With the same status (or
        ``if_open``) that is nothing to do; with another status it is a ConfigError.
        """
        final = self._final_status(status)
        closed_as = event.attributes.status.value
        if closed_as not in CLOSED_STATUSES:
            try:
                result = self._retrying(lambda: self._close(event, final, message))
            except TrackerError as error:
                self._tolerate(error)
                result = self._state_of(event)
            self._report("closed", result)
            return result
        if closed_as != final.value and not if_open:
            raise ConfigError(
                f"deployment event {event.id} is already closed as {closed_as}; to change "
                f"its status: tracker-ci event update {event.id} --status {final.value}"
            )
        result = self._state_of(event, closed_before=True)
        self._report("closed", result)
        return result

    @staticmethod
    def _final_status(status: Status | str) -> Status:
        try:
            return parse_finish_status(status.value if isinstance(status, Status) else status)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def _close_by_id(
        self, event_id: str, status: Status, message: str | None, *, lock_id: str, key: str
    ) -> DeploymentState:
        """Close the event named by id: on our server in one request that reads nothing
        first (``POST /event/{id}/close``, ``key`` its idempotency key); on upstream, or an
        older server of ours without that route, read it and replace it."""
        if self.client.server_is_bundled and self._closes_by_id:
            try:
                updated = self.client.close_event(
                    event_id, status.value, message or "", idempotency_key=key, light=True
                )
            except NotFound as error:
                if not error.server_message.startswith(NO_SUCH_ROUTE):
                    raise
                self._closes_by_id = False  # an older server: as upstream, from now on
            else:
                return self._closed(updated, event_id, status, message, lock_id=lock_id)
        event = self.client.get_event(event_id, light=True)
        return self._close(event, status, message, lock_id=lock_id)

    def _close(
        self, event: Event, status: Status, message: str | None, *, lock_id: str = ""
    ) -> DeploymentState:
        updated = self.client.update_event(_update_body(event, status, message), light=True)
        return self._closed(updated, event.id, status, message, lock_id=lock_id)

    def _closed(
        self, updated: Event, event_id: str, status: Status, message: str | None, *, lock_id: str
    ) -> DeploymentState:
        """The state of an event just closed, its lock freed."""
        # Our server and upstream release the automatic lock on success, failure and
        # done (CLOSING_STATUSES): trusted. Any other final status leaves it held there.
        if status not in CLOSING_STATUSES:
            for lock in self.client.locks_for_event(event_id, light=True):
                self.client.release_lock(lock.id)
        if not updated.id:
            updated.metadata.id = event_id
        return self._state_of(
            updated,
            lock_id=lock_id,
            service=updated.attributes.service or self.service,
            status=status.value,
            detail=message or "",
        )

    # ---------------------------------------------------------------------- run
    def run(
        self,
        argv: Sequence[str],
        *,
        wait: float = 0,
        on_wait: OnWait | None = None,
        heartbeat: float | None = None,
        kill_after: float = DEFAULT_KILL_AFTER,
        process_group: bool = False,
    ) -> int:
        """Start, run ``argv``, finish by its exit code; return that code (130/143 on a signal).

        ``heartbeat`` is the time between lock renewals (default ``lock_ttl / 3``; locks
        without a TTL are never renewed). The command sees ``TRACKER_EVENT_ID`` and
        ``TRACKER_LOCK_ID``. ``process_group`` runs it in a process group of its own and
        passes signals to the whole group (a shell does not pass SIGTERM on).
        """
        if not argv:
            raise ConfigError("deploy run needs a command to run (after --)")
        from tracker_ci.waiter import WaitCancelled

        self.supervisor = Supervisor(group=process_group, kill_after=kill_after)
        with self.supervisor.signals() as supervisor, deploy_trace(self) as trace:
            try:
                with trace.span("lock wait"):
                    # The lease below claims a lock the queue grants while the command
                    # starts: the claim is not on the way from the grant to the command.
                    self._claim_later = True
                    state = self.start(wait=wait, on_wait=on_wait)
            except WaitCancelled:
                return 128 + (supervisor.interrupted or signal.SIGTERM)
            if supervisor.interrupted is not None:
                return self._cancelled(state, None)
            with (
                self.lease.kept(state.lock_id, heartbeat) as keep,
                trace.span("command", command=argv) as span,
            ):
                code = supervisor.run(argv, self._command_env(state), on_start=keep)
                span.exit_code(code)
            if supervisor.interrupted is not None:
                return self._cancelled(state, code)
            if self.lock_lost and self.options.on_lock_lost == "stop":
                self._lost(state, code)
            # Still inside the handlers: a late signal must not cut the closing short.
            status = Status.success if code == 0 else Status.failure
            detail = None if code == 0 else f"the deploy command exited with code {code}"
            self.finish(state, status, detail)
            return code

    @staticmethod
    def _command_env(state: DeploymentState) -> dict[str, str]:
        return {
            **os.environ,
            "TRACKER_EVENT_ID": state.event_id,
            "TRACKER_LOCK_ID": state.lock_id,
            # The fencing token: `tracker-ci lock check --fence "$TRACKER_FENCE"`.
            "TRACKER_FENCE": str(state.fence),
        }

    def _lost(self, state: DeploymentState, code: int) -> None:
        """Close the event as failure (if the server lets us) and raise LockLost (exit 9)."""
        detail = f"lock lost: {self.lock_lost}; the deploy command was stopped (exit code {code})"
        try:
            self.finish(state, Status.failure, detail)
        except TrackerError as error:
            print(
                f"tracker-ci: could not close event {state.event_id} as failure: {error}",
                file=sys.stderr,
            )
        raise LockLost(
            f"the lock of {self.service} in {self.environment.value} was lost "
            f"({self.lock_lost}); the deploy command was stopped (it exited with code {code}) "
            "so that it does not run beside the next holder",
            service=self.service,
            environment=self.environment.value,
            lock_id=state.lock_id,
        )

    def _cancelled(self, state: DeploymentState, code: int | None) -> int:
        signum = self.supervisor.interrupted or signal.SIGTERM
        detail = f"cancelled by {signal.Signals(signum).name}"
        if code is not None:
            detail += f" (the deploy command exited with code {code})"
        self.finish(state, Status.failure, detail)
        return 128 + signum

    def _renewed(self, lock: Lock) -> None:
        if self.last_state is not None:
            self.last_state.lock_expires_at = lock.expires_at

    def _lose_lock(self, reason: str) -> None:
        """The lease is gone: stop the command (policy ``stop``) or say so and go on."""
        self.lock_lost = reason
        what = f"the lock of {self.service} in {self.environment.value}"
        if self.options.on_lock_lost == "continue":
            print(
                f"tracker-ci: warning: {what} is lost ({reason}); the deploy command goes on "
                "without it (--on-lock-lost continue)",
                file=sys.stderr,
            )
            return
        print(
            f"tracker-ci: {what} is lost ({reason}); stopping the deploy command",
            file=sys.stderr,
        )
        self.supervisor.stop_child()  # SIGTERM, SIGKILL after kill_after


def _claim_window(lock: Lock) -> float:
    """How long a granted lock lasts until claimed (the server's claim window)."""
    assert lock.expires_at is not None and lock.created_at is not None
    return (lock.expires_at - lock.created_at).total_seconds()


def _update_body(
    event: Event,
    status: Status,
    message: str | None = None,
    *,
    event_id: str = "",
    close: bool = True,
) -> dict[str, Any]:
    """The UpdateEventRequest that gives ``event`` (its model or plain record) ``status``
    and, when closing, the ``message`` appended and an end date (now, unless it has one):
    as ``to_wire()`` writes it, without pydantic (tests/client/test_light_answers.py checks
    it against the model)."""
    wire = event.to_wire()
    attributes = wire["attributes"]
    if close:
        attributes = close_attributes(attributes, status.value, message, format_timestamp(utcnow()))
    else:
        attributes["status"] = status.value
    return replacing_body(wire, attributes, event_id)
