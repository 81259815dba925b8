"""Lost answers on each write command outside CI: the server did the work, the answer
never came back. The CLI sends an idempotency key (random per invocation) and retries:
every command ends with exactly one record, the lock free, and exit 0."""

from __future__ import annotations

import json
import re

import pytest

from tests.faults.conftest import run_cli
from tests.faults.proxy import lossy_proxy
from tests.support.api import events_of, locks_of
from tests.support.servers import RunningServer

pytestmark = pytest.mark.server

EVENT = "POST /api/v1alpha1/event"
UPDATE = "PUT /api/v1alpha1/event"
#: ``POST /event/{id}/close`` (``deploy run`` closes its event in one request).
CLOSE = "POST /api/v1alpha1/event/"
LOCK = "POST /api/v1alpha1/lock"


def test_deploy_run_with_lost_create_and_close(sqlite_server: RunningServer, service: str) -> None:
    with lossy_proxy(sqlite_server.url, drop=(EVENT, CLOSE)) as (url, proxy):
        result = run_cli(url, "deploy", "run", "-s", service, "-e", "UAT", "--", "true")

    assert result.exit_code == 0, result.output
    (created, closed) = proxy.seen.dropped
    assert created == EVENT and re.fullmatch(f"{CLOSE}[0-9a-f-]{{36}}/close", closed), closed
    assert proxy.seen.requests.count(closed) == 2  # sent again with its key: replayed
    (event,) = events_of(sqlite_server.url, service)
    assert event["attributes"]["status"] == "success"
    assert locks_of(sqlite_server.url, service) == []
    assert "closed as success" in result.stderr


def test_deploy_start_and_finish_with_lost_answers(
    sqlite_server: RunningServer, service: str
) -> None:
    with lossy_proxy(sqlite_server.url, drop=(EVENT, UPDATE)) as (url, proxy):
        started = run_cli(url, "-o", "json", "deploy", "start", "-s", service, "-e", "UAT")
        assert started.exit_code == 0, started.output
        opened = json.loads(started.stdout)
        (held,) = locks_of(sqlite_server.url, service)
        assert held["eventId"] == opened["eventId"]
        finished = run_cli(
            url, "deploy", "finish", "--event-id", opened["eventId"], "--status", "success"
        )

    assert finished.exit_code == 0, finished.output
    assert proxy.seen.dropped == [EVENT, UPDATE]
    (event,) = events_of(sqlite_server.url, service)
    assert event["metadata"]["id"] == opened["eventId"]
    assert event["attributes"]["status"] == "success"
    assert locks_of(sqlite_server.url, service) == []


def test_event_create_with_a_lost_answer(sqlite_server: RunningServer, service: str) -> None:
    with lossy_proxy(sqlite_server.url, drop=(EVENT,)) as (url, proxy):
        created = run_cli(
            url,
            "-o",
            "json",
            "event",
            "create",
            "-t",
            "restart",
            "-s",
            service,
            "-e",
            "UAT",
            "--type",
            "operation",
            "--status",
            "success",
        )

    assert created.exit_code == 0, created.output
    assert proxy.seen.dropped == [EVENT]
    (event,) = events_of(sqlite_server.url, service)
    assert json.loads(created.stdout)["metadata"]["id"] == event["metadata"]["id"]


def test_lock_acquire_and_release_by_id_with_lost_answers(
    sqlite_server: RunningServer, service: str
) -> None:
    with lossy_proxy(sqlite_server.url, drop=(LOCK, "GET /api/v1alpha1/unlock/")) as (url, proxy):
        taken = run_cli(url, "lock", "acquire", "-s", service, "-e", "UAT", "--who", "ci")
        assert taken.exit_code == 0, taken.output
        (held,) = locks_of(sqlite_server.url, service)
        assert held["id"] == taken.stdout.strip()
        released = run_cli(url, "lock", "release", held["id"])

    assert released.exit_code == 0, released.output  # not 6: the first try released it
    assert len(proxy.seen.dropped) == 2
    assert locks_of(sqlite_server.url, service) == []


