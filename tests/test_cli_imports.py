"""What a `tracker-ci deploy start` / `deploy finish` / `lock release` process imports and
builds.

Each command runs as a fresh process (``python -m tracker_ci``) against the real bundled
server; at exit the process writes which modules it imported (and which it had when the
last answer arrived) and which wire models it built. No timings here:
bench/cli_bench.py measures them.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from tests.support.servers import RunningServer
from tracker_ci import models
from tracker_ci.client import TrackerClient

ROOT = Path(__file__).resolve().parent.parent

#: Runs the CLI like the console script, then records sys.modules and the built models.
PROBE = """
import atexit, json, sys

at_answer = []

def _record():
    modules = sorted(sys.modules)
    built = []
    if "pydantic.main" in sys.modules:  # else no model was ever made
        from pydantic import BaseModel
        built = sorted(
            name
            for module_name, module in list(sys.modules.items())
            if module_name.startswith("tracker_ci.wire.")
            for name, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, BaseModel)
            and value.__module__ == module_name and value.__pydantic_complete__
        )
    with open(sys.argv[1], "w") as out:
        json.dump({"modules": modules, "at_answer": at_answer, "built": built}, out)

atexit.register(_record)
import httpx
_send = httpx.Client.send

def _send_and_note(self, *args, **kwargs):
    response = _send(self, *args, **kwargs)
    at_answer[:] = sorted(sys.modules)  # what was imported when this answer arrived
    return response

