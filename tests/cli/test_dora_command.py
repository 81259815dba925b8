"""``tracker-ci dora`` against the real server: a table and JSON, hand-computed numbers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.names import unique
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
    assert lines["deployments"].strip() == "3 (2 successful, 1 failed)"
    # Successful deployments per day: 2 in 7 days; the 7 days before hold none.
    assert lines["deployment frequency"].strip() == (
        "0.2857 successful per day (high; previous period: no data)"
    )
    # Lead times 1 h and 3 h: median 2 h, p90 = 1 h + 0.9 x 2 h = 2 h 48 min.
    assert lines["lead time for changes"].strip() == (
        "median 2h00m00s, p90 2h48m00s (elite; previous period: no data)"
    )
    assert lines["change failure rate"].strip() == "33.3 % (low; previous period: no data)"
    assert lines["failed deployment recovery time"].strip() == (
        "median 30m00s, p90 30m00s (elite; previous period: no data)"
    )
    assert lines["failure episodes"].strip() == "1"
    assert "data problems" not in lines
    assert lines["level"].strip() == "low"
    assert lines["rated by"].strip() == "DORA, 2023 Accelerate State of DevOps report"


def test_dora_json_is_the_api_answer(invoke, service):
    result = invoke("dora", "-s", service, "-e", "production", "--since", "7d", "-o", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["deployments"] == 3
    assert report["successfulDeployments"] == 2
    assert report["leadTimeSeconds"] == {"p50": 7200.0, "p90": pytest.approx(10080.0)}
    assert report["recoveryTimeSeconds"] == {"p50": 1800.0, "p90": 1800.0}
    assert report["changeFailureRate"] == pytest.approx(0.3333)
    assert report["keys"]["changeFailureRate"]["rating"] == "low"
    assert report["level"] == "low"


@pytest.fixture
def january(invoke) -> str:
    """2026-01: 05 10:00 success (commits 09:00, and 12:00: after the deploy), 10 18:00
    failure, 10 18:30 success, 11 09:00 success; 2025-12-27 success (the previous period);
    an incident opened 07 10:00, closed 07 11:30."""
    name = unique("dora-jan")

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    with httpx.Client(base_url=invoke.url) as http:
        for status, end, commits in [
            ("success", "2025-12-27T10:00", ()),
            ("success", "2026-01-05T10:00", ("2026-01-05T09:00", "2026-01-05T12:00")),
            ("failure", "2026-01-10T18:00", ()),
            ("success", "2026-01-10T18:30", ()),
            ("success", "2026-01-11T09:00", ()),
        ]:
            deployment(
                http,
                service=name,
                environment="production",
                status=status,
                end=at(end),
                commits=tuple(at(c) for c in commits),
            )
        incident = {
            "title": "checkout errors",
            "attributes": {
                "type": "incident",
                "status": "close",
                "priority": "P1",
                "service": name,
                "environment": "production",
                "startDate": "2026-01-07T10:00:00Z",
                "endDate": "2026-01-07T11:30:00Z",
            },
        }
        http.post("/api/v1alpha1/event", json=incident).raise_for_status()
    return name


def test_a_bare_until_date_is_inclusive_as_in_the_api(invoke, january):
    window = ("--since", "2026-01-01", "--until", "2026-01-10")
    result = invoke("dora", "-s", january, "-e", "production", *window, "-o", "json")
    assert result.exit_code == 0, result.output
    cli = json.loads(result.output)
    api = httpx.get(
        invoke.url + "/api/v1alpha1/insights/dora",
        params={
            "service": january,
            "environment": "production",
            "start_date": "2026-01-01",
            "end_date": "2026-01-10",
        },
    ).json()
    assert cli == api
    # The evening of the 10th is in: 3 deployments, 2 successful in 10 days.
    assert cli["endDate"] == "2026-01-10T23:59:59.999999Z"
    assert cli["deployments"] == 3
    assert cli["deploymentsPerDay"] == pytest.approx(0.2)
    assert cli["changesCommittedAfterDeployment"] == 1
    assert cli["leadTimeSeconds"] == {"p50": 3600.0, "p90": 3600.0}
    assert cli["recoveryTimeSeconds"] == {"p50": 1800.0, "p90": 1800.0}
    # The previous 10 days (2025-12-22..31) hold one success: 0.1 a day.
    assert cli["keys"]["deploymentFrequency"] == {
        "value": 0.2,
        "rating": "high",
        "previous": 0.1,
        "change": 0.1,
    }


def test_a_change_committed_after_its_deploy_is_a_data_problem_in_the_text(invoke, january):
    result = invoke(
        "dora", "-s", january, "-e", "production", "--since", "2026-01-01", "--until", "2026-01-10"
    )
    assert result.exit_code == 0, result.output
    lines = dict(line.split(":", 1) for line in result.output.strip().splitlines())
    assert lines["data problems"].strip() == (
        "1 change committed after its deployment (left out of the lead time)"
    )
    assert lines["lead time for changes"].strip().startswith("median 1h00m00s, p90 1h00m00s")
    assert lines["deployment frequency"].strip() == (
        "0.2 successful per day (high; previous period 0.1, change +0.1)"
    )
    assert "-" not in lines["lead time for changes"]
    assert lines["incident recovery time"].strip() == (
        "median 1h30m00s, p90 1h30m00s over 1 resolved incident (not rated)"
    )


def test_a_bad_since_is_a_usage_error(invoke):
    result = invoke("dora", "-s", "api", "-e", "production", "--since", "last week")
    assert result.exit_code == 2, result.output
    assert "neither a duration ago" in result.output


def test_an_unknown_environment_is_a_usage_error_in_one_line(tmp_path):
    import subprocess
    import sys

    # The real entry point (its one-line usage errors), like every command's -e.
    result = subprocess.run(
        [sys.executable, "-m", "tracker_ci", "dora", "-s", "api", "-e", "moon base"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "'moon base' is not one of: development" in line


def test_the_environment_defaults_to_production(invoke):
    result = invoke("dora", "-s", "api", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["environment"] == "production"
