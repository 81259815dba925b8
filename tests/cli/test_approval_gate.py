"""`deploy run --require-approval` and `event approve|reject` against the real bundled
server with auth on: another token approves (the deploy runs), a rejection or a timeout
exits 10 without running the command, the requester may not approve its own deploy."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import ADMIN_TOKEN, Invoke
from tests.support.servers import RunningServer
from tests.support.waiting import eventually
from tracker_ci.client import TrackerClient
from tracker_ci.models import ChangeType, Event, Status, UpdateEventRequest

pytestmark = pytest.mark.server


def _secret(server: RunningServer, name: str) -> str:
    with TrackerClient(base_url=server.url, token=ADMIN_TOKEN, retries=0) as admin:
        return admin.create_token(name=name).secret


@pytest.fixture
def tokens(auth_server: RunningServer, service: str) -> tuple[str, str]:
    """The requester's token and a reviewer's."""
    return _secret(auth_server, f"ci-{service}"), _secret(auth_server, f"reviewer-{service}")


@pytest.fixture
def reviewer(auth_server: RunningServer, tokens: tuple[str, str]) -> Iterator[TrackerClient]:
    with TrackerClient(base_url=auth_server.url, token=tokens[1], retries=0) as client:
        yield client


def _deploy(
    server: RunningServer, token: str, service: str, marker: Path, *options: str
) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tracker_ci", "deploy", "run", "-s", service]
    argv += ["-e", "production", "--require-approval", *options, "--"]
    argv += [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('ran')"]
    env = {**os.environ, "TRACKER_URL": server.url, "TRACKER_TOKEN": token}
    env |= {"TRACKER_RETRIES": "0", "TRACKER_WAIT": "30"}
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _waiting(client: TrackerClient, service: str) -> Event:
    def found() -> Event:
        answer = client.search_events(service=service, status=Status.waiting_approval)
        assert len(answer.events) == 1, answer.events
        return answer.events[0]

    return eventually(found, message=f"a deployment of {service} waiting for approval")


def _finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


def test_approved_by_another_token_the_deploy_runs(
    auth_server: RunningServer,
    tokens: tuple[str, str],
    reviewer: TrackerClient,
    service: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = tmp_path / "ran"
    process = _deploy(auth_server, tokens[0], service, marker)
    waiting = _waiting(reviewer, service)
    assert not marker.exists()
    # Waiting for approval it holds its place in line: the key was free, so its turn came
    # and it holds the lock for its event while the approval is pending.
    eventually(
        lambda: (
            [lock.event_id for lock in reviewer.list_locks() if lock.service == service]
            == [waiting.id]
        ),
        message="the pending deploy holds the lock in its turn",
    )
    # The requester may not approve its own deploy (403: exit 5).
    monkeypatch.chdir(tmp_path)
    cli = Invoke(auth_server.url, tmp_path)
    own = cli("event", "approve", waiting.id, env={"TRACKER_TOKEN": tokens[0]})
    assert own.exit_code == 5, own.output
    ok = cli("event", "approve", waiting.id, "--comment", "LGTM", env={"TRACKER_TOKEN": tokens[1]})
    assert ok.exit_code == 0, ok.output
    code, stderr = _finish(process)
    assert code == 0, stderr
    assert f"tracker-ci event approve {waiting.id}" in stderr
    assert marker.read_text() == "ran"
    event = reviewer.get_event(waiting.id)
    assert event.attributes.status == Status.success
    kinds = [entry.change_type for entry in event.changelog]
    assert ChangeType.approved in kinds and ChangeType.locked in kinds
    # Decided once: approving again is refused as not waiting (400: exit 2).
    again = cli("event", "approve", waiting.id, env={"TRACKER_TOKEN": tokens[1]})
    assert again.exit_code == 2, again.output
    assert "not waiting_approval" in again.stderr


def test_rejected_exits_10_and_runs_nothing(
    auth_server: RunningServer,
    tokens: tuple[str, str],
    reviewer: TrackerClient,
    service: str,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    process = _deploy(auth_server, tokens[0], service, marker)
    waiting = _waiting(reviewer, service)
    reviewer.decide_approval(waiting.id, approved=False, comment="not on a Friday")
    code, stderr = _finish(process)
    assert code == 10, stderr
    assert "not on a Friday" in stderr
    assert not marker.exists()
    event = reviewer.get_event(waiting.id)
    assert event.attributes.status == Status.failure
    # Rejected, then the lock it held in its turn freed (an `unlocked` entry may follow).
    kinds = [entry.change_type for entry in event.changelog]
    assert ChangeType.rejected in kinds and ChangeType.approved not in kinds


def test_not_approved_in_time_exits_10_and_closes_the_event(
    auth_server: RunningServer, tokens: tuple[str, str], service: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    process = _deploy(auth_server, tokens[0], service, marker, "--approval-timeout", "0.5")
    code, stderr = _finish(process)
    assert code == 10, stderr
    assert "not approved within 0.5 s" in stderr
    assert not marker.exists()
    with TrackerClient(base_url=auth_server.url, retries=0) as client:
        (event,) = client.search_events(service=service).events
    assert event.attributes.status == Status.failure
    assert "not approved within" in event.attributes.message


def test_approved_it_queues_behind_the_holder_then_runs(
    auth_server: RunningServer,
    tokens: tuple[str, str],
    reviewer: TrackerClient,
    service: str,
    tmp_path: Path,
) -> None:
    # The reviewer's own deploy holds the lock while the gated one waits for approval.
    with TrackerClient(base_url=auth_server.url, token=tokens[1], retries=0) as holder:
        held = holder.acquire_lock(service=service, environment="production", who="holder")
    marker = tmp_path / "ran"
    process = _deploy(auth_server, tokens[0], service, marker)
    waiting = _waiting(reviewer, service)
    # Upstream's Approve: a PUT /event changing only the owner (an `approved` entry).
    attributes = waiting.attributes.model_copy(update={"owner": "reviewer"})
    reviewer.update_event(
        UpdateEventRequest(
            id=waiting.id, title=waiting.title, attributes=attributes, links=waiting.links
        )
    )

    def queued() -> None:
        status = reviewer.get_event(waiting.id).attributes.status
        assert status == Status.waiting_approval
        assert process.poll() is None and not marker.exists()

    eventually(
        lambda: len(reviewer.lock_status(service=service, environment="production").queue) == 1,
        message="the approved deploy queued behind the holder",
    )
    queued()  # approved and queued, yet it does not run while the holder holds the lock
    reviewer.release_lock(held.id)
    code, stderr = _finish(process)
    assert code == 0, stderr
    assert marker.read_text() == "ran"
    assert reviewer.get_event(waiting.id).attributes.status == Status.success


def test_approved_but_the_lock_stays_held_exits_3_and_closes_the_event(
    auth_server: RunningServer,
    tokens: tuple[str, str],
    reviewer: TrackerClient,
    service: str,
    tmp_path: Path,
) -> None:
    held = reviewer.acquire_lock(service=service, environment="production", who="holder")
    marker = tmp_path / "ran"
    process = _deploy(auth_server, tokens[0], service, marker, "--wait", "0")
    waiting = _waiting(reviewer, service)
    reviewer.decide_approval(waiting.id, approved=True)
    code, stderr = _finish(process)
    reviewer.release_lock(held.id)
    assert code == 3, stderr
    assert not marker.exists()
    event = reviewer.get_event(waiting.id)
    assert event.attributes.status == Status.failure
    assert "approved, but the lock was not taken" in event.attributes.message
