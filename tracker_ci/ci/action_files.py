"""The files around the GitHub Action, written from action.yml (one source for each).

* ``install_entrypoints``: the executables action.yml's entrypoint and post-entrypoint
  name (the Dockerfile runs ``python -m tracker_ci.ci.github_action --install-entrypoints``);
* ``inputs_table``: the inputs and outputs tables of docs/github-action.md;
* ``composite_action``: composite/action.yml, the variant for any runner.

A test keeps each generated file equal to what these functions write.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tracker_ci.ci.action_inputs import UPSTREAM_ALIASES

__all__ = [
    "ENTRYPOINT_DIR",
    "ENTRYPOINT_NAMES",
    "composite_action",
    "inputs_table",
    "install_entrypoints",
    "run",
]

#: Where the Dockerfile installs the entrypoints, and their names (action.yml names them).
ENTRYPOINT_DIR = "/usr/local/bin"
ENTRYPOINT_NAMES = {"main": "tracker-action", "post": "tracker-action-post"}


def inputs_table(action_yml: str | Path = "action.yml") -> str:
    """docs/github-action.md's inputs and outputs tables, generated from action.yml."""
    import yaml

    meta = yaml.safe_load(Path(action_yml).read_text(encoding="utf-8"))

    def cell(text: Any) -> str:
        return " ".join(str(text).split()).replace("|", "\\|")

    lines = ["| input | default | description |", "|---|---|---|"]
    for name, spec in meta["inputs"].items():
        default = spec.get("default", "")
        default_cell = f"`{default}`" if default != "" else ""
        lines.append(f"| `{name}` | {default_cell} | {cell(spec.get('description', ''))} |")
    lines += ["", "| output | description |", "|---|---|"]
    for name, spec in meta["outputs"].items():
        lines.append(f"| `{name}` | {cell(spec.get('description', ''))} |")
    return "\n".join(lines) + "\n"


_COMPOSITE_HEAD = """\
# GENERATED from ../action.yml by `python -m tracker_ci.ci.github_action --write-composite`
# (a test keeps the two in step): the same inputs and outputs, for any runner (Linux,
# macOS, Windows) and where containers cannot run. It installs tracker-ci with the
# runner's Python into $RUNNER_TEMP; a composite action has no post step: close what a
# `mode: start` step opened with a last step `if: always()` and `mode: finish`.
name: tracker-ci deployment (composite, any runner)
description: >-
  The tracker-ci action without a container: installs tracker-ci with the runner's Python,
  then tracks the deployment exactly as the Docker action does.
author: tracker-ci
branding:
  icon: activity
  color: blue
"""

_COMPOSITE_STEPS = [
    {
        "name": "Install tracker-ci with the runner's Python",
        "shell": "bash",
        "run": (
            'venv="$RUNNER_TEMP/tracker-ci-venv"\n'
            'if [ ! -d "$venv" ]; then\n'
            '  python3 -m venv "$venv" 2>/dev/null || python -m venv "$venv"\n'
            "fi\n"
            'bin="$venv/bin"; [ -d "$venv/Scripts" ] && bin="$venv/Scripts"\n'
            '"$bin/python" -m pip install --quiet --disable-pip-version-check '
            '"${GITHUB_ACTION_PATH}/..[github]"\n'
            'echo "TRACKER_CI_PYTHON=$bin/python" >>"$GITHUB_ENV"\n'
        ),
    },
    {
        "name": "Track the deployment",
        "id": "tracker",
        "shell": "bash",
        "run": '"$TRACKER_CI_PYTHON" -m tracker_ci.ci.github_action main\n',
    },
]


def composite_action(action_yml: str | Path = "action.yml") -> str:
    """The composite variant of action.yml: same inputs and outputs, two bash steps."""
    import yaml

    meta = yaml.safe_load(Path(action_yml).read_text(encoding="utf-8"))
    run_step: dict[str, Any] = dict(_COMPOSITE_STEPS[1])
    # A composite step gets no INPUT_ variables: pass each input as the runner would;
    # two spellings of one variable (github-token, github_token) go as one, upstream's first.
    spellings: dict[str, list[str]] = {}
    for name in sorted(meta["inputs"], key=lambda name: name not in UPSTREAM_ALIASES):
        spellings.setdefault(f"INPUT_{name.upper().replace('-', '_')}", []).append(name)
    run_step["env"] = {
        variable: "${{ " + " || ".join(f"inputs.{name}" for name in names) + " }}"
        for variable, names in spellings.items()
    }
    body = {
        "inputs": meta["inputs"],
        "outputs": {
            name: {**spec, "value": f"${{{{ steps.tracker.outputs.{name} }}}}"}
            for name, spec in meta["outputs"].items()
        },
        "runs": {"using": "composite", "steps": [_COMPOSITE_STEPS[0], run_step]},
    }
    return _COMPOSITE_HEAD + yaml.safe_dump(body, sort_keys=False, width=100)


_WRAPPER = """#!{python}
# The GitHub Action's {stage} entrypoint (written by tracker_ci.ci.github_action).
import sys

from tracker_ci.ci.github_action import run

sys.exit(run([{stage!r}]))
"""


def install_entrypoints(directory: str | Path, python: str | None = None) -> list[Path]:
    """Write the executables that action.yml's entrypoint and post-entrypoint name."""
    paths = []
    for stage, name in ENTRYPOINT_NAMES.items():
        path = Path(directory) / name
        path.write_text(_WRAPPER.format(python=python or sys.executable, stage=stage))
        path.chmod(0o755)
        paths.append(path)
    return paths


def run(args: argparse.Namespace) -> int:
    """``--print-inputs-table``, ``--install-entrypoints`` or ``--write-composite``."""
    if args.print_inputs_table:
        sys.stdout.write(inputs_table(args.print_inputs_table))
    if args.install_entrypoints:
        for path in install_entrypoints(args.install_entrypoints):
            print(path)
    if args.write_composite:
        Path(args.write_composite).write_text(composite_action(), encoding="utf-8")
    return 0
