"""``deploy start|run --wait`` in the server's queue (issue 23, item 1): the grant opens the
deployment's event with its lock, so the waiter starts from the long poll's answer (and
its claim) without creating the event again; against a server that ignores ``openEvent``
it creates the event naming its ticket, as before. Real server processes (SQLite)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import RunningServer, run_server
from tests.support.waiting import eventually
from tracker_ci.client import TrackerClient
from tracker_ci.deploy import Deployment, DeploymentOptions
from tracker_ci.deploy_state import DeploymentState
from tracker_ci.exceptions import LockLost, ServerUnreachable

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]

API = "/api/v1alpha1"
ENV = "production"


class _Counting(TrackerClient):
    """Counts what the deployment sends: its creates and its queue requests."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.sent: list[str] = []

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        self.sent.append(f"{method} {path.removeprefix(API)}")
        return super()._request(method, path, **options)


class _OlderServer(_Counting):
    """A server without ``openEvent`` ignores it: the field never reaches ours."""

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        if path.endswith("/lock/queue") and isinstance(options.get("json"), dict):
            options["json"] = {k: v for k, v in options["json"].items() if k != "openEvent"}
        return super()._request(method, path, **options)


@pytest.fixture
def client(sqlite_server: RunningServer) -> Iterator[TrackerClient]:
    with TrackerClient(base_url=sqlite_server.url) as tracker:
        yield tracker


def _deployment(client: TrackerClient, service: str, owner: str, lock_ttl: int = 600) -> Deployment:
    options = DeploymentOptions(
        service=service, environment=ENV, owner=owner, lock_ttl=lock_ttl, poll_interval=0.25
    )
    return Deployment(client, options)


def _queued(url: str, service: str) -> list[str]:
    params = {"service": service, "environment": ENV}
    answer = httpx.get(f"{url}{API}/locks/status", params=params).json()
    return [entry["who"] for entry in answer["queue"]]


def _start_behind(
    url: str, service: str, owner: str, kind: type[_Counting] = _Counting
) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def start() -> None:
        with kind(base_url=url) as waiter_client:
            outcome["client"] = waiter_client
            try:
                outcome["state"] = _deployment(waiter_client, service, owner).start(wait=60)
            except BaseException as error:  # noqa: BLE001 - reported by the assertions
                outcome["state"] = error

    thread = threading.Thread(target=start)
    thread.start()
    return thread, outcome


def _handed_over(
    client: TrackerClient, url: str, service: str, kind: type[_Counting] = _Counting
) -> tuple[DeploymentState, dict[str, Any]]:
    """alice deploys, bob queues behind her (through ``kind``), alice finishes: her state,
    and bob's outcome once his start returned."""
    first_deploy = _deployment(client, service, "alice")
    first = first_deploy.start()
    thread, outcome = _start_behind(url, service, "bob", kind)
    eventually(lambda: _queued(url, service) == ["bob"])
    first_deploy.finish(first, "success")
    thread.join(timeout=60)
    return first, outcome


def _owned(client: TrackerClient, service: str, owner: str) -> list[str]:
    found = client.search_events(service=service)
    return [event.id for event in found.events if event.attributes.owner == owner]


def test_the_grant_opens_the_waiting_deploys_event(
    client: TrackerClient, sqlite_server: RunningServer, service: str
) -> None:
    first, outcome = _handed_over(client, sqlite_server.url, service)

    state = outcome["state"]
    assert isinstance(state, DeploymentState), state
    held = client.find_lock(service=service, environment=ENV)
    assert held is not None and held.who == "bob"
    assert (state.lock_id, state.event_id, state.fence) == (held.id, held.event_id, held.fence)
    assert held.fence == first.fence + 1
    assert held.expires_at is not None and held.created_at is not None
    assert (held.expires_at - held.created_at).total_seconds() > 500  # claimed: its TTL
    assert _owned(client, service, "bob") == [state.event_id]  # one event, the grant's
    # One create (the try that met the holder); then the queue only: no create naming the
    # ticket, no look for the lock it already has.
    sent = outcome["client"].sent
    assert sent.count("POST /event") == 1, sent
    assert not any(request.startswith("GET /locks") for request in sent), sent
    _deployment(client, service, "bob").finish(state, "success")


