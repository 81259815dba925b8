"""What a `tracker-ci deploy start` / `deploy finish` process imports and builds.

Each command runs as a fresh process (``python -m tracker_ci``) against the real bundled
server; at exit the process writes which modules it imported and which wire models it
built. No timings here: bench/cli_bench.py measures them.
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

ROOT = Path(__file__).resolve().parent.parent

#: Runs the CLI like the console script, then records sys.modules and the built models.
PROBE = """
import atexit, json, sys

def _record():
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
        json.dump({"modules": sorted(sys.modules), "built": built}, out)

atexit.register(_record)
from tracker_ci.__main__ import main
main(sys.argv[2:])
"""

#: Never imported by a deploy start or finish: the server's stack, tracing, the forges'
#: libraries and our GitHub/GitLab modules (no CI here), the other commands and the other
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

#: Answers of events and locks a deploy start or finish never reads: defined in modules
#: it imports, but never built.
NEVER_BUILT = [
    "ChangelogListResponse",
    "DeleteEventResponse",
    "LockResponse",
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


@pytest.mark.server
def test_deploy_start_and_finish_import_and_build_only_what_they_use(
    tmp_path: Path, sqlite_server: RunningServer
) -> None:
    service = f"imports-{tmp_path.name[-8:]}".replace("_", "-")
    key = ["-s", service, "-e", "production"]
    start = _probe(tmp_path, sqlite_server, "deploy", "start", *key)
    event_id = start["stdout"].strip()
    assert event_id, start
    finish = _probe(tmp_path, sqlite_server, "deploy", "finish", *key, "--status", "success")
    assert "status:   success" in finish["stdout"], finish["stdout"]

    for name, record in (("start", start), ("finish", finish)):
        modules = record["modules"]
        # What the deploy path needs is there (the test would pass vacuously otherwise).
        for needed in ("tracker_ci.deploy", "tracker_ci.wire.events", "tracker_ci.wire.locks"):
            assert needed in modules, (name, needed)
        unexpected = {never: _loaded(modules, never) for never in NEVER}
        assert not any(unexpected.values()), (name, unexpected)
        built = set(record["built"])
        assert "EventResponse" in built and "Event" in built, (name, sorted(built))
        assert not built & set(NEVER_BUILT), (name, sorted(built & set(NEVER_BUILT)))
    # An answer is built by the command that reads it: finish searches, start does not.
    assert "EventListResponse" not in start["built"]
    assert "EventListResponse" in finish["built"]


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
    assert after == "'tracker_ci.wire', 'tracker_ci.wire.base', 'tracker_ci.wire.locks', " + (
        "'tracker_ci.wire.vocabulary']"
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
    # The same classes on both sides: the client's and the server's modules name them.
    both = {
        name
        for name, where in seen.items()
        if any(w.startswith("tracker_ci.") for w in where)
        and any(w.startswith("tracker_server.") for w in where)
    }
    assert {"Event", "Lock"} <= both, seen


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
