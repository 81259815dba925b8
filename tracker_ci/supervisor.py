"""The process supervisor: the one owner of SIGINT/SIGTERM and of the deploy's child process.

The lifecycle (``tracker_ci.deploy``) decides what a deployment does; this module only runs
a command and handles signals, so that no other module installs a signal handler:

* :class:`Supervisor` runs the deploy command (stdin, stdout and stderr inherited),
  forwards SIGINT/SIGTERM to it (to its whole process group with ``group``), remembers the
  first signal (``interrupted``), wakes whoever waits (``wake``: the lock waiter), and kills
  the command ``kill_after`` seconds after it was told to stop (CI runners send SIGKILL
  about 10 s after the first signal; the event must be closed before that).
* :func:`signals_deferred` holds SIGINT/SIGTERM back across a step that must not be cut
  in half (a queue join whose answer names the ticket the ``finally`` leaves with), and
  delivers a signal that came meanwhile right after it.
* :func:`exit_on_sigterm` is what a command without a child (``lock acquire``, ``deploy
  start``) does while it waits in a queue: SIGTERM exits 143 through the ``finally`` that
  leaves the queue, unless a Supervisor already handles SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any

__all__ = ["DEFAULT_KILL_AFTER", "Supervisor", "exit_on_sigterm", "signals_deferred"]

#: How long a cancelled command may take to exit before it is killed.
DEFAULT_KILL_AFTER = 5.0
#: How often the supervisor looks at its child while it runs.
_POLL = 0.2


class Supervisor:
    """Runs one command at a time and owns SIGINT/SIGTERM while :meth:`signals` is open."""

    def __init__(self, *, group: bool = False, kill_after: float = DEFAULT_KILL_AFTER) -> None:
        #: Run the command in a process group of its own and signal the whole group (a
        #: shell does not pass SIGTERM on).
        self.group = group
        self.kill_after = kill_after
        #: The first signal received (None: none).
        self.interrupted: int | None = None
        #: Set by a signal: cancels any wait at once.
        self.wake = threading.Event()
        self._signalled_at: float | None = None
        self._child: subprocess.Popen[bytes] | None = None

    @contextlib.contextmanager
    def signals(self) -> Iterator[Supervisor]:
        """Catch SIGINT/SIGTERM: forward them to the command and remember them."""
        self._child = None
        self._signalled_at = None
        self.interrupted = None
        self.wake.clear()
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return

        def forward(signum: int, frame: FrameType | None) -> None:
            if self.interrupted is None:
                self.interrupted = signum
                self._signalled_at = time.monotonic()
            self.wake.set()
            self.signal_child(signum)

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        on_start: Callable[[], None] | None = None,
    ) -> int:
        """Run ``argv`` to its end; its exit code as a shell says it (128 + N on signal N,
        127/126 when it cannot start). ``on_start`` is called once it started."""
        try:
            child = subprocess.Popen(list(argv), env=dict(env), start_new_session=self.group)
        except OSError as exc:
            # The command could not start: a failed deploy, exit code as a shell's 127/126.
            print(f"tracker-ci: cannot run {argv[0]!r}: {exc.strerror or exc}", file=sys.stderr)
            return 127 if isinstance(exc, FileNotFoundError) else 126
        self._child = child
        if on_start is not None:
            on_start()
        if self.interrupted is not None:  # the signal came while the command was starting
            self.signal_child(self.interrupted)
        try:
            return self._wait(child)
        finally:
            self._child = None

    def _wait(self, child: subprocess.Popen[bytes]) -> int:
        killed = False
        with _ExitWatch(child) as exited:
            while True:
                code = exited(_POLL)
                if code is None:
                    signalled_at = self._signalled_at
                    if not killed and signalled_at is not None:
                        if time.monotonic() - signalled_at > self.kill_after:
                            # The runner's SIGKILL is near: close the event first.
                            self.signal_child(signal.SIGKILL)
                            killed = True
                    continue
                return 128 - code if code < 0 else code  # killed by a signal: as a shell says

    def stop_child(self) -> None:
        """Ask the command to stop (SIGTERM), and kill it ``kill_after`` s later."""
        if self._signalled_at is None:
            self._signalled_at = time.monotonic()
        self.signal_child(signal.SIGTERM)

    def signal_child(self, signum: int) -> None:
        """Send ``signum`` to the running command (its group with ``group``)."""
        child = self._child
        if child is None or child.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if self.group:
                os.killpg(child.pid, signum)
                # A stopped process (a paused runner) acts on SIGTERM only once continued.
                os.killpg(child.pid, signal.SIGCONT)
            else:
                child.send_signal(signum)


class _ExitWatch:
    """Waits for a child's exit and hears it at once: ``Popen.wait(timeout)`` sleeps up to
    50 ms between its looks, all of it added to the deploy (and to the next deploy's wait
    for the lock). On Linux the child's pidfd becomes readable the moment it exits; where
    there is none (macOS), ``Popen.wait(timeout)`` it is."""

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        self.fd: int | None = None

    def __enter__(self) -> Callable[[float], int | None]:
        opener = getattr(os, "pidfd_open", None)
        if opener is not None:
            with contextlib.suppress(OSError):  # an old kernel, or the child is gone
                self.fd = opener(self.child.pid)
        return self.exited

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)

    def exited(self, timeout: float) -> int | None:
        """The child's return code once it exits within ``timeout`` s; None: it runs."""
        if self.fd is not None:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            return self.child.wait() if ready else self.child.poll()
        try:
            return self.child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


@contextlib.contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """While waiting, SIGTERM (a cancelled CI job) exits 143 through the caller's
    ``finally``, unless a handler (a :class:`Supervisor`) already owns SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def leave(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def signals_deferred(active: bool = True) -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block, then deliver one that came meanwhile to
    the handler in force before (KeyboardInterrupt, :func:`exit_on_sigterm`, a Supervisor);
    a second signal is delivered at once. A no-op off the main thread or with ``active``
    false."""
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    before: dict[int, Any] = {}

    def restore() -> None:
        for signum, handler in before.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        before.clear()

    def hold(signum: int, frame: FrameType | None) -> None:
        came.append(signum)
        if len(came) > 1:  # asked twice (a join retrying through an outage): go now
            restore()
            signal.raise_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        before[signum] = signal.signal(signum, hold)
    try:
        yield
    finally:
        if before:
            restore()
            if came:
                signal.raise_signal(came[0])