def test_a_server_without_open_event_answers_the_turn_and_the_deploy_creates_it(
    client: TrackerClient, sqlite_server: RunningServer, service: str
) -> None:
    first, outcome = _handed_over(client, sqlite_server.url, service, _OlderServer)

    state = outcome["state"]
    assert isinstance(state, DeploymentState), state
    held = client.find_lock(service=service, environment=ENV)
    assert held is not None and (held.id, held.event_id) == (state.lock_id, state.event_id)
    assert held.fence == first.fence + 1
    assert _owned(client, service, "bob") == [state.event_id]
    assert outcome["client"].sent.count("POST /event") == 2  # the second names the ticket
    _deployment(client, service, "bob").finish(state, "success")


def test_waiting_deploys_start_in_arrival_order_with_growing_fences(
    client: TrackerClient, sqlite_server: RunningServer, service: str
) -> None:
    holder_deploy = _deployment(client, service, "holder")
    current = holder_deploy.start()
    names = ["w0", "w1", "w2"]
    waiting = []
    for index, owner in enumerate(names):
        waiting.append(_start_behind(sqlite_server.url, service, owner))
        eventually(lambda n=index: len(_queued(sqlite_server.url, service)) == n + 1)
    assert _queued(sqlite_server.url, service) == names
    started: list[DeploymentState] = []
    for owner, (thread, outcome) in zip(names, waiting, strict=True):
        holder_deploy.finish(current, "success")
        thread.join(timeout=60)
        current = outcome["state"]
        assert isinstance(current, DeploymentState), current
        assert client.get_event(current.event_id).attributes.owner == owner
        started.append(current)
    holder_deploy.finish(current, "success")
    first = client.get_event(started[0].event_id)
    assert first.attributes.owner == "w0"
    fences = [state.fence for state in started]
    assert fences == sorted(fences) and len(set(fences)) == len(names)
    assert all(b == a + 1 for a, b in zip(fences, fences[1:], strict=False))


class _PausedBeforeClaim(_Counting):
    """Pauses before its first claim until the grant's claim window ran out (a waiter
    stopped between the grant's answer and its claim)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.paused = False

    def wait_in_queue(self, **fields: Any) -> Any:
        claim = fields.get("ticket") and not fields.get("wait_seconds")
        if claim and not self.paused:
            self.paused = True
            service = fields["service"]
            eventually(lambda: self.find_lock(service=service, environment=ENV) is None)
        return super().wait_in_queue(**fields)


def test_an_event_whose_grant_ran_out_before_the_claim_is_closed(
    tmp_path: Path, unique: Callable[[str], str]
) -> None:
    service = unique("api")
    env = {"TRACKER_QUEUE_CLAIM_SECONDS": "1"}
    with (
        run_server(f"sqlite:///{tmp_path / 'tracker.db'}", log_dir=tmp_path, env=env) as server,
        TrackerClient(base_url=server.url) as client,
    ):
        _, outcome = _handed_over(client, server.url, service, _PausedBeforeClaim)

        state = outcome["state"]
        assert isinstance(state, DeploymentState), state
        assert outcome["client"].paused
        held = client.find_lock(service=service, environment=ENV)
        assert held is not None and held.event_id == state.event_id
        # The lost grant's event never ran: closed as failure; the second one holds.
        [lost] = [e for e in _owned(client, service, "bob") if e != state.event_id]
        closed = client.get_event(lost)
        assert closed.attributes.status.value == "failure"
        assert "never claimed" in closed.attributes.message


# ------------------------------------------------------- deploy run: the claim in the lease
class _ClaimAfterStart(_Counting):
    """Holds its claim back until the deploy command has started (``started`` exists):
    a deploy that claimed before starting its command would never start."""

    def __init__(self, started: Path, **options: Any) -> None:
        super().__init__(**options)
        self.started = started
        self.claims_after_start = 0

    def wait_in_queue(self, **fields: Any) -> Any:
        if fields.get("ticket") and not fields.get("wait_seconds"):  # the claim
            eventually(self.started.exists)
            self.claims_after_start += 1
        return super().wait_in_queue(**fields)


class _ClaimInOutage(_Counting):
    """The server is unreachable for the claim (only): an outage from the grant on."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.claims = 0

    def wait_in_queue(self, **fields: Any) -> Any:
        if fields.get("ticket") and not fields.get("wait_seconds"):
            self.claims += 1
            raise ServerUnreachable("connection refused (the test's outage)")
        return super().wait_in_queue(**fields)


