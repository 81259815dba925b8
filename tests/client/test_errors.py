"""Error answers of both servers become the right exception with a message a person can act on."""

from __future__ import annotations

import httpx
import pytest
import respx

from tests.client.helpers import BASE, EVENT_ID, LOCK_ID, OURS, error_answer, lock
from tracker_ci import exceptions
from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import (
    APIError,
    AuthenticationFailed,
    InvalidRequest,
    LockHeld,
    LockWaitTimeout,
    NotATracker,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ServerError,
    ServerUnreachable,
    TrackerError,
    UnexpectedResponse,
    error_from_response,
)

pytestmark = pytest.mark.unit

EVENT_PATH = f"/api/v1alpha1/event/{EVENT_ID}"


def answer_to(response: httpx.Response, *, token: bool = True) -> APIError:
    """error_from_response for ``response`` as the answer to a GET of an event."""
    headers = {"Authorization": "Bearer trk_x"} if token else {}
    response.request = httpx.Request("GET", f"{BASE}{EVENT_PATH}", headers=headers)
    return error_from_response(response)


@pytest.mark.parametrize(
    ("status", "code", "message", "expected", "fragment"),
    [
        (400, 3, "service is required", InvalidRequest, "rejected GET"),
        (401, 16, "missing or unknown token", AuthenticationFailed, "check TRACKER_TOKEN"),
        (403, 7, "token not allowed for service api", PermissionDenied, "scoped to other"),
        (404, 5, "event not found", NotFound, "not found on Tracker"),
        (409, 6, "lock held", LockHeld, "lock"),
        (413, 8, "body too large", PayloadTooLarge, "too large"),
        (500, 13, "boom", ServerError, "failed on GET"),
        (503, 14, "database unavailable", ServerError, "database unavailable"),
    ],
)
def test_our_statuses_map_to_the_tree(
    status: int, code: int, message: str, expected: type[APIError], fragment: str
) -> None:
    error = answer_to(error_answer(status, code, message))

    assert type(error) is expected
    assert error.status_code == status
    assert error.code == code
    assert error.server_message == message
    assert error.url == BASE
    assert fragment in error.message
    assert str(error) == error.message


def test_a_missing_token_asks_for_one() -> None:
    error = answer_to(error_answer(401, 16, "authentication required"), token=False)

    assert isinstance(error, AuthenticationFailed)
    assert error.message.startswith(f"Tracker at {BASE} requires authentication (401)")
    assert "set TRACKER_TOKEN" in error.message


def test_a_refused_token_says_to_check_it() -> None:
    error = answer_to(error_answer(401, 16, "unknown token"))

    assert error.message.startswith(
        f"Tracker at {BASE} refused the token (401): check TRACKER_TOKEN"
    )


def test_upstream_event_lock_conflict_is_lock_held() -> None:
    message = (
        "cannot create event: service api is already locked in production. Please unlock it first"
    )
    error = answer_to(error_answer(500, 2, message, ours=False))

    assert isinstance(error, LockHeld)
    assert (error.service, error.environment, error.status_code, error.code) == (
        "api",
        "production",
        500,
        2,
    )
    assert error.holder == ""  # upstream does not say who holds it
    assert error.message == "The deployment lock of api in production is held by another deployment"


def test_upstream_lock_conflict_names_holder_and_ids() -> None:
    message = (
        "service api is already locked for deployment in production by Alice Smith "
        f"(lock_id: {LOCK_ID}, event_id: {EVENT_ID})"
    )
    error = answer_to(error_answer(500, 2, f"rpc error: {message}", ours=False))

    assert isinstance(error, LockHeld)
    assert error.service == "api"
    assert error.environment == "production"
    assert error.resource == "deployment"
    assert error.holder == "Alice Smith"
    assert error.lock_id == LOCK_ID
    assert error.event_id == EVENT_ID
    assert error.message == (
        "The deployment lock of api in production is held by Alice Smith "
        f"(lock {LOCK_ID}, event {EVENT_ID})"
    )


