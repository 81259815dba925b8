"""ERROR_RULES: each refusal is one row, reached by its own answer, never read as another.

The new refusals (a hard freeze, a superseded waiter, a lost lease) share statuses and
codes with broader rows (400, 409, code 10); these tests pin which row wins.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest
import respx

from tests.client.helpers import BASE, EVENT_ID, LOCK_ID, error_answer, lock
from tracker_ci import exceptions as e
from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import (
    ERROR_RULES,
    GrpcCode,
    error_class_for,
    error_from_response,
    exit_code_for,
    is_lock_conflict,
    is_outage,
)
from tracker_ci.exit_codes import EXIT_CODES, ExitCode

pytestmark = pytest.mark.unit

FREEZE = 'Blocked by hard freeze: "Black Friday" until 2026-11-30T08:00:00Z'
SUPERSEDED = "superseded by bob's deploy"
LEASE = "lock lost: the lease expired"


def _sample(rule: e.ErrorRule) -> tuple[int, int | None, str]:
    """An answer made of the row's own fields (the first of each), else neutral ones."""
    status = next(iter(rule.status), 418)
    code = next(iter(rule.code), None)
    if rule.message is None:
        message = "nope"
    else:  # a text the pattern finds
        message = {
            e.FreezeRefused: FREEZE,
            e.Superseded: SUPERSEDED,
            e.LockLost: LEASE,
            e.LockHeld: "service api is already locked in production. Please unlock it first",
            e.NotFound: "no event found in tracker for id x",
            e.InvalidRequest: "no filter for search events",
        }[rule.error]
    return status, code, message


@pytest.mark.parametrize("index", range(len(ERROR_RULES)))
def test_every_row_is_reached_by_its_own_answer(index: int) -> None:
    # A row shadowed by an earlier one could never fire: the table's order is wrong.
    rule = ERROR_RULES[index]
    status, code, message = _sample(rule)
    first = next(r for r in ERROR_RULES if r.matches(status, code, message))

    assert first is rule, (status, code, message)


def test_an_answer_no_row_matches_is_a_plain_api_error() -> None:
    assert error_class_for(418, None, "I'm a teapot") is e.APIError


# ------------------------------------------------- the new refusals, through the client
@pytest.mark.parametrize(
    ("status", "code", "message", "expected", "exit_code"),
    [
        (400, 9, FREEZE, e.FreezeRefused, 7),
        (409, 10, SUPERSEDED, e.Superseded, 8),
        (409, 10, "superseded by carol", e.Superseded, 8),
        (410, 5, "lock 5d0c gone", e.LockLost, 9),
        (409, 10, LEASE, e.LockLost, 9),
        (404, 10, "the lease of lock 5d0c expired", e.LockLost, 9),
    ],
)
def test_new_refusals_map_to_their_class_exit_code_and_are_no_outage(
    api: respx.MockRouter,
    client: TrackerClient,
    status: int,
    code: int,
    message: str,
    expected: type[e.APIError],
    exit_code: int,
) -> None:
    route = api.get(f"/api/v1alpha1/event/{EVENT_ID}").mock(
        return_value=error_answer(status, code, message)
    )

    with pytest.raises(e.APIError) as raised:
        client.get_event(EVENT_ID)

    error = raised.value
    assert type(error) is expected
    assert not isinstance(error, (e.LockHeld, e.InvalidRequest, e.NotFound))
    assert (error.status_code, error.code, error.server_message) == (status, code, message)
    assert exit_code_for(error) == exit_code
    assert is_outage(error) is False
    assert not is_lock_conflict(status, code, message)
    assert route.call_count == 1  # a refusal is final: never retried


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (409, 6, "lock held", e.LockHeld),  # a held lock stays a held lock
        (409, 10, "aborted", e.LockHeld),  # code 10 alone is not a new refusal
        (400, 9, "precondition failed", e.InvalidRequest),  # code 9 alone is not a freeze
        (400, 3, "Blocked by hard freeze: x", e.InvalidRequest),  # the words alone neither
        (500, 2, "superseded by bob", e.ServerError),  # nor these
    ],
)
def test_only_the_whole_row_makes_a_new_refusal(
    status: int, code: int, message: str, expected: type[e.APIError]
) -> None:
    assert error_class_for(status, code, message) is expected


