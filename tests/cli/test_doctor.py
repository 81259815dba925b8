"""`tracker-ci doctor` against the real bundled server (with and without auth)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.cli.conftest import ADMIN_TOKEN, Invoke
from tests.support.names import unique
from tests.support.servers import RunningServer

pytestmark = pytest.mark.server


def _report(result: object) -> dict[str, dict[str, str]]:
    return {row["check"]: row for row in json.loads(result.stdout)}  # type: ignore[attr-defined]


def test_doctor_says_what_is_in_place_and_who_holds_the_lock(invoke: Invoke) -> None:
    service = unique("doc")
    free = invoke("doctor", "-s", service, "-e", "UAT", "-o", "json")
    assert free.exit_code == 0, free.output
    report = _report(free)
    assert "tracker-ci's server" in report["server"]["found"]
    assert report["token"]["found"] == "none needed: the server has auth off"
    assert report["lock"] == {
        "check": "lock",
        "verdict": "ok",
        "found": f"{service}/UAT is free",
        "fix": "",
    }
    assert report["fail policy"]["found"].startswith("closed (default)")
    assert report["fail policy"]["verdict"] == "ok"
    opened = _report(
        invoke("doctor", "-s", service, "-e", "UAT", "-o", "json", "--fail-policy", "open")
    )
    assert opened["fail policy"]["verdict"] == "warn"
    assert "UNTRACKED and UNLOCKED" in opened["fail policy"]["found"]

    taken = invoke("lock", "acquire", "-s", service, "-e", "UAT", "--who", "alice")
    assert taken.exit_code == 0, taken.output
    held = invoke("doctor", "-s", service, "-e", "UAT", "--fail-policy", "closed")
    assert held.exit_code == 0, held.output  # a held lock is a warning, not a failure
    lines = held.stdout.splitlines()
    assert any(line.startswith("warn  lock") and "held by alice" in line for line in lines)
    assert any("fix: a deploy now waits" in line for line in lines)
    assert any(line.startswith("ok    fail policy   closed (flag)") for line in lines), lines


def test_doctor_fails_with_the_exit_code_of_what_is_wrong(
    invoke: Invoke, auth_server: RunningServer
) -> None:
    down = invoke("doctor", env={"TRACKER_URL": "http://127.0.0.1:9"})
    assert down.exit_code == 4, down.output
    assert down.stdout.startswith("fail  server")
    assert "fix: check TRACKER_URL" in down.stdout

    refused = invoke(
        "doctor", env={"TRACKER_URL": auth_server.url, "TRACKER_TOKEN": "trk_not_a_token"}
    )
    assert refused.exit_code == 5, refused.output
    assert "fail  token" in refused.stdout

    created = httpx.post(
        f"{auth_server.url}/api/v1alpha1/tokens",
        json={"name": "ci", "services": ["api"]},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    scoped = invoke(
        "doctor",
        "-o",
        "json",
        env={"TRACKER_URL": auth_server.url, "TRACKER_TOKEN": created.json()["secret"]},
    )
    assert scoped.exit_code == 0, scoped.output
    assert _report(scoped)["token"]["found"].startswith("accepted; not an admin token")
    admin = invoke(
        "doctor", "-o", "json", env={"TRACKER_URL": auth_server.url, "TRACKER_TOKEN": ADMIN_TOKEN}
    )
    assert _report(admin)["token"]["found"].startswith("accepted, with admin rights")


def test_doctor_looks_the_pull_request_up_with_the_ci_token(invoke: Invoke, fake_api) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/api",
        "GITHUB_SHA": sha,
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_API_URL": fake_api.url,
        "GITHUB_TOKEN": "ghs_doctor",
    }
    fake_api.route("GET", f"/repos/acme/api/commits/{sha}/pulls", [])
    none = invoke("doctor", "-o", "json", env=env)
    assert none.exit_code == 0, none.output
    assert _report(none)["pull request"]["verdict"] == "warn"
    fake_api.route(
        "GET",
        f"/repos/acme/api/commits/{sha}/pulls",
        [
            {
                "number": 7,
                "state": "open",
                "html_url": "https://github.com/acme/api/pull/7",
                "url": f"{fake_api.url}/repos/acme/api/pulls/7",
                "head": {"ref": "main", "sha": sha},
            }
        ],
    )
    found = invoke("doctor", "-o", "json", env=env)
    assert _report(found)["pull request"] == {
        "check": "pull request",
        "verdict": "ok",
        "found": "https://github.com/acme/api/pull/7",
        "fix": "",
    }
    lookups = [r for r in fake_api.requests if r.path.endswith("/pulls")]
    assert lookups and all(r.headers["Authorization"] == "token ghs_doctor" for r in lookups)


def test_doctor_names_the_freeze_windows_in_force_for_the_deploy(invoke: Invoke) -> None:
    service = unique("doc-freeze")
    free = invoke("doctor", "-s", service, "-e", "UAT", "-o", "json")
    assert _report(free)["freezes"] == {
        "check": "freezes",
        "verdict": "ok",
        "found": f"no freeze window in force for {service}/UAT",
        "fix": "",
    }
    soft = invoke("freeze", "add", "Launch", "-s", service, "--soft", "--for", "1h")
    assert soft.exit_code == 0, soft.output
    warned = _report(invoke("doctor", "-s", service, "-e", "UAT", "-o", "json"))["freezes"]
    assert warned["verdict"] == "warn" and 'soft "Launch" until' in warned["found"]
    assert warned["fix"] == "a deploy goes through with a warning"
    hard = invoke("freeze", "add", "Release freeze", "-s", service, "--for", "2h")
    assert hard.exit_code == 0, hard.output
    blocked = _report(invoke("doctor", "-s", service, "-e", "UAT", "-o", "json"))["freezes"]
    assert 'hard "Release freeze" until' in blocked["found"]
    assert blocked["fix"].startswith("a deploy is refused now (exit 7)")
    # Another service is not in those windows' scope.
    other = _report(invoke("doctor", "-s", unique("doc-other"), "-e", "UAT", "-o", "json"))
    assert other["freezes"]["verdict"] == "ok"


def test_doctor_lists_what_a_deploy_would_ship_with_the_ci_token(invoke: Invoke, fake_api) -> None:
    from tests.cli.test_shipped_changes import BASE, C1, HEAD, _github_commit, _previous

    service = unique("doc-ship")
    _previous(invoke, service)
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/api",
        "GITHUB_SHA": HEAD,
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_API_URL": fake_api.url,
        "GITHUB_TOKEN": "ghs_doctor",
    }
    compare = f"/repos/acme/api/compare/{BASE}...{HEAD}"
    fake_api.route(
        "GET",
        compare,
        {
            "url": f"{fake_api.url}{compare}",
            "total_commits": 1,
            "commits": [_github_commit(C1, 1, "bob")],
        },
    )
    fake_api.route("GET", f"/repos/acme/api/commits/{C1}/pulls", [])
    fake_api.route("GET", f"/repos/acme/api/commits/{HEAD}/pulls", [])
    listed = invoke("doctor", "-s", service, "-e", "production", "-o", "json", env=env)
    assert listed.exit_code == 0, listed.output
    assert _report(listed)["changes"] == {
        "check": "changes",
        "verdict": "ok",
        "found": f"1 change(s) since the last successful deploy, up to {HEAD[:12]}",
        "fix": "",
    }
    fake_api.route("GET", compare, {"message": "Bad credentials"}, 401)
    refused = _report(invoke("doctor", "-s", service, "-e", "production", "-o", "json", env=env))
    assert refused["changes"]["verdict"] == "warn"
    assert refused["changes"]["found"].startswith("cannot list the changes this deploy ships")
    assert "token that can read" in refused["changes"]["fix"]
