"""A deploy waiting for approval holds its place in the lock queue (`deploy run|start
--require-approval --wait N`), against the real bundled server and real processes: those
behind it wait; approved, it takes the lock in its original order; rejected or timed out,
it leaves the queue, exits 10 and runs nothing; SIGTERM during the wait closes its event
and leaves the queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import RunningServer
from tests.support.waiting import eventually
from tracker_ci.client import TrackerClient
from tracker_ci.models import Event, Status

pytestmark = pytest.mark.server


def _deploy(
    server: RunningServer, service: str, log: Path, name: str, *options: str
) -> subprocess.Popen[str]:
    """`deploy run` appending its name to ``log`` when its command runs."""
    argv = [sys.executable, "-m", "tracker_ci", "deploy", "run", "-s", service, "-e", "production"]
    argv += [*options, "--wait", "30", "--"]
    argv += [sys.executable, "-c", f"open({str(log)!r}, 'a').write({name!r} + '\\n')"]
    env = {**os.environ, "TRACKER_URL": server.url, "TRACKER_RETRIES": "0"}
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _waiting(client: TrackerClient, service: str) -> Event:
    def found() -> Event:
        answer = client.search_events(service=service, status=Status.waiting_approval)
        assert len(answer.events) == 1, answer.events
        return answer.events[0]

    return eventually(found, message=f"a deployment of {service} waiting for approval")


def _in_line(client: TrackerClient, service: str, count: int) -> None:
    eventually(
        lambda: len(client.lock_status(service=service, environment="production").queue) == count,
        message=f"{count} waiting in the queue of {service}",
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


def _ran(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


@pytest.fixture
def client(sqlite_server: RunningServer) -> Iterator[TrackerClient]:
    with TrackerClient(base_url=sqlite_server.url, retries=0) as client:
        yield client


def test_a_pending_deploy_keeps_its_place_and_goes_first_once_approved(
    sqlite_server: RunningServer, client: TrackerClient, service: str, tmp_path: Path
) -> None:
    log = tmp_path / "ran"
    held = client.acquire_lock(service=service, environment="production", who="holder")
    gated = _deploy(sqlite_server, service, log, "gated", "--require-approval")
    waiting = _waiting(client, service)
    _in_line(client, service, 1)
    later = _deploy(sqlite_server, service, log, "later")
    _in_line(client, service, 2)
    client.release_lock(held.id)
    # The pending deploy's turn came: it takes the lock (its event's) and keeps it while
    # the approval is pending; the one behind it waits.
    eventually(
        lambda: (
            [lock.event_id for lock in client.list_locks() if lock.service == service]
            == [waiting.id]
        ),
        message="the pending deploy took the lock in its turn",
    )
    _in_line(client, service, 1)
    assert _ran(log) == [] and later.poll() is None
    client.decide_approval(waiting.id, approved=True, comment="go")
    assert _finish(gated)[0] == 0
    assert _finish(later)[0] == 0
    assert _ran(log) == ["gated", "later"]
    assert client.get_event(waiting.id).attributes.status == Status.success


def test_rejected_in_line_it_leaves_the_queue_exits_10_and_runs_nothing(
    sqlite_server: RunningServer, client: TrackerClient, service: str, tmp_path: Path
) -> None:
    log = tmp_path / "ran"
    held = client.acquire_lock(service=service, environment="production", who="holder")
    gated = _deploy(sqlite_server, service, log, "gated", "--require-approval")
    waiting = _waiting(client, service)
    _in_line(client, service, 1)
    later = _deploy(sqlite_server, service, log, "later")
    _in_line(client, service, 2)
    client.decide_approval(waiting.id, approved=False, comment="not today")
    code, stderr = _finish(gated)
    assert code == 10, stderr
    assert "not today" in stderr
    _in_line(client, service, 1)  # its ticket is gone; the later one still waits
    client.release_lock(held.id)
    assert _finish(later)[0] == 0
    assert _ran(log) == ["later"]
    assert client.get_event(waiting.id).attributes.status == Status.failure


def test_not_approved_in_time_it_leaves_the_queue_and_frees_its_turn(
    sqlite_server: RunningServer, client: TrackerClient, service: str, tmp_path: Path
) -> None:
    log = tmp_path / "ran"
    gated = _deploy(
        sqlite_server, service, log, "gated", "--require-approval", "--approval-timeout", "1"
    )
    code, stderr = _finish(gated)
    assert code == 10, stderr
    assert "not approved within 1 s" in stderr
    assert _ran(log) == []
    status = client.lock_status(service=service, environment="production")
    assert status.queue == [] and status.lock is None
    (event,) = client.search_events(service=service).events
    assert event.attributes.status == Status.failure


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_deploy_start_killed_while_waiting_closes_its_event_and_leaves_the_queue(
    sqlite_server: RunningServer,
    client: TrackerClient,
    service: str,
    signum: signal.Signals,
) -> None:
    held = client.acquire_lock(service=service, environment="production", who="holder")
    argv = [sys.executable, "-m", "tracker_ci", "deploy", "start", "-s", service]
    argv += ["-e", "production", "--require-approval", "--wait", "30"]
    env = {**os.environ, "TRACKER_URL": sqlite_server.url, "TRACKER_RETRIES": "0"}
    start = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    waiting = _waiting(client, service)
    _in_line(client, service, 1)
    start.send_signal(signum)
    code, stderr = _finish(start)
    assert code == 128 + signum, stderr
    event = client.get_event(waiting.id)
    assert event.attributes.status == Status.failure
    assert "cancelled while waiting for approval" in event.attributes.message
    _in_line(client, service, 0)
    client.release_lock(held.id)
