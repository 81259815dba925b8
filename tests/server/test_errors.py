"""Every failure answers the one error body with a real status; never a 500."""

from __future__ import annotations

import ast
import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from tracker_server import domain
from tracker_server.db import Database
from tracker_server.errors import ERROR_STATUSES, domain_error_response, error_body, status_of

from tests.server.helpers import API, assert_error, create_event, event_body
from tracker_ci.models import ErrorBody, Lock

pytestmark = pytest.mark.server


@pytest.mark.unit
def test_the_one_error_body_has_exactly_code_message_details():
    body = error_body(6, "held")
    assert body == {"code": 6, "message": "held", "details": []}
    assert ErrorBody.model_validate(body).code == 6


@pytest.mark.unit
@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (domain.InvalidInput("x"), 400, 3),
        (domain.Unauthenticated("x"), 401, 16),
        (domain.Forbidden("x"), 403, 7),
        (domain.EventNotFound("x"), 404, 5),
        (domain.LockNotFound("x"), 404, 5),
        (domain.TokenNotFound("x"), 404, 5),
        (domain.LockConflict(Lock(who="bob")), 409, 6),
        (domain.BodyTooLarge("x"), 413, 8),
        (domain.InternalError("x"), 500, 13),
        (domain.DatabaseUnavailable("x"), 503, 14),
    ],
)
def test_each_domain_error_answers_its_status_and_code(error, status, code):
    assert status_of(error) == (status, code)
    response = domain_error_response(error)
    assert response.status_code == status
    assert json.loads(response.body) == error_body(code, error.message)


@pytest.mark.unit
def test_every_domain_error_has_a_row_and_a_held_lock_names_its_holder():
    classes = [
        value
        for value in vars(domain).values()
        if isinstance(value, type) and issubclass(value, domain.DomainError)
    ]
    for cls in classes:
        if cls is not domain.DomainError:
            assert any(issubclass(cls, listed) for listed in ERROR_STATUSES), cls
    held = domain.LockConflict(Lock(id="L", service="api", environment="UAT", who="bob"))
    assert "by bob (lock_id: L" in held.message and held.holder.who == "bob"


def test_a_new_refusal_is_one_row(client, monkeypatch):
    """What the freeze issue will add: a class and one row; every route then answers it."""

    class Frozen(domain.DomainError):
        pass

    monkeypatch.setitem(ERROR_STATUSES, Frozen, (400, 9))

    def frozen() -> None:
        raise Frozen("api is frozen in production until 18:00 UTC")

    client.app.add_api_route("/frozen", frozen, methods=["POST"])
    assert_error(client.post("/frozen"), 400, 9, "frozen")


@pytest.mark.unit
def test_stores_know_nothing_of_http():
    """Stores raise domain errors; only errors.py turns them into statuses."""
    import tracker_server.store

    for path in Path(tracker_server.store.__file__).parent.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
        http = {n for n in imported if n.split(".")[0] in ("fastapi", "starlette")}
        assert not http and "tracker_server.errors" not in imported, (path.name, imported)


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
