"""50 concurrent jobs deploying on the real server (a subprocess) over SQLite and over
PostgreSQL: no 5xx answer, no two holders of one lock at once, one event per deploy.
Bounded: 50 jobs x 2 deploys over 10 services, a few seconds to ~30 s on a busy machine.
The p99 of the write latencies is printed (run with -s to read it)."""

from __future__ import annotations

import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import events_of, locks_of
from tests.support.names import unique
from tests.support.servers import RunningServer, run_server
from tracker_ci.client import TrackerClient
from tracker_ci.deploy import Deployment, DeploymentOptions

pytestmark = pytest.mark.server

JOBS = 50
DEPLOYS_PER_JOB = 2
SERVICES = 10
HOLD = 0.05


class Recorder:
    """Every answer's status and every write's latency, from all the jobs' clients."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: list[int] = []
        self.write_seconds: list[float] = []

    def hooks(self) -> dict[str, list]:
        def on_request(request: httpx.Request) -> None:
            request.extensions["began"] = time.perf_counter()

        def on_response(response: httpx.Response) -> None:
            took = time.perf_counter() - response.request.extensions["began"]
            with self.lock:
                self.statuses.append(response.status_code)
                # The queue's long poll waits for the turn by design: not a write's time.
                path = response.request.url.path
                if response.request.method != "GET" and not path.endswith("/lock/queue"):
                    self.write_seconds.append(took)

        return {"request": [on_request], "response": [on_response]}


def race(url: str) -> tuple[Recorder, dict[str, list[tuple[float, float]]], list[str], float]:
    recorder = Recorder()
    services = [unique() for _ in range(SERVICES)]
    held: dict[str, list[tuple[float, float]]] = defaultdict(list)
    failures: list[str] = []
    guard = threading.Lock()

    def job(index: int) -> None:
        service = services[index % SERVICES]
        with TrackerClient(base_url=url, timeout=30) as client:
            client._http.event_hooks = recorder.hooks()
            for _ in range(DEPLOYS_PER_JOB):
                deploy = Deployment(
                    client,
                    DeploymentOptions(
                        service=service, environment="UAT", lock_ttl=60, poll_interval=0.1
                    ),
                )
                try:
                    state = deploy.start(wait=120)
                    began = time.monotonic()
                    time.sleep(HOLD)  # the deploy's work
                    ended = time.monotonic()
                    deploy.finish(state, "success")
                except Exception as exc:  # noqa: BLE001 - every failure is reported
                    with guard:
                        failures.append(f"{service}: {exc!r}")
                    return
                with guard:
                    held[service].append((began, ended))

    began = time.monotonic()
    threads = [threading.Thread(target=job, args=(i,)) for i in range(JOBS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return recorder, held, failures, time.monotonic() - began


def overlaps(intervals: list[tuple[float, float]]) -> int:
    ordered = sorted(intervals)
    return sum(1 for a, b in zip(ordered, ordered[1:], strict=False) if b[0] < a[1])


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else max(values)


def check(url: str, backend: str) -> None:
    recorder, held, failures, took = race(url)

    assert failures == []
    server_errors = [s for s in recorder.statuses if s >= 500]
    assert server_errors == [], f"{len(server_errors)} answers 5xx"
    assert sum(overlaps(intervals) for intervals in held.values()) == 0
    deploys = sum(len(intervals) for intervals in held.values())
    assert deploys == JOBS * DEPLOYS_PER_JOB
    events = [e for service in held for e in events_of(url, service)]
    assert len(events) == deploys
    assert {e["attributes"]["status"] for e in events} == {"success"}
    assert all(locks_of(url, service) == [] for service in held)
    writes = recorder.write_seconds
    print(
        f"\n{backend}: {JOBS} jobs, {deploys} deploys in {took:.1f}s, "
        f"{len(recorder.statuses)} answers, 0 5xx, 0 overlaps; write latency "
        f"min {min(writes) * 1000:.0f} ms / median {statistics.median(writes) * 1000:.0f} ms / "
        f"p99 {p99(writes) * 1000:.0f} ms / max {max(writes) * 1000:.0f} ms"
    )


@pytest.fixture
def postgres_server(postgres_database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    with run_server(postgres_database_url, log_dir=tmp_path) as server:
        yield server


def test_50_concurrent_jobs_on_sqlite(fresh_sqlite_server: RunningServer) -> None:
    check(fresh_sqlite_server.url, "sqlite")


@pytest.mark.postgres
def test_50_concurrent_jobs_on_postgresql(postgres_server: RunningServer) -> None:
    check(postgres_server.url, "postgresql")
