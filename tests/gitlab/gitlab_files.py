"""The GitLab files of the project and the checks they share: schema, spec header, snippets."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from tests.gitlab.gitlab_ci_local import ROOT

COMPONENT = ROOT / "templates" / "tracker-ci.yml"
INCLUDE_TEMPLATE = ROOT / "gitlab" / "tracker-ci.gitlab-ci.yml"
EXAMPLES = sorted((ROOT / "examples" / "gitlab").glob("*.yml"))
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"

# What GitLab accepts in `spec: inputs: NAME:` (https://docs.gitlab.com/ci/inputs/).
INPUT_KEYS = {"default", "description", "options", "regex", "type"}
INPUT_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
}


class GitLabLoader(yaml.SafeLoader):
    """YAML as GitLab reads it: `!reference [job, key]` is kept as a tagged list."""


def _reference(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    return {"!reference": loader.construct_sequence(node)}  # type: ignore[arg-type]


GitLabLoader.add_constructor("!reference", _reference)


def load_renderer() -> ModuleType:
    """gitlab/render_include_template.py, by path: `import gitlab` is python-gitlab."""
    path = ROOT / "gitlab" / "render_include_template.py"
    spec = importlib.util.spec_from_file_location("tracker_ci_gitlab_render", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_gitlab_yaml(text: str) -> Any:
    """Parse a GitLab CI document (anchors resolved, !reference kept)."""
    return yaml.load(text, Loader=GitLabLoader)  # noqa: S506 - a SafeLoader subclass


def split_component(text: str) -> tuple[str, str]:
    """A component file's `spec:` header and body (two YAML documents split at `---`)."""
    parts = re.split(r"^---[ \t]*$", text, maxsplit=1, flags=re.MULTILINE)
    assert len(parts) == 2, "a component is a spec: header, a '---' line and a body"
    return parts[0], parts[1]


def validate_with_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with GitLab's own schema (bundled: no network)."""
    return subprocess.run(
        [
            str(CHECK_JSONSCHEMA),
            "--builtin-schema",
            "vendor.gitlab-ci",
            "--data-transform",
            "gitlab-ci",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def spec_problems(header: Any) -> list[str]:
    """What GitLab would reject (or we disallow) in a `spec:` header; empty when fine.

    The vendor schema checks `type` and unknown keys under `spec:`, but not unknown keys of
    an input, nor that a default fits its type, options and regex.
    """
    if not isinstance(header, dict) or set(header) != {"spec"}:
        return ["the header must be a mapping with only `spec:`"]
    spec = header["spec"]
    if not isinstance(spec, dict) or not isinstance(spec.get("inputs"), dict):
        return ["`spec:` must hold an `inputs:` mapping"]
    problems = []
    for name, declared in spec["inputs"].items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            problems.append(f"{name}: not a valid input name")
            continue
        if not isinstance(declared, dict):
            problems.append(f"{name}: must be a mapping")
            continue
        unknown = set(declared) - INPUT_KEYS
        if unknown:
            problems.append(f"{name}: unknown keys {sorted(unknown)}")
        if not declared.get("description"):
            problems.append(f"{name}: no description")
        kind = declared.get("type", "string")
        if kind not in INPUT_TYPES:
            problems.append(f"{name}: unknown type {kind!r}")
            continue
        if "default" not in declared:
            problems.append(f"{name}: no default (every input of ours has one)")
            continue
        default = declared["default"]
        python_types = INPUT_TYPES[kind]
        if not isinstance(default, python_types) or (
            kind == "number" and isinstance(default, bool)
        ):
            problems.append(f"{name}: default {default!r} is not a {kind}")
        options = declared.get("options")
        if options is not None:
            if kind not in ("string", "number"):
                problems.append(f"{name}: options only apply to string and number inputs")
            elif default not in options:
                problems.append(f"{name}: default {default!r} is not one of {options}")
        regex = declared.get("regex")
        if regex is not None:
            if kind != "string":
                problems.append(f"{name}: regex only applies to string inputs")
            elif not re.search(regex, str(default)):
                problems.append(f"{name}: default {default!r} does not match {regex}")
    return problems


def script_snippets() -> dict[str, list[str]]:
    """The shell snippets of `.tracker-scripts` (from the rendered include template)."""
    document = load_gitlab_yaml(INCLUDE_TEMPLATE.read_text())
    return document[".tracker-scripts"]


def shell_script(*names: str) -> str:
    """Snippets joined as the runner joins a job's lines into one POSIX sh script."""
    snippets = script_snippets()
    return "set -e\n" + "\n".join(line for name in names for line in snippets[name]) + "\n"
