"""``deploy start`` records what it ships: the revision and the changes since the last
successful deploy, through a loopback stand-in of the GitHub and GitLab APIs (exact
requests asserted), on the real server; a failed lookup never fails the deploy."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest

from tests.cli.conftest import Invoke
from tests.support.names import unique
from tests.web.seed import deployment

pytestmark = pytest.mark.e2e

BASE, HEAD = "b" * 40, "h" * 40
C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40


def _previous(invoke: Invoke, service: str, revision: str = BASE) -> None:
    """A successful deployment of ``revision`` (the base of the next compare)."""
    with httpx.Client(base_url=invoke.url) as http:
        event = deployment(http, service=service, environment="production", status="success")
        body = {
            "id": event["metadata"]["id"],
            "title": event["title"],
            "attributes": {**event["attributes"], "revision": revision},
            "links": event["links"],
        }
        http.put("/api/v1alpha1/event", json=body).raise_for_status()


def _opened(invoke: Invoke, service: str) -> dict:
    found = httpx.get(
        f"{invoke.url}/api/v1alpha1/events/search",
        params={"service": service, "status": "start"},
    ).json()["events"]
    assert len(found) == 1
    return found[0]["attributes"]


def _github_commit(sha: str, day: int, login: str) -> dict:
    return {
        "sha": sha,
        "html_url": f"https://github.com/acme/api/commit/{sha}",
        "url": f"/repos/acme/api/commits/{sha}",
        "author": {"login": login},
        "commit": {
            "message": f"commit {sha[:1]}\n\nbody",
            "author": {"name": login, "date": f"2026-03-0{day}T10:00:00Z"},
        },
    }


GITHUB_ENV = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_REPOSITORY": "acme/api",
    "GITHUB_SHA": HEAD,
    "GITHUB_TOKEN": "ghs_x",
}


def test_github_pull_requests_and_commits_since_the_last_success(invoke, fake_api):
    service = unique("ship")
    _previous(invoke, service)
    compare = f"/repos/acme/api/compare/{BASE}...{HEAD}"
    fake_api.route(
        "GET",
        compare,
        {
            "url": f"{fake_api.url}{compare}",
            "total_commits": 3,
            "commits": [
                _github_commit(C1, 2, "bob"),
                _github_commit(C2, 1, "bob"),
                _github_commit(C3, 3, "carol"),
            ],
        },
    )
    pull = {
        "number": 7,
        "html_url": "https://github.com/acme/api/pull/7",
        "title": "Faster search",
        "user": {"login": "bob"},
        "merged_at": "2026-03-02T12:00:00Z",
        "state": "closed",
    }
    fake_api.route("GET", f"/repos/acme/api/commits/{C1}/pulls", [pull])
    fake_api.route("GET", f"/repos/acme/api/commits/{C2}/pulls", [pull])
    fake_api.route("GET", f"/repos/acme/api/commits/{C3}/pulls", [])
    summary = invoke.cwd / "summary.md"
    env = {**GITHUB_ENV, "GITHUB_API_URL": fake_api.url, "GITHUB_STEP_SUMMARY": str(summary)}
    result = invoke("deploy", "start", "-s", service, "-e", "production", env=env)
    assert result.exit_code == 0, result.output
    written = summary.read_text()
    assert "#### Ships 2 change(s)" in written
    assert "- [#7](https://github.com/acme/api/pull/7) Faster search (bob)" in written
    assert f"- [{C3[:7]}](https://github.com/acme/api/commit/{C3}) commit 3 (carol)" in written

    attributes = _opened(invoke, service)
    assert attributes["revision"] == HEAD
    assert attributes["changes"] == [
        {
            "kind": "pull_request",
            "id": "7",
            "url": "https://github.com/acme/api/pull/7",
            "title": "Faster search",
            "author": "bob",
            "committedAt": "2026-03-01T10:00:00Z",  # its earliest commit in the range
            "mergedAt": "2026-03-02T12:00:00Z",
        },
        {
            "kind": "commit",
            "id": C3,
            "url": f"https://github.com/acme/api/commit/{C3}",
            "title": "commit 3",
            "author": "carol",
            "committedAt": "2026-03-03T10:00:00Z",
            "mergedAt": None,
        },
    ]
    asked = [path for _, path in fake_api.calls("GET")]
    assert asked.count(compare) == 1
    pulls = [p for p in asked if p.endswith("/pulls") and HEAD not in p]  # HEAD's: the PR link
    assert sorted(pulls) == sorted(f"/repos/acme/api/commits/{c}/pulls" for c in (C1, C2, C3))
    assert all("ghs_x" in r.headers.get("Authorization", "") for r in fake_api.requests)


def test_a_failed_lookup_records_the_revision_and_warns(invoke, fake_api):
    service = unique("ship")
    _previous(invoke, service)
    # No route: the compare answers 404.
    env = {**GITHUB_ENV, "GITHUB_API_URL": fake_api.url}
    result = invoke("deploy", "start", "-s", service, "-e", "production", env=env)
    assert result.exit_code == 0, result.output
    assert "cannot list the changes this deploy ships" in result.output
    attributes = _opened(invoke, service)
    assert attributes["revision"] == HEAD
    assert attributes["changes"] == []


def test_the_first_deploy_ships_its_revision_only(invoke, fake_api):
    service = unique("ship")
    env = {**GITHUB_ENV, "GITHUB_API_URL": fake_api.url}
    result = invoke("deploy", "start", "-s", service, "-e", "production", env=env)
    assert result.exit_code == 0, result.output
    assert _opened(invoke, service)["revision"] == HEAD
    # Nothing to compare with: no compare asked (only the run's own PR link is looked up).
    assert [path for _, path in fake_api.calls()] == [f"/repos/acme/api/commits/{HEAD}/pulls"]


def test_gitlab_merge_requests_since_the_last_success(invoke, fake_api):
    service = unique("ship")
    _previous(invoke, service)
    fake_api.route(
        "GET",
        "/api/v4/projects/42/repository/compare",
        {
            "commits": [
                {
                    "id": C1,
                    "title": "Add cache",
                    "author_name": "dora",
                    "authored_date": "2026-03-01T08:00:00+01:00",
                    "web_url": f"https://gitlab.example/acme/api/-/commit/{C1}",
                },
                {
                    "id": C2,
                    "title": "Hotfix",
                    "author_name": "erin",
                    "authored_date": "2026-03-02T09:00:00Z",
                    "web_url": f"https://gitlab.example/acme/api/-/commit/{C2}",
                },
            ]
        },
    )
    fake_api.route(
        "GET",
        f"/api/v4/projects/42/repository/commits/{C1}/merge_requests",
        [
            {
                "iid": 12,
                "state": "merged",
                "web_url": "https://gitlab.example/acme/api/-/merge_requests/12",
                "title": "Cache",
                "author": {"username": "dora"},
                "merged_at": "2026-03-01T15:00:00Z",
            }
        ],
    )
    fake_api.route("GET", f"/api/v4/projects/42/repository/commits/{C2}/merge_requests", [])
    env = {
        "GITLAB_CI": "true",
        "CI_SERVER_URL": fake_api.url,
        "CI_API_V4_URL": f"{fake_api.url}/api/v4",
        "CI_PROJECT_ID": "42",
        "CI_PROJECT_PATH": "acme/api",
        "CI_COMMIT_SHA": HEAD,
        "CI_JOB_TOKEN": "job-secret",
    }
    result = invoke("deploy", "start", "-s", service, "-e", "production", env=env)
    assert result.exit_code == 0, result.output
    attributes = _opened(invoke, service)
    assert attributes["revision"] == HEAD
    assert [(c["kind"], c["id"], c["committedAt"]) for c in attributes["changes"]] == [
        ("merge_request", "12", "2026-03-01T07:00:00Z"),
        ("commit", C2, "2026-03-02T09:00:00Z"),
    ]
    compare = next(r for r in fake_api.requests if r.path.endswith("/repository/compare"))
    assert parse_qs(compare.query) == {"from": [BASE], "to": [HEAD]}
    assert compare.headers.get("JOB-TOKEN") == "job-secret"