httpx.Client.send = _send_and_note
from tracker_ci.__main__ import main
main(sys.argv[2:])
"""

#: Never imported by a deploy start or finish: the server's stack, tracing, the forges'
#: libraries and our GitHub/GitLab modules (no CI here), the other commands and the
#: resources' wire models.
NEVER = [
    "fastapi",
    "starlette",
    "sqlalchemy",
    "uvicorn",
    "tracker_server",
    "opentelemetry",
    "github",
    "gitlab",
    "tracker_ci.ci.github",
    "tracker_ci.ci.gitlab",
    "tracker_ci.commands.event",
    "tracker_ci.commands.lock",
    "tracker_ci.commands.token",
    "tracker_ci.commands.webhook",
    "tracker_ci.commands.freeze",
    "tracker_ci.commands.doctor",
    "tracker_ci.commands.dora",
    "tracker_ci.wire.tokens",
    "tracker_ci.wire.webhooks",
    "tracker_ci.wire.freezes",
    "tracker_ci.wire.insights",
    "tracker_ci.wire.stats",
    "tracker_ci.wire.queue",
    "tracker_ci.wire.batch",
]


def _probe(tmp_path: Path, server: RunningServer, *args: str) -> dict[str, Any]:
    record = tmp_path / "record.json"
    env = {
        "TRACKER_URL": server.url,
        "TRACKER_RETRIES": "0",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(record), *args],
        cwd=tmp_path,
        env={**env, **_python_path()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(record.read_text())
    result["stdout"] = done.stdout
    return result


def _python_path() -> dict[str, str]:
    # The subprocess imports tracker_ci the way this test run does (a PYTHONPATH given to
    # pytest first, then the working tree).
    import os

    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join([*paths, str(ROOT)])}


def _loaded(modules: list[str], name: str) -> list[str]:
    return [m for m in modules if m == name or m.startswith(name + ".")]


def _after_answer(record: dict[str, Any]) -> list[str]:
    """The modules a command imported after its last answer arrived."""
    assert record["at_answer"], "no answer arrived"
    return sorted(set(record["modules"]) - set(record["at_answer"]))


@pytest.mark.server
@pytest.mark.parametrize("by", ["id", "key"])
def test_lock_release_imports_no_pydantic_and_nothing_after_its_answer(
    tmp_path: Path, sqlite_server: RunningServer, service: str, by: str
) -> None:
    with TrackerClient(base_url=sqlite_server.url, retries=0) as client:
        lock = client.acquire_lock(service=service, environment="production", who="me")
    if by == "id":
        args, what = [lock.id], f"lock {lock.id}"
    else:  # as a pipeline does: its key and the lock it took
        args = ["-s", service, "-e", "production", "--who", "me", "--held-lock-id", lock.id]
        what = f"the deployment lock of {service} in production"
    released = _probe(tmp_path, sqlite_server, "lock", "release", *args)
    assert released["stdout"].strip() == f"released {what}"
    modules = released["modules"]
    assert "tracker_ci.client" in modules and "tracker_ci.wire.light" in modules
    # Body and answer are plain records: no model, so neither pydantic nor its models.
    assert _loaded(modules, "pydantic") == [] and _loaded(modules, "pydantic_core") == []
    assert [m for m in modules if m.startswith("tracker_ci.wire.")] == [
        "tracker_ci.wire.light",
        "tracker_ci.wire.vocabulary",
    ]
    assert released["built"] == []
    assert _after_answer(released) == []


@pytest.mark.server
def test_uncontended_deploy_start_and_finish_load_no_pydantic_and_nothing_after_answers(
    tmp_path: Path, sqlite_server: RunningServer
) -> None:
    service = f"imports-{tmp_path.name[-8:]}".replace("_", "-")
    key = ["-s", service, "-e", "production"]
    start = _probe(tmp_path, sqlite_server, "deploy", "start", *key)
    event_id = start["stdout"].strip()
    assert event_id, start
    finish = _probe(tmp_path, sqlite_server, "deploy", "finish", *key, "--status", "success")
    assert "status:   success" in finish["stdout"], finish["stdout"]
    with TrackerClient(base_url=sqlite_server.url, retries=0) as client:
        event = client.get_event(event_id)
        assert event.attributes.status.value == "success"  # the finish found and closed it
        assert client.locks_for_event(event_id) == []

    for name, record in (("start", start), ("finish", finish)):
        modules = record["modules"]
        # What the deploy path needs is there (the test would pass vacuously otherwise).
        for needed in ("tracker_ci.deploy", "tracker_ci.client", "tracker_ci.wire.light"):
            assert needed in modules, (name, needed)
        unexpected = {never: _loaded(modules, never) for never in NEVER}
        assert not any(unexpected.values()), (name, unexpected)
        # Bodies are plain dicts and answers plain records: no pydantic, no model, and no
        # waiter (it is imported only when the lock is held).
        assert _loaded(modules, "pydantic") == [], name
        assert _loaded(modules, "pydantic_core") == [], name
        assert "tracker_ci.waiter" not in modules, name
        assert [m for m in modules if m.startswith("tracker_ci.wire.")] == [
            "tracker_ci.wire.light",
            "tracker_ci.wire.vocabulary",
        ], name
        assert record["built"] == [], name
        # Everything the command needs is imported before its last answer arrives.
        assert _after_answer(record) == [], (name, _after_answer(record))


@pytest.mark.unit
def test_the_models_face_imports_no_pydantic_until_a_model_is_used(tmp_path: Path) -> None:
    code = (
        "import sys, tracker_ci.models as m\n"
        "assert m.Environment.parse('staging').value == 'staging'\n"
        "before = sorted(k for k in sys.modules if k.startswith(('pydantic', 'tracker_ci.wire')))\n"
        "m.Lock\n"
        "after = sorted(k for k in sys.modules if k.startswith('tracker_ci.wire'))\n"
        "print(before, after)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", **_python_path()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.strip().split("] [")
    assert before == "['tracker_ci.wire', 'tracker_ci.wire.vocabulary'"
    assert after == "'tracker_ci.wire', 'tracker_ci.wire.base', 'tracker_ci.wire.light', " + (
        "'tracker_ci.wire.locks', 'tracker_ci.wire.vocabulary']"
    )


#: Modules of the client, the CLI and the server that use wire models.
SHARING = [
    "tracker_ci.client",
    "tracker_ci.deploy",
    "tracker_ci.waiter",
    "tracker_ci.changes",
    "tracker_server.writes",
    "tracker_server.alerts",
    "tracker_server.dora",
    "tracker_server.errors",
    "tracker_server.routes.events",
    "tracker_server.routes.locks",
    "tracker_server.routes.queue",
    "tracker_server.routes.freezes",
    "tracker_server.routes.tokens",
    "tracker_server.routes.webhooks",
    "tracker_server.routes.insights",
    "tracker_server.routes.ops",
    "tracker_server.store.events",
    "tracker_server.store.freezes",
]


@pytest.mark.unit
def test_client_and_server_share_the_very_same_model_classes() -> None:
    seen: dict[str, set[str]] = {}
    for module_name in SHARING:
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__.startswith("tracker_ci.wire."):
                assert getattr(models, name) is value, (module_name, name)
                seen.setdefault(name, set()).add(module_name)
    # The same classes on both sides: the server's modules name them, and the client's
    # reach them through tracker_ci.models (the deploy path reads plain records,
    # tracker_ci.wire.light, whose table tests/client/test_light_answers.py derives from
    # these very classes).
    on_server = {
        name for name, where in seen.items() if any(w.startswith("tracker_server.") for w in where)
    }
    assert {"Event", "Lock"} <= on_server, seen
    client_module = importlib.import_module("tracker_ci.client")
    assert client_module.models is models
    assert client_module.models.EventResponse is models.EventResponse


@pytest.mark.unit
def test_each_subcommand_is_listed_with_its_own_help_line_without_importing_it() -> None:
    from tracker_ci.cli import COMMANDS, cli

    for name, (target, line) in COMMANDS.items():
        module_name, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        assert command.name == name
        assert command.get_short_help_str(10_000) == line, name
    assert set(cli.commands) == set(COMMANDS)


@pytest.mark.unit
def test_help_and_version_import_no_subcommand(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from tracker_ci.__main__ import main\n"
        "import atexit\n"
        "atexit.register(lambda: print(sorted(k for k in sys.modules "
        "if k.startswith(('tracker_ci.commands.', 'pydantic', 'httpx')) "
        "and k != 'tracker_ci.commands.common')))\n"
        "main(sys.argv[1:])\n"
    )
    for args in (["--help"], ["--version"]):
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", **_python_path()},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "[]", (args, done.stdout)
