"""``tracker-ci dora`` against the real server: a table and JSON, hand-computed numbers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.cli.conftest import unique
from tests.web.seed import deployment

pytestmark = pytest.mark.e2e


@pytest.fixture
def service(invoke) -> str:
    """Three deployments in the last week: success (commits 1 h and 3 h before), a failure,
    and a success 30 min after it."""
    name = unique("dora")
    now = datetime.now(UTC)
    first = now - timedelta(days=3)
    failed = now - timedelta(days=2)
    with httpx.Client(base_url=invoke.url) as http:
        deployment(
            http,
            service=name,
            environment="production",
            status="success",
            end=first,
            commits=(first - timedelta(hours=1), first - timedelta(hours=3)),
        )
        deployment(http, service=name, environment="production", status="failure", end=failed)
        deployment(
            http,
            service=name,
            environment="production",
            status="success",
            end=failed + timedelta(minutes=30),
        )
    return name


def test_dora_prints_the_four_keys(invoke, service):
    result = invoke("dora", "-s", service, "-e", "production", "--since", "7d")
    assert result.exit_code == 0, result.output
    lines = dict(line.split(":", 1) for line in result.output.strip().splitlines())
    assert lines["deployments"].strip() == "3"
    assert lines["deployment frequency"].strip() == "0.4286 per day"
    # Lead times 1 h and 3 h: median 2 h, p90 = 1 h + 0.9 x 2 h = 2 h 48 min.
    assert lines["lead time for changes"].strip() == "median 2h00m00s, p90 2h48m00s"
    assert lines["change failure rate"].strip() == "33.3 %"
    assert lines["failed deployment recovery time"].strip() == "median 30m00s, p90 30m00s"
    assert lines["level"].strip() == "low"


def test_dora_json_is_the_api_answer(invoke, service):
    result = invoke("dora", "-s", service, "-e", "production", "--since", "7d", "-o", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["deployments"] == 3
    assert report["leadTimeSeconds"] == {"p50": 7200.0, "p90": pytest.approx(10080.0)}
    assert report["recoveryTimeSeconds"] == {"p50": 1800.0, "p90": 1800.0}
    assert report["changeFailureRate"] == pytest.approx(0.3333)
    assert report["level"] == "low"


def test_a_bad_since_is_a_usage_error(invoke):
    result = invoke("dora", "-s", "api", "-e", "production", "--since", "last week")
    assert result.exit_code == 2, result.output
    assert "neither a duration ago" in result.output


def test_an_unknown_environment_is_a_usage_error_in_one_line(invoke):
    result = invoke("dora", "-s", "api", "-e", "moon base")
    assert result.exit_code == 2, result.output  # the server's 400: invalid input
    assert len(result.output.strip().splitlines()) == 1
    assert "not a valid environment" in result.output
