"""A stalled holder (a paused runner) loses its lease: when it runs again it stops its
command and exits 9 ("lock lost"), and the next holder, which took the expired lock
meanwhile, runs alone. Also: a job cannot release a lock it does not hold."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import run_cli
from tests.support.api import API, events_of, locks_of
from tests.support.servers import RunningServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.server

LOOP = textwrap.dedent(
    """
    import os, sys, time
    log, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with open(log, "a") as out:
        out.write(f"{name} start {os.getpid()} {time.time()}\\n"); out.flush()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            out.write(f"{name} tick {time.time()}\\n"); out.flush()
            time.sleep(0.05)
        out.write(f"{name} end {time.time()}\\n")
    """
)


def deploy_run(url: str, service: str, log: Path, name: str, seconds: float, *extra: str):
    argv = [sys.executable, "-m", "tracker_ci", "--url", url, "deploy", "run", "-s", service]
    argv += ["-e", "UAT", "--process-group", *extra, "--"]
    argv += [sys.executable, "-c", LOOP, str(log), name, str(seconds)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def lines(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def test_a_stalled_holder_is_stopped_and_exits_9_while_the_next_runs_alone(
    sqlite_server: RunningServer, service: str, tmp_path: Path
) -> None:
    url, log = sqlite_server.url, tmp_path / "log"
    stale = deploy_run(url, service, log, "A", 120, "--lock-ttl", "2")
    eventually(lambda: any(x[:2] == ["A", "start"] for x in lines(log)), message="A's command")
    child = int(next(x for x in lines(log) if x[:2] == ["A", "start"])[2])
    # The runner is paused: the supervisor and its command stop together.
    os.kill(stale.pid, signal.SIGSTOP)
    os.killpg(child, signal.SIGSTOP)
    paused_at = time.time()
    try:
        eventually(lambda: not locks_of(url, service), message="A's lease to expire")
        following = deploy_run(url, service, log, "B", 3, "--wait", "30", "--lock-ttl", "30")
        eventually(lambda: any(x[:2] == ["B", "start"] for x in lines(log)), message="B's command")
    finally:
        os.kill(stale.pid, signal.SIGCONT)  # the runner wakes up
    _, stale_err = stale.communicate(timeout=30)
    os.killpg(child, signal.SIGCONT) if _alive(child) else None
    _, following_err = following.communicate(timeout=60)

    assert stale.returncode == 9, stale_err.decode()
    assert "lock" in stale_err.decode() and "lost" in stale_err.decode()
    assert following.returncode == 0, following_err.decode()
    # A wrote nothing once it was paused: B ran alone from its start to its end.
    assert not [x for x in lines(log) if x[0] == "A" and float(x[-1]) > paused_at]
    assert [x[1] for x in lines(log) if x[0] == "B"][-1] == "end"
    first, second = sorted(events_of(url, service), key=lambda e: e["metadata"]["createdAt"])
    assert first["attributes"]["status"] == "failure"
    assert "lock lost" in first["attributes"]["message"]
    assert second["attributes"]["status"] == "success"
    assert locks_of(url, service) == []


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_job_cannot_release_a_lock_it_does_not_hold(
    sqlite_server: RunningServer, service: str
) -> None:
    url = sqlite_server.url
    # Job 1 took the lock; it expired (released here by its id, as an expiry would).
    first = run_cli(url, "lock", "acquire", "-s", service, "-e", "UAT", "--who", "ci")
    first_id = first.stdout.strip()
    assert httpx.get(f"{url}{API}/unlock/{first_id}").json()["count"] == "1"
    # Job 2, with the same default name (the CI actor), holds it now.
    second = run_cli(url, "lock", "acquire", "-s", service, "-e", "UAT", "--who", "ci")
    assert second.exit_code == 0, second.output

    by_name = run_cli(url, "lock", "release", "-s", service, "-e", "UAT", "--who", "ci")
    assert by_name.exit_code == 2, by_name.output  # a name alone is never enough
    stale = run_cli(
        url, "lock", "release", "-s", service, "-e", "UAT", "--who", "ci",
        env={"TRACKER_LOCK_ID": first_id},
    )  # fmt: skip
    assert stale.exit_code == 3, stale.output
    raw = httpx.post(
        f"{url}{API}/unlock", json={"service": service, "environment": "UAT", "who": "ci"}
    )
    assert raw.status_code == 400 and raw.json()["code"] == 3, raw.text

    (held,) = locks_of(url, service)
    assert held["id"] == second.stdout.strip()
    mine = run_cli(
        url, "lock", "release", "-s", service, "-e", "UAT", "--who", "ci",
        env={"TRACKER_LOCK_ID": held["id"]},
    )  # fmt: skip
    assert mine.exit_code == 0, mine.output
    assert locks_of(url, service) == []
