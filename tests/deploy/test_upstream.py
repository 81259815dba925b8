"""The lifecycle against upstream's quirks, which the bundled server does not copy.

Upstream's Go Tracker cannot run here, so respx plays its answers as CONTRACT.md
describes them: a held lock is an HTTP 500 whose message says "already locked", PUT
answers the event as it was before the change, and no answer carries X-Tracker-Server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import respx

from tests.client.helpers import BASE, EVENT_ID, LOCK_ID, error_answer, event, event_answer, lock
from tracker_ci.client import TrackerClient
from tracker_ci.deploy import Deployment, DeploymentOptions
from tracker_ci.exceptions import LockHeld, LockWaitTimeout
from tracker_ci.models import Lock, Status

pytestmark = pytest.mark.unit

HELD = "cannot create event: service api is already locked in production. Please unlock it first"


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def client(api: respx.MockRouter) -> Iterator[TrackerClient]:
    with TrackerClient(base_url=BASE, retries=0) as tracker:
        yield tracker


def locks(*held: Lock) -> httpx.Response:
    return httpx.Response(200, json={"locks": [x.to_wire() for x in held], "totalCount": len(held)})


def test_start_waits_on_upstreams_500_then_proceeds(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    other = lock(id="other-lock", who="bob", event_id="other-event")
    ours = lock()
    create = api.post("/api/v1alpha1/event").mock(
        side_effect=[error_answer(500, 2, HELD, ours=False), event_answer(event(), ours=False)]
    )
    api.get("/api/v1alpha1/locks/list").mock(side_effect=[locks(other), locks(ours)])
    waits: list[tuple[Lock | LockHeld, float]] = []
    deploy = Deployment(
        client, DeploymentOptions(service="api", environment="production", poll_interval=0.01)
    )

    state = deploy.start(wait=5, on_wait=lambda holder, waited: waits.append((holder, waited)))

    assert (state.event_id, state.lock_id) == (EVENT_ID, LOCK_ID)
    assert create.call_count == 2
    assert [holder for holder, _ in waits] == [other]


def test_wait_timeout_names_the_holder_found_in_the_lock_list(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    other = lock(id="other-lock", who="bob", event_id="other-event")
    api.post("/api/v1alpha1/event").mock(return_value=error_answer(500, 2, HELD, ours=False))
    api.get("/api/v1alpha1/locks/list").mock(return_value=locks(other))
    deploy = Deployment(
        client, DeploymentOptions(service="api", environment="production", poll_interval=0.01)
    )

    with pytest.raises(LockWaitTimeout) as raised:
        deploy.start(wait=0.05)

    error = raised.value
    assert (error.holder, error.lock_id, error.event_id) == ("bob", "other-lock", "other-event")
    assert "still held by bob since 2026-11-23 10:00:00Z" in error.message


def test_finish_reads_the_event_again_and_trusts_the_server_to_release(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    before = event()
    after = event(Status.success, duration="12.5s")
    api.get(f"/api/v1alpha1/event/{EVENT_ID}").mock(
        side_effect=[event_answer(before, ours=False), event_answer(after, ours=False)]
    )
    put = api.put("/api/v1alpha1/event").mock(return_value=event_answer(before, ours=False))
    # Upstream releases the lock of an event updated to success, failure or done: the
    # client neither lists nor releases locks then (respx refuses any unmocked request).
    deploy = Deployment(client, DeploymentOptions(service="api", environment="production"))

    final = deploy.finish(EVENT_ID, "success", "all green")

    # The answer to PUT is the event before the change: the state comes from the re-read.
    assert (final.status, final.duration) == ("success", 12.5)
    sent = json.loads(put.calls.last.request.content)
    assert sent["attributes"]["status"] == "success"
    assert sent["attributes"]["message"] == "deploying\nall green"
    assert sent["links"] == before.links.to_wire()
    assert sent["title"] == before.title
    assert [call.request.method for call in api.calls] == ["GET", "PUT", "GET"]


def test_finish_with_a_status_the_server_does_not_close_on_releases_the_lock(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    before = event()
    after = event(Status.warning)
    api.get(f"/api/v1alpha1/event/{EVENT_ID}").mock(
        side_effect=[event_answer(before, ours=False), event_answer(after, ours=False)]
    )
    api.put("/api/v1alpha1/event").mock(return_value=event_answer(before, ours=False))
    api.get("/api/v1alpha1/locks/list").mock(return_value=locks(lock()))
    unlock = api.get(f"/api/v1alpha1/unlock/{LOCK_ID}").mock(
        return_value=httpx.Response(
            200, json={"message": "lock deleted", "id": LOCK_ID, "count": "1"}
        )
    )
    deploy = Deployment(client, DeploymentOptions(service="api", environment="production"))

    final = deploy.finish(EVENT_ID, "warning")

    assert final.status == "warning"
    assert unlock.call_count == 1
