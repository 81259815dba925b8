"""The action run as the GitHub runner runs it (see emulator.py), against the real server."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.action.emulator import Job, event_payloads
from tests.ci.fake_api import FakeAPI
from tests.support import api as tracker
from tests.support.api import API
from tests.support.names import unique
from tests.support.servers import RunningServer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.server]


def command_started(step: subprocess.Popen[str], marker: Path) -> bool:
    """Whether the step's command has written ``marker`` (fails at once if the step ended)."""
    if step.poll() is not None:
        pytest.fail("the step ended before its command started")
    return marker.exists()


def _job(tmp_path: Path) -> Job:
    # A pull_request run names its PR in the payload: no (failing) API lookup to wait for.
    return Job(tmp_path, "pull_request", event_payloads()["pull_request"])


@pytest.fixture(params=sorted(event_payloads()))
def job(request: pytest.FixtureRequest, tmp_path: Path) -> Job:
    """A job triggered by a pull_request, a push or a workflow_dispatch event."""
    return Job(tmp_path, request.param, event_payloads()[request.param])


def test_a_successful_deploy_is_tracked_from_start_to_end(
    job: Job, sqlite_server: RunningServer
) -> None:
    service = unique("shop")
    marker = job.workspace / "deployed.txt"
    step = job.run_main(
        {
            "server-url": sqlite_server.url,
            "service": service,
            "environment": "UAT",
            "command": (
                'echo "version 1.2.3" > deployed.txt\necho "TRACKER_EVENT_ID=$TRACKER_EVENT_ID"'
            ),
            "wait": "0",
        }
    )
    assert step.exit_code == 0, step.log
    # The command ran in the workspace, as a `run:` step would.
    assert marker.read_text() == "version 1.2.3\n"
    outputs = step.outputs
    assert set(outputs) >= {"event-id", "lock-id", "status", "duration", "event-url"}, step.log
    assert outputs["status"] == "success"
    assert float(outputs["duration"]) >= 0
    assert outputs["event-url"].endswith(outputs["event-id"])
    assert f"TRACKER_EVENT_ID={outputs['event-id']}" in step.stdout
    # The post step finds it closed and does nothing.
    assert step.state["closed"] == "true"

    event = tracker.event(sqlite_server.url, outputs["event-id"])
    assert event["attributes"]["status"] == "success"
    assert event["attributes"]["service"] == service
    assert event["attributes"]["environment"] == "UAT"
    assert event["attributes"]["type"] == "deployment"
    assert event["attributes"]["owner"] == job.actor
    assert event["metadata"]["duration"] is not None
    if job.event_name == "pull_request":
        assert event["links"]["pullRequestLink"] == "https://github.com/acme/shop/pull/17"
    else:
        assert event["links"]["pullRequestLink"] == ""
        # No GitHub API here: the commit's PR lookup failed, as a warning only.
        assert any("pull request" in w for w in step.annotations("warning")), step.log
    assert tracker.locks_of(sqlite_server.url, service) == []

    summary = step.summary
    assert f"Deployment of {service} to UAT" in summary
    assert "success" in summary and job.actor in summary
    assert outputs["event-id"] in summary and "released" in summary
    if job.event_name == "pull_request":
        assert "https://github.com/acme/shop/pull/17" in summary

    post = job.run_post(
        step, {"server-url": sqlite_server.url, "service": service}, job_status="success"
    )
    assert post.exit_code == 0, post.log
    assert "left nothing open" in post.stdout
    assert (
        tracker.event(sqlite_server.url, outputs["event-id"])["attributes"]["status"] == "success"
    )


