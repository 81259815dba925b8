"""GitLab CI: the job's context, the dotenv report, the merge request of a commit.

Context comes from the predefined ``CI_*`` variables. In a merge request pipeline the MR
is ``CI_MERGE_REQUEST_PROJECT_URL/-/merge_requests/CI_MERGE_REQUEST_IID``; otherwise the
merge request that contains the commit is asked of the API through python-gitlab,
imported only then.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker_ci.ci import in_gitlab

__all__ = [
    "GitLabContext",
    "comment_marker",
    "detect",
    "find_merge_request_url",
    "merge_request_url_from_env",
    "parse_merge_request_url",
    "to_dotenv_text",
    "upsert_merge_request_note",
    "write_dotenv",
]

MERGE_REQUEST_URL = re.compile(
    r"^(?P<server>https?://[^/\s]+)/(?P<project>[^\s]+?)/-/merge_requests/(?P<iid>\d+)/?$"
)
_DOTENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class GitLabContext:
    """What a GitLab CI job knows about itself (from ``CI_*`` variables)."""

    server_url: str = "https://gitlab.com"
    api_url: str = "https://gitlab.com/api/v4"
    project_id: str = ""
    project_path: str = ""
    project_url: str = ""
    sha: str = ""
    short_sha: str = ""
    ref_name: str = ""
    pipeline_url: str = ""
    job_id: str = ""
    job_url: str = ""
    job_name: str = ""
    user_login: str = ""
    merge_request_project_url: str = ""
    merge_request_iid: str = ""
    job_token: str = ""


def detect(environ: Mapping[str, str] | None = None) -> GitLabContext | None:
    """The GitLab CI context, or None outside GitLab CI."""
    env = os.environ if environ is None else environ
    if not in_gitlab(env):
        return None
    server_url = (env.get("CI_SERVER_URL") or "https://gitlab.com").rstrip("/")
    sha = env.get("CI_COMMIT_SHA", "")
    return GitLabContext(
        server_url=server_url,
        api_url=(env.get("CI_API_V4_URL") or f"{server_url}/api/v4").rstrip("/"),
        project_id=env.get("CI_PROJECT_ID", ""),
        project_path=env.get("CI_PROJECT_PATH", ""),
        project_url=env.get("CI_PROJECT_URL", ""),
        sha=sha,
        short_sha=env.get("CI_COMMIT_SHORT_SHA") or sha[:8],
        ref_name=env.get("CI_COMMIT_REF_NAME", ""),
        pipeline_url=env.get("CI_PIPELINE_URL", ""),
        job_id=env.get("CI_JOB_ID", ""),
        job_url=env.get("CI_JOB_URL", ""),
        job_name=env.get("CI_JOB_NAME", ""),
        user_login=env.get("GITLAB_USER_LOGIN", ""),
        merge_request_project_url=env.get("CI_MERGE_REQUEST_PROJECT_URL", ""),
        merge_request_iid=env.get("CI_MERGE_REQUEST_IID", ""),
        job_token=env.get("CI_JOB_TOKEN", ""),
    )


def parse_merge_request_url(url: str) -> tuple[str, str, int] | None:
    """``https://gl.example/g/p/-/merge_requests/3`` -> ``(server, "g/p", 3)``; else None."""
    match = MERGE_REQUEST_URL.match(url.strip())
    if not match:
        return None
    return match["server"], match["project"], int(match["iid"])


def merge_request_url_from_env(context: GitLabContext) -> str | None:
    """The MR of a merge request pipeline (``CI_MERGE_REQUEST_*``), else None."""
    if context.merge_request_project_url and context.merge_request_iid:
        base = context.merge_request_project_url.rstrip("/")
        return f"{base}/-/merge_requests/{context.merge_request_iid}"
    return None


def _client(server_url: str, token: str, timeout: float, *, job_token: bool) -> Any:
    # python-gitlab is an optional extra and slow to import: only when the API is needed.
    import gitlab

    # A CI job token authenticates with JOB-TOKEN, a personal/project token with PRIVATE-TOKEN.
    if job_token:
        return gitlab.Gitlab(server_url, job_token=token, timeout=timeout, keep_base_url=True)
    return gitlab.Gitlab(server_url, private_token=token, timeout=timeout, keep_base_url=True)


def find_merge_request_url(
    context: GitLabContext, *, token: str | None = None, timeout: float = 10.0
) -> str | None:
    """The job's MR: from ``CI_MERGE_REQUEST_*``, else the commit's MR via the API.

    The API is asked with ``token`` (a personal or project token), else the job token.
    """
    url = merge_request_url_from_env(context)
    secret = token or context.job_token
    if url or not secret or not context.sha or not (context.project_id or context.project_path):
        return url
    gl = _client(context.server_url, secret, timeout, job_token=not token)
    project = gl.projects.get(context.project_id or context.project_path, lazy=True)
    found = project.commits.get(context.sha, lazy=True).merge_requests(get_all=True)
    requests = [mr for mr in found if isinstance(mr, dict) and mr.get("web_url")]
    if not requests:
        return None
    # Prefer an opened MR of this branch, then any opened one, then the newest.
    requests.sort(
        key=lambda mr: (mr.get("state") != "opened", mr.get("source_branch") != context.ref_name)
    )
    return str(requests[0]["web_url"])


def comment_marker(service: str, environment: str) -> str:
    """The hidden line that tells our note for (service, environment) apart."""
    return f"<!-- tracker-ci:{service}/{environment} -->"


def upsert_merge_request_note(
    mr_url: str,
    *,
    marker: str,
    body: str,
    token: str,
    job_token: bool = False,
    timeout: float = 10.0,
) -> int:
    """Update our note (found by ``marker``) on the merge request, or create it; its id."""
    parsed = parse_merge_request_url(mr_url)
    if parsed is None:
        raise ValueError(f"{mr_url!r} is not a GitLab merge request URL")
    server_url, project_path, iid = parsed
    text = f"{marker}\n{body}"
    gl = _client(server_url, token, timeout, job_token=job_token)
    merge_request = gl.projects.get(project_path, lazy=True).mergerequests.get(iid, lazy=True)
    for note in merge_request.notes.list(iterator=True):
        if marker in (note.body or ""):
            note.body = text
            note.save()
            return int(note.id)
    return int(merge_request.notes.create({"body": text}).id)


def to_dotenv_text(values: Mapping[str, Any]) -> str:
    """``KEY=value`` lines for a GitLab dotenv report (one line per value, no quotes)."""
    lines = []
    for name, value in values.items():
        text = "" if value is None else str(value)
        if not _DOTENV_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid dotenv variable name")
        if "\n" in text or "\r" in text:
            raise ValueError(f"the value of {name} spans several lines; a dotenv report cannot")
        lines.append(f"{name}={text}\n")
    return "".join(lines)


def write_dotenv(path: str | Path, values: Mapping[str, Any]) -> None:
    """Write ``values`` to the dotenv file at ``path`` (replacing it)."""
    Path(path).write_text(to_dotenv_text(values), encoding="utf-8")