def test_lock_conflict_with_empty_event_id() -> None:
    message = "service api is already locked for operation in UAT by ci (lock_id: L1, event_id: )"
    error = answer_to(error_answer(409, 6, message))

    assert isinstance(error, LockHeld)
    assert (error.resource, error.environment, error.holder, error.lock_id, error.event_id) == (
        "operation",
        "UAT",
        "ci",
        "L1",
        "",
    )


def test_lock_in_error_details_is_read() -> None:
    response = httpx.Response(
        409, json={"code": 6, "message": "lock held", "details": [{"lock": lock().to_wire()}]}
    )
    error = answer_to(response)

    assert isinstance(error, LockHeld)
    assert error.holder == "alice"
    assert error.lock_id == LOCK_ID
    assert error.since is not None and error.since.isoformat() == "2026-11-23T10:00:00+00:00"
    assert "held by alice since 2026-11-23 10:00:00Z" in error.message


@pytest.mark.parametrize(
    "message",
    [
        "event not found",
        "mongo: no documents in result",
        "lock 123 NOT FOUND",
        # Upstream's own words for a missing event or lock (GetEvent, GetLock, relatedId).
        "no event found in tracker for id 3f2b8a4e-1c9d-4b7a-9e2f-5d6c7b8a9e0f",
        "no event found in tracker for attributes.related_id 3f2b8a4e",
    ],
)
def test_upstream_not_found_messages_are_not_found(message: str) -> None:
    error = answer_to(error_answer(500, 2, message, ours=False))

    assert isinstance(error, NotFound)
    assert message in error.message


@pytest.mark.parametrize(
    "message",
    [
        "no filter for search events",
        "start_date 2026-02-01 00:00:00 +0000 UTC and end_date 2026-01-01 00:00:00 +0000 UTC "
        "are inversed",
    ],
)
def test_upstream_bad_search_messages_are_invalid_requests(message: str) -> None:
    error = answer_to(error_answer(500, 2, message, ours=False))

    assert isinstance(error, InvalidRequest)
    assert message in error.message


def test_upstream_501_says_it_is_not_implemented() -> None:
    error = answer_to(error_answer(501, 12, "method DeleteEvent not implemented", ours=False))

    assert isinstance(error, ServerError)
    assert "does not implement GET" in error.message


@pytest.mark.parametrize("status", [502, 200, 404])
def test_non_json_body_gives_a_clear_message(status: int) -> None:
    response = httpx.Response(status, text="<html><body>Bad Gateway</body></html>")
    error = answer_to(response)

    assert error.code is None
    assert error.message.startswith("http://tracker.test:8080 is not answering as a Tracker: ")
    assert f"GET {EVENT_PATH} got HTTP {status} and a body that is not JSON" in error.message
    assert "<html><body>Bad Gateway</body></html>" in error.message
    assert error.message.endswith("Check TRACKER_URL (or --url): it must be the Tracker server's"
                                  " address, e.g. http://tracker.internal:8080")  # fmt: skip
    # Another service, or a proxy for a Tracker that is down: no Tracker checked the lock.
    assert isinstance(error, NotATracker) and error.exit_code == 4


def test_empty_body_is_said_to_be_empty() -> None:
    error = answer_to(httpx.Response(502))

    assert ": (empty))." in error.message


def test_lock_wait_timeout_is_a_lock_held_naming_the_holder() -> None:
    held = LockHeld("", service="api", environment="production", resource="deployment")
    timeout = LockWaitTimeout.from_held(held.with_lock(lock(who="bob")), 31.4)

    assert isinstance(timeout, LockHeld)
    assert timeout.waited == 31.4
    assert timeout.holder == "bob"
    assert timeout.message == (
        "gave up after waiting 31s for the deployment lock of api in production: still held by "
        f"bob since 2026-11-23 10:00:00Z (lock {LOCK_ID}, event {EVENT_ID}). Wait longer "
        "(--wait SECONDS) or release the lock if its deployment is dead."
    )


