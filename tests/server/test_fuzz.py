"""Schemathesis against our own OpenAPI: no 5xx, and every answer matches the schema.

The operations are driven from a plain test (schemathesis' lazy fixture loader does not
work with pytest 9), each with a bounded number of Hypothesis examples.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tracker_server.app import create_app
from tracker_server.settings import ServerSettings

from tests.server.conftest import _empty_postgres

pytestmark = pytest.mark.server

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Bounded so that the fuzz stays under ~30 s: more examples on SQLite, fewer on PostgreSQL.
EXAMPLES_PER_OPERATION = {"sqlite": 12, "postgresql": 6}


@pytest.fixture
def fuzzed_app(database_url):
    """The app on an empty database of each backend. The fuzz stores freeze windows over
    every service until 9999: the session's shared PostgreSQL database is emptied after it,
    or the tests that start their own servers on it would find every lock frozen."""
    app = create_app(ServerSettings(database_url=database_url))
    yield app
    app.state.database.dispose()
    if not database_url.startswith("sqlite"):
        _empty_postgres(database_url)


def test_no_server_error_and_answers_match_the_schema(fuzzed_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    statuses: list[int] = []
    examples = EXAMPLES_PER_OPERATION[fuzzed_app.state.database.backend]
    assert len(operations) >= 25  # every endpoint of the contract and the extensions

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case):
            response = case.call()
            statuses.append(response.status_code)
            case.validate_response(response, checks=CHECKS)

        exercise()
    # The fuzz did reach the app, with requests it accepted and requests it refused.
    assert any(200 <= status < 300 for status in statuses)
    assert any(400 <= status < 500 for status in statuses)
    assert len(statuses) >= len(operations) * 2


# Extremes every date, window and duration parameter must survive (issue 19): each is
# answered 2xx or 4xx with the one error body, never 5xx, on both backends.
_BASE_EVENT = {
    "title": "extreme",
    "attributes": {"type": "deployment", "status": "success", "service": "api"},
    "links": {},
}
_DORA = {"service": "api", "environment": "production"}
_FIRST_DAY, _LAST_DAY = "0001-01-01", "9999-12-31"
EXTREMES: list[tuple[str, str, dict]] = [
    (
        "GET",
        "/insights/dora",
        {"query": {**_DORA, "start_date": _FIRST_DAY, "end_date": "9999-12-30"}},
    ),
    (
        "GET",
        "/insights/dora",
        {"query": {**_DORA, "start_date": _FIRST_DAY, "end_date": _LAST_DAY}},
    ),
    (
        "GET",
        "/insights/dora",
        {"query": {**_DORA, "start_date": _FIRST_DAY, "end_date": _FIRST_DAY}},
    ),
    ("GET", "/insights/dora", {"query": {**_DORA, "end_date": _FIRST_DAY}}),
    ("GET", "/insights/dora", {"query": {**_DORA, "start_date": _LAST_DAY}}),
    ("GET", "/insights/dora", {"query": {**_DORA, "start_date": "0000-12-31"}}),
    ("GET", "/insights/dora", {"query": {**_DORA, "end_date": "10000-01-01"}}),
    ("GET", "/insights/dora", {"query": {**_DORA, "end_date": "0001-01-01T00:00:00+01:00"}}),
    ("GET", "/events/search", {"query": {"start_date": _FIRST_DAY, "end_date": _LAST_DAY}}),
    ("GET", "/events/search", {"query": {"start_date": "9999-12-31T23:00:00-05:00"}}),
    ("GET", "/events/stats", {"query": {"start_date": _FIRST_DAY, "end_date": _LAST_DAY}}),
    ("GET", "/events/stats/monthly", {"query": {"start_date": _FIRST_DAY, "end_date": _LAST_DAY}}),
    (
        "POST",
        "/event",
        {
            "body": {
                **_BASE_EVENT,
                "attributes": {
                    **_BASE_EVENT["attributes"],
                    "startDate": "0001-01-01T00:00:00Z",
                    "endDate": "9999-12-31T23:59:59.999999Z",
                },
            }
        },
    ),
    ("POST", "/event", {"body": {**_BASE_EVENT, "lockTtlSeconds": 10**30}}),
    (
        "POST",
        "/lock",
        {"body": {"service": "api", "environment": "production", "ttlSeconds": 10**30}},
    ),
    (
        "POST",
        "/lock/queue",
        {"body": {"service": "api", "environment": "production", "waitSeconds": 1e308}},
    ),
    (
        "POST",
        "/events/batch",
        {
            "body": {
                "events": [
                    {
                        **_BASE_EVENT,
                        "metadata": {"createdAt": "9999-12-31T00:00:00Z", "duration": "172800s"},
                    }
                ]
            }
        },
    ),
    (
        "POST",
        "/events/batch",
        {
            "body": {
                "events": [
                    {
                        **_BASE_EVENT,
                        "metadata": {"createdAt": "0001-01-01T00:00:00Z", "duration": "1e300s"},
                    }
                ]
            }
        },
    ),
    (
        "POST",
        "/freeze-window",
        {
            "body": {
                "title": "f",
                "startsAt": "0001-01-01T00:00:00Z",
                "endsAt": "9999-12-31T23:59:59.999999Z",
                "timezone": "Pacific/Kiritimati",
            }
        },
    ),
    (
        "POST",
        "/freeze-window",
        {
            "body": {
                "title": "f",
                "cronStart": "0 0 30 2 *",
                "cronEnd": "0 0 1 3 *",
                "timezone": "Etc/GMT+12",
            }
        },
    ),
]


def test_extreme_dates_and_durations_never_answer_5xx(fuzzed_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    statuses = []
    for method, path, parts in EXTREMES:
        operation = schema[f"/api/v1alpha1{path}"][method]
        case = operation.Case(query=parts.get("query"), body=parts.get("body", NOT_SET))
        response = case.call()
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS)
    assert all(status < 500 for status in statuses), statuses