@pytest.mark.parametrize("job_status", ["failure", "cancelled", ""])
def test_a_later_failed_step_makes_the_post_step_close_as_failure(
    tmp_path: Path, sqlite_server: RunningServer, job_status: str
) -> None:
    """Also when the job's status is unknown to the post step (empty): failure, to be safe."""
    job = _job(tmp_path)
    service = unique("shop")
    with_ = {
        "server-url": sqlite_server.url,
        "service": service,
        "environment": "production",
        "mode": "start",
        "wait": "0",
    }
    start = job.run_main(with_)
    assert start.exit_code == 0, start.log
    event_id = start.outputs["event-id"]
    lock_id = start.outputs["lock-id"]
    assert event_id and lock_id and start.outputs["status"] == "start"
    assert start.state == {
        "mode": "start",
        "event_id": event_id,
        "lock_id": lock_id,
        "pr_url": "https://github.com/acme/shop/pull/17",
        "closed": "false",
    }
    # Later steps see the event through GITHUB_ENV.
    assert job.job_env["TRACKER_EVENT_ID"] == event_id
    assert [lock["id"] for lock in tracker.locks_of(sqlite_server.url, service)] == [lock_id]
    assert "post step" in start.summary

    # ... a later step of the job fails: job.status is `failure` when the post step runs.
    post = job.run_post(start, with_, job_status=job_status)
    assert post.exit_code == 0, post.log
    event = tracker.event(sqlite_server.url, event_id)
    assert event["attributes"]["status"] == "failure"
    assert event["metadata"]["duration"] is not None
    assert f"job status: {job_status or 'unknown'}" in event["attributes"]["message"]
    assert tracker.locks_of(sqlite_server.url, service) == []
    assert "closed by the post step" in post.summary and "failure" in post.summary
    assert "https://github.com/acme/shop/pull/17" in post.summary


def test_the_post_step_closes_as_success_when_the_job_succeeded(
    tmp_path: Path, sqlite_server: RunningServer
) -> None:
    job = _job(tmp_path)
    service = unique("shop")
    with_ = {"server-url": sqlite_server.url, "service": service, "mode": "start", "wait": "0"}
    start = job.run_main(with_)
    assert start.exit_code == 0, start.log
    post = job.run_post(start, with_, job_status="success")
    assert post.exit_code == 0, post.log
    assert (
        tracker.event(sqlite_server.url, start.outputs["event-id"])["attributes"]["status"]
        == "success"
    )
    assert tracker.locks_of(sqlite_server.url, service) == []


def test_the_post_step_leaves_alone_an_event_a_finish_step_closed(
    tmp_path: Path, sqlite_server: RunningServer
) -> None:
    job = _job(tmp_path)
    service = unique("shop")
    base = {"server-url": sqlite_server.url, "service": service, "wait": "0"}
    start = job.run_main({**base, "mode": "start"})
    assert start.exit_code == 0, start.log
    event_id = start.outputs["event-id"]
    finish = job.run_main({**base, "mode": "finish", "event-id": event_id, "status": "success"})
    assert finish.exit_code == 0, finish.log
    assert finish.outputs["status"] == "success"
    assert finish.outputs["duration"]
    assert tracker.locks_of(sqlite_server.url, service) == []
    # The job failed later; the start step's post must not rewrite a closed deploy.
    post = job.run_post(start, {**base, "mode": "start"}, job_status="failure")
    assert post.exit_code == 0, post.log
    assert "already closed" in post.log
    assert tracker.event(sqlite_server.url, event_id)["attributes"]["status"] == "success"


def test_a_failing_deploy_command_fails_the_step_and_closes_as_failure(
    tmp_path: Path, sqlite_server: RunningServer
) -> None:
    job = _job(tmp_path)
    service = unique("shop")
    step = job.run_main(
        {
            "server-url": sqlite_server.url,
            "service": service,
            "wait": "0",
            "command": "echo deploying; false | cat; exit 7",
        }
    )
    # pipefail: `false | cat` already fails the bash -e script, with the code of `false`.
    assert step.exit_code == 1, step.log
    assert step.outputs["status"] == "failure"
    errors = step.annotations("error")
    assert errors == [
        "The deploy command exited with code 1; the deployment was closed as failure."
    ], step.log
    event = tracker.event(sqlite_server.url, step.outputs["event-id"])
    assert event["attributes"]["status"] == "failure"
    assert tracker.locks_of(sqlite_server.url, service) == []
    assert step.state["closed"] == "true"


