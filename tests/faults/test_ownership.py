"""With auth on, a lock belongs to the token that took it: another token may not release
or renew it; an admin may, saying why, and the server audits it. Read-only tokens read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import run_cli
from tests.support.api import locks_of
from tests.support.servers import RunningServer, run_server
from tracker_ci.client import TrackerClient
from tracker_ci.exceptions import PermissionDenied
from tracker_ci.models import CreateEventRequest, EventAttributes, EventType, Status

pytestmark = pytest.mark.server

ADMIN = "trk_admin_secret_for_fault_tests_0123456789"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    where: Path = tmp_path_factory.mktemp("auth")
    with run_server(
        f"sqlite:///{where / 'auth.db'}",
        log_dir=where,
        extra_args=["--auth", "--admin-token", ADMIN],
    ) as server:
        yield server


def token(server: RunningServer, name: str, *extra: str) -> str:
    created = run_cli(
        server.url, "-o", "json", "token", "create", "--name", name, *extra,
        env={"TRACKER_TOKEN": ADMIN},
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    return json.loads(created.stdout)["secret"]


def test_another_token_cannot_release_or_renew_and_an_admin_must_say_why(
    secured: RunningServer, service: str
) -> None:
    url = secured.url
    job, other = token(secured, "job"), token(secured, "other")
    taken = run_cli(
        url, "lock", "acquire", "-s", service, "-e", "UAT", "--who", "ci",
        env={"TRACKER_TOKEN": job},
    )  # fmt: skip
    lock_id = taken.stdout.strip()

    for args in (
        ["lock", "release", lock_id],
        ["lock", "renew", lock_id, "--ttl", "60"],
        ["lock", "release", "-s", service, "-e", "UAT", "--who", "ci", "--held-lock-id", lock_id],
    ):
        refused = run_cli(url, *args, env={"TRACKER_TOKEN": other})
        assert refused.exit_code == 5, refused.output
        assert "taken by another token" in refused.stderr
    assert [lock["id"] for lock in locks_of(url, service)] == [lock_id]

    silent = run_cli(url, "lock", "release", lock_id, env={"TRACKER_TOKEN": ADMIN})
    assert silent.exit_code == 5 and "say why" in silent.stderr, silent.output
    admin_token = token(secured, "ops", "--admin")
    broken = run_cli(
        url, "lock", "release", lock_id, "--reason", "runner died, INC-42",
        env={"TRACKER_TOKEN": admin_token},
    )  # fmt: skip
    assert broken.exit_code == 0, broken.output
    assert locks_of(url, service) == []
    audit = [
        json.loads(line)
        for line in secured.log().splitlines()
        if "lock overridden by admin" in line
    ]
    assert [(a["by"], a["reason"], a["id"]) for a in audit] == [
        ("ops", "runner died, INC-42", lock_id)
    ]


def test_a_lock_the_admin_token_took_is_its_own(secured: RunningServer, service: str) -> None:
    url = secured.url
    taken = run_cli(
        url, "lock", "acquire", "-s", service, "-e", "UAT", "--who", "ops",
        env={"TRACKER_TOKEN": ADMIN},
    )  # fmt: skip
    assert taken.exit_code == 0, taken.output
    lock_id = taken.stdout.strip()
    job = token(secured, "job")
    for args in (["lock", "release", lock_id], ["lock", "renew", lock_id, "--ttl", "60"]):
        refused = run_cli(url, *args, env={"TRACKER_TOKEN": job})
        assert refused.exit_code == 5, refused.output
        assert "taken by another token" in refused.stderr
    assert [lock["id"] for lock in locks_of(url, service)] == [lock_id]
    released = run_cli(url, "lock", "release", lock_id, env={"TRACKER_TOKEN": ADMIN})
    assert released.exit_code == 0, released.output
    assert locks_of(url, service) == []


def test_the_token_that_opened_a_deployment_owns_its_lock(
    secured: RunningServer, service: str
) -> None:
    with TrackerClient(base_url=secured.url, token=token(secured, "deployer")) as mine:
        event = mine.create_event(
            CreateEventRequest(
                title="deploy",
                attributes=EventAttributes(
                    service=service, type=EventType.deployment, status=Status.start
                ),
            )
        )
        (lock,) = mine.locks_for_event(event.id)
        with TrackerClient(base_url=secured.url, token=token(secured, "intruder")) as theirs:
            with pytest.raises(PermissionDenied, match="taken by another token"):
                theirs.release_lock(lock.id)
        assert mine.release_lock(lock.id) == 1


def test_a_read_only_token_reads_and_never_writes(secured: RunningServer, service: str) -> None:
    reader = token(secured, "dashboard", "--read-only")
    listed = run_cli(secured.url, "lock", "list", env={"TRACKER_TOKEN": reader})
    assert listed.exit_code == 0, listed.output
    refused = run_cli(
        secured.url, "lock", "acquire", "-s", service, "-e", "UAT",
        env={"TRACKER_TOKEN": reader},
    )  # fmt: skip
    assert refused.exit_code == 5, refused.output
    assert "read-only" in refused.stderr
    assert locks_of(secured.url, service) == []
    admin_and_reader = run_cli(
        secured.url, "token", "create", "--name", "x", "--admin", "--read-only",
        env={"TRACKER_TOKEN": ADMIN},
    )  # fmt: skip
    assert admin_and_reader.exit_code == 2, admin_and_reader.output
