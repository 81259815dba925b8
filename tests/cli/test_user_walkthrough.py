"""What a user typing the README and docs/cli.md met: each test is a defect found that way."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.conftest import Invoke
from tests.support.names import unique
from tracker_ci import cli as cli_module

ROOT = Path(__file__).resolve().parents[2]


def _readme_section(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- section: {name} -->(.*?)<!-- /section: {name} -->", text, re.S)
    assert match, f"README has no section {name}"
    return match.group(1)


def _user_docs() -> dict[str, str]:
    """The texts a user copies commands from: the README's CLI part, docs/cli.md."""
    return {
        "README cli": _readme_section("cli"),
        "README demo": _readme_section("demo"),
        "docs/cli.md": (ROOT / "docs" / "cli.md").read_text(),
    }


@pytest.mark.unit
def test_install_instructions_never_name_the_unpublished_pypi_package() -> None:
    # tracker-ci is not on PyPI: `pip install tracker-ci` fails, or installs a stranger's
    # package of that name. Only a clone (`.[extras]`) or a git URL may be shown.
    checked = []
    for where, text in _user_docs().items():
        for line in text.splitlines():
            if "pip install" not in line:
                continue
            spec = line.split("pip install", 1)[1].split("#")[0].strip().strip("`'\" ")
            from_clone = spec.startswith(".")
            from_git = "@ git+https://" in spec
            assert from_clone or from_git, f"{where}: {line.strip()}"
            checked.append(where)
    # Not vacuous: the README's CLI part does show how to install.
    assert "README cli" in checked, "no `pip install` line was found to check"


