"""``--evict-dead-holder`` against the real server and a loopback stand-in of the GitHub
and GitLab job APIs: a holder whose CI job has ended is evicted (audited on its event and
in the journal) and the waiter goes; a holder whose job still runs is waited for."""

from __future__ import annotations

import httpx
import pytest

from tests.ci.fake_api import FakeAPI
from tests.cli.conftest import Invoke
from tests.support.names import unique
from tests.support.servers import RunningServer

pytestmark = pytest.mark.server

API = "/api/v1alpha1"


def open_deploy(url: str, service: str, job_url: str) -> dict:
    """A deployment opened by another job (its automatic lock records the job)."""
    body = {
        "title": "deploy",
        "attributes": {
            "service": service,
            "environment": "production",
            "type": "deployment",
            "status": "start",
            "owner": "ghost",
        },
        "links": {},
        "jobUrl": job_url,
    }
    response = httpx.post(f"{url}{API}/event", json=body)
    assert response.status_code == 200, response.text
    return response.json()["event"]


def acquire(invoke: Invoke, service: str, wait: str, env: dict[str, str]):
    args = ["lock", "acquire", "-s", service, "-e", "production", "--who", "next"]
    return invoke(*args, "--wait", wait, "--evict-dead-holder", env=env)


def test_a_holder_whose_github_job_ended_is_evicted(
    sqlite_server: RunningServer, invoke: Invoke, fake_api: FakeAPI
) -> None:
    url, service = sqlite_server.url, unique("dead-gh")
    job_url = f"{fake_api.url}/acme/shop/actions/runs/77/job/88"
    event = open_deploy(url, service, job_url)
    fake_api.route(
        "GET",
        "/api/repos/acme/shop/actions/jobs/88",
        {"id": 88, "status": "completed", "conclusion": "cancelled"},
    )
    env = {"GITHUB_TOKEN": "ghs_test", "GITHUB_API_URL": f"{fake_api.url}/api"}
    result = acquire(invoke, service, "30", env)
    assert result.exit_code == 0, result.output
    [call] = fake_api.requests
    assert (call.method, call.path) == ("GET", "/api/repos/acme/shop/actions/jobs/88")
    assert call.headers["Authorization"] == "Bearer ghs_test"
    [lock] = [
        x for x in httpx.get(f"{url}{API}/locks/list").json()["locks"] if x["service"] == service
    ]
    assert lock["who"] == "next"
    changelog = httpx.get(f"{url}{API}/event/{event['metadata']['id']}/changelog").json()
    [evicted] = [e for e in changelog["changelog"] if e["comment"].startswith("lock evicted")]
    assert evicted["user"] == "next"
    assert f"ghost: its GitHub Actions job {job_url} has ended (cancelled)" in evicted["comment"]


def test_a_holder_whose_gitlab_job_ended_is_evicted_with_the_job_token(
    sqlite_server: RunningServer, invoke: Invoke, fake_api: FakeAPI
) -> None:
    url, service = sqlite_server.url, unique("dead-gl")
    open_deploy(url, service, f"{fake_api.url}/group/proj/-/jobs/55")
    fake_api.route("GET", "/api/v4/projects/group%2Fproj/jobs/55", {"id": 55, "status": "failed"})
    env = {"CI_JOB_TOKEN": "job-token", "CI_API_V4_URL": f"{fake_api.url}/api/v4"}
    result = acquire(invoke, service, "30", env)
    assert result.exit_code == 0, result.output
    assert fake_api.requests[0].headers["JOB-TOKEN"] == "job-token"


def test_a_holder_whose_job_still_runs_is_waited_for(
    sqlite_server: RunningServer, invoke: Invoke, fake_api: FakeAPI
) -> None:
    url, service = sqlite_server.url, unique("alive")
    open_deploy(url, service, f"{fake_api.url}/acme/shop/actions/runs/78/job/89")
    fake_api.route("GET", "/api/repos/acme/shop/actions/jobs/89", {"status": "in_progress"})
    env = {"GITHUB_TOKEN": "ghs_test", "GITHUB_API_URL": f"{fake_api.url}/api"}
    result = acquire(invoke, service, "1", env)
    assert result.exit_code == 3, result.output
    [lock] = [
        x for x in httpx.get(f"{url}{API}/locks/list").json()["locks"] if x["service"] == service
    ]
    assert lock["who"] == "ghost"


def test_without_a_token_nothing_is_asked_nor_evicted(
    sqlite_server: RunningServer, invoke: Invoke, fake_api: FakeAPI
) -> None:
    url, service = sqlite_server.url, unique("notoken")
    open_deploy(url, service, f"{fake_api.url}/acme/shop/actions/runs/79/job/90")
    result = acquire(invoke, service, "0.5", {"GITHUB_API_URL": f"{fake_api.url}/api"})
    assert result.exit_code == 3, result.output
    assert fake_api.requests == []
