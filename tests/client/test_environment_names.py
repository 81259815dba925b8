"""Environment names beyond upstream's eight: refused before anything is sent upstream."""

from __future__ import annotations

import httpx
import pytest
import respx

from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import ConfigError, LockHeld
from tracker_ci.models import CreateEventRequest, EventAttributes, EventType, Status

pytestmark = pytest.mark.unit


def _deployment(environment: str) -> CreateEventRequest:
    return CreateEventRequest(
        title="Deploy api",
        attributes=EventAttributes(
            service="api",
            type=EventType.deployment,
            status=Status.start,
            environment=environment,  # type: ignore[arg-type]
        ),
    )


def test_an_upstream_server_gets_no_request_with_a_name_it_cannot_store(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    # Upstream's Go server has no /health (and never sends X-Tracker-Server).
    health = api.get("/health").mock(return_value=httpx.Response(404, json={"code": 5}))
    create = api.post("/api/v1alpha1/event").mock(return_value=httpx.Response(200, json={}))
    lock = api.post("/api/v1alpha1/lock").mock(return_value=httpx.Response(200, json={}))
    with pytest.raises(ConfigError, match="use one of development, integration, TNR, UAT"):
        client.create_event(_deployment("staging"))
    with pytest.raises(ConfigError, match="'eu-west-1' is not one an upstream Tracker"):
        client.acquire_lock(service="api", environment="eu-west-1")
    assert health.call_count == 1, "the server's kind is asked once"
    assert not create.called and not lock.called


def test_the_eight_names_never_ask_which_server_it_is(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    health = api.get("/health")
    create = api.post("/api/v1alpha1/event").mock(
        return_value=httpx.Response(409, json={"code": 6, "message": "already locked"})
    )
    with pytest.raises(LockHeld):
        client.create_event(_deployment("Production"))
    assert create.called and not health.called
    sent = create.calls.last.request.content
    assert b'"environment":"production"' in sent, "the wire name of the eight"


def test_a_name_that_is_no_environment_is_refused_as_bad_input(client: TrackerClient) -> None:
    with pytest.raises(ConfigError, match="letters, digits"):
        client.check_environment("eu west")
