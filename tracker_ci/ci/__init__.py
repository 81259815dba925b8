"""CI integrations: GitHub Actions (``github``) and GitLab CI (``gitlab``).

Which CI system a run is in is told here from its variables alone, so that a command
imports the one module of the system it runs in, and neither in a person's shell.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["in_github", "in_gitlab"]


def in_github(environ: Mapping[str, str]) -> bool:
    """Whether these variables are GitHub Actions' (or name a GitHub repository)."""
    return environ.get("GITHUB_ACTIONS") == "true" or bool(environ.get("GITHUB_REPOSITORY"))


def in_gitlab(environ: Mapping[str, str]) -> bool:
    """Whether these variables are GitLab CI's (or name a GitLab project)."""
    return environ.get("GITLAB_CI") == "true" or bool(environ.get("CI_PROJECT_PATH"))
