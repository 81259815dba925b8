"""``eventually``: the one way the suite waits for another thread or process."""

from __future__ import annotations

import itertools

import pytest

from tests.support.names import unique
from tests.support.waiting import eventually

pytestmark = pytest.mark.unit


def test_eventually_answers_the_first_truthy_value_and_retries_failed_asserts() -> None:
    calls = itertools.count(1)

    def third_time() -> int:
        call = next(calls)
        assert call >= 2, "not yet"
        return 0 if call == 2 else call

    assert eventually(third_time, interval=0) == 3


def test_eventually_reports_the_last_failure_when_time_runs_out() -> None:
    def never() -> None:
        raise AssertionError("still 0 deliveries")

    with pytest.raises(AssertionError, match=r"within 0\.05s: the deliveries .*still 0"):
        eventually(never, timeout=0.05, interval=0.01, message="the deliveries")
    with pytest.raises(AssertionError, match=r"last value: \[\]"):
        eventually(list, timeout=0.05, interval=0.01)


def test_eventually_lets_other_errors_through_at_once() -> None:
    def broken() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        eventually(broken, timeout=60)


def test_unique_names_differ_and_keep_their_prefix() -> None:
    names = {unique("api") for _ in range(100)}
    assert len(names) == 100
    assert all(name.startswith("api-") and len(name) == len("api-") + 10 for name in names)
