"""The action's translation of inputs into tracker-ci command lines, and its parsers."""

from __future__ import annotations

import pytest

from tests.action.emulator import parse_file_commands
from tracker_ci.ci import github
from tracker_ci.ci.github_action import (
    INPUT_NAMES,
    ActionError,
    build_cli_argv,
    finish_status,
    merge_upstream_inputs,
    parse_bool,
    parse_inputs,
    post_cli_argv,
    read_inputs,
)
from tracker_ci.ci.github_report import escape_command_data

pytestmark = pytest.mark.unit


def _raw(**values: str) -> dict[str, str]:
    raw = dict.fromkeys(INPUT_NAMES, "")
    raw.update({"service": "shop", "environment": "production", "command": "./deploy.sh"})
    raw.update({name.replace("_", "-"): value for name, value in values.items()})
    return raw


def test_inputs_are_read_with_hyphens_kept_or_as_underscores() -> None:
    raw = read_inputs(
        {"INPUT_SERVER-URL": " https://t.example ", "INPUT_FAIL_POLICY": "closed", "INPUT_X": "1"}
    )
    assert raw["server-url"] == "https://t.example"
    assert raw["fail-policy"] == "closed"
    assert raw["mode"] == "" and set(raw) == set(INPUT_NAMES)


def test_the_runner_spelling_wins_over_the_underscore_one() -> None:
    raw = read_inputs({"INPUT_LOCK-TTL": "60", "INPUT_LOCK_TTL": "10"})
    assert raw["lock-ttl"] == "60"


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("True", True), ("yes", True), ("1", True)]
    + [("false", False), ("FALSE", False), ("no", False), ("0", False)],
)
def test_booleans_are_the_six_words(text: str, value: bool) -> None:
    assert parse_bool("comment", text) is value


@pytest.mark.parametrize("text", ["", "on", "off", "y", "n", "2", "truee", "t"])
def test_anything_else_is_not_a_boolean(text: str) -> None:
    with pytest.raises(ActionError, match="`comment`") as caught:
        parse_bool("comment", text)
    assert "true or false" in caught.value.fix


def test_a_case_slip_in_an_enum_is_accepted_as_a_doubt() -> None:
    inputs = parse_inputs(_raw(environment="uat", priority="p1", mode="RUN"))
    assert (inputs.environment, inputs.priority, inputs.mode) == ("UAT", "P1", "run")
    assert len(inputs.doubts) == 3 and "'UAT'" in inputs.doubts[1]


def test_a_token_over_plain_http_to_a_remote_host_is_a_doubt() -> None:
    remote = parse_inputs(_raw(server_url="http://tracker.example.com", token="t"))
    local = parse_inputs(_raw(server_url="http://127.0.0.1:8080", token="t"))
    assert any("plain http" in doubt for doubt in remote.doubts)
    assert local.doubts == ()


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"mode": "deploy"}, "mode"),
        ({"environment": "prod env"}, "environment"),
        ({"priority": "high"}, "priority"),
        ({"fail_policy": "maybe"}, "fail-policy"),
        ({"status": "ok", "mode": "finish"}, "status"),
        ({"wait": "-1"}, "wait"),
        ({"lock_ttl": "1h"}, "lock-ttl"),
        ({"server_url": "ftp://x"}, "server-url"),
        ({"service": ""}, "service"),
        ({"command": "", "mode": "run"}, "command"),
        ({"auto_close": "sure"}, "auto-close"),
    ],
)
def test_bad_inputs_name_the_input(values: dict[str, str], named: str) -> None:
    with pytest.raises(ActionError, match=f"`{named}`") as caught:
        parse_inputs(_raw(**values))
    assert caught.value.fix and caught.value.exit_code == 2


def test_finish_by_event_id_needs_no_service_and_unlock_by_id_neither() -> None:
    finish = build_cli_argv(
        parse_inputs(_raw(mode="finish", event_id="e1", service="", command=""))
    )
    assert finish[:2] == ["deploy", "finish"], finish
    assert finish[finish.index("--event-id") + 1] == "e1" and "--service" not in finish
    unlock = build_cli_argv(parse_inputs(_raw(mode="unlock", lock_id="l1", service="", command="")))
    assert unlock == ["lock", "release", "l1"]


