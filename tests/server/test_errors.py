"""Every failure answers the one error body with a real status; never a 500."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import create_engine
from tracker_server.db import Database
from tracker_server.errors import error_body

from tests.server.helpers import API, assert_error, create_event, event_body
from tracker_ci.models import ErrorBody

pytestmark = pytest.mark.server


@pytest.mark.unit
def test_the_one_error_body_has_exactly_code_message_details():
    body = error_body(6, "held")
    assert body == {"code": 6, "message": "held", "details": []}
    assert ErrorBody.model_validate(body).code == 6


def test_malformed_json_names_the_problem(client):
    response = client.post(
        f"{API}/event", content=b'{"title": ', headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, 3, "not valid JSON")


def test_a_body_that_is_not_an_object(client):
    response = client.post(f"{API}/event", content=b"title=x")
    assert_error(response, 400, 3, "JSON object", "Content-Type")
    assert_error(client.post(f"{API}/event", json=[1, 2]), 400, 3, "JSON object")


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_a_json_body_is_read_whatever_its_content_type(client, content_type):
    # Upstream's gateway reads every body as JSON; `curl -d '{...}'` sends a form type.
    body = json.dumps(event_body(status="open", type="incident")).encode()
    response = client.post(f"{API}/event", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert response.json()["event"]["attributes"]["status"] == "open"
    not_json = client.post(
        f"{API}/event", content=b"title=x", headers={"Content-Type": content_type}
    )
    assert_error(not_json, 400, 3, "not valid JSON")


@pytest.mark.parametrize(
    ("attributes", "fragments"),
    [
        ({"type": "deploy"}, ("attributes.type", "'deploy' is not a valid", "deployment")),
        ({"priority": "P9"}, ("attributes.priority", "P1")),
        ({"environment": 42}, ("attributes.environment",)),
        ({"impact": "maybe"}, ("attributes.impact", "bool")),
        ({"startDate": "tomorrow"}, ("attributes.startDate", "RFC 3339")),
        ({"stakeHolders": "bob"}, ("attributes.stakeHolders", "list")),
    ],
)
def test_bad_attribute_values_name_the_field(client, attributes, fragments):
    body = event_body(**attributes)
    assert_error(client.post(f"{API}/event", json=body), 400, 3, *fragments)
    assert client.get(f"{API}/events/list").json()["totalCount"] == 0


def test_missing_attributes_and_bad_limits(client):
    assert_error(
        client.post(f"{API}/event", json={"title": "x", "links": {}}),
        400,
        3,
        "attributes: is required",
    )
    assert_error(client.post(f"{API}/event", json=event_body(title="")), 400, 3, "title")
    assert_error(
        client.post(f"{API}/event", json=event_body(title="x" * 501)),
        400,
        3,
        "title is 501 characters long; at most 500",
    )
    assert_error(client.post(f"{API}/event", json=event_body(service="a\x00b")), 400, 3, "NUL")
    inverted = event_body(startDate="2026-02-01T00:00:00Z", endDate="2026-01-01T00:00:00Z")
    assert_error(client.post(f"{API}/event", json=inverted), 400, 3, "endDate", "swap")
    assert_error(
        client.post(f"{API}/event", json=event_body(relatedId="12")),
        400,
        3,
        "relatedId must be a UUID",
    )


def test_bad_uuid_in_the_path(client):
    assert_error(client.get(f"{API}/lock/123"), 400, 3, "path parameter id", "UUID")
    assert_error(client.post(f"{API}/event/123/slack", json={"slackId": "x"}), 400, 3, "UUID")


def test_unknown_routes_and_methods(client):
    assert_error(client.get(f"{API}/nothing"), 404, 5, "no such route")
    assert_error(client.patch(f"{API}/event"), 405, 12, "not allowed")


def test_bodies_over_the_limit_are_413_by_length_and_while_streaming(make_client):
    client = make_client(max_body_bytes=2048)
    big = event_body(message="x" * 4000)
    response = client.post(f"{API}/event", json=big)
    assert_error(response, 413, 8, "at most 2048 bytes")
    assert response.headers["x-tracker-server"].startswith("tracker-ci/")

    def chunks():  # no Content-Length: the size is only known while reading
        for _ in range(10):
            yield b"x" * 1000

    streamed = client.post(
        f"{API}/event", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(streamed, 413, 8)
    assert client.post(f"{API}/event", json=event_body()).status_code == 200
    assert client.get(f"{API}/events/list").json()["totalCount"] == 1


def test_every_response_carries_the_server_header(client):
    for response in (
        client.get("/health"),
        client.get(f"{API}/events/search"),
        client.get(f"{API}/lock/{uuid.uuid4()}"),
    ):
        assert response.headers["x-tracker-server"] == "tracker-ci/0.1.0"


@pytest.mark.parametrize("down_backend", ["sqlite", "postgresql"])
def test_a_database_that_is_down_is_503(client, down_backend, tmp_path):
    # The SQLite file's parent is a regular file: no process can ever create that path.
    (tmp_path / "not-a-dir").write_text("")
    down_url = {
        "sqlite": f"sqlite:///{tmp_path}/not-a-dir/tracker.db",
        "postgresql": "postgresql+psycopg://nobody@127.0.0.1:1/nothing",
    }[down_backend]
    create_event(client)
    app = client.app
    healthy = app.state.database
    app.state.database = Database(
        create_engine(
            down_url,
            connect_args=({"connect_timeout": 2} if down_url.startswith("postgresql") else {}),
        )
    )
    try:
        assert_error(client.get("/health"), 503, 14, "database unavailable")
        assert_error(client.post(f"{API}/event", json=event_body()), 503, 14)
        assert_error(client.get(f"{API}/events/list"), 503, 14)
    finally:
        app.state.database.dispose()
        app.state.database = healthy
    assert client.get("/health").json()["status"] == "ok"
