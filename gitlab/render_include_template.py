"""Render gitlab/tracker-ci.gitlab-ci.yml from the CI/CD component templates/tracker-ci.yml.

The component is the one source of the job logic. The include template is the component's
body with every ``$[[ inputs.NAME ]]`` replaced by that input's default, which is what GitLab
itself does when a file with a ``spec:`` header is included without inputs. It exists for
GitLab versions and tools that do not know ``spec: inputs`` and for people who configure
with variables only.

    python gitlab/render_include_template.py           # rewrite the include template
    python gitlab/render_include_template.py --check   # exit 1 when it is out of date

Needs PyYAML (the dev extra).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPONENT = ROOT / "templates" / "tracker-ci.yml"
INCLUDE_TEMPLATE = ROOT / "gitlab" / "tracker-ci.gitlab-ci.yml"

# GitLab's interpolation block; input names are letters, digits, '-' and '_'.
INTERPOLATION = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")
DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)

HEADER = """\
# GENERATED from templates/tracker-ci.yml by gitlab/render_include_template.py: do not edit.
# The component with every input at its default; configure it with TRACKER_* variables:
#
#   include:
#     - project: tracker-ci/tracker-ci
#       ref: 0.1.0
#       file: /gitlab/tracker-ci.gitlab-ci.yml
#
"""


def split_component(text: str) -> tuple[str, str]:
    """The ``spec:`` header and the body of a component file (split at its ``---`` line)."""
    parts = DOCUMENT_SEPARATOR.split(text, maxsplit=1)
    if len(parts) != 2:
        raise ValueError("a component file is a spec: header, a '---' line, then the body")
    return parts[0], parts[1].lstrip("\n")


def input_defaults(header: str) -> dict[str, Any]:
    """Each input of the ``spec:`` header with its default (all of ours have one)."""
    spec = yaml.safe_load(header)
    inputs = spec["spec"]["inputs"]
    missing = [name for name, spec in inputs.items() if "default" not in (spec or {})]
    if missing:
        raise ValueError(f"inputs without a default cannot be rendered: {', '.join(missing)}")
    return {name: spec["default"] for name, spec in inputs.items()}


def format_default(value: Any) -> str:
    """A default as GitLab writes it into the text: booleans lower case, numbers as is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(component_text: str) -> str:
    """The include template for a component's text."""
    header, body = split_component(component_text)
    defaults = input_defaults(header)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in defaults:
            raise ValueError(f"$[[ inputs.{name} ]] names no input of the spec: header")
        return format_default(defaults[name])

    return HEADER + INTERPOLATION.sub(substitute, body)


def main(argv: list[str] | None = None) -> int:
    """Write the include template, or with --check say whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    rendered = render(COMPONENT.read_text(encoding="utf-8"))
    if args.check:
        current = INCLUDE_TEMPLATE.read_text(encoding="utf-8") if INCLUDE_TEMPLATE.exists() else ""
        if current != rendered:
            print(
                f"{INCLUDE_TEMPLATE.relative_to(ROOT)} is out of date: "
                "run python gitlab/render_include_template.py",
                file=sys.stderr,
            )
            return 1
        return 0
    INCLUDE_TEMPLATE.write_text(rendered, encoding="utf-8")
    print(f"wrote {INCLUDE_TEMPLATE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