def test_mode_run_starts_with_every_start_option() -> None:
    argv = build_cli_argv(
        parse_inputs(
            _raw(
                server_url="https://t.example/",
                title="T",
                priority="P2",
                owner="alice",
                pr_url="https://github.com/a/b/pull/1",
                wait="60",
                lock_ttl="600",
                fail_policy="closed",
                comment="true",
                token="secret",
            )
        )
    )
    assert argv[:4] == ["--url", "https://t.example", "deploy", "run"]
    text = " ".join(argv)
    for part in (
        "--service shop",
        "--environment production",
        "--title T",
        "--priority P2",
        "--owner alice",
        "--pr-url https://github.com/a/b/pull/1",
        "--wait 60",
        "--lock-ttl 600",
        "--fail-policy closed",
        "--comment",
    ):
        assert part in text
    assert "secret" not in text, "tokens travel in the environment, never in argv"
    assert "--message" not in argv, "empty inputs are left to the CLI's defaults"
    # One invocation: the command runs under `deploy run`, in a process group of its own.
    assert argv[-9:] == [
        "--process-group",
        "--",
        "bash",
        "--noprofile",
        "--norc",
        "-eo",
        "pipefail",
        "-c",
        "./deploy.sh",
    ]


def test_finish_lock_and_unlock_command_lines() -> None:
    finish = build_cli_argv(parse_inputs(_raw(mode="finish", event_id="e1", status="failure")))
    assert finish == [
        "deploy",
        "finish",
        "--status",
        "failure",
        "--event-id",
        "e1",
        "--service",
        "shop",
        "--environment",
        "production",
        "--fail-policy",
        "closed",
    ]
    lock = build_cli_argv(parse_inputs(_raw(mode="lock", owner="bob", lock_ttl="60")))
    assert lock == [
        "lock",
        "acquire",
        "--service",
        "shop",
        "--environment",
        "production",
        "--who",
        "bob",
        "--wait",
        "0",
        "--ttl",
        "60",
    ]
    unlock = build_cli_argv(parse_inputs(_raw(mode="unlock", lock_id="l1")))
    assert unlock == ["lock", "release", "l1"]


def test_the_post_step_closes_only_what_is_still_open() -> None:
    inputs = parse_inputs(_raw(job_status="cancelled"), check_mode=False)
    assert post_cli_argv(inputs, "e1", "l1") == [
        "deploy",
        "finish",
        "--event-id",
        "e1",
        "--if-open",
        "--status",
        "failure",
        "--message",
        "Closed by the post step of the action (job status: cancelled).",
        "--fail-policy",
        "closed",
    ]
    assert post_cli_argv(inputs, "", "l1") == ["lock", "release", "l1", "--missing-ok"]


@pytest.mark.parametrize(
    ("status", "job_status", "closes_as"),
    [
        ("", "success", "success"),
        ("", "failure", "failure"),
        ("", "cancelled", "failure"),
        ("", "", "failure"),
        ("warning", "failure", "warning"),
    ],
)
def test_finish_status_follows_the_job_unless_given(
    status: str, job_status: str, closes_as: str
) -> None:
    inputs = parse_inputs(_raw(mode="finish", status=status, job_status=job_status))
    assert finish_status(inputs) == closes_as


def test_file_commands_round_trip_with_the_github_module() -> None:
    values = {"event-id": "e1", "summary": "two\nlines", "empty": "", "eq": "a=b"}
    assert parse_file_commands(github.to_output_text(values)) == values


def test_workflow_command_data_is_escaped() -> None:
    assert escape_command_data("50%\r\nnext") == "50%25%0D%0Anext"


def test_the_post_step_parses_without_the_main_steps_needs() -> None:
    with pytest.raises(ActionError, match="`command`"):
        parse_inputs(_raw(command="", mode="run"))
    assert parse_inputs(_raw(command="", service="", mode="run"), check_mode=False).mode == "run"
    with pytest.raises(ActionError, match="`comment`"):
        parse_inputs(_raw(comment="perhaps"), check_mode=False)