def test_a_locked_service_fails_the_step_naming_the_holder(
    tmp_path: Path, sqlite_server: RunningServer
) -> None:
    job = _job(tmp_path)
    service = unique("shop")
    held = httpx.post(
        f"{sqlite_server.url}{API}/lock",
        json={
            "service": service,
            "environment": "production",
            "resource": "deployment",
            "who": "alice",
        },
        timeout=10,
    )
    assert held.status_code == 200, held.text
    marker = job.workspace / "deployed.txt"
    step = job.run_main(
        {
            "server-url": sqlite_server.url,
            "service": service,
            "wait": "1",
            "command": "touch deployed.txt",
        }
    )
    assert step.exit_code == 3, step.log
    assert not marker.exists(), "the deploy ran without its lock"
    errors = step.annotations("error")
    assert len(errors) == 1 and "alice" in errors[0], step.log
    assert "How to fix it" in step.summary and "alice" in step.summary
    assert step.outputs == {}
    assert step.state == {"mode": "run"}
    post = job.run_post(
        step, {"server-url": sqlite_server.url, "service": service}, job_status="failure"
    )
    assert post.exit_code == 0 and "left nothing open" in post.stdout, post.log
    # The holder's lock is untouched.
    assert [lock["who"] for lock in tracker.locks_of(sqlite_server.url, service)] == ["alice"]


def test_lock_then_post_releases_the_lock(tmp_path: Path, sqlite_server: RunningServer) -> None:
    job = _job(tmp_path)
    service = unique("shop")
    with_ = {"server-url": sqlite_server.url, "service": service, "mode": "lock", "wait": "0"}
    step = job.run_main(with_)
    assert step.exit_code == 0, step.log
    assert step.outputs["status"] == "locked"
    (lock,) = tracker.locks_of(sqlite_server.url, service)
    assert lock["id"] == step.outputs["lock-id"] and lock["who"] == job.actor
    post = job.run_post(step, with_, job_status="cancelled")
    assert post.exit_code == 0, post.log
    assert tracker.locks_of(sqlite_server.url, service) == []


def test_unlock_releases_a_lock_by_id(tmp_path: Path, sqlite_server: RunningServer) -> None:
    job = _job(tmp_path)
    service = unique("shop")
    base = {"server-url": sqlite_server.url, "service": service, "wait": "0"}
    lock = job.run_main({**base, "mode": "lock"})
    assert lock.exit_code == 0, lock.log
    unlock = job.run_main({**base, "mode": "unlock", "lock-id": lock.outputs["lock-id"]})
    assert unlock.exit_code == 0, unlock.log
    assert unlock.outputs["status"] == "unlocked"
    assert tracker.locks_of(sqlite_server.url, service) == []
    # The lock step's post finds the lock gone and says so.
    post = job.run_post(lock, {**base, "mode": "lock"}, job_status="success")
    assert post.exit_code == 0 and "already released" in post.log, post.log
    # By key: the holder (owner, the actor by default) releases its lock; nobody else can.
    again = job.run_main({**base, "mode": "lock"})
    assert again.exit_code == 0, again.log
    stranger = job.run_main({**base, "mode": "unlock", "owner": "mallory"})
    assert stranger.exit_code != 0 and stranger.annotations("error"), stranger.log
    assert len(tracker.locks_of(sqlite_server.url, service)) == 1
    by_key = job.run_main({**base, "mode": "unlock"})
    assert by_key.exit_code == 0, by_key.log
    assert tracker.locks_of(sqlite_server.url, service) == []


def test_an_unreachable_server_with_fail_policy_open_deploys_untracked(tmp_path: Path) -> None:
    job = _job(tmp_path)
    step = job.run_main(
        {
            "server-url": "http://127.0.0.1:9",
            "service": "shop",
            "environment": "Production",
            "command": "touch deployed.txt",
            "wait": "0",
            "fail-policy": "open",
        }
    )
    assert step.exit_code == 0, step.log
    assert (job.workspace / "deployed.txt").exists()
    assert step.outputs["event-id"] == ""
    warnings = step.annotations("warning")
    assert any("not tracked" in w for w in warnings), step.log
    # A doubtful spelling is accepted, with a warning.
    assert any("'production'" in w for w in warnings), step.log


def test_an_unreachable_server_stops_the_deploy_by_default(tmp_path: Path) -> None:
    job = _job(tmp_path)
    step = job.run_main(
        {
            "server-url": "http://127.0.0.1:9",
            "service": "shop",
            "command": "touch deployed.txt",
            "wait": "0",
        }
    )  # closed: the default
    assert step.exit_code == 4, step.log
    assert not (job.workspace / "deployed.txt").exists()
    assert step.annotations("error"), step.log
    assert "server-url" in step.summary


