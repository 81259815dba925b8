"""The supervisor hears its command's exit at once (a pidfd on Linux), not at its next look:
``Popen.wait(timeout)`` sleeps up to 50 ms between looks, all of it added to the deploy and
to the next deploy's wait for the lock."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tracker_ci.supervisor import Supervisor, _ExitWatch

pytestmark = pytest.mark.unit

LINUX = sys.platform.startswith("linux") and hasattr(os, "pidfd_open")


def _child(seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


@pytest.mark.skipif(not LINUX, reason="pidfd_open is Linux's")
def test_the_exit_is_heard_through_the_childs_pidfd() -> None:
    child = _child(30)
    try:
        watch = _ExitWatch(child)
        with watch as exited:
            assert watch.fd is not None  # not Popen.wait's sleeps
            assert exited(0.01) is None  # it runs
            child.kill()
            assert exited(30) == -9
    finally:
        child.kill()
        child.wait()


def test_without_a_pidfd_the_watch_still_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    child = _child(0)
    watch = _ExitWatch(child)
    with watch as exited:
        assert watch.fd is None
        assert exited(30) == 0


def test_a_run_returns_the_commands_exit_code_as_a_shell_says() -> None:
    supervisor = Supervisor()
    assert supervisor.run([sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ)) == 3
    assert supervisor.run(["sh", "-c", "kill -TERM $$"], dict(os.environ)) == 128 + 15
