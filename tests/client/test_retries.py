"""Retries: bounded, with exponential backoff, and never a duplicate create."""

from __future__ import annotations

import socket

import httpx
import pytest
import respx

from tests.client.helpers import EVENT_ID, LOCK_ID, error_answer, event, event_answer, lock_answer
from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import InvalidRequest, NotFound, ServerError, ServerUnreachable
from tracker_ci.models import CreateEventRequest, EventAttributes

pytestmark = pytest.mark.unit

EVENT_PATH = f"/api/v1alpha1/event/{EVENT_ID}"


def create_request() -> CreateEventRequest:
    return CreateEventRequest(attributes=EventAttributes(service="api"))


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_with_backoff(
    api: respx.MockRouter, client: TrackerClient, sleeps: list[float], status: int
) -> None:
    route = api.get(EVENT_PATH).mock(
        side_effect=[error_answer(status, 14, "try later"), error_answer(status, 14, "again")]
        + [event_answer(event())]
    )

    assert client.get_event(EVENT_ID).id == EVENT_ID
    assert route.call_count == 3
    assert sleeps == [0.5, 1.0]


def test_retries_are_bounded(
    api: respx.MockRouter, client: TrackerClient, sleeps: list[float]
) -> None:
    route = api.get(EVENT_PATH).mock(return_value=error_answer(503, 14, "database unavailable"))

    with pytest.raises(ServerError, match="database unavailable"):
        client.get_event(EVENT_ID)

    assert route.call_count == 4  # the first attempt and 3 retries
    assert sleeps == [0.5, 1.0, 2.0]


def test_retry_after_is_honoured(
    api: respx.MockRouter, client: TrackerClient, sleeps: list[float]
) -> None:
    busy = httpx.Response(503, json={"code": 14, "message": "busy"}, headers={"Retry-After": "3"})
    api.get(EVENT_PATH).mock(side_effect=[busy, event_answer(event())])

    client.get_event(EVENT_ID)

    assert sleeps == [3.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413])
def test_final_statuses_are_not_retried(
    api: respx.MockRouter, client: TrackerClient, sleeps: list[float], status: int
) -> None:
    route = api.get(EVENT_PATH).mock(return_value=error_answer(status, 3, "final"))

    with pytest.raises(Exception):  # noqa: B017 - the class is checked in test_errors
        client.get_event(EVENT_ID)

    assert route.call_count == 1
    assert sleeps == []


def test_upstream_not_found_500_is_not_retried(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    route = api.get(EVENT_PATH).mock(
        return_value=error_answer(500, 2, "mongo: no documents in result", ours=False)
    )

    with pytest.raises(Exception, match="no documents"):
        client.get_event(EVENT_ID)

    assert route.call_count == 1


def test_upstream_search_without_filter_500_is_not_retried(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    route = api.get("/api/v1alpha1/events/search").mock(
        return_value=error_answer(500, 2, "no filter for search events", ours=False)
    )

    with pytest.raises(InvalidRequest, match="no filter"):
        client.search_events()

    assert route.call_count == 1


def test_upstream_no_event_found_500_is_not_retried(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    message = f"no event found in tracker for id {EVENT_ID}"
    route = api.get(EVENT_PATH).mock(return_value=error_answer(500, 2, message, ours=False))

    with pytest.raises(NotFound, match="no event found"):
        client.get_event(EVENT_ID)

    assert route.call_count == 1


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("timed out"), httpx.RemoteProtocolError("disconnected")],
    ids=["read-timeout", "dropped"],
)
def test_a_create_is_repeated_with_its_own_random_key(
    api: respx.MockRouter, client: TrackerClient, failure: Exception
) -> None:
    # The answer was lost: the server keeps the first result under the key, so the repeat
    # answers it instead of creating a second event.
    route = api.post("/api/v1alpha1/event").mock(side_effect=[failure, event_answer(event())])

    assert client.create_event(create_request()).id == EVENT_ID

    keys = {call.request.headers["Idempotency-Key"] for call in route.calls}
    assert route.call_count == 2 and len(keys) == 1


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("timed out"), httpx.RemoteProtocolError("disconnected")],
    ids=["read-timeout", "dropped"],
)
def test_a_create_on_upstream_is_never_repeated(
    api: respx.MockRouter, client: TrackerClient, failure: Exception
) -> None:
    # Upstream ignores the key: a repeat could create a second event.
    client.server_is_bundled = False
    route = api.post("/api/v1alpha1/event").mock(side_effect=[failure, event_answer(event())])

    with pytest.raises(ServerUnreachable):
        client.create_event(create_request())

    assert route.call_count == 1


