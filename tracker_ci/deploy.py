"""The deployment lifecycle: open the event (taking the lock), run, close, release.

``Deployment.start`` creates a deployment event with status ``start``; the server takes
the deployment lock for (service, environment) at the same time, upstream's Go Tracker
included. When the lock is held it waits, polling, until the lock is free or ``wait``
seconds have passed. ``finish`` closes the event with its final status (the server sets
the duration and releases the lock) and releases the lock itself if a server did not.
``run`` does the whole thing around a command, closing the event as a failure when the
job is cancelled (SIGINT/SIGTERM).

The fail policy says what a tracking problem does to the deploy: ``closed`` raises it;
``open`` hands it to ``on_warning`` and lets the deploy go on untracked. A held lock is
never a tracking problem: it always stops the deploy.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from tracker_ci.client import TrackerClient, idempotency_key_for
from tracker_ci.exceptions import (
    ConfigError,
    InvalidRequest,
    LockHeld,
    LockWaitTimeout,
    TrackerError,
)
from tracker_ci.models import (
    API_PREFIX,
    CreateEventRequest,
    Environment,
    Event,
    EventAttributes,
    EventLinks,
    EventType,
    Lock,
    Priority,
    Status,
    Timestamp,
    UpdateEventRequest,
    utcnow,
)

__all__ = [
    "DEFAULT_KILL_AFTER",
    "DEFAULT_POLL_INTERVAL",
    "Deployment",
    "DeploymentState",
    "FailPolicy",
    "OnWait",
    "OnWarning",
    "describe_wait",
    "event_url",
]

FailPolicy = Literal["open", "closed"]
#: Called while waiting for a held lock: the holder's lock (or the error when the lock
#: could not be read) and the seconds waited so far.
OnWait = Callable[[Lock | LockHeld, float], None]
#: Called with a tracking error that the ``open`` fail policy turned into a warning.
OnWarning = Callable[[TrackerError], None]

DEFAULT_POLL_INTERVAL = 2.0
#: How long a cancelled command may take to exit before it is killed (CI runners send
#: SIGKILL about 10 s after the first signal; the event must be closed before that).
DEFAULT_KILL_AFTER = 5.0
#: A key refused as reused means an earlier deployment of the same job took it; give up
#: after this many fresh keys.
_MAX_KEY_GENERATIONS = 20
#: Our server's answer to a key sent again with another body.
_KEY_REUSED = "Idempotency-Key reused"


def event_url(base_url: str, event_id: str) -> str:
    """The API address of an event: ``<base>/api/v1alpha1/event/<id>``."""
    return f"{base_url.rstrip('/')}{API_PREFIX}/event/{event_id}"


class DeploymentState(BaseModel):
    """Where a deployment stands; ``to_dict()`` is what the CLI prints and outputs."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True)

    event_id: str = ""
    lock_id: str = ""
    service: str = ""
    environment: str = ""
    #: ``start``, then the closing status; ``untracked`` when the open fail policy let
    #: the deploy go on without an event.
    status: str = ""
    started_at: Timestamp | None = None
    #: Seconds, once the event is closed.
    duration: float | None = None
    event_url: str = ""

    @property
    def tracked(self) -> bool:
        """Whether an event records this deployment."""
        return bool(self.event_id)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready camelCase dict (eventId, lockId, ..., eventUrl)."""
        return self.model_dump(mode="json", by_alias=True)


class _Interrupted(Exception):
    """A signal arrived while waiting for the lock."""


class Deployment:
    """One deployment of a service to an environment, tracked on a Tracker server."""

    def __init__(
        self,
        client: TrackerClient,
        *,
        service: str,
        environment: Environment | str,
        title: str = "",
        message: str = "",
        priority: Priority | str = Priority.P3,
        owner: str = "",
        pr_url: str = "",
        ticket: str = "",
        source: str = "tracker-ci",
        lock_ttl: int = 0,
        fail_policy: FailPolicy = "closed",
        on_warning: OnWarning | None = None,
        idempotency_key: str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        if not service or not service.strip():
            raise ConfigError("a deployment needs a service name (--service or TRACKER_SERVICE)")
        if fail_policy not in ("open", "closed"):
            raise ConfigError(f"fail policy must be 'open' or 'closed', not {fail_policy!r}")
        if lock_ttl < 0:
            raise ConfigError(f"the lock TTL must be 0 (none) or more seconds, not {lock_ttl}")
        try:
            self.environment = Environment.parse(environment)
            self.priority = Priority.parse(priority)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.client = client
        self.service = service.strip()
        self.title = title or f"Deploy {self.service} to {self.environment}"
        self.message = message
        self.owner = owner
        self.pr_url = pr_url
        self.ticket = ticket
        self.source = source
        self.lock_ttl = lock_ttl
        self.fail_policy = fail_policy
        self.on_warning = on_warning
        self.idempotency_key = idempotency_key
        self.poll_interval = poll_interval
        # Set by the signal handler of ``run``; wakes any wait early.
        self._interrupted: int | None = None
        self._signalled_at: float | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._wake = threading.Event()

    # ------------------------------------------------------------------- policy
    def _tolerate(self, error: TrackerError) -> None:
        """Apply the fail policy to a tracking error: raise it, or warn and go on."""
        if self.fail_policy == "closed" or isinstance(error, LockHeld):
            raise error
        if self.on_warning is not None:
            self.on_warning(error)

    def _untracked(self) -> DeploymentState:
        return DeploymentState(
            service=self.service,
            environment=self.environment.value,
            status="untracked",
            started_at=utcnow(),
        )

    # -------------------------------------------------------------------- start
    def _create_request(self) -> CreateEventRequest:
        return CreateEventRequest(
            title=self.title,
            attributes=EventAttributes(
                message=self.message,
                source=self.source,
                type=EventType.deployment,
                priority=self.priority,
                service=self.service,
                status=Status.start,
                environment=self.environment,
                start_date=utcnow(),
                owner=self.owner,
            ),
            links=EventLinks(pull_request_link=self.pr_url, ticket=self.ticket),
        )

    def _holder(self, held: LockHeld) -> Lock | LockHeld:
        """The holder's lock record when it can be read, else the error as it came."""
        try:
            lock = self.client.find_lock(
                service=self.service,
                environment=self.environment.value,
                resource=held.resource or "deployment",
            )
        except TrackerError:
            return held
        return lock if lock is not None else held

    def _state(self, event: Event, lock: Lock | None, status: str) -> DeploymentState:
        duration = event.metadata.duration
        return DeploymentState(
            event_id=event.id,
            lock_id=lock.id if lock is not None else "",
            service=self.service,
            environment=self.environment.value,
            status=status,
            started_at=event.attributes.start_date or event.metadata.created_at,
            duration=duration.total_seconds() if duration is not None else None,
            event_url=event_url(self.client.base_url, event.id),
        )

    def start(self, wait: float = 0, on_wait: OnWait | None = None) -> DeploymentState:
        """Open the deployment event and its lock, waiting up to ``wait`` s for a held lock."""
        try:
            event, lock = self._open(wait, on_wait)
        except TrackerError as error:
            self._tolerate(error)
            return self._untracked()
        return self._state(event, lock, Status.start.value)

    def _open(self, wait: float, on_wait: OnWait | None) -> tuple[Event, Lock | None]:
        request = self._create_request()  # built once: a repeat must send the same body
        base_key = self.idempotency_key or idempotency_key_for(
            self.service, self.environment.value, "deploy-start"
        )
        began = time.monotonic()
        generation = 0
        while True:
            # The same key while waiting: the server keeps only successful answers.
            key = f"{base_key}.{generation}" if base_key else None
            try:
                event = self.client.create_event(
                    request, idempotency_key=key, lock_ttl_seconds=self.lock_ttl
                )
            except InvalidRequest as error:
                # The key went to another request of this job (an earlier deploy of the
                # same service and environment): this one needs a fresh key.
                if key and _KEY_REUSED in error.server_message:
                    generation += 1
                    if generation < _MAX_KEY_GENERATIONS:
                        continue
                raise
            except LockHeld as held:
                waited = time.monotonic() - began
                holder = self._holder(held)
                if isinstance(holder, Lock):
                    held = held.with_lock(holder)
                remaining = wait - waited
                if remaining <= 0:
                    if wait > 0:
                        raise LockWaitTimeout.from_held(held, waited) from None
                    raise held from None
                if on_wait is not None:
                    on_wait(holder, waited)
                self._sleep(min(self.poll_interval, remaining))
                continue
            lock = self._lock_of(event)
            return event, lock

    def _lock_of(self, event: Event) -> Lock | None:
        try:
            locks = self.client.locks_for_event(event.id)
        except TrackerError:
            return None  # the event exists and holds its lock; only the id is unknown
        return locks[0] if locks else None

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when ``run`` receives SIGINT/SIGTERM."""
        if self._wake.wait(seconds) or self._interrupted is not None:
            raise _Interrupted

    # ------------------------------------------------------------------- finish
    def finish(
        self,
        state_or_event_id: DeploymentState | str,
        status: Status | str,
        message: str | None = None,
    ) -> DeploymentState:
        """Close the event with ``status`` (keeping its other fields) and free its lock."""
        try:
            final = Status(Status.parse(status))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if isinstance(state_or_event_id, DeploymentState):
            state = state_or_event_id
        else:
            state = DeploymentState(
                event_id=state_or_event_id,
                service=self.service,
                environment=self.environment.value,
            )
        if not state.tracked:
            return state.model_copy(update={"status": final.value})
        try:
            return self._close(state, final, message)
        except TrackerError as error:
            self._tolerate(error)
            return state.model_copy(update={"status": final.value})

    def _close(
        self, state: DeploymentState, status: Status, message: str | None
    ) -> DeploymentState:
        event = self.client.get_event(state.event_id)
        attributes = event.attributes.model_copy(update={"status": status})
        if message:
            old = attributes.message
            attributes.message = f"{old}\n{message}" if old else message
        if attributes.end_date is None:
            attributes.end_date = utcnow()
        updated = self.client.update_event(
            UpdateEventRequest(
                id=event.id,
                title=event.title,
                attributes=attributes,
                links=event.links,
                slack_id=event.metadata.slack_id,
            )
        )
        # Our server and upstream release the automatic lock on success, failure and
        # done; release it here for any other status and for servers that do not.
        for lock in self.client.locks_for_event(event.id):
            self.client.release_lock(lock.id)
        return DeploymentState(
            event_id=updated.id or event.id,
            lock_id=state.lock_id,
            service=updated.attributes.service or state.service,
            environment=str(updated.attributes.environment),
            status=status.value,
            started_at=updated.attributes.start_date or updated.metadata.created_at,
            duration=(
                updated.metadata.duration.total_seconds()
                if updated.metadata.duration is not None
                else None
            ),
            event_url=event_url(self.client.base_url, updated.id or event.id),
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
    ) -> int:
        """Start, run ``argv``, finish by its exit code; return that code (130/143 on a signal).

        ``heartbeat`` is the time between lock renewals (default ``lock_ttl / 3``; locks
        without a TTL are never renewed).
        """
        if not argv:
            raise ConfigError("deploy run needs a command to run (after --)")
        with self._signals_forwarded():
            try:
                state = self.start(wait=wait, on_wait=on_wait)
            except _Interrupted:
                return 128 + (self._interrupted or signal.SIGTERM)
            if self._interrupted is not None:
                return self._cancelled(state, None)
            with self._renewing(state, heartbeat):
                code = self._run_command(argv, kill_after)
            if self._interrupted is not None:
                return self._cancelled(state, code)
            # Still inside the handlers: a late signal must not cut the closing short.
            status = Status.success if code == 0 else Status.failure
            detail = None if code == 0 else f"command exited with code {code}"
            self.finish(state, status, detail)
            return code

    def _run_command(self, argv: Sequence[str], kill_after: float) -> int:
        try:
            child = subprocess.Popen(list(argv))  # stdin, stdout and stderr inherited
        except OSError as exc:
            # The command could not start: a failed deploy, exit code as a shell's 127/126.
            print(f"tracker-ci: cannot run {argv[0]!r}: {exc.strerror or exc}", file=sys.stderr)
            return 127 if isinstance(exc, FileNotFoundError) else 126
        self._child = child
        if self._interrupted is not None:  # the signal came while the command was starting
            child.send_signal(self._interrupted)
        killed = False
        try:
            while True:
                try:
                    return child.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
                signalled_at = self._signalled_at
                if not killed and signalled_at is not None:
                    if time.monotonic() - signalled_at > kill_after:
                        child.kill()  # the runner's SIGKILL is near: close the event first
                        killed = True
        finally:
            self._child = None

    def _cancelled(self, state: DeploymentState, code: int | None) -> int:
        signum = self._interrupted or signal.SIGTERM
        name = signal.Signals(signum).name
        detail = f"cancelled by {name}"
        if code is not None:
            detail += f" (command exited with code {code})"
        self.finish(state, Status.failure, detail)
        return 128 + signum

    @contextlib.contextmanager
    def _signals_forwarded(self) -> Iterator[None]:
        """Catch SIGINT/SIGTERM: forward them to the command and remember them."""
        self._child = None
        self._signalled_at = None
        self._interrupted = None
        self._wake.clear()
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return

        def forward(signum: int, frame: FrameType | None) -> None:
            if self._interrupted is None:
                self._interrupted = signum
                self._signalled_at = time.monotonic()
            self._wake.set()
            child = self._child
            if child is not None and child.poll() is None:
                child.send_signal(signum)

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _renewal_failed(self, error: TrackerError) -> None:
        """Report a failed renewal; the command goes on whatever the fail policy."""
        # on_warning may re-raise (the CLI does for non-outage errors), but nothing can
        # catch an exception in the renewal thread: fall back to a line on stderr.
        try:
            if self.on_warning is not None:
                self.on_warning(error)
                return
        except TrackerError:
            pass
        print(f"tracker-ci: warning: could not renew the lock: {error}", file=sys.stderr)

    @contextlib.contextmanager
    def _renewing(self, state: DeploymentState, heartbeat: float | None) -> Iterator[None]:
        """Renew the lock in the background while the command runs, if it expires."""
        if not (state.lock_id and self.lock_ttl > 0):
            yield
            return
        interval = heartbeat if heartbeat and heartbeat > 0 else self.lock_ttl / 3
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(interval):
                try:
                    self.client.renew_lock(state.lock_id, self.lock_ttl)
                except TrackerError as error:
                    # An upstream server has no renewal (its locks never expire): ignore.
                    if self.client.server_is_bundled:
                        self._renewal_failed(error)

        thread = threading.Thread(target=renew, name="tracker-ci-lock-renewal", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=self.client.timeout + 1)


def describe_wait(holder: Lock | LockHeld, waited: float) -> str:
    """The live line of a wait: ``waiting for lock: held by W since T (event E)``."""
    if isinstance(holder, Lock):
        text = f"held by {holder.who or 'unknown'}"
        if holder.created_at is not None:
            text += f" since {holder.created_at.strftime('%Y-%m-%d %H:%M:%SZ')}"
        if holder.event_id:
            text += f" (event {holder.event_id})"
    else:
        text = holder.describe_holder()
    return f"waiting for lock: {text}, waited {waited:.0f}s"
