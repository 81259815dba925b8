"""Schemathesis against our own OpenAPI: no 5xx, and every answer matches the schema.

The operations are driven from a plain test (schemathesis' lazy fixture loader does not
work with pytest 9), each with a bounded number of Hypothesis examples.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tracker_server.app import create_app
from tracker_server.settings import ServerSettings

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
    """The app on an empty database of each backend."""
    app = create_app(ServerSettings(database_url=database_url))
    yield app
    app.state.database.dispose()


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
