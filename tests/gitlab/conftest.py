"""Fixtures of the GitLab tests: gitlab-ci-local and a published copy of our templates."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.gitlab.gitlab_ci_local import (
    GITLAB_CI_LOCAL,
    HOST,
    GitLabWorkspace,
    git_environment,
    publish_upstream,
)

# Read at import, before the autouse fixture clears CI variables for each test.
RUNNING_IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def gitlab_ci_local() -> Path:
    """The gitlab-ci-local executable (installed by `make test` under .tools/)."""
    if not GITLAB_CI_LOCAL.exists():
        reason = f"gitlab-ci-local is not installed at {GITLAB_CI_LOCAL} (run make test)"
        if RUNNING_IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return GITLAB_CI_LOCAL


@pytest.fixture(scope="session")
def gitlab_workspace(
    gitlab_ci_local: Path, tmp_path_factory: pytest.TempPathFactory
) -> GitLabWorkspace:
    """A release of this checkout's templates, served as https://gitlab.com/tracker-ci/tracker-ci."""
    root = tmp_path_factory.mktemp("gitlab")
    upstream_root = root / "upstream"
    env = git_environment(root / "home", {f"file://{upstream_root}/": f"https://{HOST}:443/"})
    work_tree = publish_upstream(upstream_root, env=env)
    return GitLabWorkspace(root=root, env=env, upstream_work_tree=work_tree)
