"""Inputs that answered 500 (and reset the keep-alive connection) answer 400 naming the
field, on one keep-alive connection that survives them all; malformed HTTP answers the
JSON error body; booleans and integers are strict."""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import urlencode, urlsplit

import pytest

from tests.support.api import API
from tests.support.servers import RunningServer

pytestmark = pytest.mark.server

SURROGATE_TITLE = (
    '{"title": "deploy \\ud800", "attributes": {"service": "api", "type": "operation", '
    '"status": "success"}, "links": {}}'
)


def event_body(**attributes: object) -> str:
    base = {"service": "api", "type": "operation", "status": "success", **attributes}
    return json.dumps({"title": "t", "attributes": base, "links": {}})


def search(**params: str) -> str:
    return f"{API}/events/search?{urlencode({'service': 'api', **params})}"


# The five inputs that answered 500: a lone surrogate, and dates that overflow when
# converted to UTC, in a body and in a search.
FIVE_500_INPUTS = [
    ("POST", f"{API}/event", SURROGATE_TITLE, "title"),
    ("POST", f"{API}/event", event_body(startDate="9999-12-31T23:00:00-14:00"), "startDate"),
    ("POST", f"{API}/event", event_body(endDate="0001-01-01T01:00:00+14:00"), "endDate"),
    ("GET", search(start_date="9999-12-31T23:00:00-14:00"), None, "start_date"),
    ("GET", search(end_date="0001-01-01T01:00:00+14:00"), None, "end_date"),
]
STRICT_INPUTS = [
    ("POST", f"{API}/lock", '{"service": "api", "who": "x", "ttlSeconds": true}', "ttlSeconds"),
    ("POST", f"{API}/event", event_body(impact="yes"), "impact"),
    ("POST", f"{API}/event", event_body(notification=1), "notification"),
    (
        "POST",
        f"{API}/lock",
        '{"service": "api\\udc00", "environment": "UAT", "who": "x"}',
        "service",
    ),
]


def test_the_500_inputs_answer_400_and_the_connection_survives(
    sqlite_server: RunningServer,
) -> None:
    parts = urlsplit(sqlite_server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.connect()
    sock = connection.sock
    for method, path, body, field in FIVE_500_INPUTS + STRICT_INPUTS:
        headers = {"Content-Type": "application/json"} if body else {}
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        text = answer.read().decode()
        assert answer.status == 400, (path, text)
        error = json.loads(text)
        assert set(error) == {"code", "message", "details"} and error["code"] == 3, text
        assert field in error["message"], text
        assert connection.sock is sock, f"the connection was reset after {path}"
    connection.request("GET", "/health")
    assert connection.getresponse().status == 200
    assert connection.sock is sock
    connection.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /api/v1alpha1/event HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
        b"GARBAGE\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
    ids=["content-length-abc", "no-request-line", "two-content-lengths"],
)
def test_malformed_http_answers_the_json_error_body(
    sqlite_server: RunningServer, raw: bytes
) -> None:
    parts = urlsplit(sqlite_server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert b"content-type: application/json" in head.lower(), answer
    error = json.loads(body)
    assert error["code"] == 3 and error["details"] == [], error
    assert error["message"].startswith("invalid request: malformed HTTP"), error


@pytest.fixture
def app_client(tmp_path, monkeypatch):
    """The real app in-process (TestClient), its exceptions answered as a server would."""
    import warnings

    from starlette.exceptions import StarletteDeprecationWarning

    with warnings.catch_warnings():  # Starlette prefers httpx2 for its test client
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient

    from tracker_server.app import create_app
    from tracker_server.settings import ServerSettings

    app = create_app(ServerSettings(database_url=f"sqlite:///{tmp_path / 't.db'}"))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_a_500_closes_the_connection_explicitly(app_client, monkeypatch) -> None:
    from tracker_server.db import Database

    def broken(self: Database):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Database, "read", broken)
    answer = app_client.get(f"{API}/locks/list")
    assert answer.status_code == 500
    assert answer.headers["connection"] == "close"
    assert answer.json() == {"code": 13, "message": "internal error: RuntimeError", "details": []}


def test_a_503_says_when_to_retry_and_not_where_the_database_is(app_client, monkeypatch) -> None:
    from sqlalchemy.exc import OperationalError
    from tracker_server.db import Database

    said = 'connection to server at "10.1.2.3", port 5433 failed: database "prod_tracker"'

    def down(self: Database):
        raise OperationalError("SELECT 1", {}, Exception(said))

    monkeypatch.setattr(Database, "read", down)
    answer = app_client.get(f"{API}/locks/list")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    body = answer.json()
    assert body["code"] == 14 and body["message"].startswith("database unavailable")
    for secret in ("10.1.2.3", "5433", "prod_tracker"):
        assert secret not in answer.text


@pytest.mark.postgres
def test_postgresql_statements_time_out_below_the_shutdown_grace(
    postgres_database_url: str,
) -> None:
    from sqlalchemy import text
    from tracker_server.db import create_database_engine

    engine = create_database_engine(postgres_database_url)
    try:
        with engine.connect() as conn:
            statement = conn.execute(text("SHOW statement_timeout")).scalar()
            lock = conn.execute(text("SHOW lock_timeout")).scalar()
    finally:
        engine.dispose()
    assert (statement, lock) == ("5s", "3s")
