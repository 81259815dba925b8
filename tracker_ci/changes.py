"""What a deployment ships: its revision and the changes since the previous successful
deployment of the same service and environment (DORA's lead time reads them).

The previous revision comes from our server (``attributes.revision`` of the newest
successful deployment); the changes from the forge's compare API: GitHub's compare and
"pull requests of a commit" (PyGithub), GitLab's repository compare and "merge requests of
a commit" (python-gitlab). Commits merged through a pull/merge request become that
request (``committedAt`` = its earliest commit in the range); the others stay commits.
Bounded: at most ``MAX_COMMITS`` commits are read and ``MAX_LOOKUPS`` of them asked for
their request. A lookup that fails says why and ships nothing: it never fails a deploy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tracker_ci.models import MAX_CHANGES, ChangeKind, ShippedChange

if TYPE_CHECKING:
    from tracker_ci.ci.github import GitHubContext
    from tracker_ci.ci.gitlab import GitLabContext
    from tracker_ci.client import TrackerClient

__all__ = [
    "MAX_COMMITS",
    "MAX_LOOKUPS",
    "Shipped",
    "changes_line",
    "changes_markdown",
    "find_shipped",
    "previous_revision",
]

MAX_COMMITS = 250
MAX_LOOKUPS = 50


@dataclass(frozen=True)
class Shipped:
    """The revision a deployment ships and its changes (empty when unknown)."""

    revision: str = ""
    changes: list[ShippedChange] = field(default_factory=list)


@dataclass(frozen=True)
class _Commit:
    sha: str
    title: str
    author: str
    committed_at: datetime | None
    url: str


def previous_revision(client: TrackerClient, *, service: str, environment: str) -> str:
    """The revision of the newest successful deployment that recorded one ("" if none)."""
    found = client.search_events(
        service=service, environment=environment, type="deployment", status="success"
    )
    for event in found.events:  # newest first on our server
        if event.attributes.revision:
            return event.attributes.revision
    return ""


def _as_utc(moment: Any) -> datetime | None:
    if isinstance(moment, str) and moment:
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if not isinstance(moment, datetime):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _merge(
    commits: list[_Commit], request_of: Callable[[str], dict[str, Any] | None]
) -> list[ShippedChange]:
    """Group commits by their merged request (asked for the first ``MAX_LOOKUPS``)."""
    requests: dict[str, ShippedChange] = {}
    changes: list[ShippedChange] = []
    for index, commit in enumerate(commits):
        request = request_of(commit.sha) if index < MAX_LOOKUPS else None
        if request is None:
            changes.append(
                ShippedChange(
                    kind=ChangeKind.commit,
                    id=commit.sha,
                    url=commit.url,
                    title=commit.title,
                    author=commit.author,
                    committed_at=commit.committed_at,
                )
            )
            continue
        known = requests.get(request["id"])
        if known is None:
            known = ShippedChange(committed_at=commit.committed_at, **request)
            requests[request["id"]] = known
            changes.append(known)
        elif commit.committed_at and (
            known.committed_at is None or commit.committed_at < known.committed_at
        ):
            known.committed_at = commit.committed_at
    return changes[:MAX_CHANGES]


def github_changes(
    context: GitHubContext, *, base: str, token: str, timeout: float
) -> list[ShippedChange]:
    """The changes from ``base`` to the run's commit, by GitHub's compare API."""
    from tracker_ci.ci.github import _client

    gh = _client(token, context.api_url, timeout)
    try:
        repo = gh.get_repo(context.repository)
        comparison = repo.compare(base, context.sha)
        commits = [
            _Commit(
                sha=c.sha,
                title=(c.commit.message or "").splitlines()[0] if c.commit.message else "",
                author=(c.author.login if c.author else "") or c.commit.author.name or "",
                committed_at=_as_utc(c.commit.author.date),
                url=c.html_url or "",
            )
            for c in _first(comparison.commits, MAX_COMMITS)
        ]

        def pull_of(sha: str) -> dict[str, Any] | None:
            for pull in repo.get_commit(sha).get_pulls():
                if pull.merged_at is not None:
                    return {
                        "kind": ChangeKind.pull_request,
                        "id": str(pull.number),
                        "url": pull.html_url,
                        "title": pull.title,
                        "author": pull.user.login if pull.user else "",
                        "merged_at": _as_utc(pull.merged_at),
                    }
            return None

        return _merge(commits, pull_of)
    finally:
        gh.close()


def gitlab_changes(
    context: GitLabContext, *, base: str, token: str | None, timeout: float
) -> list[ShippedChange]:
    """The changes from ``base`` to the job's commit, by GitLab's compare API."""
    from tracker_ci.ci.gitlab import _client

    secret = token or context.job_token
    gl = _client(context.server_url, secret, timeout, job_token=not token)
    project = gl.projects.get(context.project_id or context.project_path, lazy=True)
    compared = project.repository_compare(base, context.sha)
    raw = compared.get("commits", []) if isinstance(compared, dict) else []
    commits = [
        _Commit(
            sha=c.get("id", ""),
            title=c.get("title", ""),
            author=c.get("author_name", ""),
            committed_at=_as_utc(c.get("authored_date") or c.get("committed_date")),
            url=c.get("web_url", ""),
        )
        for c in raw[-MAX_COMMITS:]
    ]

    def merge_request_of(sha: str) -> dict[str, Any] | None:
        for mr in project.commits.get(sha, lazy=True).merge_requests(get_all=False):
            if isinstance(mr, dict) and mr.get("state") == "merged":
                return {
                    "kind": ChangeKind.merge_request,
                    "id": str(mr.get("iid", "")),
                    "url": mr.get("web_url", ""),
                    "title": mr.get("title", ""),
                    "author": (mr.get("author") or {}).get("username", ""),
                    "merged_at": _as_utc(mr.get("merged_at")),
                }
        return None

    return _merge(commits, merge_request_of)


def _first(items: Iterable[Any], count: int) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if len(out) >= count:
            break
        out.append(item)
    return out


def find_shipped(
    client: TrackerClient,
    *,
    service: str,
    environment: str,
    github: GitHubContext | None = None,
    gitlab: GitLabContext | None = None,
    github_token: str | None = None,
    gitlab_token: str | None = None,
    timeout: float = 10.0,
    on_problem: Callable[[str], None] | None = None,
) -> Shipped:
    """The revision of this run and its changes since the last successful deploy.

    Never raises: a problem (no token, the forge or our server refusing, a library not
    installed) is told to ``on_problem`` and the changes are left empty."""
    revision = (github.sha if github else "") or (gitlab.sha if gitlab else "")
    if not revision:
        return Shipped()
    try:
        base = previous_revision(client, service=service, environment=environment)
        if not base or base == revision or client.server_is_bundled is False:
            return Shipped(revision=revision)
        if github is not None and github.repository and github_token:
            changes = github_changes(github, base=base, token=github_token, timeout=timeout)
        elif gitlab is not None and (gitlab_token or gitlab.job_token):
            changes = gitlab_changes(gitlab, base=base, token=gitlab_token, timeout=timeout)
        else:
            return Shipped(revision=revision)
    except Exception as exc:  # noqa: BLE001 - forge libraries raise many kinds; never fatal
        if on_problem is not None:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            on_problem(f"cannot list the changes this deploy ships: {text}")
        return Shipped(revision=revision)
    return Shipped(revision=revision, changes=changes)


def _label(change: ShippedChange) -> str:
    mark = {"pull_request": "#", "merge_request": "!"}.get(change.kind.value, "")
    name = f"{mark}{change.id}" if mark else change.id[:7]
    text = f"[{name}]({change.url})" if change.url else name
    return f"{text} {change.title}".strip() + (f" ({change.author})" if change.author else "")


def changes_markdown(shipped: Shipped | None, *, limit: int = 20) -> str:
    """The changes as a Markdown list under a heading, for the job summary ("" if none)."""
    if shipped is None or not shipped.changes:
        return ""
    lines = [f"#### Ships {len(shipped.changes)} change(s) ({shipped.revision[:12]})", ""]
    lines += [f"- {_label(change)}" for change in shipped.changes[:limit]]
    if len(shipped.changes) > limit:
        lines.append(f"- and {len(shipped.changes) - limit} more")
    return "\n".join(lines) + "\n"


def changes_line(shipped: Shipped | None, *, limit: int = 10) -> str:
    """The changes on one line, for the PR/MR comment ("" if none)."""
    if shipped is None or not shipped.changes:
        return ""
    shown = ", ".join(_label(change) for change in shipped.changes[:limit])
    more = f" and {len(shipped.changes) - limit} more" if len(shipped.changes) > limit else ""
    return f"ships {shown}{more}"
