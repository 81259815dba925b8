"""The one mapping of TrackerError subclasses to exit codes, and the live wait line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tracker_ci import exceptions as e
from tracker_ci.cli import exit_code_for
from tracker_ci.commands.common import LiveWaitLine

pytestmark = pytest.mark.unit


def _api(cls: type[e.APIError], status: int) -> e.APIError:
    return cls("x", status_code=status)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (e.TrackerError("x"), 1),
        (_api(e.ServerError, 500), 1),
        (_api(e.UnexpectedResponse, 200), 1),
        (_api(e.APIError, 418), 1),
        (_api(e.InvalidRequest, 400), 2),
        (_api(e.PayloadTooLarge, 413), 2),
        (e.ConfigError("x"), 2),
        (e.LockHeld("x"), 3),
        (e.LockWaitTimeout("x", waited=3), 3),
        (e.ServerUnreachable("x"), 4),
        (_api(e.NotATracker, 404), 4),
        (_api(e.AuthenticationFailed, 401), 5),
        (_api(e.PermissionDenied, 403), 5),
        (_api(e.NotFound, 404), 6),
        (e.FreezeRefused("x"), 7),
        (e.Superseded("x"), 8),
        (e.LockLost(), 9),
        (e.NotApproved("x"), 10),
        (RuntimeError("x"), 1),
    ],
)
def test_exit_code_for(error: BaseException, code: int) -> None:
    assert exit_code_for(error) == code


def test_every_tracker_error_class_has_a_deliberate_code() -> None:
    # A new subclass must be placed on purpose: fail until it is listed above.
    known = {
        "TrackerError",
        "ServerUnreachable",
        "ConfigError",
        "APIError",
        "InvalidRequest",
        "PayloadTooLarge",
        "AuthenticationFailed",
        "PermissionDenied",
        "NotFound",
        "LockHeld",
        "LockWaitTimeout",
        "ServerError",
        "NotATracker",
        "UnexpectedResponse",
        "FreezeRefused",
        "Superseded",
        "LockLost",
        "NotApproved",
    }
    found = {
        name
        for name in e.__all__
        if isinstance(getattr(e, name), type) and issubclass(getattr(e, name), e.TrackerError)
    }
    assert found == known


class _Lock:
    who = "alice"
    created_at = datetime(2026, 1, 31, 12, 1, 3, tzinfo=UTC)
    event_id = "ev-1"


def test_live_wait_line_names_holder_since_event_and_time_left(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = LiveWaitLine("api/production", 30, every=10)
    assert line.text(_Lock()) == (
        "waiting for lock on api/production: held by alice since 12:01:03Z (event ev-1), 30s left"
    )
    line(_Lock(), 0.0)
    line(_Lock(), 2.0)  # within `every` seconds: not repeated in a CI log
    line.done()
    assert capsys.readouterr().err.count("waiting for lock") == 1
    held = e.LockHeld("x", holder="bob")
    assert "held by bob, " in LiveWaitLine("api/UAT", 5).text(held)