@pytest.mark.parametrize(
    ("with_", "named"),
    [
        ({"service": "shop", "comment": "maybe"}, "comment"),
        ({"service": "shop", "auto-close": "Treu"}, "auto-close"),
        ({"service": "shop", "environment": "prod/eu"}, "environment"),
        ({"service": "shop", "pr-url": "https://example.com/not-a-pr"}, "pr-url"),
        ({"command": "true", "host": "a.example", "server-url": "http://b.example"}, "host"),
        ({"service": "shop", "mode": "run", "command": ""}, "command"),
    ],
)
def test_bad_inputs_fail_the_step_before_anything_runs(
    tmp_path: Path, with_: dict[str, str], named: str
) -> None:
    """A few of each kind, end to end; test_action_module checks every input's rules."""
    job = _job(tmp_path)
    step = job.run_main({"server-url": "http://127.0.0.1:9", "command": "touch ran.txt", **with_})
    assert step.exit_code == 2, step.log
    errors = step.annotations("error")
    assert len(errors) == 1 and f"`{named}`" in errors[0], step.log
    assert "How to fix it" in step.summary
    assert not (job.workspace / "ran.txt").exists()
    assert step.state == {} and step.outputs == {}


def test_secrets_are_masked_first(tmp_path: Path) -> None:
    job = _job(tmp_path)
    step = job.run_main(
        {
            "server-url": "http://127.0.0.1:9",
            "service": "shop",
            "token": "trk_supersecret",
            "mode": "bogus",
        }
    )
    lines = step.stdout.splitlines()
    assert lines[0] == "::add-mask::trk_supersecret", step.log
    assert f"::add-mask::{job.github_token}" in lines[:2]


def test_a_cancelled_run_closes_the_event_before_the_container_stops(
    tmp_path: Path, sqlite_server: RunningServer
) -> None:
    """The runner stops a cancelled step's container: SIGTERM to its PID 1, our entrypoint."""
    job = _job(tmp_path)
    service = unique("shop")
    started = job.workspace / "started"

    def cancel(process: subprocess.Popen[str]) -> None:
        eventually(lambda: command_started(process, started), message="the deploy command")
        process.send_signal(signal.SIGTERM)

    step = job.run_main(
        {
            "server-url": sqlite_server.url,
            "service": service,
            "wait": "0",
            "command": "touch started; sleep 60; touch finished",
        },
        while_running=cancel,
    )
    assert step.exit_code == 128 + signal.SIGTERM, step.log
    assert not (job.workspace / "finished").exists()
    event = tracker.event(sqlite_server.url, step.outputs["event-id"])
    assert event["attributes"]["status"] == "failure"
    assert "cancelled by SIGTERM" in event["attributes"]["message"]
    assert "Cancelled by SIGTERM" in step.summary
    assert tracker.locks_of(sqlite_server.url, service) == []
    assert step.state["closed"] == "true"
    post = job.run_post(step, {"server-url": sqlite_server.url}, job_status="cancelled")
    assert post.exit_code == 0 and "left nothing open" in post.stdout, post.log


SHA = "0123456789abcdef0123456789abcdef01234567"  # the emulator's GITHUB_SHA


def _fake_comment(comment_id: int, body: str, api: str) -> dict:
    return {
        "id": comment_id,
        "body": body,
        "url": f"{api}/repos/acme/shop/issues/comments/{comment_id}",
        "html_url": f"https://github.com/acme/shop/pull/21#issuecomment-{comment_id}",
    }


