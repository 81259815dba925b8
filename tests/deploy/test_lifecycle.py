"""The deployment lifecycle against the real bundled server (SQLite)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.servers import RunningServer
from tests.support.waiting import eventually
from tracker_ci.client import TrackerClient
from tracker_ci.deploy import Deployment, DeploymentOptions
from tracker_ci.deploy_state import DeploymentState, describe_wait
from tracker_ci.exceptions import LockHeld, LockLost, LockWaitTimeout
from tracker_ci.models import ChangeType, Lock, Status

pytestmark = pytest.mark.server

PYTHON = sys.executable


@pytest.fixture
def client(sqlite_server: RunningServer) -> Iterator[TrackerClient]:
    with TrackerClient(base_url=sqlite_server.url, retries=1, backoff=0.1) as tracker:
        yield tracker


def deployment(client: TrackerClient, service: str, **options: object) -> Deployment:
    values: dict[str, object] = {
        "environment": "production",
        "owner": "alice",
        "message": "deploying v1.2.3",
        "pr_url": "https://github.com/octo/app/pull/7",
        "ticket": "OPS-7",
        "poll_interval": 0.25,
    }
    values.update(options)
    hooks = {
        k: values.pop(k) for k in ("on_warning", "reporter", "evict_dead_holder") if k in values
    }
    return Deployment(client, DeploymentOptions(service=service, **values), **hooks)  # type: ignore[arg-type]


def test_start_opens_the_event_and_takes_the_lock(client: TrackerClient, service: str) -> None:
    state = deployment(client, service, title="Release 1.2.3").start()

    assert state.status == "start"
    assert state.service == service and state.environment == "production"
    # Our server has a page for every event: the link a person follows.
    assert state.event_url == f"{client.base_url}/events/{state.event_id}"
    event = client.get_event(state.event_id)
    assert event.title == "Release 1.2.3"
    assert event.attributes.type.value == "deployment"
    assert event.attributes.status is Status.start
    assert event.attributes.owner == "alice"
    assert event.attributes.start_date is not None
    assert event.links.pull_request_link == "https://github.com/octo/app/pull/7"
    held = client.find_lock(service=service, environment="production")
    assert held is not None
    assert (held.id, held.event_id, held.who) == (state.lock_id, state.event_id, "alice")


def test_finish_success_sets_duration_and_frees_the_lock(
    client: TrackerClient, service: str
) -> None:
    deploy = deployment(client, service)
    state = deploy.start()
    time.sleep(0.2)

    final = deploy.finish(state, "success")

    assert final.status == "success"
    assert final.duration is not None and final.duration >= 0.2
    assert final.to_dict()["eventId"] == state.event_id
    event = client.get_event(state.event_id)
    assert event.attributes.status is Status.success
    assert event.metadata.duration is not None and event.metadata.duration >= timedelta(seconds=0.2)
    # Every other field is kept.
    assert event.attributes.message == "deploying v1.2.3"
    assert event.links.ticket == "OPS-7"
    assert event.attributes.end_date is not None
    assert client.find_lock(service=service, environment="production") is None
    assert ChangeType.status_changed in [entry.change_type for entry in event.changelog]


def test_finish_failure_by_event_id_appends_the_message(
    client: TrackerClient, service: str
) -> None:
    state = deployment(client, service).start()

    # A later process (``deploy finish``) knows only the event id.
    final = deployment(client, service).finish(state.event_id, Status.failure, "smoke tests failed")

    assert final.status == "failure"
    assert final.duration is not None
    event = client.get_event(state.event_id)
    assert event.attributes.status is Status.failure
    assert event.attributes.message == "deploying v1.2.3\nsmoke tests failed"
    assert client.find_lock(service=service, environment="production") is None


def test_finish_with_a_status_that_keeps_the_lock_releases_it(
    client: TrackerClient, service: str
) -> None:
    # The server releases the automatic lock only on success, failure and done.
    deploy = deployment(client, service)
    state = deploy.start()

    deploy.finish(state, "warning", "partial rollout")

    assert client.get_event(state.event_id).attributes.status is Status.warning
    assert client.find_lock(service=service, environment="production") is None


def test_a_held_lock_without_wait_raises_lock_held(client: TrackerClient, service: str) -> None:
    first = deployment(client, service).start()

    with pytest.raises(LockHeld) as raised:
        deployment(client, service, owner="bob").start(wait=0)

    assert not isinstance(raised.value, LockWaitTimeout)
    assert raised.value.holder == "alice"
    assert raised.value.event_id == first.event_id
    assert raised.value.lock_id == first.lock_id


def test_a_second_start_waits_for_the_first_then_proceeds(
    client: TrackerClient, service: str
) -> None:
    first_deploy = deployment(client, service)
    first = first_deploy.start()
    waits: list[tuple[Lock | LockHeld, float]] = []
    outcome: dict[str, DeploymentState | BaseException] = {}

    def second() -> None:
        try:
            # With a key, as in CI: a 409 must not be replayed for the same key.
            waiter_deploy = deployment(client, service, owner="bob", idempotency_key="run-9")
            outcome["state"] = waiter_deploy.start(
                wait=30, on_wait=lambda holder, waited: waits.append((holder, waited))
            )
        except BaseException as exc:  # noqa: BLE001 - reported by the assertions below
            outcome["state"] = exc

    waiter = threading.Thread(target=second)
    waiter.start()
    eventually(lambda: len(waits) >= 2, message="the second deploy heard the holder twice")
    assert outcome == {}, "the second deploy must still be waiting"
    first_deploy.finish(first, "success")
    waiter.join(timeout=15)

    state = outcome["state"]
    assert isinstance(state, DeploymentState), state
    assert state.event_id != first.event_id
    holder, waited = waits[0]
    assert isinstance(holder, Lock)
    assert (holder.who, holder.event_id, holder.id) == ("alice", first.event_id, first.lock_id)
    assert waits[-1][1] >= waited
    line = describe_wait(holder, 3.2)
    assert line.startswith(f"waiting for lock: held by alice since {holder.created_at:%Y-%m-%d}")
    assert line.endswith(f"(event {first.event_id}), waited 3s")
    held = client.find_lock(service=service, environment="production")
    assert held is not None and (held.event_id, held.who) == (state.event_id, "bob")


def test_waiting_runs_out_with_lock_wait_timeout_naming_the_holder(
    client: TrackerClient, service: str
) -> None:
    first = deployment(client, service).start()
    began = time.monotonic()

    with pytest.raises(LockWaitTimeout) as raised:
        deployment(client, service, owner="bob").start(wait=1.0)

    elapsed = time.monotonic() - began
    assert 1.0 <= elapsed < 20  # gave up after its 1 s, not later (generous: a loaded CI)
    error = raised.value
    assert isinstance(error, LockHeld)
    assert (error.holder, error.event_id, error.lock_id) == ("alice", first.event_id, first.lock_id)
    assert error.waited >= 1.0
    assert error.message.startswith(
        f"gave up after waiting 1s for the deployment lock of {service} in production: "
        "still held by alice since "
    )
    # The loser created nothing: only the first deployment exists.
    found = client.search_events(service=service)
    assert [event.id for event in found.events] == [first.event_id]


def test_run_passes_a_failing_exit_code_through(client: TrackerClient, service: str) -> None:
    deploy = deployment(client, service)

    code = deploy.run([PYTHON, "-c", "import sys; sys.exit(3)"])

    assert code == 3
    (event,) = client.search_events(service=service).events
    assert event.attributes.status is Status.failure
    assert event.attributes.message.endswith("command exited with code 3")
    assert event.metadata.duration is not None
    assert client.find_lock(service=service, environment="production") is None


def test_run_success_closes_the_event_as_success(client: TrackerClient, service: str) -> None:
    code = deployment(client, service).run([PYTHON, "-c", "pass"])

    assert code == 0
    (event,) = client.search_events(service=service).events
    assert event.attributes.status is Status.success
    assert event.attributes.message == "deploying v1.2.3"
    assert client.find_lock(service=service, environment="production") is None


def test_run_a_missing_command_is_a_failed_deploy(client: TrackerClient, service: str) -> None:
    code = deployment(client, service).run(["/nonexistent/deploy.sh"])

    assert code == 127
    (event,) = client.search_events(service=service).events
    assert event.attributes.status is Status.failure


def test_run_renews_a_lock_with_a_ttl(
    client: TrackerClient, service: str, sqlite_server: RunningServer
) -> None:
    # The command outlives the 2 s TTL; it then tries to take the lock itself, which must
    # still be held (409) because run() renewed it every 0.5 s.
    probe = textwrap.dedent(
        f"""
        import sys, time, httpx
        time.sleep(3.5)
        answer = httpx.post("{sqlite_server.url}/api/v1alpha1/lock", json={{
            "service": "{service}", "environment": "production",
            "resource": "deployment", "who": "intruder"}})
        sys.exit(0 if answer.status_code == 409 else 10)
        """
    )
    deploy = deployment(client, service, lock_ttl=2)

    code = deploy.run([PYTHON, "-c", probe], heartbeat=0.5)

    assert code == 0
    assert client.find_lock(service=service, environment="production") is None


def test_a_failed_renewal_is_a_warning_and_the_command_goes_on(
    client: TrackerClient, service: str, sqlite_server: RunningServer
) -> None:
    # The command releases its own lock behind run()'s back; renewals then get 404.
    sabotage = textwrap.dedent(
        f"""
        import time, httpx
        api = "{sqlite_server.url}/api/v1alpha1"
        (lock,) = [x for x in httpx.get(api + "/locks/list").json()["locks"]
                   if x["service"] == "{service}"]
        httpx.get(api + "/unlock/" + lock["id"])
        time.sleep(1.2)
        """
    )
    warnings: list[Exception] = []
    deploy = deployment(
        client, service, lock_ttl=60, on_warning=warnings.append, on_lock_lost="continue"
    )

    code = deploy.run([PYTHON, "-c", sabotage], heartbeat=0.3)

    assert code == 0
    assert deploy.lock_lost.startswith("the server says it is gone")
    (event,) = client.search_events(service=service).events
    assert event.attributes.status is Status.success


def test_a_lost_lease_stops_the_command_and_raises_lock_lost(
    client: TrackerClient, service: str, sqlite_server: RunningServer, tmp_path: Path
) -> None:
    # The lock is released behind run()'s back: the next renewal answers "gone", the
    # command (which would run for a minute) is stopped and the event closed as failure.
    marker = tmp_path / "finished"
    sabotage = textwrap.dedent(
        f"""
        import time, httpx
        api = "{sqlite_server.url}/api/v1alpha1"
        (lock,) = [x for x in httpx.get(api + "/locks/list").json()["locks"]
                   if x["service"] == "{service}"]
        httpx.get(api + "/unlock/" + lock["id"])
        time.sleep(60)
        open({str(marker)!r}, "w")
        """
    )
    deploy = deployment(client, service, lock_ttl=60)
    began = time.monotonic()

    with pytest.raises(LockLost) as raised:
        deploy.run([PYTHON, "-c", sabotage], heartbeat=0.3, kill_after=2)

    assert raised.value.exit_code == 9
    assert time.monotonic() - began < 30 and not marker.exists()
    (event,) = client.search_events(service=service).events
    assert event.attributes.status is Status.failure
    assert "lock lost" in event.attributes.message


def test_a_lock_without_ttl_never_expires(client: TrackerClient, service: str) -> None:
    deploy = deployment(client, service)
    state = deploy.start()
    assert client.get_lock(state.lock_id).expires_at is None
    deploy.finish(state, "success")


def test_a_reused_idempotency_key_still_opens_a_new_deployment(
    client: TrackerClient, service: str
) -> None:
    # Two deploys in one CI job share the derived key. The server refuses the key for a
    # different body (another start date) with a 400, or would replay the first, closed,
    # creation for the same body: either way start() moves on to a fresh key.
    first_deploy = deployment(client, service, idempotency_key="job-42")
    first = first_deploy.start()
    first_deploy.finish(first, "success")

    second = deployment(client, service, idempotency_key="job-42").start()

    assert second.event_id != first.event_id
    assert second.lock_id
    assert client.get_event(second.event_id).attributes.status is Status.start


def deploy_script(
    url: str, service: str, command: str, *, wait: float = 0, kill_after: float = 5
) -> str:
    """A Python program that runs ``command`` as a deployment and exits with run()'s code."""
    return textwrap.dedent(
        f"""
        import sys
        from tracker_ci.client import TrackerClient
        from tracker_ci.deploy import Deployment, DeploymentOptions

        def waiting(holder, waited):
            print("waiting", flush=True)

        client = TrackerClient(base_url="{url}")
        deploy = Deployment(client, DeploymentOptions(
            service="{service}", environment="production", owner="ci", poll_interval=0.2))
        argv = [sys.executable, "-c", {command!r}]
        sys.exit(deploy.run(argv, wait={wait}, on_wait=waiting, kill_after={kill_after}))
        """
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_killed_by_a_signal_closes_the_event_and_frees_the_lock(
    client: TrackerClient,
    service: str,
    sqlite_server: RunningServer,
    signum: signal.Signals,
    tmp_path: Path,
) -> None:
    started = tmp_path / "started"
    command = f"import time; open({str(started)!r}, 'w').close(); time.sleep(60)"
    script = deploy_script(sqlite_server.url, service, command)
    process = subprocess.Popen([PYTHON, "-c", script])
    try:
        held = eventually(
            lambda: client.find_lock(service=service, environment="production"),
            message="the deploy took its lock",
        )
        eventually(started.exists, message="the deploy command runs")
        process.send_signal(signum)
        code = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert code == 128 + signum  # 143 for SIGTERM, 130 for SIGINT
    event = client.get_event(held.event_id)
    assert event.attributes.status is Status.failure
    assert f"cancelled by {signum.name}" in event.attributes.message
    assert event.metadata.duration is not None
    assert client.find_lock(service=service, environment="production") is None


def test_a_command_that_ignores_sigterm_is_killed_after_the_grace(
    client: TrackerClient, service: str, sqlite_server: RunningServer
) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    script = deploy_script(sqlite_server.url, service, stubborn, kill_after=1)
    with subprocess.Popen([PYTHON, "-c", script], stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            began = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=20)
            assert time.monotonic() - began < 20  # killed after 1 s, not after 60
        finally:
            if process.poll() is None:
                process.kill()

    assert code == 128 + signal.SIGTERM
    (event,) = client.search_events(service=service).events
    assert event.attributes.status is Status.failure
    assert (
        "cancelled by SIGTERM (the deploy command exited with code 137)" in event.attributes.message
    )
    assert client.find_lock(service=service, environment="production") is None


def test_sigterm_while_waiting_for_the_lock_creates_nothing(
    client: TrackerClient, service: str, sqlite_server: RunningServer
) -> None:
    first = deployment(client, service).start()
    script = deploy_script(sqlite_server.url, service, "raise SystemExit('must not run')", wait=30)
    with subprocess.Popen([PYTHON, "-c", script], stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "waiting"
            began = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=20)
            assert time.monotonic() - began < 20  # the wait ends at once, not after 30 s
        finally:
            if process.poll() is None:
                process.kill()

    assert code == 128 + signal.SIGTERM
    assert [e.id for e in client.search_events(service=service).events] == [first.event_id]
    held = client.find_lock(service=service, environment="production")
    assert held is not None and held.event_id == first.event_id


def test_fail_open_never_lets_a_held_lock_through(client: TrackerClient, service: str) -> None:
    deployment(client, service).start()
    warnings: list[Exception] = []
    second = deployment(client, service, fail_policy="open", on_warning=warnings.append)

    with pytest.raises(LockHeld):
        second.run([PYTHON, "-c", "raise SystemExit('must not run')"])

    assert warnings == []
