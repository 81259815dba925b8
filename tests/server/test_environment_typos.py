"""Environment names without typos: a custom name a service never used that is close to one
it did is refused (400, code 3) on every write that names one (event, lock, queue, freeze
window), unless the request says it is new (``X-Tracker-New-Environment: 1``) or the
service's catalog entry lists it. Upstream's eight names always pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine
from tracker_server.db import normalize_database_url
from tracker_server.operations import _known_environments
from tracker_server.validation import edit_distance, looks_like_typo

from tests.server.helpers import API, assert_error, create_event, event_body, update_body
from tests.support.servers import RunningServer
from tracker_ci.cli import cli

pytestmark = pytest.mark.server

NEW = {"X-Tracker-New-Environment": "1"}


def _lock(client: Any, environment: str, headers: dict[str, str] | None = None) -> Any:
    body = {"service": "api", "environment": environment, "who": "ci", "resource": "migrations"}
    return client.post(f"{API}/lock", json=body, headers=headers or {})


def test_the_rule_on_names() -> None:
    assert edit_distance("prodution", "production") == 1
    assert edit_distance("porduction", "production") == 1  # a swap counts once
    assert looks_like_typo("prodution", "production")
    assert looks_like_typo("Staging", "staging")  # a case difference
    assert looks_like_typo("stagign", "staging")
    assert not looks_like_typo("eu-west-2", "eu-west-1")  # numbered siblings
    assert not looks_like_typo("qa", "uat")
    assert not looks_like_typo("canary", "staging")
    assert not looks_like_typo("dev2", "prod")


def test_a_misspelled_name_is_refused_on_every_write(client: Any) -> None:
    create_event(client, environment="staging")
    refused = client.post(f"{API}/event", json=event_body(environment="stagign"))
    body = assert_error(refused, 400, 3)
    assert body["message"] == (
        "unknown environment 'stagign' for service api: did you mean 'staging'? "
        "(pass --new-environment to create it)"
    )
    assert_error(_lock(client, "Staging"), 400, 3, "did you mean 'staging'?")
    queue = {"service": "api", "environment": "stagin", "who": "ci", "waitSeconds": 0}
    assert_error(client.post(f"{API}/lock/queue", json=queue), 400, 3, "did you mean")
    window = {
        "title": "freeze",
        "type": "FREEZE_TYPE_HARD",
        "scopeType": "FREEZE_SCOPE_ENVIRONMENT",
        "scopeIds": ["stagingg"],
        "startsAt": "2030-01-01T00:00:00Z",
        "endsAt": "2030-01-02T00:00:00Z",
    }
    freeze = client.post(f"{API}/freeze-window", json=window)
    assert_error(freeze, 400, 3, "'stagingg' on this server: did you mean 'staging'?")
    # Nothing was written by the refusals: the name is still unknown.
    assert_error(client.post(f"{API}/event", json=event_body(environment="stagign")), 400, 3)


def test_new_names_pass_when_said_new_unrelated_or_upstreams(client: Any) -> None:
    create_event(client, environment="staging")
    create_event(client, environment="canary")  # far from every known name
    create_event(client, environment="eu-west-1")
    create_event(client, environment="eu-west-2")
    create_event(client, environment="recette")  # upstream's eight always pass
    # Said new: created, and known from then on (without the header).
    answer = client.post(f"{API}/event", json=event_body(environment="staging2"), headers=NEW)
    assert answer.status_code == 200, answer.text
    create_event(client, environment="staging2")
    locked = _lock(client, "Canary", NEW)
    assert locked.status_code == 200, locked.text
    again = client.delete(f"{API}/lock/{locked.json()['lock']['id']}")
    assert again.status_code == 200, again.text
    assert _lock(client, "Canary").status_code == 200  # a lock once taken makes it known
    # Another service's names are its own: "stagign" is no typo where nothing is known.
    create_event(client, service="web", environment="stagign")


def test_a_name_the_catalog_lists_passes(client: Any) -> None:
    create_event(client, environment="staging")
    entry = {"name": "api", "owner": "team-a", "version": "1.0", "environments": ["Staging"]}
    stored = client.put(f"{API}/catalog", json=entry)
    assert stored.status_code == 200, stored.text
    assert create_event(client, environment="Staging")["attributes"]["environment"] == "Staging"


def test_the_known_names_are_read_by_index_seeks(client: Any, database_url: str) -> None:
    for environment in ("a1", "b2", "c3"):
        create_event(client, environment=environment)
        create_event(client, service="other", environment=environment + "x")
    _lock(client, "d4", NEW)
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as conn:
            assert sorted(_known_environments(conn, "api")) == ["a1", "b2", "c3", "d4"]
            everywhere = set(_known_environments(conn, ""))
            assert {"a1", "a1x", "c3x", "d4"} <= everywhere
            if conn.dialect.name == "sqlite":
                plan = " ".join(
                    str(row[3])
                    for row in conn.exec_driver_sql(
                        "EXPLAIN QUERY PLAN SELECT MIN(environment) FROM events "
                        "WHERE service = 'api' AND environment > 'a1'"
                    )
                )
                assert "ix_events_service_environment_created_at" in plan, plan
    finally:
        engine.dispose()


def test_the_cli_refuses_with_exit_2_unless_new_environment(
    sqlite_server: RunningServer, service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"TRACKER_URL": sqlite_server.url, "TRACKER_RETRIES": "0", "TRACKER_WAIT": "0"}

    def tracker(*args: str, **more: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env | more, catch_exceptions=False)

    note = ["event", "create", "-t", "note", "--type", "incident", "--status", "open"]
    assert tracker(*note, "-s", service, "-e", "staging").exit_code == 0
    refused = tracker(*note, "-s", service, "-e", "stagign")
    assert refused.exit_code == 2, refused.output
    assert f"unknown environment 'stagign' for service {service}" in refused.output
    assert "did you mean 'staging'?" in refused.output
    created = tracker(*note, "-s", service, "-e", "stagign", "--new-environment")
    assert created.exit_code == 0, created.output
    lock = ["lock", "acquire", "-s", service, "--resource", "db"]
    assert tracker(*lock, "-e", "Staging").exit_code == 2
    taken = tracker(*lock, "-e", "Staging", TRACKER_NEW_ENVIRONMENT="1")
    assert taken.exit_code == 0, taken.output
    deploy = ["deploy", "run", "-s", service, "-e", "stagingg"]
    assert tracker(*deploy, "--", "true").exit_code == 2
    ran = tracker(*deploy, "--new-environment", "--", "true")
    assert ran.exit_code == 0, ran.output


def test_freeze_add_and_catalog_set_take_new_names_from_the_cli(
    sqlite_server: RunningServer, service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"TRACKER_URL": sqlite_server.url, "TRACKER_RETRIES": "0", "TRACKER_WAIT": "0"}

    def tracker(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    note = ["event", "create", "-t", "note", "--type", "incident", "--status", "open"]
    assert tracker(*note, "-s", service, "-e", "perf-lab").exit_code == 0
    freeze = ["freeze", "add", "quiet", "-e", "perf-lab2x", "--for", "1h", "--soft"]
    refused = tracker(*freeze)
    assert refused.exit_code == 2, refused.output
    assert "did you mean 'perf-lab'?" in refused.output
    assert tracker(*freeze, "--new-environment").exit_code == 0
    # A name the service's catalog entry lists is never taken for a misspelling.
    assert tracker(*note, "-s", service, "-e", "perf-lab-x").exit_code == 2
    entry = ["catalog", "set", service, "--owner", "team", "--version", "1.0.0"]
    stored = tracker(*entry, "--environment", "perf-lab-x", "--environment", "perf-lab")
    assert stored.exit_code == 0, stored.output
    assert tracker(*note, "-s", service, "-e", "perf-lab-x").exit_code == 0


def test_an_update_moving_an_event_to_a_misspelled_name_is_refused(client: Any) -> None:
    create_event(client, environment="staging")
    event = create_event(client, environment="staging", status="start")
    # Unchanged names pass; a move to a close, unused name is refused and nothing changes.
    same = client.put(f"{API}/event", json=update_body(event, status="success"))
    assert same.status_code == 200, same.text
    moved = client.put(f"{API}/event", json=update_body(event, environment="stagign"))
    assert_error(moved, 400, 3, "did you mean 'staging'?")
    stored = client.get(f"{API}/event/{event['metadata']['id']}").json()["event"]
    assert stored["attributes"]["environment"] == "staging"
    assert stored["attributes"]["status"] == "success"
    said_new = client.put(
        f"{API}/event", json=update_body(event, environment="stagign"), headers=NEW
    )
    assert said_new.status_code == 200, said_new.text