def test_a_push_finds_its_pull_request_and_keeps_one_comment_up_to_date(
    tmp_path: Path, sqlite_server: RunningServer, fake_api: FakeAPI
) -> None:
    """The commit's PR through the GitHub API (a canned one), and the sticky comment."""
    job = Job(
        tmp_path, "push", event_payloads()["push"], extra_env={"GITHUB_API_URL": fake_api.url}
    )
    service = unique("shop")
    marker = f"<!-- tracker-ci:{service}/production -->"
    fake_api.route(
        "GET",
        f"/repos/acme/shop/commits/{SHA}/pulls",
        [
            {
                "number": 21,
                "state": "open",
                "html_url": "https://github.com/acme/shop/pull/21",
                "url": f"{fake_api.url}/repos/acme/shop/pulls/21",
                "head": {"ref": "main", "sha": SHA},
            }
        ],
    )
    # An earlier run of this deploy left its comment: it is edited, never duplicated.
    fake_api.route(
        "GET",
        "/repos/acme/shop/issues/21/comments",
        [
            _fake_comment(4, "LGTM", fake_api.url),
            _fake_comment(5, f"{marker}\nold", fake_api.url),
        ],
    )
    fake_api.route(
        "PATCH", "/repos/acme/shop/issues/comments/5", _fake_comment(5, "x", fake_api.url)
    )
    step = job.run_main(
        {
            "server-url": sqlite_server.url,
            "service": service,
            "command": "true",
            "wait": "0",
            "comment": "true",
        }
    )
    assert step.exit_code == 0, step.log
    event = tracker.event(sqlite_server.url, step.outputs["event-id"])
    assert event["links"]["pullRequestLink"] == "https://github.com/acme/shop/pull/21"
    assert "https://github.com/acme/shop/pull/21" in step.summary
    assert ("POST", "/repos/acme/shop/issues/21/comments") not in fake_api.calls()
    edits = [r for r in fake_api.requests if r.method == "PATCH"]
    assert edits, fake_api.calls()
    assert all(r.path == "/repos/acme/shop/issues/comments/5" for r in edits)
    assert edits[-1].body["body"].startswith(marker) and "success" in edits[-1].body["body"]
    assert all(r.headers["Authorization"] == f"token {job.github_token}" for r in edits)


def test_finish_closes_the_event_a_start_step_exported_with_the_job_status(
    tmp_path: Path, sqlite_server: RunningServer
) -> None:
    job = _job(tmp_path)
    service = unique("shop")
    base = {"server-url": sqlite_server.url, "service": service, "wait": "0"}
    nothing = job.run_main({"server-url": sqlite_server.url, "mode": "finish"})
    assert nothing.exit_code == 0, nothing.log
    assert any("Nothing to finish" in w for w in nothing.annotations("warning")), nothing.log
    start = job.run_main({**base, "mode": "start"})
    assert start.exit_code == 0, start.log
    # `if: always()` after a failed step: no event-id, no status, job.status is failure.
    finish = job.run_main({**base, "mode": "finish"}, job_status="failure")
    assert finish.exit_code == 0, finish.log
    assert finish.outputs["status"] == "failure"
    event = tracker.event(sqlite_server.url, start.outputs["event-id"])
    assert event["attributes"]["status"] == "failure"
    assert tracker.locks_of(sqlite_server.url, service) == []


def test_a_step_killed_mid_deploy_is_closed_by_the_post_step(
    tmp_path: Path, sqlite_server: RunningServer
) -> None:
    """SIGKILL (the runner gave up waiting): nothing in the container can close the deploy;
    the state saved before the command started lets the post step do it."""
    import os

    job = _job(tmp_path)
    service = unique("shop")
    pid_file = job.workspace / "command.pid"

    def kill_the_container(process: subprocess.Popen[str]) -> None:
        eventually(
            lambda: command_started(process, pid_file) and pid_file.read_text().strip(),
            message="the deploy command wrote its pid",
        )
        process.kill()
        process.wait()
        # Removing the container kills what was left in it: the command's process group.
        os.killpg(int(pid_file.read_text()), signal.SIGKILL)

    with_ = {
        "server-url": sqlite_server.url,
        "service": service,
        "wait": "0",
        "command": "echo $$ > command.pid; sleep 60",
    }
    step = job.run_main(with_, while_running=kill_the_container)
    assert step.exit_code == -signal.SIGKILL, step.log
    assert step.state["closed"] == "false" and step.state["event_id"], step.log
    assert tracker.locks_of(sqlite_server.url, service), "the killed step still holds its lock"
    post = job.run_post(step, with_, job_status="cancelled")
    assert post.exit_code == 0, post.log
    event = tracker.event(sqlite_server.url, step.state["event_id"])
    assert event["attributes"]["status"] == "failure"
    assert "job status: cancelled" in event["attributes"]["message"]
    assert tracker.locks_of(sqlite_server.url, service) == []