def test_lock_release_by_key_with_a_lost_answer(sqlite_server: RunningServer, service: str) -> None:
    with lossy_proxy(sqlite_server.url, drop=("POST /api/v1alpha1/unlock",)) as (url, proxy):
        taken = run_cli(url, "lock", "acquire", "-s", service, "-e", "UAT", "--who", "ci")
        lock_id = taken.stdout.strip()
        released = run_cli(
            url,
            "lock",
            "release",
            "-s",
            service,
            "-e",
            "UAT",
            "--who",
            "ci",
            env={"TRACKER_LOCK_ID": lock_id},
        )

    assert released.exit_code == 0, released.output
    assert proxy.seen.dropped == ["POST /api/v1alpha1/unlock"]
    assert locks_of(sqlite_server.url, service) == []


def test_lock_renew_with_a_lost_answer(sqlite_server: RunningServer, service: str) -> None:
    with lossy_proxy(sqlite_server.url, drop=("POST /api/v1alpha1/lock/",)) as (url, proxy):
        taken = run_cli(url, "lock", "acquire", "-s", service, "-e", "UAT", "--ttl", "60")
        lock_id = taken.stdout.strip()
        renewed = run_cli(url, "lock", "renew", lock_id, "--ttl", "600")
        released = run_cli(url, "lock", "release", lock_id)

    assert renewed.exit_code == 0, renewed.output
    assert released.exit_code == 0, released.output
    assert proxy.seen.dropped == [f"POST /api/v1alpha1/lock/{lock_id}/renew"]
    assert locks_of(sqlite_server.url, service) == []


def test_an_event_it_could_not_close_is_never_reported_closed(
    sqlite_server: RunningServer, service: str
) -> None:
    # The server vanishes mid-deploy: nothing about the event reaches it from then on (its
    # close, a read, a replacement).
    vanished = (CLOSE, "GET /api/v1alpha1/event/", UPDATE)
    with lossy_proxy(sqlite_server.url, refuse=vanished) as (url, proxy):
        result = run_cli(
            url, "deploy", "run", "-s", service, "-e", "UAT", "--fail-policy", "open",
            "--lock-ttl", "600", "--", "true", env={"TRACKER_CLOSE_RETRY": "8"},
        )  # fmt: skip

    assert result.exit_code == 0, result.output  # fail policy open: the deploy succeeded
    assert "UNLOCKED" not in result.stderr  # the event and its lock exist
    assert not re.search(r"event \S+ closed as", result.stderr), result.stderr
    assert "could NOT be closed as success" in result.stderr, result.stderr
    assert "could not close the deployment event yet" in result.stderr  # it retried first
    assert "its lock expires at" in result.stderr and "deploy finish --event-id" in result.stderr
    assert len(proxy.seen.refused) >= 2  # tried again before giving up
    (event,) = events_of(sqlite_server.url, service)
    assert event["attributes"]["status"] == "start"  # left open, as the CLI said
    assert len(locks_of(sqlite_server.url, service)) == 1
    finished = run_cli(
        sqlite_server.url, "deploy", "finish", "--event-id", event["metadata"]["id"],
        "--status", "success",
    )  # fmt: skip
    assert finished.exit_code == 0, finished.output


def test_an_unreachable_server_at_start_is_said_loudly(service: str) -> None:
    from tests.support.servers import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    result = run_cli(
        closed, "deploy", "run", "-s", service, "-e", "UAT", "--fail-policy", "open",
        "--", "sh", "-c", "exit 3",
    )  # fmt: skip
    assert result.exit_code == 3, result.output  # the command's own code
    (line,) = result.stderr.strip().splitlines()  # one loud line
    assert "deploying UNTRACKED and UNLOCKED" in line and "cannot connect" in line
    stopped = run_cli(
        closed, "deploy", "run", "-s", service, "-e", "UAT", "--fail-policy", "closed",
        "--", "sh", "-c", "exit 3",
    )  # fmt: skip
    assert stopped.exit_code == 4, stopped.output
