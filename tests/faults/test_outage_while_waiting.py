"""The server dies while deploys wait: nothing ever runs unlocked.

A holder runs (``deploy run`` with a lease), three ``deploy run --wait`` queue behind it,
and the server is killed (SIGKILL) and kept down longer than the client's retry budget.
The waiters must keep their places and wait, never fall back to an untracked, unlocked
deploy (not even with ``--fail-policy open``: a deploy is running); the holder keeps
running through the outage; when the server is back (same database, same port) the
holder finishes, the waiters run one at a time in their order, and every event is closed.
When the outage outlasts a waiter's ``--wait``, it exits 4 and its command never runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.names import unique
from tests.support.servers import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.server

API = "/api/v1alpha1"

#: The deploy command: logs its start, waits for a file (the holder) or a moment, logs its end.
STEP = textwrap.dedent(
    """
    import os, sys, time
    log, name, gate = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(log, "a") as out:
        out.write(f"{name} start fence={os.environ.get('TRACKER_FENCE', '')}\\n"); out.flush()
        while gate != "-" and not os.path.exists(gate):
            time.sleep(0.02)
        time.sleep(0.1)
        out.write(f"{name} end\\n")
    """
)


class Server:
    """The bundled server on one port and one SQLite file, killed and started again."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.log = tmp_path / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tracker_server", "--host", "127.0.0.1"]
                + ["--port", str(self.port), "--database-url", self.database_url],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        eventually(self._healthy, message=f"the server at {self.url} answers /health")

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"the server exited:\n{self.log.read_text(errors='replace')}")
        try:
            return httpx.get(self.url + "/health", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no clean stop, no answer to the long polls
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    if request.param == "postgres":
        database_url = request.getfixturevalue("postgres_database_url")
    else:
        database_url = f"sqlite:///{tmp_path / 'tracker.db'}"
    running = Server(tmp_path, database_url)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@contextmanager
def deploys() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()


def deploy_run(
    url: str, service: str, log: Path, name: str, gate: str, *extra: str
) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tracker_ci", "--url", url, "deploy", "run", "-s", service]
    argv += ["-e", "UAT", "--owner", name, *extra, "--"]
    argv += [sys.executable, "-c", STEP, str(log), name, gate]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    # The client's own retry budget is short (3 retries from 0.2 s): the outage outlasts it.
    env["TRACKER_RETRIES"] = "3"
    # Its stderr goes to a file beside the log: read while it runs, without blocking.
    with (log.parent / f"{name}.err").open("w") as err:
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)


def stderr_of(log: Path, name: str) -> str:
    path = log.parent / f"{name}.err"
    return path.read_text() if path.exists() else ""


def start_holder(
    server: Server, service: str, log: Path, gate: Path, started: list[subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    """The holder: a `deploy run` with a lease, running until ``gate`` exists."""
    holder = deploy_run(server.url, service, log, "holder", str(gate), "--lock-ttl", "120")
    started.append(holder)
    eventually(lambda: "holder start" in " ".join(log_lines(log)), message="holder runs")
    return holder


def queued(url: str, service: str) -> int:
    answer = httpx.get(
        f"{url}{API}/locks/status",
        params={"service": service, "environment": "UAT", "resource": "deployment"},
        timeout=5,
    )
    return len(answer.json().get("queue", [])) if answer.status_code == 200 else -1


def log_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def open_events(url: str, service: str) -> list[dict]:
    answer = httpx.get(
        f"{url}{API}/events/search",
        params={"service": service, "status": "start"},
        timeout=5,
    )
    answer.raise_for_status()
    return answer.json().get("events") or []


def test_an_outage_longer_than_the_retry_budget_never_lets_a_waiter_run_unlocked(
    server: Server, tmp_path: Path
) -> None:
    service, log, gate = unique("outage"), tmp_path / "deploys.log", tmp_path / "holder-go"
    with deploys() as started:
        start_holder(server, service, log, gate, started)
        # Three waiters, one after the other so that their order is known; the last one
        # even says --fail-policy open, which must not make it run unlocked.
        for number in (1, 2, 3):
            extra = ["--wait", "240"] + (["--fail-policy", "open"] if number == 3 else [])
            started.append(deploy_run(server.url, service, log, f"w{number}", "-", *extra))
            eventually(
                lambda n=number: queued(server.url, service) == n, message=f"{number} queued"
            )

        server.kill()

        # Down longer than the client's retry budget: every waiter has said it waits for the
        # server (a condition, not a sleep: it is what the waiter prints once its retries fail).
        def all_waiting_for_the_server() -> bool:
            for number, process in enumerate(started[1:], start=1):
                said = stderr_of(log, f"w{number}")
                assert process.poll() is None, f"w{number} exited during the outage: {said}"
            return all("server is unreachable" in stderr_of(log, f"w{n}") for n in (1, 2, 3))

        eventually(all_waiting_for_the_server, message="every waiter waits for the server")
        assert [line for line in log_lines(log) if line.startswith("w")] == []
        server.start()

        gate.touch()
        for process in started:
            process.wait(timeout=240)
        for name, process in zip(("holder", "w1", "w2", "w3"), started, strict=True):
            said = stderr_of(log, name)
            assert process.returncode == 0, said
            assert "UNLOCKED" not in said and "untracked" not in said, said

    # One at a time, in the order they queued, with growing fences.
    names = [line.split()[0] for line in log_lines(log)]
    assert names == ["holder", "holder", "w1", "w1", "w2", "w2", "w3", "w3"], log_lines(log)
    fences = [int(line.split("fence=")[1]) for line in log_lines(log) if " start " in line]
    assert fences == sorted(fences) and len(set(fences)) == 4 and fences[0] > 0, fences
    assert open_events(server.url, service) == []


def test_a_waiter_whose_wait_runs_out_during_the_outage_exits_4_without_running(
    server: Server, tmp_path: Path
) -> None:
    service, log, gate = unique("outage"), tmp_path / "deploys.log", tmp_path / "holder-go"
    with deploys() as started:
        holder = start_holder(server, service, log, gate, started)
        waiter = deploy_run(
            server.url, service, log, "w1", "-", "--wait", "6", "--fail-policy", "open"
        )
        started.append(waiter)
        eventually(lambda: queued(server.url, service) == 1, message="the waiter queued")
        server.kill()
        waiter.wait(timeout=120)
        err = stderr_of(log, "w1")
        assert waiter.returncode == 4, err
        assert "did not come back within the wait" in err, err
        assert "UNLOCKED" not in err
        assert [line for line in log_lines(log) if line.startswith("w1")] == []
        # The holder ran on through the outage; back, the server sees it finish.
        server.start()
        gate.touch()
        holder.wait(timeout=120)
        assert holder.returncode == 0
    assert open_events(server.url, service) == []
