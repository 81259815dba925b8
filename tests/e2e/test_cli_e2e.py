"""The real `tracker-ci` executable, in subprocesses, against the real bundled server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.api import events_of, locks_of, queue_of
from tests.support.names import unique
from tests.support.servers import RunningServer, free_port, run_server
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

_SCRIPT = Path(sys.executable).parent / "tracker-ci"
TRACKER_CI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "tracker_ci"]
ADMIN = "trk_e2e_admin_token_0123456789abcdef"


def cli_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKER_", "GITHUB_"))}
    return {**env, "TRACKER_URL": url, "TRACKER_RETRIES": "0", **extra}


def tracker_ci(
    *args: str, url: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TRACKER_CI, *args],
        env=env or cli_env(url),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn(*args: str, url: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*TRACKER_CI, *args],
        env=cli_env(url),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_lock(url: str, service: str) -> dict:
    """The service's lock, once a command in another process has taken it."""
    return eventually(lambda: locks_of(url, service), message=f"a lock on {service}")[0]


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture
def url(sqlite_server: RunningServer) -> str:
    return sqlite_server.url


def test_successful_deploy_run(url: str, tmp_path: Path) -> None:
    service = unique("e2e")
    done = tracker_ci(
        "deploy",
        "run",
        "-s",
        service,
        "-e",
        "production",
        "--",
        sys.executable,
        "-c",
        "print('deploying')",
        url=url,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "deploying\n"
    [event] = events_of(url, service)
    assert event["attributes"]["status"] == "success"
    assert event["metadata"]["duration"].endswith("s")
    assert locks_of(url, service) == []


def test_failing_deploy_run_passes_the_exit_code(url: str, tmp_path: Path) -> None:
    service = unique("e2e")
    done = tracker_ci(
        "deploy",
        "run",
        "-s",
        service,
        "-e",
        "UAT",
        "--",
        "sh",
        "-c",
        "echo broken >&2; exit 42",
        url=url,
        cwd=tmp_path,
    )
    assert done.returncode == 42, done.stderr
    assert "broken" in done.stderr
    [event] = events_of(url, service)
    assert event["attributes"]["status"] == "failure"
    assert "exited with code 42" in event["attributes"]["message"]
    assert locks_of(url, service) == []


def test_second_deploy_waits_for_the_first_then_proceeds(url: str, tmp_path: Path) -> None:
    service = unique("e2e")
    # The first deploy's command works until the test lets it finish, which it does once
    # the second deploy is seen waiting (a fixed duration could end before the second
    # even started on a slow machine).
    release = tmp_path / "release"
    work = f"while [ ! -e {release} ]; do sleep 0.05; done"
    first = spawn(
        "deploy",
        "run",
        "-s",
        service,
        "-e",
        "production",
        "--owner",
        "alice",
        "--",
        "sh",
        "-c",
        work,
        url=url,
        cwd=tmp_path,
    )
    second = None
    try:
        wait_for_lock(url, service)
        second = spawn(
            "deploy",
            "run",
            "-s",
            service,
            "-e",
            "production",
            "--wait",
            "60",
            "--",
            "true",
            url=url,
            cwd=tmp_path,
        )
        eventually(lambda: queue_of(url, service, "production"), message="the second queued")
        release.touch()
        _, second_err = second.communicate(timeout=60)
    finally:
        release.touch()
        _, first_err = first.communicate(timeout=60)
        if second is not None and second.poll() is None:
            second.kill()
            second.communicate()
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    assert f"waiting for lock on {service}/production: held by alice since " in second_err
    events = events_of(url, service)
    assert [e["attributes"]["status"] for e in events] == ["success", "success"]
    assert locks_of(url, service) == []


def test_a_deploy_that_times_out_waiting_exits_3(url: str, tmp_path: Path) -> None:
    service = unique("e2e")
    held = tracker_ci(
        "deploy",
        "start",
        "-s",
        service,
        "-e",
        "production",
        "--owner",
        "alice",
        url=url,
        cwd=tmp_path,
    )
    assert held.returncode == 0, held.stderr
    started = time.monotonic()
    waited = tracker_ci(
        "deploy",
        "run",
        "-s",
        service,
        "-e",
        "production",
        "--wait",
        "2",
        "--",
        "true",
        url=url,
        cwd=tmp_path,
    )
    assert waited.returncode == 3, waited.stderr
    assert time.monotonic() - started >= 2
    lines = waited.stderr.strip().splitlines()
    assert lines[0].startswith(f"waiting for lock on {service}/production: held by alice")
    assert lines[-1].startswith("error: gave up after waiting 2s")
    assert "Traceback" not in waited.stderr
    assert len(events_of(url, service)) == 1  # the waiting deploy created nothing


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_killed_deploy_run_closes_its_event_and_frees_the_lock(
    url: str, tmp_path: Path, signum: int, code: int
) -> None:
    service = unique("e2e")
    started = tmp_path / "started"
    running = spawn(
        "deploy",
        "run",
        "-s",
        service,
        "-e",
        "production",
        "--",
        "sh",
        "-c",
        f"touch {started}; exec sleep 30",
        url=url,
        cwd=tmp_path,
    )
    try:
        eventually(started.exists, message="the deploy's command started")
        running.send_signal(signum)
        _, err = running.communicate(timeout=20)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert running.returncode == code, err
    assert "Traceback" not in err
    [event] = events_of(url, service)
    assert event["attributes"]["status"] == "failure"
    assert f"cancelled by {signal.Signals(signum).name}" in event["attributes"]["message"]
    assert locks_of(url, service) == []


def test_bad_inputs_give_one_line_and_their_exit_code(url: str, tmp_path: Path) -> None:
    unknown_enum = tracker_ci(
        "deploy", "start", "-s", "api", "-e", "stag ing", url=url, cwd=tmp_path
    )
    assert unknown_enum.returncode == 2
    assert "'stag ing' is not one of: development," in one_line(unknown_enum.stderr)
    missing_service = tracker_ci("deploy", "run", "-e", "UAT", "--", "true", url=url, cwd=tmp_path)
    assert missing_service.returncode == 2
    assert "missing --service" in one_line(missing_service.stderr)
    bad_pr = tracker_ci(
        "deploy",
        "start",
        "-s",
        "api",
        "-e",
        "UAT",
        "--pr-url",
        "https://github.com/acme/api/issues/3",
        url=url,
        cwd=tmp_path,
    )
    assert bad_pr.returncode == 2
    assert "is neither a GitHub pull request" in one_line(bad_pr.stderr)
    (tmp_path / ".tracker-ci.toml").write_text('service = "api"\nenvironment = [\n')
    bad_config = tracker_ci("lock", "list", url=url, cwd=tmp_path)
    assert bad_config.returncode == 2
    assert ".tracker-ci.toml: malformed TOML" in one_line(bad_config.stderr)


def test_unreachable_server(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = cli_env(dead, TRACKER_RETRIES="1")
    closed = tracker_ci(
        "deploy",
        "run",
        "-s",
        "api",
        "-e",
        "UAT",
        "--fail-policy",
        "closed",
        "--",
        "true",
        url=dead,
        cwd=tmp_path,
        env=env,
    )
    assert closed.returncode == 4
    assert one_line(closed.stderr).startswith(f"error: cannot connect to Tracker at {dead}")
    opened = tracker_ci(
        "deploy",
        "run",
        "-s",
        "api",
        "-e",
        "UAT",
        "--fail-policy",
        "open",
        "--",
        "sh",
        "-c",
        "exit 9",
        url=dead,
        cwd=tmp_path,
        env=env,
    )
    assert opened.returncode == 9
    warning = one_line(opened.stderr)
    assert warning.startswith("warning: cannot connect") and "fail policy open" in warning


def test_bad_token_exits_5(tmp_path: Path) -> None:
    with run_server(
        f"sqlite:///{tmp_path / 'auth.db'}",
        log_dir=tmp_path,
        extra_args=["--auth", "--admin-token", ADMIN],
    ) as server:
        env = cli_env(server.url, TRACKER_TOKEN="trk_not_a_real_token_at_all")
        refused = tracker_ci(
            "deploy",
            "run",
            "-s",
            "api",
            "-e",
            "UAT",
            "--",
            "true",
            url=server.url,
            cwd=tmp_path,
            env=env,
        )
        assert refused.returncode == 5
        assert "TRACKER_TOKEN" in one_line(refused.stderr)
        assert events_of(server.url, "api") == []


def test_help_and_version_import_no_heavy_library(tmp_path: Path) -> None:
    heavy = (
        "httpx",
        "pydantic",
        "fastapi",
        "sqlalchemy",
        "github",
        "gitlab",
        "uvicorn",
        "requests",
        "tracker_server",
    )
    probe = (
        "import sys\n"
        "from tracker_ci.__main__ import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
    )
    for args in (["--help"], ["--version"], ["deploy", "--help"]):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
            check=True,
        )
        assert "LOADED []" in done.stderr, (args, done.stderr)
    importtime = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tracker_ci", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in importtime.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert not imported & set(heavy), imported & set(heavy)
    assert importtime.stdout == "tracker-ci 0.1.0\n"


def test_ctrl_c_while_waiting_for_the_lock_says_so_and_creates_nothing(
    url: str, tmp_path: Path
) -> None:
    service = unique("e2e")
    held = tracker_ci(
        "lock", "acquire", "-s", service, "-e", "UAT", "--who", "bob", url=url, cwd=tmp_path
    )
    assert held.returncode == 0, held.stderr
    waiting = spawn(
        "deploy",
        "run",
        "-s",
        service,
        "-e",
        "UAT",
        "--wait",
        "60",
        "--",
        "true",
        url=url,
        cwd=tmp_path,
    )
    try:
        # Against our server the waiter joins the lock's queue: it is waiting for bob's lock.
        eventually(lambda: queue_of(url, service, "UAT"), message="the deploy queued")
        waiting.send_signal(signal.SIGINT)
        _, err = waiting.communicate(timeout=20)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 130, err
    assert "Traceback" not in err
    # Before: exit 130 and not a word after the wait line; now the job log says why.
    assert err.strip().splitlines()[-1] == (
        f"tracker-ci: interrupted while waiting for the lock of {service}/UAT; "
        "no event was opened and the command did not run"
    ), err
    assert events_of(url, service) == []
    assert [lock["who"] for lock in locks_of(url, service)] == ["bob"]
