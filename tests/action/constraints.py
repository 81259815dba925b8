"""The pins of the action's image: the installed versions of what the image installs.

``python -m tests.action.constraints > docker/constraints.txt`` writes them from the
project's environment, so the image runs the versions the test suite ran.
"""

from __future__ import annotations

import importlib.metadata as metadata

from packaging.requirements import Requirement

#: The extras the Dockerfile installs.
IMAGE_EXTRAS = ("github", "gitlab", "server", "postgres")


def _key(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def runtime_closure(
    project: str = "tracker-ci", extras: tuple[str, ...] = IMAGE_EXTRAS
) -> dict[str, str]:
    """Every distribution ``project[extras]`` needs here, by normalized name: its version."""
    found: dict[str, str] = {}
    pending: list[tuple[str, tuple[str, ...]]] = [(project, extras)]
    visited: set[tuple[str, tuple[str, ...]]] = set()
    while pending:
        name, wanted = pending.pop()
        if (_key(name), wanted) in visited:
            continue
        visited.add((_key(name), wanted))
        dist = metadata.distribution(name)
        found[_key(name)] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in ("", *wanted)):
                pending.append((requirement.name, tuple(sorted(requirement.extras))))
    found.pop(_key(project))
    return found


def constraints_text() -> str:
    """The constraints file, one ``name==version`` a line."""
    lines = [f"{name}=={version}" for name, version in sorted(runtime_closure().items())]
    header = "# Written by `python -m tests.action.constraints`: the versions the tests ran.\n"
    return header + "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(constraints_text(), end="")
