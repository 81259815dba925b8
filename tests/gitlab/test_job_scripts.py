"""The template's job scripts with the real `tracker-ci` and the real server, outside
gitlab-ci-local: for job outcomes gitlab-ci-local cannot produce (canceled, timed out, an old
runner) and for the finish job's guard."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from tests.gitlab.gitlab_files import shell_script
from tests.support.api import deployments, locks_of
from tests.support.servers import RunningServer, free_port

pytestmark = pytest.mark.e2e


def job_environment(server_url: str, service: str, **extra: str) -> dict[str, str]:
    """What a .tracker-deploy job sees: GitLab's variables and the template's defaults."""
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": "/nonexistent",
        "GITLAB_CI": "true",
        "CI_PROJECT_PATH": "acme/shop",
        "CI_COMMIT_SHA": "0123456789abcdef0123456789abcdef01234567",
        "CI_JOB_ID": "4242",
        "TRACKER_URL": server_url,
        "TRACKER_DEFAULT_SERVICE": service,
        "TRACKER_DEFAULT_ENVIRONMENT": "production",
        "TRACKER_DEFAULT_WAIT": "0",
        "TRACKER_DEFAULT_LOCK_TTL": "auto",
        "TRACKER_DEFAULT_FAIL_POLICY": "closed",
        "TRACKER_DEFAULT_MR_NOTE": "false",
        "TRACKER_CI_MODE": "deploy",
        "TRACKER_CI_DOTENV": ".tracker-ci/deploy.env",
        **extra,
    }


def run(snippets: tuple[str, ...], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """One job section (before_script, after_script, script) as /bin/sh runs it."""
    return subprocess.run(
        ["/bin/sh", "-c", shell_script(*snippets)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("job_status", "event_status"),
    [
        ("success", "success"),
        ("failed", "failure"),
        ("canceled", "failure"),
        ("timedout", "failure"),
        ("running", "failure"),  # old runners: an unknown outcome is never a success
    ],
)
def test_after_script_closes_with_the_job_outcome(
    sqlite_server: RunningServer,
    unique: Callable[[str], str],
    tmp_path: Path,
    job_status: str,
    event_status: str,
) -> None:
    service = unique(f"outcome-{job_status}")
    env = job_environment(sqlite_server.url, service)
    before = run(("settings", "install", "start"), tmp_path, env)
    assert before.returncode == 0, before.stdout + before.stderr
    [opened] = deployments(sqlite_server.url, service)
    assert opened["attributes"]["status"] == "start"
    assert locks_of(sqlite_server.url, service)

    after = run(
        ("settings", "install", "close-job"), tmp_path, {**env, "CI_JOB_STATUS": job_status}
    )

    assert after.returncode == 0, after.stdout + after.stderr
    [closed] = deployments(sqlite_server.url, service)
    assert closed["attributes"]["status"] == event_status
    assert locks_of(sqlite_server.url, service) == []
    if job_status == "running":
        assert "CI_JOB_STATUS is 'running'" in after.stderr


def test_the_deploy_job_s_own_script_sees_the_ids_and_the_fence(
    sqlite_server: RunningServer, unique: Callable[[str], str], tmp_path: Path
) -> None:
    """before_script and script are one shell: the fencing recipe reads real values."""
    service = unique("fence")
    env = job_environment(sqlite_server.url, service)
    script = shell_script("settings", "install", "start") + (
        'echo "event=$TRACKER_EVENT_ID lock=$TRACKER_LOCK_ID fence=$TRACKER_FENCE"\n'
        'sh -c \'tracker-ci lock check -s "$TRACKER_SERVICE" -e production '
        '--fence "$TRACKER_FENCE"\' && echo fenced-ok\n'
    )
    job = subprocess.run(
        ["/bin/sh", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert job.returncode == 0, job.stdout + job.stderr
    [event] = deployments(sqlite_server.url, service)
    [lock] = locks_of(sqlite_server.url, service)
    line = f"event={event['metadata']['id']} lock={lock['id']} fence={lock['fence']}"
    assert line in job.stdout and lock["fence"] >= 1, job.stdout
    assert "fenced-ok" in job.stdout, job.stdout + job.stderr
    run(("settings", "install", "close-job"), tmp_path, {**env, "CI_JOB_STATUS": "success"})
    assert locks_of(sqlite_server.url, service) == []


def test_deploy_job_lock_ttl_follows_the_job_timeout(
    sqlite_server: RunningServer, unique: Callable[[str], str], tmp_path: Path
) -> None:
    """lock-ttl auto: the lock expires 10 minutes after the job's own timeout."""
    service = unique("ttl")
    env = job_environment(sqlite_server.url, service, CI_JOB_TIMEOUT="1200")
    before = run(("settings", "install", "start"), tmp_path, env)
    assert before.returncode == 0, before.stdout + before.stderr
    [lock] = locks_of(sqlite_server.url, service)
    created = datetime.fromisoformat(lock["createdAt"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(lock["expiresAt"].replace("Z", "+00:00"))
    assert abs((expires - created).total_seconds() - 1800) < 5
    run(("settings", "install", "close-job"), tmp_path, {**env, "CI_JOB_STATUS": "success"})
    assert locks_of(sqlite_server.url, service) == []


def test_finish_job_without_an_event_id_touches_nothing(
    sqlite_server: RunningServer, unique: Callable[[str], str], tmp_path: Path
) -> None:
    """A finish job after a start job that opened nothing must not close another pipeline's
    open deploy of the same service (tracker-ci's fallback would pick the newest one)."""
    service = unique("finish-guard")
    other = run(
        ("settings", "install", "start"), tmp_path, job_environment(sqlite_server.url, service)
    )
    assert other.returncode == 0, other.stderr
    finish_dir = tmp_path / "finish"
    finish_dir.mkdir()
    env = job_environment(
        sqlite_server.url, service, TRACKER_CI_MODE="finish", TRACKER_CI_FINISH_STATUS="failure"
    )

    result = run(("settings", "install", "finish"), finish_dir, env)

    assert result.returncode == 0, result.stderr
    assert "nothing to close" in result.stdout
    [event] = deployments(sqlite_server.url, service)
    assert event["attributes"]["status"] == "start"
    assert locks_of(sqlite_server.url, service)
    # Leave the shared server clean: the other job closes its own deploy.
    env_other = {**job_environment(sqlite_server.url, service), "CI_JOB_STATUS": "success"}
    assert run(("settings", "install", "close-job"), tmp_path, env_other).returncode == 0
    assert locks_of(sqlite_server.url, service) == []


@pytest.mark.parametrize(("policy", "start_code"), [("open", 0), ("closed", 4)])
def test_unreachable_server_follows_the_fail_policy(
    unique: Callable[[str], str], tmp_path: Path, policy: str, start_code: int
) -> None:
    """open: the deploy goes on and after_script has nothing to close; closed: exit 4."""
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = job_environment(unreachable, unique("down"), TRACKER_DEFAULT_FAIL_POLICY=policy)

    before = run(("settings", "install", "start"), tmp_path, env)

    assert before.returncode == start_code, before.stdout + before.stderr
    if policy == "open":
        assert (
            (tmp_path / ".tracker-ci" / "deploy.env").read_text().startswith("TRACKER_EVENT_ID=\n")
        )
        after = run(
            ("settings", "install", "close-job"), tmp_path, {**env, "CI_JOB_STATUS": "success"}
        )
        assert after.returncode == 0, after.stderr
        assert "opened no deployment event" in after.stdout