def _run_behind(
    client: TrackerClient,
    waiter_client: TrackerClient,
    service: str,
    argv: list[str],
    lock_ttl: int = 600,
) -> tuple[DeploymentState, dict[str, Any], Deployment]:
    """alice holds the lock; bob's ``deploy run`` of ``argv`` waits behind her (through
    ``waiter_client``) and gets it when she finishes: her state, bob's outcome (his exit
    code or error, once his run returned) and his deployment."""
    url = str(waiter_client.base_url)
    first_deploy = _deployment(client, service, "alice")
    first = first_deploy.start()
    bob = _deployment(waiter_client, service, "bob", lock_ttl)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["code"] = bob.run(argv, wait=60)
        except BaseException as error:  # noqa: BLE001 - reported by the assertions
            outcome["code"] = error

    thread = threading.Thread(target=run)
    thread.start()
    eventually(lambda: _queued(url, service) == ["bob"])
    first_deploy.finish(first, "success")
    thread.join(timeout=60)
    assert not thread.is_alive()
    return first, outcome, bob


@pytest.mark.parametrize("lock_ttl", [600, 0], ids=["lease", "no-expiry"])
def test_deploy_run_starts_its_command_before_the_claim_and_claims_while_it_runs(
    client: TrackerClient,
    sqlite_server: RunningServer,
    service: str,
    tmp_path: Path,
    lock_ttl: int,
) -> None:
    started, seen = tmp_path / "started", tmp_path / "seen"
    # The command says it started, then waits until the test has seen the claimed lock.
    script = (
        f"import pathlib, time; pathlib.Path({str(started)!r}).touch()\n"
        f"while not pathlib.Path({str(seen)!r}).exists(): time.sleep(0.01)\n"
    )
    with _ClaimAfterStart(started, base_url=sqlite_server.url) as waiter_client:
        outcome: dict[str, Any] = {}

        def look() -> None:
            def claimed() -> bool:
                held = client.find_lock(service=service, environment=ENV)
                if held is None or held.who != "bob" or held.created_at is None:
                    return False
                if not lock_ttl:  # claimed: the lock no longer expires
                    return held.expires_at is None
                return bool(held.expires_at and (held.expires_at - held.created_at).seconds > 500)

            eventually(claimed)  # while the command runs: claimed with the deploy's TTL
            outcome["claimed"] = True
            seen.touch()

        looker = threading.Thread(target=look)
        looker.start()
        first, ran, bob = _run_behind(
            client, waiter_client, service, [sys.executable, "-c", script], lock_ttl
        )
        looker.join(timeout=60)

    assert ran["code"] == 0, ran
    assert outcome.get("claimed") and waiter_client.claims_after_start == 1
    assert waiter_client.sent.count("POST /event") == 1  # the grant opened the event
    state = bob.last_state
    assert state is not None and state.status == "success"
    assert client.find_lock(service=service, environment=ENV) is None  # closed: released
    bob_events = _owned(client, service, "bob")
    assert len(bob_events) == 1 and first.event_id not in bob_events


def test_a_claim_that_never_lands_stops_the_command_before_the_grant_runs_out(
    tmp_path: Path, unique: Callable[[str], str]
) -> None:
    service = unique("api")
    env = {"TRACKER_QUEUE_CLAIM_SECONDS": "2"}
    stopped = tmp_path / "stopped"
    # The command would run a minute; SIGTERM (the lost lease) ends it and is noted.
    script = (
        "import pathlib, signal, sys, time\n"
        f"def stop(*_): pathlib.Path({str(stopped)!r}).touch(); sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "time.sleep(60)\n"
    )
    with (
        run_server(f"sqlite:///{tmp_path / 'tracker.db'}", log_dir=tmp_path, env=env) as server,
        TrackerClient(base_url=server.url) as client,
        _ClaimInOutage(base_url=server.url, retries=0) as waiter_client,
    ):
        began = time.monotonic()
        _, ran, bob = _run_behind(client, waiter_client, service, [sys.executable, "-c", script])
        took = time.monotonic() - began

        assert isinstance(ran["code"], LockLost), ran
        assert "claim did not land" in str(ran["code"])
        assert stopped.exists() and waiter_client.claims >= 2  # tried again, then stopped
        assert took < 30  # the window (2 s) and the stop, not the command's minute
        [event_id] = _owned(client, service, "bob")
        closed = client.get_event(event_id)
        assert closed.attributes.status.value == "failure"
        assert "lock lost" in closed.attributes.message
        assert client.find_lock(service=service, environment=ENV) is None
