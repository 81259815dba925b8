"""Whether a CI job still runs: the GitHub and GitLab job APIs, for evicting dead holders.

A lock records its holder's CI job (``jobUrl``: a GitHub Actions run or job URL, a GitLab
job URL). A waiter with a token that can read that job asks here whether it has ended
(:func:`job_has_ended`); only then may ``--evict-dead-holder`` evict the holder instead of
waiting out its lease. Anything uncertain (an unknown URL, no token, an API error) counts
as "still running": a live holder is never evicted by mistake.

* GitHub: ``https://HOST/OWNER/REPO/actions/runs/RUN[/job/JOB]`` ->
  ``GET {api}/repos/OWNER/REPO/actions/jobs/JOB`` (or ``.../actions/runs/RUN``); ended when
  ``status`` is ``completed``. The API is ``GITHUB_API_URL`` (set by the runner), else
  api.github.com for github.com and ``https://HOST/api/v3`` for GitHub Enterprise Server.
* GitLab: ``https://HOST/GROUP/PROJECT/-/jobs/ID`` ->
  ``GET {api}/projects/GROUP%2FPROJECT/jobs/ID`` (``PRIVATE-TOKEN``, or ``JOB-TOKEN`` with
  CI_JOB_TOKEN); ended when ``status`` is success, failed, canceled or skipped. The API is
  ``CI_API_V4_URL`` (set by the runner), else ``https://HOST/api/v4``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

__all__ = ["JobChecker", "job_has_ended"]

_GITHUB = re.compile(
    r"^/(?P<owner>[^/]+)/(?P<repo>[^/]+)/actions/runs/(?P<run>\d+)(?:/job/(?P<job>\d+))?"
)
_GITLAB = re.compile(r"^/(?P<project>.+?)/-/jobs/(?P<job>\d+)")
GITLAB_ENDED = frozenset({"success", "failed", "canceled", "skipped"})


@dataclass(frozen=True)
class JobChecker:
    """Tokens and API addresses for asking GitHub and GitLab about a job."""

    github_token: str = ""
    gitlab_token: str = ""
    ci_job_token: str = ""
    github_api_url: str = ""
    gitlab_api_url: str = ""
    timeout: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: str | float | None) -> JobChecker:
        """Tokens and API addresses from the CI's variables (flags override them)."""
        values = {
            "github_token": environ.get("GITHUB_TOKEN", ""),
            "gitlab_token": environ.get("GITLAB_TOKEN", ""),
            "ci_job_token": environ.get("CI_JOB_TOKEN", ""),
            "github_api_url": environ.get("GITHUB_API_URL", ""),
            "gitlab_api_url": environ.get("CI_API_V4_URL", ""),
        }
        values.update({k: v for k, v in overrides.items() if v})  # type: ignore[misc]
        return cls(**values)  # type: ignore[arg-type]

    def ended(self, job_url: str) -> str | None:
        """Why the job counts as ended ("GitHub job 12 is completed"), or None."""
        return job_has_ended(job_url, self)


def _get(url: str, headers: dict[str, str], timeout: float) -> dict[str, object] | None:
    import httpx

    try:
        response = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _github(url: str, checker: JobChecker) -> str | None:
    parts = urlsplit(url)
    match = _GITHUB.match(parts.path)
    if match is None or not checker.github_token:
        return None
    if checker.github_api_url:
        api = checker.github_api_url.rstrip("/")
    elif parts.netloc == "github.com":
        api = "https://api.github.com"
    else:
        api = f"{parts.scheme}://{parts.netloc}/api/v3"
    repo = f"{match['owner']}/{match['repo']}"
    what = f"jobs/{match['job']}" if match["job"] else f"runs/{match['run']}"
    headers = {
        "Authorization": f"Bearer {checker.github_token}",
        "Accept": "application/vnd.github+json",
    }
    body = _get(f"{api}/repos/{repo}/actions/{what}", headers, checker.timeout)
    if body is None or body.get("status") != "completed":
        return None
    noun = "job" if match["job"] else "run"
    return f"its GitHub Actions {noun} {url} has ended ({body.get('conclusion') or 'completed'})"


def _gitlab(url: str, checker: JobChecker) -> str | None:
    parts = urlsplit(url)
    match = _GITLAB.match(parts.path)
    if match is None:
        return None
    if checker.gitlab_token:
        headers = {"PRIVATE-TOKEN": checker.gitlab_token}
    elif checker.ci_job_token:
        headers = {"JOB-TOKEN": checker.ci_job_token}
    else:
        return None
    api = checker.gitlab_api_url.rstrip("/") or f"{parts.scheme}://{parts.netloc}/api/v4"
    project = quote(match["project"], safe="")
    body = _get(f"{api}/projects/{project}/jobs/{match['job']}", headers, checker.timeout)
    status = str(body.get("status", "")) if body is not None else ""
    if status not in GITLAB_ENDED:
        return None
    return f"its GitLab job {url} has ended ({status})"


def job_has_ended(job_url: str, checker: JobChecker) -> str | None:
    """Why the CI job at ``job_url`` has ended, or None (running, or it cannot be told)."""
    if not job_url:
        return None
    if "/actions/runs/" in job_url:
        return _github(job_url, checker)
    if "/-/jobs/" in job_url:
        return _gitlab(job_url, checker)
    return None
