"""GitHub Actions: the run's context, step outputs and summary, the pull request of a commit.

Context comes from the ``GITHUB_*`` variables and the event payload at
``GITHUB_EVENT_PATH``. When the payload names no pull request (a push, a manual run), the
pull request that contains the commit is asked of the API through PyGithub, imported only
then. This module owns the ``GITHUB_OUTPUT`` format: a pure :func:`to_output_text` and
:func:`write_if_possible`.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker_ci.ci import in_github

__all__ = [
    "GitHubContext",
    "append_summary",
    "comment_marker",
    "detect",
    "find_pull_request_url",
    "mask",
    "parse_pull_request_url",
    "pull_request_url_from_event",
    "to_output_text",
    "upsert_pull_request_comment",
    "write_if_possible",
    "write_outputs",
]

PULL_REQUEST_URL = re.compile(
    r"^https?://(?P<host>[^/\s]+)/(?P<owner>[^/\s]+)/(?P<repo>[^/\s]+)/pull/(?P<number>\d+)/?$"
)
# Events whose payload carries the pull request itself.
_PULL_REQUEST_EVENTS = (
    "pull_request",
    "pull_request_target",
    "pull_request_review",
    "pull_request_review_comment",
)


@dataclass(frozen=True)
class GitHubContext:
    """What a GitHub Actions job knows about itself (from ``GITHUB_*`` variables)."""

    repository: str = ""
    sha: str = ""
    ref: str = ""
    ref_name: str = ""
    head_ref: str = ""
    run_id: str = ""
    run_attempt: str = ""
    job: str = ""
    actor: str = ""
    server_url: str = "https://github.com"
    api_url: str = "https://api.github.com"
    event_name: str = ""
    event_path: str = ""

    @property
    def short_sha(self) -> str:
        return self.sha[:7]

    @property
    def run_url(self) -> str:
        """The link to this workflow run (empty outside a run)."""
        if not (self.repository and self.run_id):
            return ""
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"

    def event_payload(self) -> dict[str, Any]:
        """The webhook payload that triggered the run ({} when absent or unreadable)."""
        if not self.event_path:
            return {}
        try:
            data = json.loads(Path(self.event_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def detect(environ: Mapping[str, str] | None = None) -> GitHubContext | None:
    """The GitHub Actions context, or None outside GitHub Actions."""
    env = os.environ if environ is None else environ
    if not in_github(env):
        return None
    return GitHubContext(
        repository=env.get("GITHUB_REPOSITORY", ""),
        sha=env.get("GITHUB_SHA", ""),
        ref=env.get("GITHUB_REF", ""),
        ref_name=env.get("GITHUB_REF_NAME", ""),
        head_ref=env.get("GITHUB_HEAD_REF", ""),
        run_id=env.get("GITHUB_RUN_ID", ""),
        run_attempt=env.get("GITHUB_RUN_ATTEMPT", ""),
        job=env.get("GITHUB_JOB", ""),
        actor=env.get("GITHUB_ACTOR", ""),
        server_url=(env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
        api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
        event_name=env.get("GITHUB_EVENT_NAME", ""),
        event_path=env.get("GITHUB_EVENT_PATH", ""),
    )


def parse_pull_request_url(url: str) -> tuple[str, int] | None:
    """``https://github.com/o/r/pull/7`` -> ``("o/r", 7)``; None when it is not one."""
    match = PULL_REQUEST_URL.match(url.strip())
    if not match:
        return None
    return f"{match['owner']}/{match['repo']}", int(match["number"])


def pull_request_url_from_event(event_name: str, payload: Mapping[str, Any]) -> str | None:
    """The pull request named by the event payload itself (None for push, dispatch, ...)."""
    if event_name in _PULL_REQUEST_EVENTS:
        pull = payload.get("pull_request") or {}
        return pull.get("html_url") or None
    if event_name == "issue_comment":
        # A comment on a pull request: the issue carries a link to the pull request.
        issue = payload.get("issue") or {}
        if issue.get("pull_request"):
            return (issue.get("pull_request") or {}).get("html_url") or issue.get("html_url")
    return None