def test_an_upstream_tracker_action_workflow_runs_with_only_uses_changed(
    tmp_path: Path, sqlite_server: RunningServer
) -> None:
    """bananaops/tracker-action's own test workflow: `status: start`, then `status: success`
    with `related_id`, in its later spelling (tracker_host, lock_enable) and its oldest one
    (host without a scheme, lock-enable), no `service` (the repository's name)."""
    job = _job(tmp_path)
    host = sqlite_server.url.removeprefix("http://")
    spellings = [
        ({"tracker_host": sqlite_server.url, "lock_enable": "true"}, "tracker_host"),
        ({"host": host, "lock-enable": "true"}, "host"),
    ]
    for spelling, _name in spellings:
        start = job.run_main({**spelling, "title": "Deploy", "status": "start"})
        assert start.exit_code == 0, start.log
        event_id = start.outputs["id"]
        assert event_id and event_id == start.outputs["event-id"], start.log
        [lock] = tracker.locks_of(sqlite_server.url, "shop")
        assert lock["eventId"] == event_id
        done = job.run_main({**spelling, "status": "success", "related_id": event_id})
        assert done.exit_code == 0, done.log
        assert done.outputs["status"] == "success"
        for step in (start, done):
            post = job.run_post(step, spelling, job_status="success")
            assert post.exit_code == 0, post.log
        event = tracker.event(sqlite_server.url, event_id)
        assert event["attributes"]["status"] == "success"
        assert event["attributes"]["service"] == "shop"
        assert event["metadata"]["duration"] is not None
        assert tracker.locks_of(sqlite_server.url, "shop") == []
    answer = httpx.get(
        f"{sqlite_server.url}{API}/events/search", params={"service": "shop"}, timeout=10
    )
    events = answer.json()["events"]
    assert len(events) == 2, events
    assert all(e["attributes"]["status"] == "success" for e in events), "no failure event"


UPSTREAM_SPELLINGS = {
    # its later spelling, and its oldest one (a host without a scheme, lock-enable)
    "tracker_host": lambda url, lock: {"tracker_host": url, "lock_enable": lock},
    "host": lambda url, lock: {"host": url.removeprefix("http://"), "lock-enable": lock},
}