def test_a_create_on_upstream_is_not_repeated_after_503(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    client.server_is_bundled = False
    route = api.post("/api/v1alpha1/event").mock(
        side_effect=[error_answer(503, 14, "unavailable"), event_answer(event())]
    )

    with pytest.raises(ServerError):
        client.create_event(create_request())

    assert route.call_count == 1


def test_a_create_with_key_is_repeated_with_the_same_key_and_body(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    route = api.post("/api/v1alpha1/event").mock(
        side_effect=[
            httpx.ReadTimeout("timed out"),
            error_answer(503, 14, "unavailable"),
            event_answer(event()),
        ]
    )

    assert client.create_event(create_request(), idempotency_key="run-1").id == EVENT_ID

    assert route.call_count == 3
    requests = [call.request for call in route.calls]
    assert {r.headers["Idempotency-Key"] for r in requests} == {"run-1"}
    assert len({r.content for r in requests}) == 1


def test_a_lock_with_key_is_repeated(api: respx.MockRouter, client: TrackerClient) -> None:
    from tests.client.helpers import lock

    route = api.post("/api/v1alpha1/lock").mock(
        side_effect=[error_answer(502, 14, "bad gateway"), lock_answer(lock())]
    )

    taken = client.acquire_lock(service="api", environment="production", idempotency_key="k")

    assert taken.id == LOCK_ID
    assert route.call_count == 2


def test_a_lock_on_upstream_is_not_repeated(api: respx.MockRouter, client: TrackerClient) -> None:
    client.server_is_bundled = False
    route = api.post("/api/v1alpha1/lock").mock(return_value=error_answer(502, 14, "bad gateway"))

    with pytest.raises(ServerError):
        client.acquire_lock(service="api", environment="production")

    assert route.call_count == 1


def test_a_refused_connection_is_retried_even_for_a_create(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    # A connection that was never made cannot have created anything.
    route = api.post("/api/v1alpha1/event").mock(
        side_effect=[httpx.ConnectError("Connection refused"), event_answer(event())]
    )

    assert client.create_event(create_request()).id == EVENT_ID
    assert route.call_count == 2


def test_connection_errors_end_as_server_unreachable(
    api: respx.MockRouter, client: TrackerClient, sleeps: list[float]
) -> None:
    route = api.get(EVENT_PATH).mock(side_effect=httpx.ConnectError("Connection refused"))

    with pytest.raises(ServerUnreachable) as raised:
        client.get_event(EVENT_ID)

    assert route.call_count == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert raised.value.message == (
        "cannot connect to Tracker at http://tracker.test:8080: Connection refused "
        "(4 attempts). "
        "Check TRACKER_URL (or --url) and that the server is running."
    )


def test_timeouts_end_as_server_unreachable(api: respx.MockRouter, client: TrackerClient) -> None:
    api.get(EVENT_PATH).mock(side_effect=httpx.ReadTimeout("timed out"))

    with pytest.raises(ServerUnreachable, match=f"did not answer GET {EVENT_PATH} within 10s"):
        client.get_event(EVENT_ID)


def test_the_changelog_post_is_not_repeated(api: respx.MockRouter, client: TrackerClient) -> None:
    from tracker_ci.models import ChangelogEntry

    route = api.post(f"{EVENT_PATH}/changelog").mock(return_value=error_answer(503, 14, "down"))

    with pytest.raises(ServerError):
        client.add_changelog_entry(EVENT_ID, ChangelogEntry(comment="x"))

    assert route.call_count == 1


def test_a_real_closed_port_is_server_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port once the socket is closed.
    with TrackerClient(base_url=f"http://127.0.0.1:{port}", retries=1, backoff=0) as tracker:
        with pytest.raises(
            ServerUnreachable, match=f"cannot connect to Tracker at http://127.0.0.1:{port}"
        ):
            tracker.list_locks()


def test_zero_retries_means_one_attempt(api: respx.MockRouter) -> None:
    route = api.get(EVENT_PATH).mock(return_value=error_answer(503, 14, "down"))

    with TrackerClient(base_url="http://tracker.test:8080", retries=0) as tracker:
        with pytest.raises(ServerError):
            tracker.get_event(EVENT_ID)

    assert route.call_count == 1
