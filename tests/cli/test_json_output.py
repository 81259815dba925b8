"""`-o json` on every command: one JSON document on stdout; errors one JSON object on stderr.

Every leaf command of `tracker-ci` (but `server`, which serves until stopped) is run with
`-o json` against the real bundled server, and its stdout parsed as ONE JSON document.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import pytest

from tests.cli.conftest import ADMIN_TOKEN, Invoke, unique
from tests.support.servers import RunningServer
from tracker_ci.cli import cli
from tracker_ci.exit_codes import EXIT_CODES
from tracker_ci.output import error_document, wants_json

pytestmark = pytest.mark.server

#: Commands with no one-shot JSON answer: `server` runs until stopped.
NOT_ONE_SHOT = {"server"}


def leaf_commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> Iterator[str]:
    """Every runnable command path: `deploy run`, `lock wait`, ..."""
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*path, name))
        elif name not in NOT_ONE_SHOT:
            yield " ".join((*path, name))


def parse_one(stdout: str) -> Any:
    """stdout as exactly one JSON document (json.loads refuses trailing text)."""
    return json.loads(stdout)


def test_every_command_prints_one_json_document(
    invoke: Invoke, auth_server: RunningServer, tmp_path: Path
) -> None:
    service = unique("json")
    key = ["-s", service, "-e", "UAT"]
    seen: dict[str, Any] = {}

    def run(command: str, *args: str, code: int = 0, on: Invoke = invoke, **kwargs: Any) -> Any:
        result = on("-o", "json", *command.split(), *args, **kwargs)
        assert result.exit_code == code, f"{command}: {result.output}"
        try:
            document = parse_one(result.stdout)
        except json.JSONDecodeError as exc:
            pytest.fail(f"`{command} -o json` printed no single JSON document ({exc}):\n{result}")
        seen[command] = document
        return document

    run("config show")
    run("doctor", *key)
    started = run("deploy start", *key, "--title", "json start")
    run("deploy finish", "--event-id", started["eventId"], "--status", "success")
    ran = run("deploy run", *key, "--", "sh", "-c", "echo to-stderr-under-json; exit 3", code=3)
    assert (ran["status"], ran["exitCode"]) == ("failure", 3) and ran["fence"] >= 1
    assert ran["duration"] is not None and ran["eventId"]
    run("dora", *key)

    created = run("event create", "--title", "json event", *key, "--type", "incident")
    event_id = created["metadata"]["id"]
    run("event get", event_id)
    run("event update", event_id, "--status", "close")
    run("event list")
    run("event today")
    run("event search", "--service", service)
    run("event changelog", event_id)
    for decision, status in (("approve", "open"), ("reject", "failure")):
        waiting = run("event create", "--title", "gate", *key, "--status", "waiting_approval")
        decided = run(f"event {decision}", waiting["metadata"]["id"], "--comment", "json")
        assert decided["attributes"]["status"] == status
    lines = tmp_path / "events.jsonl"
    imported = {
        "title": "imported",
        "attributes": {"service": service, "type": "deployment", "status": "success"},
        "metadata": {"createdAt": "2026-01-02T03:04:05Z"},
    }
    lines.write_text(json.dumps(imported) + "\n")
    run("event import", str(lines))
    run("event delete", event_id)

    taken = run("lock acquire", *key, "--ttl", "60")
    run("lock renew", taken["id"], "--ttl", "120")
    run("lock status", *key, code=3)
    run("lock check", *key, "--fence", str(taken["fence"]))
    run("lock list")
    run("lock release", taken["id"])
    run("lock wait", *key)
    run("lock policy")

    window = run("freeze add", "json freeze", "-s", service, "--for", "1h", "--soft")
    run("freeze list")
    run("freeze remove", window["id"])

    hook = run("webhook add", "http://127.0.0.1:9/hook", "--event", "deployment.finished")
    run("webhook list")
    run("webhook test", hook["id"])
    run("webhook secret rotate", hook["id"], "--secret", "new-secret", "--keep-previous", "0")
    run("webhook deliveries")
    run("webhook remove", hook["id"])

    entry = f"{service}-lib"
    run("catalog set", entry, "--owner", "team", "--version", "1.0.0")
    run("catalog get", entry)
    run("catalog list")
    run("catalog compliance")
    info = tmp_path / "catalog-info.yaml"
    info.write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\n"
        f"metadata: {{name: {service}-svc}}\nspec: {{type: service, owner: team}}\n"
    )
    run("catalog import", str(info), "--version", "1.0.0")
    run("catalog delete", entry)

    # Tokens: a server with auth on, and its admin token.
    admin = {"on": Invoke(auth_server.url, tmp_path), "env": {"TRACKER_TOKEN": ADMIN_TOKEN}}
    made = run("token create", "--name", unique("json-token"), **admin)
    run("token list", **admin)
    run("token revoke", made.get("id") or made["token"]["id"], **admin)

    missing = sorted(set(leaf_commands()) - set(seen))
    assert missing == [], f"commands whose -o json this test never parsed: {missing}"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["lock", "release", "00000000-0000-4000-8000-000000000000"], 6),
        (["deploy", "start", "-s", "x", "-e", "UAT", "--wait", "abc"], 2),
        (["deploy", "finish", "--status", "great", "--event-id", "e"], 2),
        (["--url", "http://127.0.0.1:9", "lock", "list"], 4),
        (["no-such-command"], 2),
    ],
)
def test_errors_under_json_are_one_json_object_on_stderr(
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
) -> None:
    """A tracking error, a usage error and an unknown command alike, through the program's
    own entry point (click's test runner handles usage errors itself)."""
    from tracker_ci.__main__ import main

    for name, value in {"TRACKER_URL": invoke.url, "TRACKER_RETRIES": "0"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as done:
        main([*args, "-o", "json"])
    out = capsys.readouterr()
    assert done.value.code == code, out
    assert out.out == ""
    document = json.loads(out.err)
    assert document["exitCode"] == code
    assert document["error"] == EXIT_CODES[code].split(":", 1)[0]
    assert document["message"] and "\n" not in out.err.strip()


def test_a_held_lock_under_json_names_the_holder(invoke: Invoke) -> None:
    service = unique("json-held")
    held = httpx.post(
        f"{invoke.url}/api/v1alpha1/lock",
        json={"service": service, "environment": "UAT", "resource": "deployment", "who": "alice"},
        timeout=10,
    )
    assert held.status_code == 200, held.text
    result = invoke("-o", "json", "deploy", "run", "-s", service, "-e", "UAT", "--", "true")
    assert result.exit_code == 3, result.output
    document = json.loads(result.stderr.strip().splitlines()[-1])
    assert document["error"] == "lock held" and "alice" in document["message"]


@pytest.mark.unit
def test_the_error_document_shape() -> None:
    assert error_document("boom", 4) == {
        "error": "unreachable",
        "message": "boom",
        "exitCode": 4,
    }
    assert error_document("x", 99)["error"] == "error"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["-o", "json", "lock", "list"], {}, True),
        (["lock", "list", "--output=json"], {}, True),
        (["-ojson"], {}, True),
        (["lock", "list"], {"TRACKER_OUTPUT": "json"}, True),
        (["-o", "json", "-o", "text"], {}, False),
        (["deploy", "run", "--", "tool", "-o", "json"], {}, False),
        (["lock", "list"], {}, False),
    ],
)
def test_wants_json_reads_the_line_before_click(
    args: list[str], env: dict[str, str], expected: bool
) -> None:
    assert wants_json(args, env) is expected
