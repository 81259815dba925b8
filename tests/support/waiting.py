"""Wait for a condition, never for a fixed time: ``eventually(condition)``.

Tests that depend on another process or thread (a server's dispatcher, a CLI in a
subprocess, a CI job) poll a condition here instead of writing their own deadline loop or
sleeping "long enough". The default timeout is generous on purpose: CI machines under
load run this suite about five times slower than a laptop, and a condition that holds
returns at once, so a long timeout costs nothing when the test passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["DEFAULT_INTERVAL", "DEFAULT_TIMEOUT", "eventually"]

T = TypeVar("T")

#: Seconds before giving up: 5x what the slowest of these waits takes on a loaded laptop.
DEFAULT_TIMEOUT = 60.0
#: Seconds between two looks at the condition.
DEFAULT_INTERVAL = 0.05


def eventually(
    condition: Callable[[], T],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
    message: str = "",
) -> T:
    """Call ``condition`` until it returns something truthy without raising
    AssertionError, and answer that value.

    After ``timeout`` seconds, raise AssertionError naming ``message`` (or the condition)
    with the last failed assertion or the last falsy value, so the report says what was
    seen, not only that time ran out. Other exceptions propagate at once: they are bugs,
    not "not yet"; a condition that knows the wait is hopeless (the process it waits on
    has exited) calls ``pytest.fail``, which ends the wait at once too.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except AssertionError as failure:
            last = f"last failure: {failure}"
        else:
            if value:
                return value
            last = f"last value: {value!r}"
        if time.monotonic() >= deadline:
            what = message or getattr(condition, "__name__", repr(condition))
            raise AssertionError(f"not true within {timeout:g}s: {what} ({last})")
        time.sleep(interval)
