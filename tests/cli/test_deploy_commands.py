"""`tracker-ci deploy ...` in-process (click CliRunner) against the real bundled server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Invoke, unique

pytestmark = pytest.mark.server

SHA = "cafebabe0123456789abcdef0123456789abcdef"


def _event(url: str, event_id: str) -> dict:
    return httpx.get(f"{url}/api/v1alpha1/event/{event_id}").json()["event"]


def _locks(url: str, service: str) -> list[dict]:
    locks = httpx.get(f"{url}/api/v1alpha1/locks/list").json()["locks"]
    return [lock for lock in locks if lock["service"] == service]


def test_start_then_finish_by_event_id(invoke: Invoke) -> None:
    service = unique()
    started = invoke(
        "-o",
        "json",
        "deploy",
        "start",
        "-s",
        service,
        "-e",
        "production",
        "--owner",
        "alice",
        "--priority",
        "p1",
    )
    assert started.exit_code == 0, started.output
    state = json.loads(started.stdout)
    assert set(state) >= {"eventId", "lockId", "service", "environment", "status", "eventUrl"}
    assert (state["service"], state["environment"], state["status"]) == (
        service,
        "production",
        "start",
    )
    event = _event(invoke.url, state["eventId"])
    assert event["title"] == f"Deploy {service} to production"
    assert (event["attributes"]["owner"], event["attributes"]["priority"]) == ("alice", "P1")
    assert [lock["id"] for lock in _locks(invoke.url, service)] == [state["lockId"]]

    finished = invoke("deploy", "finish", "--event-id", state["eventId"], "--status", "success")
    assert finished.exit_code == 0, finished.output
    assert "status:   success" in finished.stdout
    event = _event(invoke.url, state["eventId"])
    assert event["attributes"]["status"] == "success"
    assert event["metadata"]["duration"].endswith("s")
    assert _locks(invoke.url, service) == []


def test_finish_without_event_id_closes_the_newest_open_deployment(invoke: Invoke) -> None:
    service = unique()
    started = invoke("deploy", "start", "-s", service, "-e", "UAT")
    assert started.exit_code == 0, started.output
    event_id = started.stdout.strip()
    finished = invoke(
        "deploy", "finish", "-s", service, "-e", "uat", "--status", "failed", "-m", "rolled back"
    )
    assert finished.exit_code == 0, finished.output
    event = _event(invoke.url, event_id)
    assert event["attributes"]["status"] == "failure"
    assert "rolled back" in event["attributes"]["message"]
    again = invoke("deploy", "finish", "-s", service, "-e", "UAT", "--status", "success")
    assert again.exit_code == 6, again.output
    assert "no open deployment" in again.stderr


def test_no_lock_opens_the_deployment_without_its_lock(invoke: Invoke) -> None:
    service = unique()
    started = invoke("-o", "json", "deploy", "start", "-s", service, "-e", "UAT", "--no-lock")
    assert started.exit_code == 0, started.output
    state = json.loads(started.stdout)
    assert (state["status"], state["lockId"]) == ("open", "")
    assert _locks(invoke.url, service) == []
    # Another deploy is not kept out; the open one is found by key and closed.
    other = invoke("deploy", "run", "-s", service, "-e", "UAT", "--", "true")
    assert other.exit_code == 0, other.output
    finished = invoke("deploy", "finish", "-s", service, "-e", "UAT", "--status", "success")
    assert finished.exit_code == 0, finished.output
    event = _event(invoke.url, state["eventId"])
    assert event["attributes"]["status"] == "success"
    assert event["metadata"]["duration"] is not None


def test_finish_records_a_finished_deployment_when_none_is_open(invoke: Invoke) -> None:
    service = unique()
    key = ["-s", service, "-e", "UAT", "--status", "success"]
    missing = invoke("deploy", "finish", *key)
    assert missing.exit_code == 6, missing.output
    assert f"no open deployment of {service} in UAT" in missing.stderr
    recorded = invoke(
        "-o",
        "json",
        "deploy",
        "finish",
        *key,
        "--record-if-none",
        "--started-at",
        "2026-01-31T12:00:00Z",
        "--priority",
        "P4",
        "--title",
        "Shipped",
    )
    assert recorded.exit_code == 0, recorded.output
    state = json.loads(recorded.stdout)
    assert state["status"] == "success" and state["duration"] > 0
    event = _event(invoke.url, state["eventId"])
    attributes = event["attributes"]
    assert (attributes["type"], attributes["status"], attributes["priority"]) == (
        "deployment",
        "success",
        "P4",
    )
    assert attributes["startDate"].startswith("2026-01-31T12:00:00") and attributes["endDate"]
    assert event["title"] == "Shipped" and _locks(invoke.url, service) == []
    bad = invoke("deploy", "finish", *key, "--record-if-none", "--started-at", "noon")
    assert bad.exit_code == 2 and "'noon' is not an RFC 3339 time" in bad.stderr, bad.output


def test_finish_reads_tracker_event_id(invoke: Invoke) -> None:
    service = unique()
    event_id = invoke("deploy", "start", "-s", service, "-e", "UAT").stdout.strip()
    finished = invoke("deploy", "finish", "--status", "success", env={"TRACKER_EVENT_ID": event_id})
    assert finished.exit_code == 0, finished.output
    assert _event(invoke.url, event_id)["attributes"]["status"] == "success"


def test_a_held_lock_exits_3_with_the_holder(invoke: Invoke) -> None:
    service = unique()
    first = invoke("deploy", "start", "-s", service, "-e", "production", "--owner", "alice")
    assert first.exit_code == 0, first.output
    second = invoke("deploy", "start", "-s", service, "-e", "production", "--fail-policy", "open")
    assert second.exit_code == 3, second.output
    assert "held by alice" in second.stderr
    assert "Traceback" not in second.output


def test_wait_prints_a_live_line_then_times_out(invoke: Invoke) -> None:
    service = unique()
    assert (
        invoke("deploy", "start", "-s", service, "-e", "production", "--owner", "alice").exit_code
        == 0
    )
    waited = invoke("deploy", "start", "-s", service, "-e", "production", "--wait", "1")
    assert waited.exit_code == 3, waited.output
    assert f"waiting for lock on {service}/production: held by alice since " in waited.stderr
    assert "s left" in waited.stderr
    assert "gave up after waiting" in waited.stderr


def test_github_actions_outputs_context_and_pull_request(invoke: Invoke, tmp_path: Path) -> None:
    service = unique()
    payload = tmp_path / "event.json"
    payload.write_text(
        json.dumps({"pull_request": {"html_url": "https://github.com/acme/api/pull/7"}})
    )
    outputs = tmp_path / "github_output"
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/api",
        "GITHUB_SHA": SHA,
        "GITHUB_RUN_ID": "99",
        "GITHUB_ACTOR": "octocat",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(payload),
        "GITHUB_OUTPUT": str(outputs),
    }
    started = invoke("deploy", "start", "-s", service, "-e", "production", env=env)
    assert started.exit_code == 0, started.output
    event_id = started.stdout.strip()
    written = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert written["event-id"] == event_id
    assert written["status"] == "start"
    assert written["lock-id"] and written["event-url"].endswith(f"/events/{event_id}")
    event = _event(invoke.url, event_id)
    assert event["title"] == f"Deploy {service} to production (cafebab)"
    assert event["attributes"]["owner"] == "octocat"
    assert event["attributes"]["source"] == "github-actions"
    assert event["links"]["pullRequestLink"] == "https://github.com/acme/api/pull/7"
    assert "https://github.com/acme/api/actions/runs/99" in event["attributes"]["message"]

    outputs.write_text("")
    finished = invoke("deploy", "finish", "--event-id", event_id, "--status", "success", env=env)
    assert finished.exit_code == 0, finished.output
    written = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert written["status"] == "success"
    assert float(written["duration"]) >= 0


def test_gitlab_dotenv_and_merge_request(invoke: Invoke, tmp_path: Path) -> None:
    service = unique()
    env = {
        "GITLAB_CI": "true",
        "CI_PROJECT_PATH": "acme/api",
        "CI_COMMIT_SHA": SHA,
        "CI_COMMIT_SHORT_SHA": SHA[:8],
        "GITLAB_USER_LOGIN": "bob",
        "CI_MERGE_REQUEST_PROJECT_URL": "https://gitlab.example/acme/api",
        "CI_MERGE_REQUEST_IID": "12",
    }
    started = invoke(
        "deploy", "start", "-s", service, "-e", "UAT", "--dotenv", "deploy.env", env=env
    )
    assert started.exit_code == 0, started.output
    event_id = started.stdout.strip()
    dotenv = dict(line.split("=", 1) for line in Path("deploy.env").read_text().splitlines())
    assert dotenv["TRACKER_EVENT_ID"] == event_id and dotenv["TRACKER_LOCK_ID"]
    event = _event(invoke.url, event_id)
    assert event["attributes"]["owner"] == "bob"
    assert event["title"].endswith(f"({SHA[:8]})")
    assert event["links"]["pullRequestLink"] == (
        "https://gitlab.example/acme/api/-/merge_requests/12"
    )


def test_sticky_pull_request_comment(invoke: Invoke, fake_api, tmp_path: Path) -> None:
    service = unique()
    marker = f"<!-- tracker-ci:{service}/production -->"
    comment = {
        "id": 5,
        "body": "",
        "url": f"{fake_api.url}/repos/acme/api/issues/comments/5",
        "html_url": "https://github.com/acme/api/pull/7#issuecomment-5",
    }
    fake_api.route("GET", "/repos/acme/api/issues/7/comments", [])
    fake_api.route("POST", "/repos/acme/api/issues/7/comments", comment, 201)
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/api",
        "GITHUB_API_URL": fake_api.url,
        "GITHUB_TOKEN": "ghs_x",
    }
    started = invoke(
        "deploy",
        "start",
        "-s",
        service,
        "-e",
        "production",
        "--comment",
        "--pr-url",
        "https://github.com/acme/api/pull/7",
        env=env,
    )
    assert started.exit_code == 0, started.output
    posted = [r for r in fake_api.requests if r.method == "POST"]
    assert len(posted) == 1 and posted[0].body["body"].startswith(marker)
    assert ": start" in posted[0].body["body"]

    fake_api.route(
        "GET", "/repos/acme/api/issues/7/comments", [{**comment, "body": posted[0].body["body"]}]
    )
    fake_api.route("PATCH", "/repos/acme/api/issues/comments/5", comment)
    finished = invoke(
        "deploy",
        "finish",
        "-s",
        service,
        "-e",
        "production",
        "--status",
        "success",
        "--comment",
        env=env,
    )
    assert finished.exit_code == 0, finished.output
    assert len([r for r in fake_api.requests if r.method == "POST"]) == 1
    patched = [r for r in fake_api.requests if r.method == "PATCH"]
    assert len(patched) == 1 and ": success" in patched[0].body["body"]


def test_a_failing_comment_is_only_a_warning(invoke: Invoke, fake_api) -> None:
    fake_api.route("GET", "/repos/acme/api/issues/7/comments", {"message": "Bad creds"}, 401)
    env = {
        "GITHUB_API_URL": fake_api.url,
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/api",
        "GITHUB_TOKEN": "bad",
    }
    result = invoke(
        "deploy",
        "start",
        "-s",
        unique(),
        "-e",
        "UAT",
        "--comment",
        "--pr-url",
        "https://github.com/acme/api/pull/7",
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "warning: cannot comment on https://github.com/acme/api/pull/7" in result.stderr


def test_deploy_run_passes_the_exit_code_through(invoke: Invoke) -> None:
    service = unique()
    ok = invoke("deploy", "run", "-s", service, "-e", "UAT", "--", "sh", "-c", "exit 0")
    assert ok.exit_code == 0, ok.output
    failed = invoke("deploy", "run", "-s", service, "-e", "UAT", "--", "sh", "-c", "exit 7")
    assert failed.exit_code == 7, failed.output
    events = httpx.get(
        f"{invoke.url}/api/v1alpha1/events/search", params={"service": service}
    ).json()["events"]
    assert sorted(e["attributes"]["status"] for e in events) == ["failure", "success"]
    assert _locks(invoke.url, service) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["deploy", "start", "-s", "x", "-e", "prod env"],
            "'prod env' is not one of: development, integration, TNR, UAT",
        ),
        (["deploy", "start", "-s", "x", "-e", "UAT", "--priority", "P9"], "'P9' is not one of"),
        (["deploy", "finish", "--event-id", "e", "--status", "great"], "'great' is not one of"),
        (["deploy", "start", "-e", "UAT"], "missing --service"),
        (["deploy", "start", "-s", "x", "--wait", "-1"], "is not a number of seconds"),
        (
            ["deploy", "start", "-s", "x", "-e", "UAT", "--pr-url", "https://example.com/x"],
            "is neither a GitHub pull request",
        ),
        (["deploy", "run", "-s", "x", "-e", "UAT"], "Missing argument 'COMMAND...'"),
        (
            ["deploy", "start", "-s", "x", "-e", "UAT", "--fail-policy", "maybe"],
            "'maybe' is not one of 'open', 'closed'",
        ),
    ],
)
def test_bad_input_exits_2(invoke: Invoke, args: list[str], expected: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert "Traceback" not in result.output


def test_unreachable_server_fail_closed_by_default_open_when_chosen(
    invoke: Invoke, tmp_path: Path
) -> None:
    from tests.support.servers import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    outputs = tmp_path / "out"
    # Closed, the default: the deploy stops before its command, naming the URL and the fix.
    closed = invoke("deploy", "start", "-s", "api", "-e", "UAT", env={"TRACKER_URL": dead})
    assert closed.exit_code == 4, closed.output
    assert closed.stderr.startswith(f"error: cannot connect to Tracker at {dead}")
    assert "Check TRACKER_URL" in closed.stderr
    marker = tmp_path / "ran"
    refused = invoke(
        "deploy", "run", "-s", "api", "-e", "UAT", "--", "touch", str(marker),
        env={"TRACKER_URL": dead},
    )  # fmt: skip
    assert refused.exit_code == 4, refused.output
    assert not marker.exists()
    # Open, explicitly: untracked and unlocked, said loudly.
    opened = invoke(
        "deploy", "start", "-s", "api", "-e", "UAT", "--fail-policy", "open",
        env={"TRACKER_URL": dead, "GITHUB_OUTPUT": str(outputs)},
    )  # fmt: skip
    assert opened.exit_code == 0, opened.output
    assert "going on without tracking (fail policy open)" in opened.stderr
    assert "UNTRACKED" in opened.stderr and "UNLOCKED" in opened.stderr
    assert "status=untracked" in outputs.read_text()
    ran = invoke(
        "deploy", "run", "-s", "api", "-e", "UAT", "--", "sh", "-c", "exit 5",
        env={"TRACKER_URL": dead, "TRACKER_FAIL_POLICY": "open"},
    )  # fmt: skip
    assert ran.exit_code == 5, ran.output
    finished = invoke(
        "deploy", "finish", "--event-id", "x", "--status", "success",
        env={"TRACKER_URL": dead, "TRACKER_FAIL_POLICY": "open", "TRACKER_CLOSE_RETRY": "0"},
    )  # fmt: skip
    assert finished.exit_code == 0, finished.output
    assert "not closed (fail policy open)" in finished.stderr
    closed = invoke(
        "deploy", "finish", "--event-id", "x", "--status", "success",
        env={"TRACKER_URL": dead, "TRACKER_CLOSE_RETRY": "0"},
    )  # fmt: skip
    assert closed.exit_code == 4, closed.output


def test_deploy_run_writes_outputs_and_the_job_summary(invoke: Invoke, tmp_path: Path) -> None:
    service = unique()
    outputs, summary = tmp_path / "output", tmp_path / "summary.md"
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/api",
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    result = invoke("deploy", "run", "-s", service, "-e", "UAT", "--", "true", env=env)
    assert result.exit_code == 0, result.output
    written = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert written["status"] == "success" and written["event-id"]
    assert float(written["duration"]) >= 0
    text = summary.read_text()
    assert f"Deployment of {service} to UAT" in text and "| Status | ✅ success |" in text


@pytest.mark.unit
def test_the_cli_defaults_are_the_action_s_and_the_gitlab_component_s(tmp_path: Path) -> None:
    """One set of defaults on every surface: production, a 300 s wait, a 3600 s lock TTL."""
    import yaml
    from click.testing import CliRunner

    from tracker_ci.cli import cli

    shown = CliRunner().invoke(cli, ["-o", "json", "config", "show"], env={"TRACKER_WAIT": None})
    settings = json.loads(shown.stdout)
    root = Path(__file__).resolve().parents[2]
    action = yaml.safe_load((root / "action.yml").read_text())["inputs"]
    component = yaml.safe_load(
        (root / "templates" / "tracker-ci.yml").read_text().split("\n---\n")[0]
    )["spec"]["inputs"]
    from tracker_ci.ci.action_inputs import OUR_DEFAULTS

    # The action's empty default is ours (production), but in an upstream workflow.
    assert action["environment"]["default"] == ""
    assert settings["environment"]["value"] == OUR_DEFAULTS["environment"] == "production"
    assert component["environment"]["default"] == "production"
    assert settings["wait"]["value"] == float(action["wait"]["default"]) == 300
    assert component["lock-wait"]["default"] == 300
    assert settings["lock_ttl"]["value"] == int(action["lock-ttl"]["default"]) == 3600
    assert {settings[key]["source"] for key in ("environment", "wait", "lock_ttl")} == {"default"}


def test_a_url_that_is_not_a_tracker_stops_the_deploy_with_exit_4(
    invoke: Invoke, tmp_path: Path
) -> None:
    from tests.support.receivers import run_receiver

    marker = tmp_path / "ran"
    # Another web service answers at TRACKER_URL (a typo in the port, a dashboard's URL).
    with run_receiver(lambda _request: (404, "<html><h1>Not Found</h1></html>")) as other:
        refused = invoke(
            "deploy", "run", "-s", "api", "-e", "UAT", "--", "touch", str(marker),
            env={"TRACKER_URL": other.url},
        )  # fmt: skip
        sent = [f"{r.method} {r.path}" for r in other.requests]
    assert refused.exit_code == 4, refused.output
    assert not marker.exists()
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: {other.url} is not answering as a Tracker: ")
    assert "Check TRACKER_URL (or --url)" in line
    assert sent == ["POST /api/v1alpha1/event"]  # a refusal is not retried
