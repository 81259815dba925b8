"""Messages that name the real cause and the real fix (issue 22, item 4), each asserted."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.cli.conftest import ADMIN_TOKEN, Invoke, unique
from tests.support.servers import RunningServer
from tracker_ci.commands.common import LiveWaitLine, describe_eta
from tracker_ci.output import warn

TRACKER_CI = str(Path(sys.executable).parent / "tracker-ci")


def _token(server: RunningServer, tmp_path: Path, *flags: str) -> str:
    made = Invoke(server.url, tmp_path)(
        "-o", "json", "token", "create", "--name", unique("msg"), *flags,
        env={"TRACKER_TOKEN": ADMIN_TOKEN},
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    return json.loads(made.stdout)["secret"]


@pytest.mark.server
def test_a_freeze_refused_to_a_non_admin_token_says_an_admin_token_is_needed(
    auth_server: RunningServer, tmp_path: Path
) -> None:
    token = _token(auth_server, tmp_path)
    result = Invoke(auth_server.url, tmp_path)(
        "freeze", "add", "release", "--for", "1h", env={"TRACKER_TOKEN": token}
    )
    assert result.exit_code == 5, result.output
    assert "freeze windows are managed with an admin token" in result.stderr
    assert "it cannot manage freeze windows" in result.stderr  # the server's own words
    assert "`tracker-ci token create --admin`" in result.stderr
    assert "manage tokens" not in result.stderr


@pytest.mark.server
def test_doctor_with_a_bad_token_says_to_fix_the_token_not_to_read_logs(
    auth_server: RunningServer, tmp_path: Path
) -> None:
    result = Invoke(auth_server.url, tmp_path)(
        "-o", "json", "doctor", "-s", "api", "-e", "UAT", env={"TRACKER_TOKEN": "trk_bad"}
    )
    assert result.exit_code == 5, result.output
    failed = [check for check in json.loads(result.stdout) if check["verdict"] == "fail"]
    assert [check["check"] for check in failed] == ["token", "lock", "freezes"]
    for check in failed:
        assert check["fix"].startswith("set TRACKER_TOKEN (or --token) to a valid token"), check
    assert "server's log" not in result.stdout


@pytest.mark.server
def test_event_import_from_a_source_that_is_down_names_the_source(
    invoke: Invoke, tmp_path: Path
) -> None:
    result = invoke("event", "import", "--from", "http://127.0.0.1:9")
    assert result.exit_code == 4, result.output
    assert "cannot connect to Tracker at http://127.0.0.1:9" in result.stderr
    assert "that is the source server given with --from: check --from" in result.stderr
    assert "Check TRACKER_URL" not in result.stderr


def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from tracker_ci.__main__ import main

    with pytest.raises(SystemExit) as done:
        main(args)
    return int(done.value.code or 0), capsys.readouterr().err


@pytest.mark.unit
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["deploy", "start", "-s", "api", "--wait", "abc"],
            "error: Invalid value for '--wait': 'abc' is not a number of seconds: give one "
            "like 300 (0 fails at once) (see 'tracker-ci deploy start --help')",
        ),
        (
            ["lock", "acquire", "-s", "api", "--ttl", "1.5"],
            "error: Invalid value for '--ttl': '1.5' is not a whole number of seconds: give "
            "one like 300 (0: the lock never expires) (see 'tracker-ci lock acquire --help')",
        ),
        (
            ["deploy", "run", "-s", "api", "--wait", "-1", "--", "true"],
            "error: Invalid value for '--wait': '-1' is not a number of seconds",
        ),
    ],
)
def test_a_bad_number_of_seconds_says_what_is_wanted(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    code, err = _main(args, capsys)
    assert code == 2
    assert err.startswith(expected) and len(err.strip().splitlines()) == 1, err
    assert "float range" not in err


@pytest.mark.server
@pytest.mark.parametrize("url", ["mys://x", "mysql://db/tracker", "not a url"])
def test_server_with_an_unsupported_database_url_is_a_one_line_usage_error(
    tmp_path: Path, url: str
) -> None:
    result = subprocess.run(
        [TRACKER_CI, "server", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: Invalid value for '--database-url': "), line
    assert line.endswith("(see 'tracker-ci server --help')"), line
    assert "tracker-server" not in line and "Error:" not in line
    if "://" in url:
        assert "use sqlite:///PATH or postgresql://" in line


@pytest.mark.server
def test_server_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                TRACKER_CI,
                "server",
                "--port",
                str(port),
                "--database-url",
                f"sqlite:///{tmp_path / 'x.db'}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"tracker-ci server: cannot listen on 127.0.0.1:{port}: the address is already in use "
        "(another server runs there?); choose another --port, or stop what listens on it"
    ]
    assert result.stdout == ""


@pytest.mark.unit
def test_an_eta_is_unknown_rather_than_zero() -> None:
    assert describe_eta(None) == "unknown"  # no finished deploy to learn from
    assert describe_eta(0.0) == "unknown"  # the holder already took longer than usual
    assert describe_eta(65.0) == "~1m05s"
    assert describe_eta(0.0, "granted") == "now"
    assert describe_eta(90.0, overran=True) == "over 1m30s"  # behind a holder past its usual
    line = LiveWaitLine("api/production", 60)
    since = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    holder = SimpleNamespace(
        who="alice", created_at=since, event_id="", position=1, waiting=2, state="waiting"
    )
    assert line.place(SimpleNamespace(**vars(holder), expected_wait_seconds=0.0)).endswith(
        "position 1 of 2, ETA unknown"
    )
    assert line.place(SimpleNamespace(**vars(holder), expected_wait_seconds=125.0)).endswith(
        "position 1 of 2, ETA ~2m05s"
    )


@pytest.mark.unit
def test_the_live_wait_line_is_cleared_before_the_next_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = LiveWaitLine("api/production", 60)
    line.interactive = True  # as on a terminal
    holder = SimpleNamespace(who="alice", created_at=None, event_id="", position=0)
    line(holder, 1.0)
    warn("the server sent a warning")
    line(holder, 2.0)
    line.done()
    err = capsys.readouterr().err
    shown = "\r\x1b[Kwaiting for lock on api/production: held by alice"
    assert err.startswith(shown)
    # The line is erased before the warning, which then starts on a clean line.
    first, rest = err.split("warning: the server sent a warning\n")
    assert first.endswith("s left\r\x1b[K"), repr(first)
    assert rest.startswith(shown) and rest.endswith("s left\r\x1b[K"), repr(rest)
