"""The pins of the images: the installed versions of what each image installs.

``python -m tests.action.constraints`` writes ``docker/requirements-action.txt`` (the
GitHub Action: the client, PyGithub and OpenTelemetry) and ``docker/requirements-server.txt``
(the server and CLI image: every extra) from the project's environment, so each image runs the
versions the test suite ran. The Dockerfile installs them in a layer before the code.
"""

from __future__ import annotations

import importlib.metadata as metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
#: The extras of each image (the Dockerfile's targets).
IMAGE_EXTRAS = {
    "action": ("github", "otel"),
    "server": ("github", "gitlab", "postgres", "server"),
}


def _key(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def runtime_closure(project: str = "tracker-ci", extras: tuple[str, ...] = ()) -> dict[str, str]:
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


def requirements_text(image: str) -> str:
    """The requirements file of one image, one ``name==version`` a line."""
    closure = runtime_closure(extras=IMAGE_EXTRAS[image])
    lines = [f"{name}=={version}" for name, version in sorted(closure.items())]
    header = (
        f"# The {image} image's dependencies (tracker-ci[{','.join(IMAGE_EXTRAS[image])}]),\n"
        "# written by `python -m tests.action.constraints`: the versions the tests ran.\n"
    )
    return header + "\n".join(lines) + "\n"


def requirements_path(image: str) -> Path:
    return ROOT / "docker" / f"requirements-{image}.txt"


if __name__ == "__main__":
    for image in IMAGE_EXTRAS:
        requirements_path(image).write_text(requirements_text(image), encoding="utf-8")
        print(requirements_path(image))