def _client(token: str, api_url: str, timeout: float) -> Any:
    # PyGithub is an optional extra and slow to import: only when the API is needed.
    from github import Auth, Github

    return Github(
        auth=Auth.Token(token),
        base_url=api_url,
        timeout=int(max(1, timeout)),
        retry=None,
        lazy=True,
        # A deploy makes at most two calls: no need for PyGithub's write throttling.
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


def find_pull_request_url(
    context: GitHubContext, *, token: str | None = None, timeout: float = 10.0
) -> str | None:
    """The run's pull request: from the payload, else the commit's PR via the API (token)."""
    url = pull_request_url_from_event(context.event_name, context.event_payload())
    if url or not token or not (context.repository and context.sha):
        return url
    gh = _client(token, context.api_url, timeout)
    try:
        pulls = list(gh.get_repo(context.repository).get_commit(context.sha).get_pulls())
    finally:
        gh.close()
    if not pulls:
        return None
    # Prefer the open pull request whose head is this branch, then any open one.
    branch = context.head_ref or context.ref_name
    pulls.sort(key=lambda p: (p.state != "open", p.head.ref != branch))
    return pulls[0].html_url


def run_started_at(
    context: GitHubContext, *, token: str | None = None, timeout: float = 5.0
) -> str | None:
    """When this workflow run (its attempt) started, from the Actions API; None when it
    cannot be known (no token, no run, an API error): a lookup, never a failure."""
    if not (token and context.repository and context.run_id):
        return None
    import httpx

    path = f"/repos/{context.repository}/actions/runs/{context.run_id}"
    if context.run_attempt:
        path += f"/attempts/{context.run_attempt}"
    try:
        answer = httpx.get(
            context.api_url + path,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"},
            timeout=timeout,
        )
        started = answer.json().get("run_started_at") if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return started if isinstance(started, str) and started else None


def comment_marker(service: str, environment: str) -> str:
    """The hidden line that tells our comment for (service, environment) apart."""
    return f"<!-- tracker-ci:{service}/{environment} -->"


def upsert_pull_request_comment(
    pr_url: str, *, marker: str, body: str, token: str, api_url: str, timeout: float = 10.0
) -> str:
    """Update our comment (found by ``marker``) on the pull request, or create it; its URL."""
    parsed = parse_pull_request_url(pr_url)
    if parsed is None:
        raise ValueError(f"{pr_url!r} is not a GitHub pull request URL")
    repository, number = parsed
    text = f"{marker}\n{body}"
    gh = _client(token, api_url, timeout)
    try:
        issue = gh.get_repo(repository).get_issue(number)
        for comment in issue.get_comments():
            if marker in (comment.body or ""):
                comment.edit(text)
                return comment.html_url
        return issue.create_comment(text).html_url
    finally:
        gh.close()


def to_output_text(outputs: Mapping[str, Any]) -> str:
    """The ``GITHUB_OUTPUT`` lines: ``name=value``, or ``name<<DELIM`` for multi-line values."""
    lines = []
    for name, value in outputs.items():
        text = "" if value is None else str(value)
        if "\n" in text or "\r" in text:
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            lines.append(f"{name}<<{delimiter}\n{text}\n{delimiter}\n")
        else:
            lines.append(f"{name}={text}\n")
    return "".join(lines)


def write_if_possible(outputs: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> bool:
    """Append ``outputs`` to the ``GITHUB_OUTPUT`` file; False when not in GitHub Actions."""
    env = os.environ if environ is None else environ
    path = env.get("GITHUB_OUTPUT")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(to_output_text(outputs))
    return True


write_outputs = write_if_possible


def append_summary(markdown: str, environ: Mapping[str, str] | None = None) -> bool:
    """Append markdown to the job summary (``GITHUB_STEP_SUMMARY``); False when unset."""
    env = os.environ if environ is None else environ
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(markdown.rstrip("\n") + "\n")
    return True


def mask(secret: str, environ: Mapping[str, str] | None = None) -> bool:
    """Ask the runner to hide ``secret`` in the logs (``::add-mask::``); only in Actions."""
    env = os.environ if environ is None else environ
    if not secret or env.get("GITHUB_ACTIONS") != "true":
        return False
    print(f"::add-mask::{secret}", flush=True)
    return True
