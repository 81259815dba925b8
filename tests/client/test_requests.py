"""Every client method sends exactly the request the contract describes, and reads its answer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import respx

from tests.client.helpers import (
    API,
    BASE,
    EVENT_ID,
    LOCK_ID,
    OURS,
    body,
    error_answer,
    event,
    event_answer,
    lock,
    lock_answer,
)
from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import ConfigError, UnexpectedResponse
from tracker_ci.models import (
    ChangelogEntry,
    ChangeType,
    CreateEventRequest,
    Environment,
    EventAttributes,
    EventType,
    Priority,
    Status,
    UpdateEventRequest,
)

pytestmark = pytest.mark.unit

AUTH = "Bearer trk_secret"


def create_request() -> CreateEventRequest:
    return CreateEventRequest(
        title="Deploy api to production",
        attributes=EventAttributes(
            service="api",
            type=EventType.deployment,
            status=Status.start,
            environment=Environment.production,
            priority=Priority.P2,
            owner="alice",
        ),
    )


def test_create_event_sends_attributes_links_and_key(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    route = api.post("/api/v1alpha1/event").mock(return_value=event_answer(event()))

    created = client.create_event(create_request(), idempotency_key="key-1", lock_ttl_seconds=600)

    assert created.id == EVENT_ID
    assert created.attributes.status is Status.start
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.url == f"{API}/event"
    assert request.headers["Authorization"] == AUTH
    assert request.headers["Idempotency-Key"] == "key-1"
    assert request.headers["Content-Type"] == "application/json"
    sent = body(request)
    # Upstream's handler crashes without attributes or links: both always go.
    assert sent["links"] == {"pullRequestLink": "", "ticket": ""}
    assert sent["attributes"]["service"] == "api"
    assert sent["attributes"]["type"] == "deployment"
    assert sent["attributes"]["status"] == "start"
    assert sent["attributes"]["environment"] == "production"
    assert sent["attributes"]["priority"] == "P2"
    assert sent["title"] == "Deploy api to production"
    assert sent["lockTtlSeconds"] == 600


def test_create_event_without_key_sends_a_random_one(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    route = api.post("/api/v1alpha1/event").mock(return_value=event_answer(event()))

    client.create_event(create_request())
    client.create_event(create_request())

    first, second = (call.request for call in route.calls)
    assert first.headers["Idempotency-Key"].startswith("tracker-ci-")
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]
    request = route.calls.last.request
    assert body(request)["lockTtlSeconds"] == 0


def test_get_event(api: respx.MockRouter, client: TrackerClient) -> None:
    route = api.get(f"/api/v1alpha1/event/{EVENT_ID}").mock(return_value=event_answer(event()))

    got = client.get_event(EVENT_ID)

    assert got.title == "Deploy api to production"
    assert got.links.ticket == "OPS-1"
    assert route.calls.last.request.headers["Authorization"] == AUTH


def update_request() -> UpdateEventRequest:
    current = event()
    attributes = current.attributes.model_copy(update={"status": Status.success})
    return UpdateEventRequest(
        id=EVENT_ID, title=current.title, attributes=attributes, links=current.links
    )


def test_update_event_on_our_server_uses_the_answer(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    after = event(Status.success, duration=timedelta(seconds=42))
    route = api.put("/api/v1alpha1/event").mock(return_value=event_answer(after))
    reread = api.get(f"/api/v1alpha1/event/{EVENT_ID}")

    updated = client.update_event(update_request())

    assert updated.attributes.status is Status.success
    assert updated.metadata.duration == timedelta(seconds=42)
    assert not reread.called
    request = route.calls.last.request
    assert request.headers["Authorization"] == AUTH
    sent = body(request)
    assert sent["id"] == EVENT_ID
    assert sent["attributes"]["status"] == "success"
    assert sent["links"] == {"pullRequestLink": "https://github.com/o/r/pull/7", "ticket": "OPS-1"}


def test_update_event_on_upstream_reads_the_event_again(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    # Upstream answers the record as it was BEFORE the change, without our header.
    api.put("/api/v1alpha1/event").mock(return_value=event_answer(event(), ours=False))
    after = event(Status.success, duration=timedelta(seconds=7))
    reread = api.get(f"/api/v1alpha1/event/{EVENT_ID}").mock(
        return_value=event_answer(after, ours=False)
    )

    updated = client.update_event(update_request())

    assert reread.call_count == 1
    assert updated.attributes.status is Status.success
    assert updated.metadata.duration == timedelta(seconds=7)
    assert client.server_is_bundled is False


def test_delete_event(api: respx.MockRouter, client: TrackerClient) -> None:
    route = api.delete(f"/api/v1alpha1/event/{EVENT_ID}").mock(
        return_value=httpx.Response(200, json={"id": EVENT_ID, "slackId": ""}, headers=OURS)
    )

    assert client.delete_event(EVENT_ID) is None
    assert route.calls.last.request.headers["Authorization"] == AUTH


@pytest.mark.parametrize(
    ("method", "path"), [("list_events", "/events/list"), ("today_events", "/events/today")]
)
def test_list_and_today_send_paging(
    api: respx.MockRouter, client: TrackerClient, method: str, path: str
) -> None:
    answer = {"events": [event().to_wire()], "totalCount": 11}
    route = api.get(f"/api/v1alpha1{path}").mock(return_value=httpx.Response(200, json=answer))

    page = getattr(client, method)(page=2, per_page=10)

    assert page.total_count == 11
    assert [e.id for e in page.events] == [EVENT_ID]
    assert route.calls.last.request.url.params.multi_items() == [("per_page", "10"), ("page", "2")]


def test_search_events_sends_snake_case_filters_by_name(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    route = api.get("/api/v1alpha1/events/search").mock(
        return_value=httpx.Response(200, json={"events": [], "totalCount": 0})
    )

    client.search_events(
        source="tracker-ci",
        type="deployment",
        priority=1,  # a number is read as the enum's protobuf number (P1)
        status=Status.failure,
        service="api",
        environment="Production",
        start_date=date(2026, 11, 1),
        end_date=datetime(2026, 11, 30, 23, 59, tzinfo=UTC),
        impact=False,
        slack_id="C1.2",
    )

    assert route.calls.last.request.url.params.multi_items() == [
        ("source", "tracker-ci"),
        ("type", "deployment"),
        ("priority", "P1"),
        ("status", "failure"),
        ("service", "api"),
        ("environment", "production"),
        ("start_date", "2026-11-01"),
        ("end_date", "2026-11-30T23:59:00Z"),
        ("impact", "false"),
        ("slack_id", "C1.2"),
        ("per_page", "50"),  # our CLI pages a search (upstream answers every match)
    ]


def test_search_events_leaves_out_unset_filters(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    route = api.get("/api/v1alpha1/events/search").mock(
        return_value=httpx.Response(200, json={"events": [event().to_wire()], "totalCount": 1})
    )

    found = client.search_events(service="api")

    assert found.events[0].attributes.service == "api"
    assert route.calls.last.request.url.params.multi_items() == [
        ("service", "api"),
        ("per_page", "50"),
    ]
    client.search_events(service="api", per_page=None)  # every match, as upstream's UI asks
    assert route.calls.last.request.url.params.multi_items() == [("service", "api")]


def test_search_events_rejects_an_unknown_enum_before_sending(client: TrackerClient) -> None:
    with pytest.raises(ValueError, match="not a valid environment: one of development"):
        client.search_events(environment="moon base")


def entry() -> ChangelogEntry:
    return ChangelogEntry(user="bob", change_type=ChangeType.commented, comment="rolled out 50%")


def test_add_changelog_entry_on_our_server(api: respx.MockRouter, client: TrackerClient) -> None:
    after = event()
    after.changelog.append(entry())
    route = api.post(f"/api/v1alpha1/event/{EVENT_ID}/changelog").mock(
        return_value=event_answer(after)
    )
    reread = api.get(f"/api/v1alpha1/event/{EVENT_ID}")

    updated = client.add_changelog_entry(EVENT_ID, entry())

    assert [e.comment for e in updated.changelog] == ["Event created", "rolled out 50%"]
    assert not reread.called
    request = route.calls.last.request
    assert request.headers["Authorization"] == AUTH
    assert body(request) == {
        "entry": {
            "timestamp": None,
            "user": "bob",
            "changeType": "commented",
            "field": "",
            "oldValue": "",
            "newValue": "",
            "comment": "rolled out 50%",
        }
    }


def test_add_changelog_entry_on_upstream_reads_again(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    api.post(f"/api/v1alpha1/event/{EVENT_ID}/changelog").mock(
        return_value=event_answer(event(), ours=False)
    )
    after = event()
    after.changelog.append(entry())
    reread = api.get(f"/api/v1alpha1/event/{EVENT_ID}").mock(
        return_value=event_answer(after, ours=False)
    )

    updated = client.add_changelog_entry(EVENT_ID, entry())

    assert reread.call_count == 1
    assert len(updated.changelog) == 2


def test_get_changelog(api: respx.MockRouter, client: TrackerClient) -> None:
    answer = {"changelog": [entry().to_wire()], "totalCount": 1}
    route = api.get(f"/api/v1alpha1/event/{EVENT_ID}/changelog").mock(
        return_value=httpx.Response(200, json=answer)
    )

    page = client.get_changelog(EVENT_ID, page=3, per_page=5)

    assert page.changelog[0].change_type is ChangeType.commented
    assert route.calls.last.request.url.params.multi_items() == [("per_page", "5"), ("page", "3")]


@pytest.mark.parametrize("ours", [True, False], ids=["ours", "upstream"])
def test_set_slack_id(api: respx.MockRouter, client: TrackerClient, ours: bool) -> None:
    after = event(slack_id="1700000000.000100")
    answer = after if ours else event()
    route = api.post(f"/api/v1alpha1/event/{EVENT_ID}/slack").mock(
        return_value=event_answer(answer, ours=ours)
    )
    reread = api.get(f"/api/v1alpha1/event/{EVENT_ID}").mock(
        return_value=event_answer(after, ours=ours)
    )

    updated = client.set_slack_id(EVENT_ID, "1700000000.000100")

    assert updated.metadata.slack_id == "1700000000.000100"
    assert reread.call_count == (0 if ours else 1)
    assert body(route.calls.last.request) == {"slackId": "1700000000.000100"}


def test_stats_repeats_list_keys(api: respx.MockRouter, client: TrackerClient) -> None:
    answer = {"totalCount": "12", "startDate": "2026-11-01", "endDate": "2026-11-30"}
    route = api.get("/api/v1alpha1/events/stats").mock(
        return_value=httpx.Response(200, json=answer)
    )

    stats = client.stats(
        start_date="2026-11-01",
        end_date="2026-11-30",
        environments=["production", Environment.UAT],
        priorities=["P1"],
        types=[EventType.deployment, "incident"],
        statuses=["success", "failure"],
        impact=True,
        source="tracker-ci",
        service="api",
    )

    assert stats.total_count == 12
    assert route.calls.last.request.url.params.multi_items() == [
        ("start_date", "2026-11-01"),
        ("end_date", "2026-11-30"),
        ("environments", "production"),
        ("environments", "UAT"),
        ("priorities", "P1"),
        ("types", "deployment"),
        ("types", "incident"),
        ("statuses", "success"),
        ("statuses", "failure"),
        ("impact", "true"),
        ("source", "tracker-ci"),
        ("service", "api"),
    ]


def test_monthly_stats_groups_by_service(api: respx.MockRouter, client: TrackerClient) -> None:
    answer = {
        "stats": [{"year": 2026, "month": 11, "count": "3", "service": "api"}],
        "totalCount": "3",
        "startDate": "2026-01-01",
        "endDate": "2026-12-31",
    }
    route = api.get("/api/v1alpha1/events/stats/monthly").mock(
        return_value=httpx.Response(200, json=answer)
    )

    monthly = client.monthly_stats(
        start_date=date(2026, 1, 1), end_date=date(2026, 12, 31), group_by_service=True
    )

    assert [(s.year, s.month, s.count, s.service) for s in monthly.stats] == [(2026, 11, 3, "api")]
    assert route.calls.last.request.url.params.multi_items() == [
        ("start_date", "2026-01-01"),
        ("end_date", "2026-12-31"),
        ("group_by_service", "true"),
    ]


def test_acquire_lock_with_ttl_and_key(api: respx.MockRouter, client: TrackerClient) -> None:
    route = api.post("/api/v1alpha1/lock").mock(return_value=lock_answer(lock()))

    taken = client.acquire_lock(
        service="api",
        environment=Environment.production,
        who="alice",
        event_id=EVENT_ID,
        ttl_seconds=300,
        idempotency_key="key-2",
    )

    assert taken.id == LOCK_ID
    request = route.calls.last.request
    assert request.headers["Authorization"] == AUTH
    assert request.headers["Idempotency-Key"] == "key-2"
    assert body(request) == {
        "service": "api",
        "who": "alice",
        "environment": "production",
        "resource": "deployment",
        "eventId": EVENT_ID,
        "ttlSeconds": 300,
    }


def test_acquire_lock_without_ttl_sends_only_upstream_fields(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    route = api.post("/api/v1alpha1/lock").mock(return_value=lock_answer(lock(), ours=False))

    client.acquire_lock(service="api", environment="production", resource="operation", who="ci")

    request = route.calls.last.request
    assert request.headers["Idempotency-Key"].startswith("tracker-ci-")  # upstream ignores it
    assert body(request) == {
        "service": "api",
        "who": "ci",
        "environment": "production",
        "resource": "operation",
        "eventId": "",
    }


def test_get_lock(api: respx.MockRouter, client: TrackerClient) -> None:
    api.get(f"/api/v1alpha1/lock/{LOCK_ID}").mock(return_value=lock_answer(lock()))

    got = client.get_lock(LOCK_ID)

    assert (got.service, got.environment, got.who) == ("api", "production", "alice")


@pytest.mark.parametrize("ours", [True, False], ids=["ours", "upstream"])
def test_update_lock_returns_the_lock_after_the_change(
    api: respx.MockRouter, client: TrackerClient, ours: bool
) -> None:
    after = lock(who="bob")
    route = api.put(f"/api/v1alpha1/lock/{LOCK_ID}").mock(
        return_value=lock_answer(after if ours else lock(), ours=ours)
    )
    reread = api.get(f"/api/v1alpha1/lock/{LOCK_ID}").mock(
        return_value=lock_answer(after, ours=ours)
    )

    updated = client.update_lock(LOCK_ID, who="bob")

    assert updated.who == "bob"
    assert reread.call_count == (0 if ours else 1)
    assert body(route.calls.last.request) == {
        "service": "",
        "who": "bob",
        "environment": "",
        "resource": "",
        "eventId": "",
    }


def test_release_lock_is_a_get_of_unlock(api: respx.MockRouter, client: TrackerClient) -> None:
    route = api.get(f"/api/v1alpha1/unlock/{LOCK_ID}").mock(
        return_value=httpx.Response(
            200, json={"message": "lock deleted", "id": LOCK_ID, "count": "1"}
        )
    )

    assert client.release_lock(LOCK_ID) == 1
    assert route.calls.last.request.headers["Authorization"] == AUTH


def test_release_lock_of_a_lock_upstream_no_longer_has_is_zero(
    api: respx.MockRouter, client: TrackerClient
) -> None:
    # Upstream answers an unknown lock id with a 500 "no event found"; ours with count "0".
    message = f"no event found in tracker for id {LOCK_ID}"
    route = api.get(f"/api/v1alpha1/unlock/{LOCK_ID}").mock(
        return_value=error_answer(500, 2, message, ours=False)
    )

    assert client.release_lock(LOCK_ID) == 0
    assert route.call_count == 1


def test_release_lock_by_key(api: respx.MockRouter, client: TrackerClient) -> None:
    route = api.post("/api/v1alpha1/unlock").mock(
        return_value=httpx.Response(
            200, json={"message": "lock deleted", "id": LOCK_ID, "count": "1"}, headers=OURS
        )
    )

    count = client.release_lock_by_key(
        service="api", environment="production", who="alice", event_id=EVENT_ID
    )

    assert count == 1
    assert body(route.calls.last.request) == {
        "service": "api",
        "environment": "production",
        "resource": "deployment",
        "who": "alice",
        "id": "",
        "eventId": EVENT_ID,
    }


def test_renew_lock(api: respx.MockRouter, client: TrackerClient) -> None:
    renewed = lock(expires_at="2026-11-23T10:10:00Z")
    route = api.post(f"/api/v1alpha1/lock/{LOCK_ID}/renew").mock(return_value=lock_answer(renewed))

    got = client.renew_lock(LOCK_ID, 600)

    assert got.expires_at == datetime(2026, 11, 23, 10, 10, tzinfo=UTC)
    assert body(route.calls.last.request) == {"ttlSeconds": 600}


def locks_answer() -> httpx.Response:
    locks = [
        lock(id="l-1", service="web", environment="production"),
        lock(id="l-2", resource="operation", event_id=""),
        lock(),
    ]
    return httpx.Response(200, json={"locks": [x.to_wire() for x in locks], "totalCount": 3})


def test_list_locks(api: respx.MockRouter, client: TrackerClient) -> None:
    route = api.get("/api/v1alpha1/locks/list").mock(return_value=locks_answer())

    assert [x.id for x in client.list_locks()] == ["l-1", "l-2", LOCK_ID]
    assert route.calls.last.request.url.query == b""


def test_find_lock_filters_the_list(api: respx.MockRouter, client: TrackerClient) -> None:
    api.get("/api/v1alpha1/locks/list").mock(return_value=locks_answer())

    assert client.find_lock(service="api", environment=Environment.production).id == LOCK_ID
    found = client.find_lock(service="api", environment="production", resource="operation")
    assert found is not None and found.id == "l-2"
    assert client.find_lock(service="api", environment="UAT") is None


def test_locks_for_event(api: respx.MockRouter, client: TrackerClient) -> None:
    api.get("/api/v1alpha1/locks/list").mock(return_value=locks_answer())

    assert [x.id for x in client.locks_for_event(EVENT_ID)] == ["l-1", LOCK_ID]
    assert client.locks_for_event("") == []


# Tokens and /health exist on our server only: what it answers is read from the real one
# (test_against_server.py); these tests assert the requests sent and odd answers.
def token_info(**fields: object) -> dict[str, object]:
    return {
        "id": "tok-1",
        "name": "ci",
        "services": ["api"],
        "admin": False,
        "createdAt": "2026-11-23T10:00:00Z",
        "lastUsedAt": None,
        "prefix": "trk_abcd",
        **fields,
    }


def test_create_token(api: respx.MockRouter, client: TrackerClient) -> None:
    route = api.post("/api/v1alpha1/tokens").mock(
        return_value=httpx.Response(
            201, json={"token": token_info(), "secret": "trk_abcd_secret"}, headers=OURS
        )
    )

    created = client.create_token(name="ci", services=["api"])

    assert created.secret == "trk_abcd_secret"
    assert created.token.services == ["api"]
    request = route.calls.last.request
    assert request.headers["Authorization"] == AUTH
    assert body(request) == {"name": "ci", "services": ["api"], "admin": False, "readOnly": False}


@pytest.mark.parametrize("wrapped", [True, False], ids=["wrapped", "bare"])
def test_revoke_token(api: respx.MockRouter, client: TrackerClient, wrapped: bool) -> None:
    answer = {"token": token_info()} if wrapped else token_info()
    route = api.delete("/api/v1alpha1/tokens/tok-1").mock(
        return_value=httpx.Response(200, json=answer, headers=OURS)
    )

    revoked = client.revoke_token("tok-1")

    assert revoked.name == "ci"
    assert route.calls.last.request.headers["Authorization"] == AUTH


def test_no_token_sends_no_authorization(api: respx.MockRouter) -> None:
    route = api.get(f"/api/v1alpha1/event/{EVENT_ID}").mock(return_value=event_answer(event()))

    with TrackerClient(base_url=BASE) as anonymous:
        anonymous.get_event(EVENT_ID)

    request = route.calls.last.request
    assert "Authorization" not in request.headers
    assert request.headers["User-Agent"].startswith("tracker-ci/")


def test_base_url_with_a_path_prefix_is_kept(api: respx.MockRouter) -> None:
    route = api.get(f"{BASE}/tracker/api/v1alpha1/locks/list").mock(
        return_value=httpx.Response(200, json={"locks": [], "totalCount": 0})
    )

    with TrackerClient(base_url=f"{BASE}/tracker/") as prefixed:
        assert prefixed.list_locks() == []

    assert route.called


def test_injected_transport_is_used() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"locks": [], "totalCount": 0})

    with TrackerClient(base_url=BASE, transport=httpx.MockTransport(handler)) as tracker:
        tracker.list_locks()

    assert [str(r.url) for r in seen] == [f"{API}/locks/list"]


def test_revoke_token_answer_without_a_token(api: respx.MockRouter, client: TrackerClient) -> None:
    api.delete("/api/v1alpha1/tokens/tok-1").mock(
        return_value=httpx.Response(200, json={}, headers=OURS)
    )

    with pytest.raises(UnexpectedResponse, match="without the 'token'"):
        client.revoke_token("tok-1")


def test_update_lock_rejects_unknown_fields(client: TrackerClient) -> None:
    with pytest.raises(TypeError, match=r"unknown fields \['owner'\]; use: service, who"):
        client.update_lock(LOCK_ID, owner="bob")


@pytest.mark.parametrize(
    ("options", "message"),
    [({"retries": -1}, "retries must be 0 or more"), ({"timeout": 0}, "more than 0 seconds")],
)
def test_bad_client_options_are_config_errors(options: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrackerClient(base_url=BASE, **options)  # type: ignore[arg-type]
