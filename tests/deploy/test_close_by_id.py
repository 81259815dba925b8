"""A deployment closes its event in one request on our server (``POST /event/{id}/close``,
issue 23): no read before the write, one idempotency key for every try; an older server of
ours without the route (its "no such route" 404) and upstream get ``GET`` + ``PUT`` as
before. Real server processes (SQLite)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.deploy.test_grant_opens_event import ENV, _Counting, _deployment
from tests.support.servers import RunningServer
from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import ServerUnreachable

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]


class _OlderServer(_Counting):
    """Our server before the close route: its real 404 for a path it does not serve."""

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        if path.endswith("/close"):
            path += "-unknown"
        return super()._request(method, path, **options)


class _LostAnswer(_Counting):
    """The first close reaches the server, but its answer is lost on the way back."""

    lost = False

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        response = super()._request(method, path, **options)
        if path.endswith("/close") and not self.lost:
            self.lost = True
            raise ServerUnreachable("the connection dropped before the answer (the test's)")
        return response


@pytest.fixture
def client(sqlite_server: RunningServer) -> Iterator[TrackerClient]:
    with TrackerClient(base_url=sqlite_server.url) as tracker:
        yield tracker


def _closing_requests(sent: list[str], event_id: str) -> list[str]:
    """What was sent to close ``event_id``: from the first request naming it on."""
    first = next(n for n, request in enumerate(sent) if event_id in request)
    return sent[first:]


def test_deploy_run_closes_its_event_in_one_request(
    client: TrackerClient, sqlite_server: RunningServer, service: str
) -> None:
    with _Counting(base_url=sqlite_server.url) as counting:
        deploy = _deployment(counting, service, "alice")
        code = deploy.run([sys.executable, "-c", "print('deployed')"])
        state = deploy.last_state
        assert code == 0 and state is not None
        assert _closing_requests(counting.sent, state.event_id) == [
            f"POST /event/{state.event_id}/close"
        ]
    event = client.get_event(state.event_id)
    assert event.attributes.status.value == "success"
    assert event.attributes.end_date is not None and event.metadata.duration is not None
    assert client.find_lock(service=service, environment=ENV) is None


def test_a_failed_command_closes_as_failure_with_its_exit_code_appended(
    client: TrackerClient, sqlite_server: RunningServer, service: str
) -> None:
    with _Counting(base_url=sqlite_server.url) as counting:
        deploy = _deployment(counting, service, "alice")
        assert deploy.run([sys.executable, "-c", "raise SystemExit(3)"]) == 3
        state = deploy.last_state
    assert state is not None
    event = client.get_event(state.event_id)
    assert event.attributes.status.value == "failure"
    assert event.attributes.message.endswith("the deploy command exited with code 3")


def test_an_older_server_without_the_route_is_closed_by_get_and_put(
    client: TrackerClient, sqlite_server: RunningServer, service: str
) -> None:
    with _OlderServer(base_url=sqlite_server.url) as older:
        deploy = _deployment(older, service, "alice")
        first = deploy.start()
        deploy.finish(first, "success", "first")
        assert older.sent[-3:] == [
            f"POST /event/{first.event_id}/close-unknown",
            f"GET /event/{first.event_id}",
            "PUT /event",
        ]
        second = deploy.start()
        deploy.finish(second, "success", "second")  # remembered: straight to GET + PUT
        assert older.sent[-2:] == [
            f"GET /event/{second.event_id}",
            "PUT /event",
        ]
    for state, line in ((first, "first"), (second, "second")):
        event = client.get_event(state.event_id)
        assert event.attributes.status.value == "success"
        assert event.attributes.message.endswith(line)
    assert client.find_lock(service=service, environment=ENV) is None


def test_a_close_whose_answer_was_lost_is_sent_again_and_closes_once(
    client: TrackerClient, sqlite_server: RunningServer, service: str
) -> None:
    with _LostAnswer(base_url=sqlite_server.url) as losing:
        deploy = _deployment(losing, service, "alice")
        state = deploy.start()
        closed = deploy.finish(state, "failure", "rolled back")
        assert losing.lost and not closed.left_open
        assert _closing_requests(losing.sent, state.event_id) == [
            f"POST /event/{state.event_id}/close",
            f"POST /event/{state.event_id}/close",
        ]
    event = client.get_event(state.event_id)
    assert event.attributes.status.value == "failure"
    assert event.attributes.message.count("rolled back") == 1
