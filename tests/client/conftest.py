"""Fixtures of the client tests: a respx router standing in for the network."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx

from tests.client.helpers import BASE
from tracker_ci.client import TrackerClient


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """Every request the test did not route fails the test (assert_all_mocked)."""
    with respx.mock(base_url=BASE, assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def sleeps() -> list[float]:
    """The pauses the client asked for between retries."""
    return []


@pytest.fixture
def client(api: respx.MockRouter, sleeps: list[float]) -> Iterator[TrackerClient]:
    """A client with a token, 3 retries, and pauses recorded instead of slept."""
    with TrackerClient(
        base_url=BASE,
        token="trk_secret",
        retries=3,
        backoff=0.5,
        sleep=sleeps.append,
        jitter=False,
    ) as tracker:
        yield tracker
