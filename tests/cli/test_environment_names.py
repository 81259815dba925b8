"""Any environment name round-trips through the real server, its search and the CLI."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.cli.conftest import Invoke
from tests.support.names import unique

pytestmark = pytest.mark.server


@pytest.mark.parametrize("environment", ["staging", "eu-west-1", "qa.blue_2"])
def test_a_deploy_to_any_environment_name_is_tracked_locked_and_searched(
    invoke: Invoke, environment: str
) -> None:
    service = unique("envname")
    ran = invoke("deploy", "run", "-s", service, "-e", environment, "--", "true")
    assert ran.exit_code == 0, ran.output
    found = invoke("-o", "json", "event", "search", "--service", service, "-e", environment)
    assert found.exit_code == 0, found.output
    [event] = json.loads(found.stdout)["events"]
    assert event["attributes"]["environment"] == environment, "stored as given"
    assert event["attributes"]["status"] == "success"
    # Another environment of the same service does not match.
    other = invoke("-o", "json", "event", "search", "--service", service, "-e", "production")
    assert json.loads(other.stdout)["events"] == []
    taken = invoke("-o", "json", "lock", "acquire", "-s", service, "-e", environment)
    assert taken.exit_code == 0, taken.output
    assert json.loads(taken.stdout)["environment"] == environment
    status = invoke("lock", "status", "-s", service, "-e", environment)
    assert status.exit_code == 3 and environment in status.output


def test_the_upstream_eight_keep_their_numbers_and_a_bad_name_is_a_400(invoke: Invoke) -> None:
    service = unique("envnum")
    body = {
        "title": "by number",
        "attributes": {"service": service, "type": 2, "status": 3, "environment": 7},
        "links": {},
    }
    created = httpx.post(f"{invoke.url}/api/v1alpha1/event", json=body, timeout=10)
    assert created.status_code == 200, created.text
    assert created.json()["event"]["attributes"]["environment"] == "production"
    bad = httpx.post(
        f"{invoke.url}/api/v1alpha1/event",
        json={**body, "attributes": {**body["attributes"], "environment": "eu west"}},
        timeout=10,
    )
    assert bad.status_code == 400 and bad.json()["code"] == 3, bad.text
    assert "environment" in bad.json()["message"]