def _answer(response: httpx.Response) -> e.APIError:
    response.request = httpx.Request("POST", f"{BASE}/api/v1alpha1/event")
    return error_from_response(response)


def test_freeze_refusal_names_the_window_and_its_end() -> None:
    error = _answer(error_answer(400, 9, FREEZE))

    assert isinstance(error, e.FreezeRefused)
    assert error.window_title == "Black Friday"
    assert error.until == "2026-11-30T08:00:00Z"
    assert error.ends_at == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert error.message == (
        f"Tracker at {BASE} refused POST /api/v1alpha1/event (400): {FREEZE}. Nothing was "
        "started; deploy once the freeze window has ended"
    )


@pytest.mark.parametrize(
    ("message", "title", "until", "ends_at"),
    [
        ("Blocked by hard freeze: release week", "release week", "", None),
        ('Blocked by hard freeze: "x" until Monday 8:00.', "x", "Monday 8:00", None),
        ("Blocked by hard freeze:", "", "", None),
    ],
)
def test_freeze_fields_are_read_when_present(
    message: str, title: str, until: str, ends_at: datetime | None
) -> None:
    error = _answer(error_answer(400, 9, message))

    assert isinstance(error, e.FreezeRefused)
    assert (error.window_title, error.until, error.ends_at) == (title, until, ends_at)


def test_superseded_names_the_newer_deploy() -> None:
    error = _answer(error_answer(409, 10, "waiter w1 superseded by Alice Smith's deploy"))

    assert isinstance(error, e.Superseded)
    assert error.superseded_by == "Alice Smith"
    assert "The newer deploy goes instead; nothing was started" in error.message


def test_lock_lost_raised_by_the_lifecycle_names_the_lock() -> None:
    held = lock()
    error = e.LockLost(
        service=held.service,
        environment=str(held.environment),
        resource=held.resource,
        lock_id=held.id,
    )

    assert error.message == (
        f"The deployment lock of api in production was lost (lock {LOCK_ID}): its lease "
        "expired or it was released while the deploy ran"
    )
    assert (error.exit_code, error.status_code, is_outage(error)) == (9, 410, False)


# ------------------------------------------------------------ exit codes and outages
OUTAGES = {"ServerUnreachable", "ServerError", "NotATracker", "UnexpectedResponse"}


def _error_classes() -> list[type[e.TrackerError]]:
    return [
        value
        for name in e.__all__
        if isinstance(value := getattr(e, name), type) and issubclass(value, e.TrackerError)
    ]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda cls: cls.__name__)
def test_every_class_has_a_documented_exit_code_and_a_deliberate_outage(
    cls: type[e.TrackerError],
) -> None:
    assert cls.exit_code in EXIT_CODES
    assert cls.exit_code != ExitCode.OK
    assert cls.outage is (cls.__name__ in OUTAGES)


def test_a_held_lock_is_never_an_outage_even_as_a_500() -> None:
    upstream = _answer(error_answer(500, 2, "service api is already locked in production."))

    assert isinstance(upstream, e.LockHeld)
    assert not is_outage(upstream)
    assert not is_outage(e.LockWaitTimeout("x", waited=1))


def test_outage_and_exit_code_of_anything_else() -> None:
    assert not is_outage(RuntimeError("x"))
    assert exit_code_for(KeyboardInterrupt()) == 1


def test_grpc_codes_are_the_wire_codes() -> None:
    assert GrpcCode.ALREADY_EXISTS == 6
    assert GrpcCode.UNAUTHENTICATED == 16
    assert [code.value for code in GrpcCode] == list(range(17))


def test_importing_the_exceptions_loads_neither_httpx_nor_pydantic() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tracker_ci.exceptions, tracker_ci.exit_codes; "
        "print(sorted(m for m in ('httpx', 'pydantic') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_messages_of_the_rows_name_no_format_field_left_open() -> None:
    # Every explanation is formatted with origin, where, status and said only.
    for rule in ERROR_RULES:
        text = rule.explanation or rule.error.explanation
        assert set(re.findall(r"{(\w+)}", text)) <= {"origin", "where", "status", "said"}
