"""The CI run a command is part of: owner, title suffix, source, and its pull/merge request."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from tracker_ci.ci import in_github, in_gitlab
from tracker_ci.output import warn

if TYPE_CHECKING:  # imported when a run is in that CI system (or a PR URL is checked)
    from tracker_ci.ci import github, gitlab

__all__ = ["RunContext", "check_pr_url", "default_title", "detect_run", "find_pr_url"]

# The package is installed from a clone or a git URL, not from PyPI: say so, never
# `pip install tracker-ci[...]`, which would fetch whatever PyPI holds under that name.
INSTALL_CI_EXTRAS = (
    "install the [github,gitlab] extras, e.g. pip install '.[github,gitlab]' in a clone"
)


@dataclass(frozen=True)
class RunContext:
    """What tracker-ci takes from the CI system it runs in (empty outside CI)."""

    provider: str = ""
    owner: str = ""
    revision: str = ""
    source: str = "tracker-ci"
    run_url: str = ""
    github: github.GitHubContext | None = None
    gitlab: gitlab.GitLabContext | None = None


def detect_run(environ: Mapping[str, str] | None = None) -> RunContext:
    """GitHub Actions, GitLab CI, or a person's shell."""
    env = os.environ if environ is None else environ
    local_user = env.get("USER") or env.get("USERNAME") or env.get("LOGNAME") or _login()
    gh = _github(env)
    if gh is not None:
        return RunContext(
            provider="github",
            owner=gh.actor or local_user,
            revision=gh.short_sha or gh.ref_name,
            source="github-actions",
            run_url=gh.run_url,
            github=gh,
        )
    gl = _gitlab(env)
    if gl is not None:
        return RunContext(
            provider="gitlab",
            owner=gl.user_login or local_user,
            revision=gl.short_sha or gl.ref_name,
            source="gitlab-ci",
            run_url=gl.job_url or gl.pipeline_url,
            gitlab=gl,
        )
    return RunContext(owner=local_user)


def _github(env: Mapping[str, str]) -> github.GitHubContext | None:
    if not in_github(env):
        return None
    from tracker_ci.ci import github

    return github.detect(env)


def _gitlab(env: Mapping[str, str]) -> gitlab.GitLabContext | None:
    if not in_gitlab(env):
        return None
    from tracker_ci.ci import gitlab

    return gitlab.detect(env)


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry (some containers)
        return ""


def default_title(service: str, environment: str, run: RunContext) -> str:
    """``Deploy api to production (1a2b3c4)``."""
    title = f"Deploy {service} to {environment}"
    return f"{title} ({run.revision})" if run.revision else title


def check_pr_url(url: str | None) -> str | None:
    """Accept a GitHub pull request or GitLab merge request URL; anything else is exit 2."""
    if not url:
        return None
    from tracker_ci.ci import github, gitlab

    url = url.strip()
    if github.parse_pull_request_url(url) or gitlab.parse_merge_request_url(url):
        return url
    raise click.BadParameter(
        f"{url!r} is neither a GitHub pull request (https://github.com/OWNER/REPO/pull/N) "
        "nor a GitLab merge request (https://gitlab.example/GROUP/PROJECT/-/merge_requests/N)",
        param_hint="'--pr-url'",
    )


def find_pr_url(
    run: RunContext,
    *,
    github_token: str | None,
    gitlab_token: str | None,
    timeout: float,
) -> str | None:
    """The run's PR/MR from the CI context; a failed API lookup is a warning, never an error."""
    try:
        if run.github is not None:
            from tracker_ci.ci import github

            return github.find_pull_request_url(run.github, token=github_token, timeout=timeout)
        if run.gitlab is not None:
            from tracker_ci.ci import gitlab

            return gitlab.find_merge_request_url(run.gitlab, token=gitlab_token, timeout=timeout)
    except ImportError as exc:
        warn(
            f"cannot look up the pull/merge request: {exc.name} is not installed "
            f"({INSTALL_CI_EXTRAS})"
        )
    except Exception as exc:  # noqa: BLE001 - PyGithub/python-gitlab raise many kinds
        what = "pull request" if run.github is not None else "merge request"
        warn(f"cannot look up the {what} of this commit: {_describe(exc)}")
    return None


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status", None) or getattr(exc, "response_code", None)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"HTTP {status}: {text}" if status else text


def comment_body(service: str, environment: str, status: str, details: list[str]) -> str:
    """The markdown of our PR/MR comment for one (service, environment)."""
    icons = {"start": "🚀", "success": "✅", "failure": "❌"}
    head = f"{icons.get(status, 'ℹ️')} **{service}** → **{environment}**: {status}"
    return "\n".join([head, "", *[f"- {line}" for line in details if line]])


def post_comment(
    run: RunContext,
    pr_url: str,
    *,
    service: str,
    environment: str,
    body: str,
    github_token: str | None,
    gitlab_token: str | None,
    timeout: float,
) -> None:
    """Create or update our one comment on the PR/MR; a failure is a warning."""
    from tracker_ci.ci import github, gitlab

    try:
        if github.parse_pull_request_url(pr_url):
            if not github_token:
                warn("--comment needs --github-token (or GITHUB_TOKEN); no comment written")
                return
            api_url = run.github.api_url if run.github else "https://api.github.com"
            github.upsert_pull_request_comment(
                pr_url,
                marker=github.comment_marker(service, environment),
                body=body,
                token=github_token,
                api_url=api_url,
                timeout=timeout,
            )
        elif gitlab.parse_merge_request_url(pr_url):
            token = gitlab_token or (run.gitlab.job_token if run.gitlab else "")
            if not token:
                warn("--comment needs --gitlab-token (or GITLAB_TOKEN); no note written")
                return
            gitlab.upsert_merge_request_note(
                pr_url,
                marker=gitlab.comment_marker(service, environment),
                body=body,
                token=token,
                job_token=not gitlab_token,
                timeout=timeout,
            )
    except ImportError as exc:
        warn(f"cannot comment: {exc.name} is not installed ({INSTALL_CI_EXTRAS})")
    except Exception as exc:  # noqa: BLE001 - a comment must never fail the deploy
        warn(f"cannot comment on {pr_url}: {_describe(exc)}")
