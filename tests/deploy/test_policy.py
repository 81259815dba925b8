"""Deployment pieces that need no server: the state, its URL, input checks, fail policies."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest

from tracker_ci.client import TrackerClient
from tracker_ci.deploy import Deployment, DeploymentOptions
from tracker_ci.deploy_state import DeploymentState, describe_wait, event_url
from tracker_ci.exceptions import ConfigError, LockHeld, ServerUnreachable, TrackerError

pytestmark = pytest.mark.unit


@pytest.fixture
def unreachable() -> Iterator[TrackerClient]:
    """A client of a loopback port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with TrackerClient(base_url=f"http://127.0.0.1:{port}", retries=0) as tracker:
        yield tracker


def test_event_url() -> None:
    assert event_url("https://tracker.example.com/", "e-1") == (
        "https://tracker.example.com/api/v1alpha1/event/e-1"
    )
    assert event_url("https://tracker.example.com/", "e-1", page=True) == (
        "https://tracker.example.com/events/e-1"
    )


def test_state_to_dict_is_camel_case() -> None:
    state = DeploymentState(
        event_id="e-1",
        lock_id="l-1",
        service="api",
        environment="production",
        status="success",
        started_at="2026-11-23T10:00:00.5Z",
        duration=12.5,
        event_url="http://t/api/v1alpha1/event/e-1",
    )

    assert state.to_dict() == {
        "eventId": "e-1",
        "lockId": "l-1",
        "service": "api",
        "environment": "production",
        "status": "success",
        "startedAt": "2026-11-23T10:00:00.500000Z",
        "duration": 12.5,
        "eventUrl": "http://t/api/v1alpha1/event/e-1",
    }
    assert state.tracked
    assert not DeploymentState().tracked


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"service": " ", "environment": "production"}, "needs a service name"),
        ({"service": "api", "environment": "moon base"}, "not a valid environment: one of"),
        ({"service": "api", "environment": "UAT", "priority": "P9"}, "not a valid priority"),
        ({"service": "api", "environment": "UAT", "fail_policy": "maybe"}, "fail policy"),
        ({"service": "api", "environment": "UAT", "lock_ttl": -1}, "lock TTL"),
    ],
)
def test_bad_options_are_config_errors(
    unreachable: TrackerClient, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        DeploymentOptions(**options)  # type: ignore[arg-type]


def test_environment_is_read_forgivingly(unreachable: TrackerClient) -> None:
    deploy = Deployment(
        unreachable, DeploymentOptions(service="api", environment="Production", priority=1)
    )
    assert deploy.environment.value == "production"
    assert deploy.priority.value == "P1"
    assert deploy.title == "Deploy api to production"


def test_fail_closed_raises_tracking_errors(unreachable: TrackerClient) -> None:
    options = DeploymentOptions(service="api", environment="production", close_within=0)
    deploy = Deployment(unreachable, options)

    with pytest.raises(ServerUnreachable, match="cannot connect to Tracker"):
        deploy.start()
    with pytest.raises(ServerUnreachable):
        deploy.finish("e-1", "success")


def test_fail_closed_run_does_not_run_the_command(unreachable: TrackerClient, tmp_path) -> None:
    marker = tmp_path / "ran"
    deploy = Deployment(unreachable, DeploymentOptions(service="api", environment="production"))

    with pytest.raises(ServerUnreachable):
        deploy.run([sys.executable, "-c", f"open({str(marker)!r}, 'w')"])

    assert not marker.exists()


def test_fail_open_warns_and_goes_on_untracked(unreachable: TrackerClient, tmp_path) -> None:
    warnings: list[TrackerError] = []
    marker = tmp_path / "ran"
    options = DeploymentOptions(
        service="api", environment="production", fail_policy="open", close_within=0
    )
    deploy = Deployment(unreachable, options, on_warning=warnings.append)

    state = deploy.start()
    assert state.status == "untracked" and not state.tracked
    assert deploy.finish(state, "success").status == "success"
    left = deploy.finish("e-1", "failure")  # a known id: it tries, and says it is left open
    assert left.status == "failure" and left.left_open
    code = deploy.run([sys.executable, "-c", f"open({str(marker)!r}, 'w'); raise SystemExit(5)"])

    assert code == 5
    assert marker.exists()
    assert [type(w) for w in warnings] == [ServerUnreachable] * 3


def test_run_needs_a_command(unreachable: TrackerClient) -> None:
    deploy = Deployment(unreachable, DeploymentOptions(service="api", environment="production"))
    with pytest.raises(ConfigError, match="needs a command"):
        deploy.run([])


def test_finish_rejects_an_unknown_status(unreachable: TrackerClient) -> None:
    deploy = Deployment(unreachable, DeploymentOptions(service="api", environment="production"))
    with pytest.raises(ConfigError, match="not a valid status"):
        deploy.finish("e-1", "finished")


def test_describe_wait_without_the_lock_record() -> None:
    held = LockHeld("", service="api", environment="production", resource="deployment")
    assert describe_wait(held, 4.0) == "waiting for lock: held by another deployment, waited 4s"


def test_deploy_all_is_complete() -> None:
    from tracker_ci import deploy

    public = {
        name
        for name, value in vars(deploy).items()
        if not name.startswith("_")
        and (
            getattr(value, "__module__", None) == deploy.__name__
            or (name.isupper() and isinstance(value, float))
        )
    }
    # DEFAULT_POLL_INTERVAL and OnWait are the waiter's, given on demand (module __getattr__).
    lazy = {"DEFAULT_POLL_INTERVAL", "OnWait"}
    assert public | lazy | {"FailPolicy", "OnLockLost", "OnWarning"} == set(deploy.__all__)
    assert deploy.DEFAULT_POLL_INTERVAL > 0
