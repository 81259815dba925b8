"""Events: upstream's semantics and our fixes, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.server.helpers import API, assert_error, create_event, event_body, update_body
from tracker_ci.models import Event, parse_duration

pytestmark = pytest.mark.server


def test_create_sets_id_created_at_and_a_created_changelog_entry(client):
    before = datetime.now(UTC)
    event = create_event(client, title="deploy api", type="drift", status="open")
    Event.model_validate(event)  # the wire model reads our answer back
    assert uuid.UUID(event["metadata"]["id"]).version == 4
    created = datetime.fromisoformat(event["metadata"]["createdAt"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= created <= datetime.now(UTC)
    assert event["metadata"]["createdAt"].endswith("Z")
    assert event["metadata"]["duration"] is None
    assert event["attributes"]["type"] == "drift"
    assert event["attributes"]["priority"] == "P3"
    [entry] = event["changelog"]
    assert entry["changeType"] == "created"
    assert entry["user"] == "alice"
    assert entry["comment"] == "Event created"


def test_create_accepts_enum_numbers_and_snake_case_and_answers_names(client):
    body = {
        "title": "numbers",
        "attributes": {
            "type": 3,
            "priority": "1",
            "status": 9,
            "environment": 7,
            "service": "api",
            "start_date": "2026-01-02T03:04:05.123456789Z",
        },
        "links": {"pull_request_link": "https://example.com/pr/1"},
    }
    event = client.post(f"{API}/event", json=body).json()["event"]
    attributes = event["attributes"]
    assert (attributes["type"], attributes["priority"], attributes["status"]) == (
        "drift",
        "P1",
        "open",
    )
    assert attributes["environment"] == "production"
    assert attributes["startDate"] == "2026-01-02T03:04:05.123456Z"
    assert event["links"]["pullRequestLink"] == "https://example.com/pr/1"


def test_create_without_an_owner_is_by_system_and_missing_links_default(client):
    body = event_body(owner="", type="incident", status="open")
    del body["links"]
    response = client.post(f"{API}/event", json=body)
    assert response.status_code == 200, response.text
    event = response.json()["event"]
    assert event["changelog"][0]["user"] == "system"
    assert event["links"] == {"pullRequestLink": "", "ticket": ""}


def test_related_event_gets_the_duration_since_the_related_creation(client):
    first = create_event(client, type="incident", status="open")
    second = create_event(
        client, type="incident", status="close", relatedId=first["metadata"]["id"]
    )
    duration = parse_duration(second["metadata"]["duration"])
    assert duration is not None and timedelta(0) <= duration < timedelta(seconds=30)
    assert second["metadata"]["duration"].endswith("s")


def test_unknown_related_id_is_400_and_writes_nothing(client):
    response = client.post(
        f"{API}/event", json=event_body(relatedId=str(uuid.uuid4()), type="incident")
    )
    assert_error(response, 400, 3, "relatedId")
    assert client.get(f"{API}/events/list").json()["totalCount"] == 0


def test_update_to_success_sets_duration_and_logs_every_change(client):
    event = create_event(client, type="incident", status="open", priority="P3")
    body = update_body(
        event,
        status="success",
        priority="P1",
        title="renamed",
        links={"pullRequestLink": "", "ticket": "JIRA-1"},
    )
    response = client.put(f"{API}/event", json=body)
    assert response.status_code == 200, response.text
    updated = response.json()["event"]
    # Ours answers the record AFTER the change (upstream answers it as it was before).
    assert updated["attributes"]["status"] == "success"
    assert updated["title"] == "renamed"
    assert updated["metadata"]["createdAt"] == event["metadata"]["createdAt"]
    assert parse_duration(updated["metadata"]["duration"]) >= timedelta(0)
    changes = {
        (e["changeType"], e["field"], e["oldValue"], e["newValue"]) for e in updated["changelog"]
    }
    assert ("status_changed", "status", "open", "success") in changes
    assert ("linked", "ticket", "", "JIRA-1") in changes
    assert ("updated", "priority", "P3", "P1") in changes
    assert ("updated", "title", "deploy api", "renamed") in changes
    assert client.get(f"{API}/event/{event['metadata']['id']}").json()["event"] == updated


def test_update_to_a_non_final_status_keeps_the_duration_empty(client):
    event = create_event(client, type="incident", status="open")
    updated = client.put(f"{API}/event", json=update_body(event, status="in_progress")).json()
    assert updated["event"]["metadata"]["duration"] is None


def test_update_of_an_unknown_event_is_404_and_a_bad_id_is_400(client):
    event = create_event(client)
    missing = update_body(event) | {"id": str(uuid.uuid4())}
    assert_error(client.put(f"{API}/event", json=missing), 404, 5, "not found")
    assert_error(
        client.put(f"{API}/event", json=update_body(event) | {"id": "nope"}),
        400,
        3,
        "id must be a UUID",
    )


def test_get_by_id_or_slack_id(client):
    event = create_event(client, slackId="1700000000.123")
    event_id = event["metadata"]["id"]
    assert client.get(f"{API}/event/{event_id}").json()["event"]["metadata"]["id"] == event_id
    by_slack = client.get(f"{API}/event/1700000000.123").json()["event"]
    assert by_slack["metadata"]["id"] == event_id
    assert_error(client.get(f"{API}/event/{uuid.uuid4()}"), 404, 5, "not found")
    assert_error(client.get(f"{API}/event/unknown-slack"), 404, 5, "slackId")


def test_delete_removes_the_event_and_answers_its_ids(client):
    event = create_event(client, slackId="S1")
    event_id = event["metadata"]["id"]
    response = client.delete(f"{API}/event/{event_id}")
    assert response.status_code == 200, response.text
    assert response.json() == {"id": event_id, "slackId": "S1"}
    assert_error(client.get(f"{API}/event/{event_id}"), 404, 5)
    assert_error(client.delete(f"{API}/event/{event_id}"), 404, 5)
    assert_error(client.delete(f"{API}/event/not-a-uuid"), 400, 3, "path parameter id", "UUID")


def test_list_is_newest_first_and_paged(client):
    ids = [create_event(client, title=f"e{i}", type="drift")["metadata"]["id"] for i in range(5)]
    page1 = client.get(f"{API}/events/list", params={"per_page": 2, "page": 1}).json()
    page3 = client.get(f"{API}/events/list", params={"perPage": 2, "page": 3}).json()
    assert page1["totalCount"] == 5 and page3["totalCount"] == 5
    assert [e["metadata"]["id"] for e in page1["events"]] == ids[::-1][:2]
    assert [e["metadata"]["id"] for e in page3["events"]] == ids[::-1][4:]
    assert_error(client.get(f"{API}/events/list", params={"per_page": 0}), 400, 3, "per_page")


def test_today_is_start_date_within_the_current_utc_day(client):
    now = datetime.now(UTC)
    today = create_event(client, title="today", startDate=now.isoformat())
    create_event(client, title="yesterday", startDate=(now - timedelta(days=1)).isoformat())
    create_event(client, title="no date")
    answer = client.get(f"{API}/events/today").json()
    assert answer["totalCount"] == 1
    assert answer["events"][0]["metadata"]["id"] == today["metadata"]["id"]


def test_search_filters_are_exact_matches(client):
    a = create_event(
        client,
        service="api",
        environment="production",
        type="deployment",
        status="success",
        priority="P1",
        source="github",
        impact=True,
        slackId="S-a",
    )
    b = create_event(
        client,
        service="api-gw",
        environment="UAT",
        type="incident",
        status="failure",
        priority="P2",
        source="gitlab",
    )
    cases = {
        "service=api": [a],
        "service=ap": [],
        "environment=UAT": [b],
        "environment=4": [b],
        "type=incident": [b],
        "status=success": [a],
        "priority=P2": [b],
        "source=github": [a],
        "impact=true": [a],
        "slack_id=S-a": [a],
        "slackId=S-a": [a],
        "service=api&environment=UAT": [],
    }
    for query, expected in cases.items():
        answer = client.get(f"{API}/events/search?{query}").json()
        found = [e["metadata"]["id"] for e in answer["events"]]
        assert found == [e["metadata"]["id"] for e in expected], query
        assert answer["totalCount"] == len(expected), query


def test_search_with_an_unspecified_enum_does_not_filter_on_it(client):
    # Upstream (proto3) cannot tell 0 from "not sent": an unspecified enum means "any".
    deployed = create_event(client, service="api", type="deployment", priority="P1")
    for query in (
        "service=api&type=0",
        "service=api&type=TYPE_UNSPECIFIED",
        "service=api&priority=PRIORITY_UNSPECIFIED&status=0&environment=0",
    ):
        answer = client.get(f"{API}/events/search?{query}").json()
        assert [e["metadata"]["id"] for e in answer["events"]] == [deployed["metadata"]["id"]]
    only_zeroes = client.get(f"{API}/events/search?type=0&environment=ENVIRONMENT_UNSPECIFIED")
    assert_error(only_zeroes, 400, 3, "at least one filter")


def test_search_with_a_single_valued_filter_given_twice_is_400(client):
    # Upstream's gateway refuses a repeated non-repeated field; taking one would mislead.
    create_event(client, environment="UAT")
    for query in ("environment=production&environment=UAT", "service=a&service=b", "type=1&type=3"):
        name = query.split("=")[0]
        response = client.get(f"{API}/events/search?{query}")
        assert_error(response, 400, 3, f"query parameter {name}", "only once")
    camel = client.get(f"{API}/events/search?slackId=a&slack_id=b")
    assert_error(camel, 400, 3, "query parameter slack_id", "only once")
    always = "start_date=2000-01-01&end_date=2999-12-31"
    stats = client.get(f"{API}/events/stats/monthly?{always}&service=a&service=b")
    assert_error(stats, 400, 3, "query parameter service", "only once")
    several = f"{always}&environments=UAT&environments=production"
    assert client.get(f"{API}/events/stats?{several}").json()["totalCount"] == "1"


def test_search_dates_filter_start_date_inclusively(client):
    jan = create_event(client, title="jan", startDate="2026-01-15T10:00:00Z")
    create_event(client, title="feb", startDate="2026-02-15T10:00:00Z")
    params = {"start_date": "2026-01-15T10:00:00Z", "end_date": "2026-01-15T10:00:00Z"}
    found = client.get(f"{API}/events/search", params=params).json()["events"]
    assert [e["metadata"]["id"] for e in found] == [jan["metadata"]["id"]]
    by_day = client.get(
        f"{API}/events/search", params={"startDate": "2026-01-01", "endDate": "2026-01-15"}
    ).json()
    assert by_day["totalCount"] == 1


def test_search_without_a_filter_or_with_inverted_dates_is_400(client):
    assert_error(client.get(f"{API}/events/search"), 400, 3, "at least one filter")
    inverted = {"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}
    assert_error(client.get(f"{API}/events/search", params=inverted), 400, 3, "swap")
    assert_error(
        client.get(f"{API}/events/search", params={"type": "deploy"}),
        400,
        3,
        "query parameter type",
        "deployment",
    )
    assert_error(
        client.get(f"{API}/events/search", params={"start_date": "yesterday"}),
        400,
        3,
        "start_date",
        "RFC 3339",
    )


def test_stats_count_created_events_in_the_range_with_filters(client):
    create_event(client, environment="production", type="deployment")
    create_event(client, environment="UAT", type="deployment", service="web")
    create_event(client, environment="UAT", type="incident", status="open")
    day = datetime.now(UTC).date()
    params = {"start_date": str(day), "end_date": str(day)}
    assert client.get(f"{API}/events/stats", params=params).json()["totalCount"] == "3"
    filtered = client.get(
        f"{API}/events/stats",
        params=params | {"environments": ["UAT", "production"], "types": ["deployment"]},
    ).json()
    assert filtered["totalCount"] == "2"
    assert filtered["startDate"] == f"{day}T00:00:00Z"
    assert (
        client.get(f"{API}/events/stats", params=params | {"service": "web"}).json()["totalCount"]
        == "1"
    )
    past = {"start_date": "2020-01-01T00:00:00Z", "end_date": "2020-12-31T00:00:00Z"}
    assert client.get(f"{API}/events/stats", params=past).json()["totalCount"] == "0"
    assert_error(
        client.get(f"{API}/events/stats", params={"start_date": str(day)}),
        400,
        3,
        "end_date",
        "required",
    )
    assert_error(
        client.get(
            f"{API}/events/stats", params={"start_date": "2026-02-01", "end_date": "2026-01-01"}
        ),
        400,
        3,
        "swap",
    )


def test_monthly_stats_group_by_utc_month_and_service(client):
    create_event(client, service="api")
    create_event(client, service="api")
    create_event(client, service="web")
    now = datetime.now(UTC)
    params = {
        "start_date": "2020-01-01T00:00:00Z",
        "end_date": (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    plain = client.get(f"{API}/events/stats/monthly", params=params).json()
    assert plain["stats"] == [{"year": now.year, "month": now.month, "count": "3", "service": ""}]
    assert plain["totalCount"] == "3"
    grouped = client.get(
        f"{API}/events/stats/monthly", params=params | {"groupByService": "true"}
    ).json()
    assert grouped["stats"] == [
        {"year": now.year, "month": now.month, "count": "2", "service": "api"},
        {"year": now.year, "month": now.month, "count": "1", "service": "web"},
    ]


def test_changelog_entries_are_added_and_paged(client):
    event = create_event(client, type="incident", status="open")
    event_id = event["metadata"]["id"]
    for i in range(3):
        response = client.post(
            f"{API}/event/{event_id}/changelog",
            json={"entry": {"user": "bob", "changeType": "commented", "comment": f"note {i}"}},
        )
        assert response.status_code == 200, response.text
    after = response.json()["event"]["changelog"]
    assert [e["comment"] for e in after] == ["Event created", "note 0", "note 1", "note 2"]
    assert after[-1]["timestamp"] is not None
    page = client.get(f"{API}/event/{event_id}/changelog", params={"per_page": 2, "page": 2})
    assert page.json()["totalCount"] == 4
    assert [e["comment"] for e in page.json()["changelog"]] == ["note 1", "note 2"]
    missing = f"{API}/event/{uuid.uuid4()}/changelog"
    assert_error(client.post(missing, json={"entry": {"comment": "x"}}), 404, 5)
    assert_error(client.get(missing), 404, 5)
    assert_error(client.post(f"{API}/event/{event_id}/changelog", json={}), 400, 3, "entry")


def test_slack_id_is_attached_and_answered_after_the_change(client):
    event = create_event(client)
    event_id = event["metadata"]["id"]
    response = client.post(f"{API}/event/{event_id}/slack", json={"slackId": "C1/123"})
    assert response.json()["event"]["metadata"]["slackId"] == "C1/123"
    assert (
        client.get(f"{API}/events/search", params={"slack_id": "C1/123"}).json()["totalCount"] == 1
    )
    assert_error(client.post(f"{API}/event/{event_id}/slack", json={"slackId": ""}), 400, 3)