def test_upstream_spellings_mean_our_inputs() -> None:
    raw = dict.fromkeys(INPUT_NAMES, "")
    raw.update(host="tracker.example:8080", lock_enable="true", related_id="e1", status="success")
    merged = merge_upstream_inputs(raw, {"GITHUB_REPOSITORY": "acme/shop"})
    assert merged["server-url"] == "http://tracker.example:8080"
    assert merged["lock-enable"] == "true" and merged["event-id"] == "e1"
    # Finish: related_id names the event; the service (the repository's) is for recording
    # a finished deployment when nothing is open.
    assert merged["service"] == "shop" and merged["mode"] == "finish"
    assert merged["upstream"] == "true"
    assert "host" not in merged and "related_id" not in merged
    started = merge_upstream_inputs(
        {**raw, "status": "start", "related_id": ""}, {"GITHUB_REPOSITORY": "acme/shop"}
    )
    assert started["mode"] == "start" and started["service"] == "shop"
    assert parse_inputs(started).status == "", "start names the mode, not a finish status"
    assert merge_upstream_inputs({**raw, "status": "", "related_id": ""}, {})["mode"] == "start"
    assert merge_upstream_inputs({**raw, "command": "./d.sh"}, {})["mode"] == "run"
    # The upstream spelling of a token wins over our input's expression default.
    token = merge_upstream_inputs({**raw, "github-token": "ghs_default", "github_token": "p"}, {})
    assert token["github-token"] == "p"


def test_two_spellings_that_differ_fail_naming_both() -> None:
    raw = dict.fromkeys(INPUT_NAMES, "")
    raw.update({"server-url": "https://a.example", "tracker_host": "https://b.example"})
    with pytest.raises(ActionError, match="`tracker_host` and `server-url`") as caught:
        merge_upstream_inputs(raw, {})
    assert "Keep one of them" in caught.value.fix
    same = merge_upstream_inputs({**raw, "tracker_host": "https://a.example"}, {})
    assert same["server-url"] == "https://a.example"


def test_an_upstream_workflow_gets_upstream_defaults_unless_it_gives_ours() -> None:
    raw = dict.fromkeys(INPUT_NAMES, "")
    raw.update(tracker_host="https://t.example", status="start")
    env = {"GITHUB_REPOSITORY": "acme/shop"}
    upstream = parse_inputs(merge_upstream_inputs(raw, env))
    assert (upstream.priority, upstream.environment) == ("P4", "ENVIRONMENT_UNSPECIFIED")
    assert upstream.upstream and upstream.lock_enable
    assert "--no-lock" not in build_cli_argv(upstream)
    # The workflow's own values win; our core inputs make the workflow ours.
    given = parse_inputs(
        merge_upstream_inputs({**raw, "environment": "UAT", "priority": "P2"}, env)
    )
    assert (given.priority, given.environment) == ("P2", "UAT")
    ours = parse_inputs(merge_upstream_inputs({**raw, "mode": "start"}, env))
    assert (ours.priority, ours.environment, ours.upstream) == ("P3", "production", False)
    plain = parse_inputs(merge_upstream_inputs({**raw, "tracker_host": "", "service": "s"}, env))
    assert (plain.priority, plain.environment) == ("P3", "production")
    # lock_enable: false opens the deployment without its lock.
    unlocked = parse_inputs(merge_upstream_inputs({**raw, "lock_enable": "false"}, env))
    assert "--no-lock" in build_cli_argv(unlocked) and unlocked.doubts == ()
    # A final status without related_id: close the open deployment, or record one.
    done = parse_inputs(merge_upstream_inputs({**raw, "status": "success"}, env))
    argv = build_cli_argv(done)
    assert argv[argv.index("deploy") :][:4] == ["deploy", "finish", "--status", "success"]
    assert "--record-if-none" in argv and argv[argv.index("--priority") + 1] == "P4"
    assert argv[argv.index("--environment") + 1] == "ENVIRONMENT_UNSPECIFIED"
    linked = parse_inputs(
        merge_upstream_inputs({**raw, "status": "success", "related_id": "e"}, env)
    )
    assert "--record-if-none" not in build_cli_argv(linked)