@pytest.mark.unit
def test_install_hints_in_messages_point_at_a_clone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracker_ci import __main__ as entry
    from tracker_ci.commands import context

    assert "pip install '.[github,gitlab]'" in context.INSTALL_CI_EXTRAS
    # `tracker-ci server` without the [server] extra installed:
    missing = {"server": ("tracker_server_not_installed.main:serve_command", "Run it.")}
    monkeypatch.setattr(cli_module, "LAZY_COMMANDS", missing)
    with pytest.raises(SystemExit) as exited:
        entry.main(["server"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "pip install '.[server]' in a clone" in err and "tracker-ci[" not in err, err


def _finish_examples() -> list[tuple[str, str]]:
    from click.testing import CliRunner

    texts = dict(_user_docs())
    for args in ([], ["deploy"], ["deploy", "finish"]):
        texts[f"tracker-ci {' '.join(args)} --help"] = (
            CliRunner().invoke(cli_module.cli, [*args, "--help"], terminal_width=200).output
        )
    found = []
    for where, text in texts.items():
        # Join continued lines so an example split with a backslash is read whole.
        for line in text.replace("\\\n", " ").splitlines():
            if "deploy finish" in line and "--status" in line and "tracker-ci deploy" in line:
                found.append((where, line.strip().strip("`|").strip()))
    return found


@pytest.mark.unit
def test_every_documented_finish_example_names_the_deployment() -> None:
    # `deploy finish --status success` alone has nothing to find the event by: a user who
    # typed the docs' two-step example got "missing --service".
    examples = _finish_examples()
    assert len(examples) >= 6, examples
    for where, line in examples:
        command = line.split("#")[0]
        assert re.search(r"--event-id|\s-s\s|--service|TRACKER_EVENT_ID=", command), (
            f"{where}: {line}"
        )


@pytest.mark.server
def test_finish_without_any_target_says_both_ways_to_name_it(invoke: Invoke) -> None:
    result = invoke("deploy", "finish", "--status", "success")
    assert result.exit_code == 2, result.output
    assert "--event-id" in result.stderr and "TRACKER_EVENT_ID" in result.stderr
    assert "--service" in result.stderr and "newest open" in result.stderr


@pytest.mark.server
def test_lock_wait_timeout_names_its_own_option(invoke: Invoke) -> None:
    service = unique()
    taken = invoke("lock", "acquire", "-s", service, "-e", "UAT", "--who", "bob")
    assert taken.exit_code == 0, taken.output
    try:
        waited = invoke("lock", "wait", "-s", service, "-e", "UAT", "--timeout", "0.3")
        assert waited.exit_code == 3, waited.output
        last = waited.stderr.strip().splitlines()[-1]
        assert last.startswith("error: gave up after waiting"), last
        assert "held by bob" in last
        # `lock wait` has no --wait option: the hint must name --timeout.
        assert "(--timeout SECONDS)" in last and "--wait" not in last
        acquired = invoke("lock", "acquire", "-s", service, "-e", "UAT", "--wait", "0.3")
        assert acquired.exit_code == 3, acquired.output
        assert "(--wait SECONDS)" in acquired.stderr.strip().splitlines()[-1]
    finally:
        invoke("lock", "release", taken.stdout.strip())


@pytest.mark.unit
@pytest.mark.parametrize("args", [[], ["lock"], ["deploy"]])
def test_a_bare_group_prints_its_help_not_an_error_line(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from tracker_ci import __main__ as entry

    with pytest.raises(SystemExit) as exited:
        entry.main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("Usage: tracker-ci"), err
    assert "error:" not in err and "(see '" not in err


@pytest.mark.unit
@pytest.mark.parametrize(
    ("variable", "value", "args", "expected"),
    [
        ("TRACKER_ENVIRONMENT", "prod env", ["lock", "status", "-s", "api"], "is not one of"),
        ("TRACKER_WAIT", "abc", ["deploy", "start", "-s", "api", "-e", "UAT"], "'abc'"),
        ("TRACKER_OUTPUT", "yaml", ["lock", "list"], "'yaml' is not one of"),
    ],
)
def test_a_bad_variable_is_named_not_only_the_option_it_feeds(
    variable: str,
    value: str,
    args: list[str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A CI variable set long ago: "Invalid value for '--environment'" sent the user
    # looking for a flag they never typed.
    from tracker_ci import __main__ as entry

    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exited:
        entry.main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert expected in err and f"(from {variable})" in err, err


@pytest.mark.unit
def test_a_typed_bad_value_is_not_blamed_on_a_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tracker_ci import __main__ as entry

    with pytest.raises(SystemExit) as exited:
        entry.main(["lock", "status", "-s", "api", "-e", "prod env"])
    assert exited.value.code == 2
    assert "(from " not in capsys.readouterr().err


@pytest.mark.unit
@pytest.mark.parametrize("value", ["-1", "2.5", "11", "many"])
def test_bad_retries_speak_of_retries_not_seconds(value: str, tmp_path: Path) -> None:
    from tracker_ci.config import load_config
    from tracker_ci.exceptions import ConfigError

    environ = {"TRACKER_RETRIES": value, "XDG_CONFIG_HOME": str(tmp_path)}
    with pytest.raises(ConfigError) as raised:
        load_config(environ=environ, cwd=tmp_path)
    message = str(raised.value)
    assert "TRACKER_RETRIES" in message and "retries from 0 to 10" in message, message
    assert "seconds" not in message


@pytest.mark.server
@pytest.mark.parametrize("status", ["start", "in_progress", "open", "planned"])
def test_finish_refuses_a_status_that_does_not_end_the_deployment(
    invoke: Invoke, status: str
) -> None:
    # `--status start` released the lock and left an event that still looked open.
    service = unique()
    started = invoke("deploy", "start", "-s", service, "-e", "UAT")
    assert started.exit_code == 0, started.output
    event_id = started.stdout.strip()
    refused = invoke("deploy", "finish", "--event-id", event_id, "--status", status)
    assert refused.exit_code == 2, refused.output
    assert "not one of: failure, success" in refused.stderr
    assert "(or failed, cancelled, canceled, timedout)" in refused.stderr
    held = invoke("lock", "status", "-s", service, "-e", "UAT")
    assert held.exit_code == 3, held.output  # untouched: still this deployment's lock
    closed = invoke("deploy", "finish", "--event-id", event_id, "--status", "Canceled")
    assert closed.exit_code == 0, closed.output
    assert invoke("lock", "status", "-s", service, "-e", "UAT").exit_code == 0


@pytest.mark.server
def test_event_update_with_nothing_to_change_is_a_usage_error(invoke: Invoke) -> None:
    created = invoke(
        "event",
        "create",
        "-t",
        "disk full",
        "-s",
        unique(),
        "-e",
        "UAT",
        "--type",
        "incident",
        "--status",
        "open",
    )
    assert created.exit_code == 0, created.output
    event_id = created.stdout.strip()
    result = invoke("event", "update", event_id)
    assert result.exit_code == 2, result.output
    assert "nothing to change" in result.stderr
    changelog = invoke("-o", "json", "event", "changelog", event_id)
    assert len(json.loads(changelog.stdout)["changelog"]) == 1  # no update was written


@pytest.mark.unit
def test_global_options_work_after_the_command_too(capsys: pytest.CaptureFixture[str]) -> None:
    from tracker_ci import __main__ as entry

    with pytest.raises(SystemExit) as exited:
        entry.main(["config", "show", "-o", "json", "--url=http://after.example"])
    assert exited.value.code == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["url"] == {"value": "http://after.example", "source": "flag"}
    assert shown["output"] == {"value": "json", "source": "flag"}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("args", "hoisted"),
    [
        (
            ["event", "get", "x", "-o", "json"],
            ["-o", "json", "event", "get", "x"],
        ),
        (
            ["deploy", "start", "-s", "api", "--output=json", "--fail-policy", "closed"],
            ["--output=json", "deploy", "start", "-s", "api", "--fail-policy", "closed"],
        ),
        (  # lock wait has a --timeout of its own; deploy run's command keeps its words
            ["lock", "wait", "--timeout", "5", "--url", "http://x"],
            ["--url", "http://x", "lock", "wait", "--timeout", "5"],
        ),
        (
            ["deploy", "run", "-s", "api", "--debug", "--", "./d.sh", "-o", "json"],
            ["--debug", "deploy", "run", "-s", "api", "--", "./d.sh", "-o", "json"],
        ),
        (["--url", "http://x", "lock", "list"], ["--url", "http://x", "lock", "list"]),
    ],
)
def test_global_options_after_the_command_move_before_it(
    args: list[str], hoisted: list[str]
) -> None:
    from tracker_ci.cli import cli, hoist_global_options

    assert hoist_global_options(cli, args) == hoisted


@pytest.mark.unit
def test_an_unknown_option_gets_no_global_option_hint(capsys: pytest.CaptureFixture[str]) -> None:
    from tracker_ci import __main__ as entry

    with pytest.raises(SystemExit):
        entry.main(["lock", "list", "--bogus"])
    assert "global option" not in capsys.readouterr().err


@pytest.mark.server
def test_an_event_that_takes_the_lock_says_so_and_how_to_close_it(invoke: Invoke) -> None:
    # `event create -t "restarted pods" -s api -e production` (defaults: deployment, start)
    # silently held production's deployment lock, blocking the next deploy.
    service = unique()
    created = invoke("event", "create", "-t", "restarted pods", "-s", service, "-e", "UAT")
    assert created.exit_code == 0, created.output
    event_id = created.stdout.strip()
    assert created.stderr.strip() == (
        f"tracker-ci: event {event_id} holds the deployment lock of {service} in UAT until "
        f"it is closed: tracker-ci event update {event_id} --status success (or failure, done)"
    )
    assert invoke("lock", "status", "-s", service, "-e", "UAT").exit_code == 3
    closed = invoke("event", "update", event_id, "--status", "success")
    assert closed.exit_code == 0, closed.output
    assert invoke("lock", "status", "-s", service, "-e", "UAT").exit_code == 0
    incident = invoke(
        "event",
        "create",
        "-t",
        "api down",
        "-s",
        service,
        "-e",
        "UAT",
        "--type",
        "incident",
        "--status",
        "open",
    )
    assert incident.exit_code == 0, incident.output
    assert incident.stderr == ""  # no lock taken, nothing to say


@pytest.mark.server
def test_lock_options_document_the_settings_they_fall_back_to(invoke: Invoke) -> None:
    # `lock acquire` used TRACKER_LOCK_TTL and `lock wait` TRACKER_WAIT without saying so.
    from click.testing import CliRunner

    acquire_help = CliRunner().invoke(cli_module.cli, ["lock", "acquire", "--help"]).output
    wait_help = CliRunner().invoke(cli_module.cli, ["lock", "wait", "--help"]).output
    assert "TRACKER_LOCK_TTL" in acquire_help
    for command in ("start", "run"):
        start_help = CliRunner().invoke(cli_module.cli, ["deploy", command, "--help"]).output
        assert "TRACKER_PR_URL" in start_help  # read by --pr-url, and now said
    assert "TRACKER_WAIT" in wait_help and "checks once" in wait_help
    service = unique()
    taken = invoke(
        "-o", "json", "lock", "acquire", "-s", service, "-e", "UAT", env={"TRACKER_LOCK_TTL": "90"}
    )
    assert taken.exit_code == 0, taken.output
    assert json.loads(taken.stdout)["expiresAt"]
    assert invoke("lock", "release", json.loads(taken.stdout)["id"]).exit_code == 0


@pytest.mark.server
@pytest.mark.parametrize("suffix", ["/api/v1alpha1", "/api/v1alpha1/"])
def test_a_url_copied_with_the_api_prefix_still_works(invoke: Invoke, suffix: str) -> None:
    # It used to request /api/v1alpha1/api/v1alpha1/locks/list and exit 6.
    listed = invoke("--url", invoke.url + suffix, "lock", "list")
    assert listed.exit_code == 0, listed.output
    shown = invoke("-o", "json", "config", "show", env={"TRACKER_URL": invoke.url + suffix})
    assert json.loads(shown.stdout)["url"]["value"] == invoke.url


@pytest.mark.server
def test_finishing_a_closed_deployment_again_changes_nothing(
    invoke: Invoke, tmp_path: Path
) -> None:
    # A second `deploy finish` (a retried job, a script and its after_script) rewrote the
    # status, the duration and the changelog of a deployment closed before.
    service = unique()
    started = invoke("deploy", "start", "-s", service, "-e", "UAT")
    assert started.exit_code == 0, started.output
    event_id = started.stdout.strip()
    first = invoke("-o", "json", "deploy", "finish", "--event-id", event_id, "--status", "success")
    assert first.exit_code == 0, first.output
    before = invoke("-o", "json", "event", "get", event_id).stdout

    outputs = tmp_path / "github_output"
    again = invoke(
        "-o",
        "json",
        "deploy",
        "finish",
        "--event-id",
        event_id,
        "--status",
        "success",
        env={"GITHUB_OUTPUT": str(outputs)},
    )
    assert again.exit_code == 0, again.output
    assert "was already closed as success; nothing changed" in again.stderr
    state = json.loads(again.stdout)
    assert state["status"] == "success"
    assert state["duration"] == json.loads(first.stdout)["duration"]
    assert "status=success" in outputs.read_text()

    other = invoke("deploy", "finish", "--event-id", event_id, "--status", "failed")
    assert other.exit_code == 2, other.output
    assert f"tracker-ci event update {event_id} --status failure" in other.stderr
    assert invoke("-o", "json", "event", "get", event_id).stdout == before


@pytest.mark.server
def test_a_deployment_flagged_warning_midway_can_still_be_finished(invoke: Invoke) -> None:
    # Only success, failure and done end a deployment on the server; a status set while it
    # runs (warning, in_progress) must not make `deploy finish` refuse to close it.
    service = unique()
    started = invoke("deploy", "start", "-s", service, "-e", "UAT")
    event_id = started.stdout.strip()
    assert invoke("event", "update", event_id, "--status", "warning").exit_code == 0
    finished = invoke("deploy", "finish", "--event-id", event_id, "--status", "success")
    assert finished.exit_code == 0, finished.output
    assert "closed as success" in finished.stderr
    assert invoke("lock", "status", "-s", service, "-e", "UAT").exit_code == 0
