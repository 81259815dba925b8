"""The deploy queue and freeze windows from the command line, against the real bundled
server in a subprocess: queued deploys run in arrival order with no overlap, their places
and ETAs visible; killed and interrupted waiters leave the queue; fences; the newest
policy; freezes refuse (exit 7, nothing left), warn, and let a broken glass through."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Invoke
from tests.support.api import API, queue_of
from tests.support.names import unique
from tests.support.servers import RunningServer, run_server
from tests.support.waiting import eventually
from tracker_ci.client import TrackerClient
from tracker_ci.waiter import LockWaiter

pytestmark = pytest.mark.server


def cli(
    url: str, *args: str, env: dict[str, str] | None = None, **popen: object
) -> subprocess.Popen[str]:
    """``tracker-ci ARGS`` as its own process (a CI job)."""
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TRACKER_", "GITHUB_"))},
        "TRACKER_URL": url,
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tracker_ci", *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,  # type: ignore[arg-type]
    )


def take_lock(url: str, service: str, who: str = "holder") -> dict:
    body = {"service": service, "environment": "production", "who": who}
    response = httpx.post(f"{url}{API}/lock", json=body)
    assert response.status_code == 200, response.text
    return response.json()["lock"]


def test_three_queued_deploys_run_in_order_and_show_their_places(
    sqlite_server: RunningServer, invoke: Invoke, tmp_path: Path
) -> None:
    url, service = sqlite_server.url, unique("queue")
    holder = take_lock(url, service)
    log = tmp_path / "runs.log"
    script = f'echo "start $NAME $TRACKER_FENCE" >> {log}; sleep 0.2; echo "end $NAME" >> {log}'
    waiters = []
    for index, name in enumerate(("w1", "w2", "w3"), start=1):
        waiters.append(
            cli(
                url,
                "deploy",
                "run",
                "-s",
                service,
                "-e",
                "production",
                "--owner",
                name,
                "--reason",
                f"release {name}",
                "--wait",
                "60",
                "--",
                "sh",
                "-c",
                script,
                env={"NAME": name},
            )
        )
        eventually(lambda n=index: len(queue_of(url, service)) == n, message=f"{name} in the queue")

    status = invoke("lock", "status", "-s", service, "-e", "production", "-o", "json")
    assert status.exit_code == 3, status.output
    shown = json.loads(status.stdout)
    assert shown["locked"] is True and shown["lock"]["who"] == "holder"
    assert [(q["position"], q["who"], q["reason"]) for q in shown["queue"]] == [
        (1, "w1", "release w1"),
        (2, "w2", "release w2"),
        (3, "w3", "release w3"),
    ]
    assert all("expectedWaitSeconds" in q and q["since"] for q in shown["queue"])
    text = invoke("lock", "status", "-s", service, "-e", "production")
    assert "queue (3 waiting)" in text.stdout and "release w2" in text.stdout

    httpx.get(f"{url}{API}/unlock/{holder['id']}")
    for waiter in waiters:
        _, err = waiter.communicate(timeout=60)
        assert waiter.returncode == 0, err
    assert "position 3 of 3" in err  # w3 was told its place
    lines = log.read_text().split("\n")
    assert lines[:6] == ["start w1 2", "end w1", "start w2 3", "end w2", "start w3 4", "end w3"]
    # The history now gives an ETA.
    take_lock(url, service)
    httpx.post(
        f"{url}{API}/lock/queue",
        json={"service": service, "environment": "production", "who": "w4"},
    )
    assert queue_of(url, service)[0]["expectedWaitSeconds"] is not None


@pytest.fixture
def quick_server(tmp_path: Path):
    """A server that drops a silent waiter after 1.5 s (the default is 15 s)."""
    with run_server(
        f"sqlite:///{tmp_path / 'quick.db'}",
        log_dir=tmp_path,
        env={"TRACKER_QUEUE_HEARTBEAT_SECONDS": "1.5"},
    ) as server:
        yield server


def test_a_killed_waiter_is_dropped_and_the_next_one_goes(quick_server: RunningServer) -> None:
    url, service = quick_server.url, unique("killed")
    holder = take_lock(url, service)
    args = ["lock", "acquire", "-s", service, "-e", "production", "--wait", "60"]
    killed = cli(url, *args, "--who", "killed")
    eventually(lambda: len(queue_of(url, service)) == 1, message="the first waiter")
    alive = cli(url, *args, "--who", "alive")
    eventually(lambda: len(queue_of(url, service)) == 2, message="the second waiter")
    killed.kill()  # SIGKILL: no chance to leave the queue
    killed.communicate(timeout=30)
    eventually(
        lambda: [q["who"] for q in queue_of(url, service)] == ["alive"],
        message="the killed waiter dropped",
    )
    httpx.get(f"{url}{API}/unlock/{holder['id']}")
    out, err = alive.communicate(timeout=30)
    assert alive.returncode == 0, err
    [lock] = httpx.get(f"{url}{API}/locks/list").json()["locks"]
    assert lock["who"] == "alive" and lock["id"] == out.strip()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_waiter_leaves_the_queue_at_once(
    sqlite_server: RunningServer, signum: int
) -> None:
    url, service = sqlite_server.url, unique("interrupted")
    take_lock(url, service)
    waiter = cli(url, "deploy", "start", "-s", service, "-e", "production", "--wait", "60")
    eventually(lambda: len(queue_of(url, service)) == 1, message="the waiter in the queue")
    waiter.send_signal(signum)
    waiter.communicate(timeout=30)
    assert waiter.returncode != 0
    assert queue_of(url, service) == []


class _SignalledAsJoined(TrackerClient):
    """A client that gets ``signum`` the moment its queue join is answered (before the
    waiter has read the ticket): the window where a Ctrl-C used to leave a ticket behind."""

    signum = signal.SIGINT

    def wait_in_queue(self, **request: Any) -> Any:
        answer = super().wait_in_queue(**request)
        if not request.get("ticket"):
            signal.raise_signal(self.signum)
        return answer


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_as_the_join_is_answered_still_leaves_the_queue(
    sqlite_server: RunningServer, signum: int
) -> None:
    url, service = sqlite_server.url, unique("joined")
    take_lock(url, service)
    before = signal.getsignal(signum)
    with _SignalledAsJoined(base_url=url) as client:
        client.signum = signum
        client.health()  # our server: the waiter queues
        waiter = LockWaiter(client, service=service, environment="production", wait=30)
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            waiter.run(
                lambda ticket: client.acquire_lock(
                    service=service, environment="production", who="w", queue_ticket=ticket
                )
            )
    assert queue_of(url, service) == []
    assert signal.getsignal(signum) is before  # the handlers are put back


def test_the_wait_running_out_leaves_the_queue(sqlite_server: RunningServer, invoke) -> None:
    url, service = sqlite_server.url, unique("timeout")
    take_lock(url, service)
    result = invoke("lock", "acquire", "-s", service, "-e", "production", "--wait", "0.5")
    assert result.exit_code == 3, result.output
    assert "held by holder" in result.output
    assert queue_of(url, service) == []


def test_fences_and_lock_check(sqlite_server: RunningServer, invoke: Invoke, tmp_path) -> None:
    url, service = sqlite_server.url, unique("fence")
    out = tmp_path / "env.txt"
    result = invoke(
        "deploy",
        "run",
        "-s",
        service,
        "-e",
        "production",
        "--",
        "sh",
        "-c",
        f'echo "$TRACKER_FENCE $TRACKER_LOCK_ID $TRACKER_EVENT_ID" > {out}; '
        f"{sys.executable} -m tracker_ci lock check -s {service} -e production "
        '--fence "$TRACKER_FENCE"',
        env={"TRACKER_URL": url},
    )
    assert result.exit_code == 0, result.output
    fence, lock_id, event_id = out.read_text().split()
    assert fence == "1" and lock_id and event_id
    # Now someone else holds it: the old fence is refused.
    take_lock(url, service)
    stale = invoke("lock", "check", "-s", service, "-e", "production", "--fence", "1")
    assert stale.exit_code == 3, stale.output
    assert "held by holder with fence 2, not 1" in stale.output
    fresh = invoke("lock", "check", "-s", service, "-e", "production", "--fence", "2")
    assert fresh.exit_code == 0, fresh.output


def test_the_newest_policy_supersedes_an_older_waiter(
    sqlite_server: RunningServer, invoke: Invoke
) -> None:
    url, service = sqlite_server.url, unique("newest")
    set_policy = invoke("lock", "policy", "-e", "production", "-s", service, "newest")
    assert set_policy.exit_code == 0, set_policy.output
    assert "newest" in invoke("lock", "policy").output
    holder = take_lock(url, service)
    args = ["lock", "acquire", "-s", service, "-e", "production", "--wait", "60"]
    old = cli(url, *args, "--who", "old")
    eventually(lambda: len(queue_of(url, service)) == 1, message="the old waiter")
    new = cli(url, *args, "--who", "new")
    _, err = old.communicate(timeout=30)
    assert old.returncode == 8, err
    assert "superseded by new" in err
    httpx.get(f"{url}{API}/unlock/{holder['id']}")
    _, err = new.communicate(timeout=30)
    assert new.returncode == 0, err


def test_freezes_refuse_warn_and_let_broken_glass_through(
    sqlite_server: RunningServer, invoke: Invoke
) -> None:
    url, service = sqlite_server.url, unique("frozen")
    added = invoke("freeze", "add", "Release freeze", "-s", service, "--for", "2h", "-o", "json")
    assert added.exit_code == 0, added.output
    window = json.loads(added.stdout)
    assert "Release freeze" in invoke("freeze", "list").output

    start = ["deploy", "start", "-s", service, "-e", "production"]
    refused = invoke(*start)
    assert refused.exit_code == 7, refused.output
    assert 'Blocked by hard freeze: "Release freeze" until' in refused.output
    search = httpx.get(f"{url}{API}/events/search", params={"service": service}).json()
    locks = httpx.get(f"{url}{API}/locks/list").json()["locks"]
    assert search["events"] == [] and [x for x in locks if x["service"] == service] == []

    broken = invoke(*start, "--break-glass", "hotfix INC-7", "-o", "json")
    assert broken.exit_code == 0, broken.output
    assert 'broke glass through hard freeze "Release freeze": hotfix INC-7' in broken.output
    event_id = json.loads(broken.stdout)["eventId"]
    changelog = invoke("event", "changelog", event_id, "-o", "json")
    entries = json.loads(changelog.stdout)["changelog"]
    assert any("hotfix INC-7" in e["comment"] for e in entries), changelog.output
    invoke("deploy", "finish", "-s", service, "-e", "production", "--status", "success")

    assert invoke("freeze", "remove", window["id"]).exit_code == 0
    soft = invoke("freeze", "add", "Launch", "-s", service, "--soft", "--for", "1h")
    assert soft.exit_code == 0, soft.output
    warned = invoke(*start)
    assert warned.exit_code == 0, warned.output
    assert 'overlaps soft freeze "Launch"' in warned.output
    cron = ["--cron-start", "0 99 * * *", "--cron-end", "0 8 * * 1"]
    bad = invoke("freeze", "add", "Bad", "-s", service, *cron)
    assert bad.exit_code == 2, bad.output  # an invalid request, as every 400
    assert "Bad hour" in bad.output


def test_a_killed_holder_s_lease_runs_out_and_the_queue_moves_on(
    sqlite_server: RunningServer, tmp_path: Path
) -> None:
    url, service = sqlite_server.url, unique("dead-holder")
    started = tmp_path / "started"
    holder = cli(
        url,
        *("deploy", "run", "-s", service, "-e", "production", "--lock-ttl", "2"),
        *("--owner", "holder", "--", "sh", "-c", f"touch {started}; sleep 60"),
        start_new_session=True,
    )
    eventually(started.exists, message="the holder's command running")
    waiter = cli(url, "lock", "acquire", "-s", service, "-e", "production", "--wait", "60")
    eventually(lambda: len(queue_of(url, service)) == 1, message="the waiter in the queue")
    os.killpg(holder.pid, signal.SIGKILL)  # the job dies: no release, no renewal
    holder.communicate(timeout=30)
    out, err = waiter.communicate(timeout=60)  # the lease (2 s) runs out, then its turn
    assert waiter.returncode == 0, err
    [lock] = [
        x for x in httpx.get(f"{url}{API}/locks/list").json()["locks"] if x["service"] == service
    ]
    assert lock["id"] == out.strip() and lock["fence"] == 2