def _events_of(url: str, service: str) -> list[dict]:
    answer = httpx.get(f"{url}{API}/events/search", params={"service": service}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["events"]


@pytest.mark.parametrize("spelling", sorted(UPSTREAM_SPELLINGS))
def test_upstreams_one_step_workflow_records_a_finished_deployment(
    tmp_path: Path, sqlite_server: RunningServer, spelling: str
) -> None:
    """The simplest use of bananaops/tracker-action: one step with a final status, no
    related_id. Upstream posts a success event: so do we, with upstream's defaults (P4, no
    environment), and no lock."""
    job = _job(tmp_path)
    service = unique("shop")
    with_ = {
        **UPSTREAM_SPELLINGS[spelling](sqlite_server.url, "true"),
        "service": service,
        "title": "Deployed shop",
        "status": "success",
    }
    step = job.run_main(with_)
    assert step.exit_code == 0, step.log
    [event] = _events_of(sqlite_server.url, service)
    assert step.outputs["id"] == step.outputs["event-id"] == event["metadata"]["id"], step.log
    assert step.outputs["status"] == "success"
    attributes = event["attributes"]
    assert (attributes["type"], attributes["status"]) == ("deployment", "success")
    assert (attributes["priority"], attributes["environment"]) == ("P4", "ENVIRONMENT_UNSPECIFIED")
    assert event["title"] == "Deployed shop" and attributes["owner"] == job.actor
    assert attributes["endDate"], "a finished deployment has its end"
    assert tracker.locks_of(sqlite_server.url, service) == []
    assert "Deployment of" not in step.summary or "post step" not in step.summary
    post = job.run_post(step, with_, job_status="success")
    assert post.exit_code == 0 and "left nothing open" in post.stdout, post.log
    assert len(_events_of(sqlite_server.url, service)) == 1, "upstream's post failure event"


@pytest.mark.parametrize("spelling", sorted(UPSTREAM_SPELLINGS))
@pytest.mark.parametrize("lock", ["true", "false"])
def test_upstreams_two_step_workflow_in_both_spellings(
    tmp_path: Path, sqlite_server: RunningServer, spelling: str, lock: str
) -> None:
    """`status: start` (id tracker), then `status: success` with related_id: one event,
    closed with its duration; the lock held in between unless lock_enable is false."""
    job = _job(tmp_path)
    service = unique("shop")
    base = {**UPSTREAM_SPELLINGS[spelling](sqlite_server.url, lock), "service": service}
    start = job.run_main({**base, "title": "Deploy", "status": "start"})
    assert start.exit_code == 0, start.log
    event_id = start.outputs["id"]
    assert event_id and event_id == start.outputs["event-id"], start.log
    locks = tracker.locks_of(sqlite_server.url, service)
    if lock == "true":
        assert [(lk["eventId"], lk["environment"]) for lk in locks] == [
            (event_id, "ENVIRONMENT_UNSPECIFIED")
        ]
        assert start.outputs["status"] == "start" and start.outputs["lock-id"]
        # Later steps see the event, the lock and its fencing token (GITHUB_ENV).
        assert job.job_env["TRACKER_LOCK_ID"] == start.outputs["lock-id"]
        assert job.job_env["TRACKER_FENCE"] == str(locks[0]["fence"])
    else:
        assert locks == [], "lock_enable: false takes no lock"
        assert start.outputs["status"] == "open" and start.outputs["lock-id"] == ""
    # Another repository's production deploy is not kept out by this one.
    other = httpx.post(
        f"{sqlite_server.url}{API}/lock",
        json={"service": service, "environment": "production", "who": "bob"},
        timeout=10,
    )
    assert other.status_code == 200, other.text
    httpx.get(f"{sqlite_server.url}{API}/unlock/{other.json()['lock']['id']}", timeout=10)

    done = job.run_main({**base, "status": "success", "related_id": event_id})
    assert done.exit_code == 0, done.log
    assert done.outputs["status"] == "success" and done.outputs["duration"]
    for step in (start, done):
        post = job.run_post(step, base, job_status="success")
        assert post.exit_code == 0, post.log
        assert "closed by the post step" not in post.summary, post.summary
    [event] = _events_of(sqlite_server.url, service)
    assert event["metadata"]["id"] == event_id
    assert event["attributes"]["status"] == "success"
    assert event["attributes"]["priority"] == "P4"
    assert event["metadata"]["duration"] is not None
    assert tracker.locks_of(sqlite_server.url, service) == []


def test_a_post_step_that_finds_the_deployment_closed_says_so(
    tmp_path: Path, sqlite_server: RunningServer
) -> None:
    """The start step's post step, after a step closed the event out of the action's sight
    (a script calling the CLI): the summary says it was already closed, not that it closed."""
    job = _job(tmp_path)
    service = unique("shop")
    with_ = {"server-url": sqlite_server.url, "service": service, "mode": "start", "wait": "0"}
    start = job.run_main(with_)
    assert start.exit_code == 0, start.log
    closed = httpx.get(f"{sqlite_server.url}{API}/event/{start.outputs['event-id']}", timeout=10)
    body = closed.json()["event"]
    body["attributes"]["status"] = "success"
    answer = httpx.put(
        f"{sqlite_server.url}{API}/event",
        json={
            "id": body["metadata"]["id"],
            **{k: body[k] for k in ("title", "attributes", "links")},
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    post = job.run_post(start, with_, job_status="failure")
    assert post.exit_code == 0, post.log
    assert "was already closed" in post.summary and "closed by the post step" not in post.summary
    assert "nothing changed" in post.summary


def test_upstreams_one_step_workflow_has_the_run_s_duration_when_github_says(
    tmp_path: Path, sqlite_server: RunningServer, fake_api: FakeAPI
) -> None:
    """The recorded deployment starts when the workflow run (attempt) started."""
    job = Job(
        tmp_path,
        "push",
        event_payloads()["push"],
        extra_env={"GITHUB_API_URL": fake_api.url},
    )
    service = unique("shop")
    fake_api.route(
        "GET",
        "/repos/acme/shop/actions/runs/4242/attempts/1",
        {"id": 4242, "run_attempt": 1, "run_started_at": "2026-01-31T12:00:00Z"},
    )
    step = job.run_main(
        {"tracker_host": sqlite_server.url, "service": service, "status": "success"}
    )
    assert step.exit_code == 0, step.log
    [event] = _events_of(sqlite_server.url, service)
    assert event["attributes"]["startDate"].startswith("2026-01-31T12:00:00"), event
    assert float(step.outputs["duration"]) > 3600, step.outputs
    [asked] = [r for r in fake_api.requests if r.path.startswith("/repos/acme/shop/actions/")]
    assert asked.headers["Authorization"] == f"Bearer {job.github_token}"