def test_exceptions_all_is_complete() -> None:
    """Every public name of the tree and of the rules is importable from the package."""
    from tracker_ci.exceptions import rules, tree

    public = set()
    for module in (tree, rules):
        defined = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and getattr(value, "__module__", None) == module.__name__
            and (isinstance(value, type) or callable(value))
        }
        assert defined | ({"ERROR_RULES"} if module is rules else set()) == set(module.__all__)
        public |= set(module.__all__)
    assert public == set(exceptions.__all__)
    assert all(getattr(exceptions, name) is not None for name in exceptions.__all__)


def test_every_error_is_a_tracker_error() -> None:
    not_errors = set()
    for name in exceptions.__all__:
        value = getattr(exceptions, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, TrackerError), name
        elif isinstance(value, type):
            not_errors.add(name)
    assert not_errors == {"ErrorRule", "GrpcCode"}  # the table's row and its codes


# ----------------------------------------------------------------- through the client
@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, 3, InvalidRequest),
        (401, 16, AuthenticationFailed),
        (403, 7, PermissionDenied),
        (404, 5, NotFound),
        (409, 6, LockHeld),
        (500, 2, ServerError),
        (503, 14, ServerError),
    ],
)
def test_client_raises_the_mapped_error(
    api: respx.MockRouter,
    client: TrackerClient,
    status: int,
    code: int,
    expected: type[APIError],
) -> None:
    route = api.get(EVENT_PATH).mock(return_value=error_answer(status, code, "nope"))

    with pytest.raises(expected) as raised:
        client.get_event(EVENT_ID)

    assert raised.value.status_code == status
    # 500 and 503 are transient: retried (3 extra attempts) before giving up.
    assert route.call_count == (4 if status in (500, 503) else 1)


def test_upstream_held_lock_on_create_is_not_retried(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    message = (
        "cannot create event: service api is already locked in production. Please unlock it first"
    )
    route = api.post("/api/v1alpha1/event").mock(
        return_value=error_answer(500, 2, message, ours=False)
    )

    from tracker_ci.models import CreateEventRequest, EventAttributes

    with pytest.raises(LockHeld) as raised:
        client.create_event(
            CreateEventRequest(attributes=EventAttributes(service="api")), idempotency_key="k"
        )

    assert raised.value.environment == "production"
    assert route.call_count == 1


def test_success_with_a_body_that_is_not_the_model(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    api.get(EVENT_PATH).mock(
        return_value=httpx.Response(200, json={"event": {"attributes": {"type": "spaceship"}}})
    )

    with pytest.raises(UnexpectedResponse, match="not the expected JSON"):
        client.get_event(EVENT_ID)


def test_success_without_the_record(api: respx.MockRouter, client: TrackerClient) -> None:
    api.get(EVENT_PATH).mock(return_value=httpx.Response(200, json={}, headers=OURS))

    with pytest.raises(UnexpectedResponse, match="without the 'event'"):
        client.get_event(EVENT_ID)


def test_dropped_connection_is_server_unreachable(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    # What upstream does when POST /event lacks attributes: its handler crashes.
    api.get(EVENT_PATH).mock(
        side_effect=httpx.RemoteProtocolError("Server disconnected without sending a response.")
    )

    with pytest.raises(ServerUnreachable) as raised:
        client.get_event(EVENT_ID)

    assert "dropped the connection during GET" in raised.value.message
    assert "Check TRACKER_URL" in raised.value.message
    assert raised.value.url == BASE


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (
            httpx.ConnectTimeout("slow"),
            "cannot connect to Tracker at http://h:1: no answer within 2s",
        ),
        (httpx.ReadTimeout("slow"), "Tracker at http://h:1 did not answer POST /api/x within 2s"),
        (
            httpx.ConnectError("Name or service not known"),
            "cannot connect to Tracker at http://h:1: Name or service not known",
        ),
        (
            httpx.ReadError("reset"),
            "Tracker at http://h:1 could not be reached for POST /api/x: reset",
        ),
    ],
)
def test_transport_errors_say_what_went_wrong(failure: Exception, expected: str) -> None:
    from tracker_ci.exceptions import error_from_transport

    error = error_from_transport(failure, method="POST", url="http://h:1/api/x", timeout=2)

    assert (
        error.message == f"{expected}. Check TRACKER_URL (or --url) and that the server is running."
    )
    assert error.url == "http://h:1"
