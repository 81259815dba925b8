"""lock, event, token and config commands against the real bundled server; exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import ADMIN_TOKEN, Invoke
from tests.support.names import unique
from tests.support.servers import RunningServer
from tracker_ci.cli import cli

pytestmark = pytest.mark.server


def test_lock_acquire_status_list_release(invoke: Invoke) -> None:
    service = unique()
    taken = invoke("lock", "acquire", "-s", service, "-e", "production", "--who", "alice")
    assert taken.exit_code == 0, taken.output
    lock_id = taken.stdout.strip()
    status = invoke("-o", "json", "lock", "status", "-s", service, "-e", "production")
    assert status.exit_code == 3, status.output
    assert json.loads(status.stdout)["lock"]["who"] == "alice"
    listed = invoke("lock", "list")
    assert listed.exit_code == 0 and lock_id in listed.stdout
    again = invoke("lock", "acquire", "-s", service, "-e", "production", "--who", "bob")
    assert again.exit_code == 3, again.output
    assert "held by alice" in again.stderr
    anonymous = invoke("lock", "release", "-s", service, "-e", "production", "--who", "alice")
    assert anonymous.exit_code == 2, anonymous.output  # a name alone is never enough
    held = {"TRACKER_LOCK_ID": lock_id}
    wrong = invoke("lock", "release", "-s", service, "-e", "production", "--who", "bob", env=held)
    assert wrong.exit_code == 3, wrong.output
    released = invoke(
        "lock", "release", "-s", service, "-e", "production", "--who", "alice", env=held
    )
    assert released.exit_code == 0, released.output
    free = invoke("lock", "status", "-s", service, "-e", "production")
    assert free.exit_code == 0 and free.stdout.startswith("free"), free.output
    gone = invoke("lock", "release", lock_id)
    assert gone.exit_code == 6, gone.output


def test_lock_renew_and_wait(invoke: Invoke) -> None:
    service = unique()
    taken = invoke("-o", "json", "lock", "acquire", "-s", service, "-e", "UAT", "--ttl", "60")
    assert taken.exit_code == 0, taken.output
    lock = json.loads(taken.stdout)
    assert lock["expiresAt"]
    renewed = invoke("-o", "json", "lock", "renew", lock["id"], "--ttl", "600")
    assert renewed.exit_code == 0, renewed.output
    assert json.loads(renewed.stdout)["expiresAt"] > lock["expiresAt"]
    timed_out = invoke("lock", "wait", "-s", service, "-e", "UAT", "--timeout", "0.5")
    assert timed_out.exit_code == 3, timed_out.output
    assert "waiting for lock on" in timed_out.stderr
    assert invoke("lock", "release", lock["id"]).exit_code == 0
    free = invoke("lock", "wait", "-s", service, "-e", "UAT", "--timeout", "5")
    assert free.exit_code == 0, free.output


def test_event_lifecycle(invoke: Invoke) -> None:
    service = unique()
    created = invoke(
        "event",
        "create",
        "-t",
        "API down",
        "-s",
        service,
        "-e",
        "production",
        "--type",
        "incident",
        "--status",
        "open",
        "--priority",
        "P1",
        "--impact",
    )
    assert created.exit_code == 0, created.output
    event_id = created.stdout.strip()
    shown = invoke("event", "get", event_id)
    assert shown.exit_code == 0 and "API down" in shown.stdout and "incident" in shown.stdout
    updated = invoke(
        "-o", "json", "event", "update", event_id, "--status", "done", "--ticket", "OPS-1"
    )
    assert updated.exit_code == 0, updated.output
    body = json.loads(updated.stdout)
    assert (body["attributes"]["status"], body["links"]["ticket"]) == ("done", "OPS-1")
    assert body["attributes"]["priority"] == "P1"  # kept
    found = invoke("-o", "json", "event", "search", "--service", service, "--type", "incident")
    assert [e["metadata"]["id"] for e in json.loads(found.stdout)["events"]] == [event_id]
    assert event_id in invoke("event", "today").stdout
    assert event_id in invoke("event", "list", "--per-page", "500").stdout
    commented = invoke("event", "changelog", event_id, "--comment", "looking into it")
    assert commented.exit_code == 0, commented.output
    history = invoke("event", "changelog", event_id)
    assert "looking into it" in history.stdout and "status_changed" in history.stdout
    assert invoke("event", "delete", event_id).exit_code == 0
    missing = invoke("event", "get", event_id)
    assert missing.exit_code == 6, missing.output
    assert missing.stderr.startswith("error: not found")


def test_event_search_needs_a_filter(invoke: Invoke) -> None:
    result = invoke("event", "search")
    assert result.exit_code == 2 and "at least one filter" in result.stderr


def test_tokens_and_auth_errors(
    auth_server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    admin = Invoke(auth_server.url, tmp_path)
    env = {"TRACKER_TOKEN": ADMIN_TOKEN}
    created = admin("-o", "json", "token", "create", "--name", "ci", "--service", "api", env=env)
    assert created.exit_code == 0, created.output
    token = json.loads(created.stdout)
    listed = admin("token", "list", env=env)
    assert listed.exit_code == 0 and token["token"]["id"] in listed.stdout
    assert token["secret"] not in listed.stdout

    scoped = {"TRACKER_TOKEN": token["secret"]}
    ok = admin("deploy", "start", "-s", "api", "-e", "UAT", env=scoped)
    assert ok.exit_code == 0, ok.output
    denied = admin("deploy", "start", "-s", "web", "-e", "UAT", env=scoped)
    assert denied.exit_code == 5, denied.output
    assert admin("token", "revoke", token["token"]["id"], env=env).exit_code == 0
    revoked = admin("deploy", "start", "-s", "api", "-e", "production", env=scoped)
    assert revoked.exit_code == 5, revoked.output
    assert revoked.stderr.count("\n") == 1 and "TRACKER_TOKEN" in revoked.stderr
    anonymous = admin("event", "create", "-t", "x", "-s", "api", "-e", "UAT")
    assert anonymous.exit_code == 5, anonymous.output
    unknown = admin("token", "revoke", "00000000-0000-4000-8000-000000000000", env=env)
    assert unknown.exit_code == 6, unknown.output


def test_config_show_sources_and_masking(invoke: Invoke, tmp_path: Path) -> None:
    (tmp_path / ".tracker-ci.toml").write_text('service = "api"\nwait = 60\n')
    result = invoke(
        "-o",
        "json",
        "--timeout",
        "3",
        "config",
        "show",
        env={"TRACKER_TOKEN": "trk_0123456789abcdef"},
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["token"] == {"value": "trk_01****", "source": "env TRACKER_TOKEN"}
    assert shown["timeout"] == {"value": 3.0, "source": "flag"}
    assert shown["output"]["source"] == "flag"
    assert shown["service"]["value"] == "api"
    assert shown["service"]["source"].endswith(".tracker-ci.toml")
    assert shown["fail_policy"] == {"value": "closed", "source": "default"}
    assert shown["url"]["source"] == "env TRACKER_URL"
    text = invoke("config", "show")
    assert "SETTING" in text.stdout and "project file:" in text.stdout


def test_config_settings_are_used_by_commands(invoke: Invoke, tmp_path: Path) -> None:
    service = unique()
    (tmp_path / ".tracker-ci.toml").write_text(
        f'service = "{service}"\nenvironment = "uat"\noutput = "json"\n'
    )
    started = invoke("deploy", "start")
    assert started.exit_code == 0, started.output
    assert json.loads(started.stdout)["environment"] == "UAT"


def test_malformed_config_exits_2_with_file_and_line(invoke: Invoke, tmp_path: Path) -> None:
    (tmp_path / ".tracker-ci.toml").write_text('service = "api"\nwait = = 3\n')
    result = invoke("lock", "list")
    assert result.exit_code == 2, result.output
    assert ".tracker-ci.toml: malformed TOML" in result.stderr and "line 2" in result.stderr
    assert result.stderr.count("\n") == 1
    # --help still works with a broken config file.
    assert invoke("deploy", "start", "--help").exit_code == 0


def test_bad_url_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("--url", "localhost:8080", "lock", "list")
    assert result.exit_code == 2 and "is not an http(s) URL" in result.stderr


def test_help_teaches_with_examples() -> None:
    from click.testing import CliRunner

    for args in ([], ["deploy"], ["deploy", "run"], ["deploy", "start"], ["lock"]):
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, result.output
        assert "Examples:" in result.output
    start = CliRunner().invoke(cli, ["deploy", "start", "--help"]).output
    assert "production" in start and "TRACKER_FAIL_POLICY" in start


def test_unexpected_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracker_ci import __main__ as entry
    from tracker_ci.commands import config_cmd

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(config_cmd, "render_table", boom)
    with pytest.raises(SystemExit) as exited:
        entry.main(["config", "show"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert (
        err == "error: unexpected RuntimeError: disk on fire (run again with --debug for "
        "the traceback)\n"
    )
    with pytest.raises(SystemExit):
        entry.main(["--debug", "config", "show"])
    assert "Traceback" in capsys.readouterr().err


def test_server_is_mounted_lazily() -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["server", "--help"])
    assert result.exit_code == 0, result.output
    assert "--database-url" in result.output
