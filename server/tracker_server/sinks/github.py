"""GitHub Deployments through PyGithub: a deployment on the PR's head commit when a
deployment starts, its statuses (in_progress, then success or failure) after, so the PR
shows "deployed to production". The webhook's URL is the API base
(``https://api.github.com``), its secret a token with ``deployments: write``."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tracker_ci.models import Event
from tracker_server.sinks.base import Answer, Outgoing, skip

_PULL = re.compile(r"https?://[^/]+/(?P<repo>[^/]+/[^/]+)/pull/(?P<number>\d+)")
#: Tracker's final statuses -> GitHub deployment states.
_STATES = {"success": "success", "done": "success", "warning": "success", "failure": "failure"}


def _state(event: Event) -> str:
    return _STATES.get(event.attributes.status.value, "error")


def _find(repo: Any, sha: str, environment: str, ids: set[str]) -> Any | None:
    for deployment in repo.get_deployments(sha=sha, environment=environment):
        payload = deployment.payload or {}
        if payload.get("trackerEventId") in ids:
            return deployment
    return None


class GitHubDeploymentsSink:
    """Deployments and deployment statuses on the event's repository and revision."""

    def send(self, outgoing: Outgoing, http: httpx.Client) -> Answer:
        """Create the deployment (started) or add its final status (finished)."""
        from github import Auth, Github, GithubException
        from github.GithubObject import NotSet

        event = outgoing.event
        if event is None or not outgoing.type.startswith("deployment."):
            return skip(f"{outgoing.type} is not a deployment")
        found = _PULL.match(event.links.pull_request_link)
        if found is None:
            return skip("the event has no GitHub pull request link")
        gh = Github(
            base_url=outgoing.url.rstrip("/"),
            auth=Auth.Token(outgoing.secret) if outgoing.secret else None,
            retry=None,
            lazy=True,
            timeout=int(http.timeout.read or 10),
        )
        try:
            self._send(gh, outgoing, event, found["repo"], int(found["number"]), NotSet)
        except GithubException as exc:
            return Answer(exc.status, f"GitHub answered {exc.status}: {exc.data}")
        finally:
            gh.close()
        return Answer(201)

    @staticmethod
    def _send(
        gh: Any, outgoing: Outgoing, event: Event, full_name: str, number: int, unset: Any
    ) -> None:
        repo = gh.get_repo(full_name)
        sha = repo.get_pull(number).head.sha
        environment = event.attributes.environment.value
        link = outgoing.event_link(event)
        ids = {event.id, event.attributes.related_id} - {""}
        deployment = _find(repo, sha, environment, ids)
        if deployment is None:
            deployment = repo.create_deployment(
                ref=sha,
                task="deploy",
                auto_merge=False,
                required_contexts=[],
                payload={"trackerEventId": event.attributes.related_id or event.id},
                environment=environment,
                description=(event.title or event.attributes.service)[:140],
                production_environment=environment == "production",
            )
        state = "in_progress" if outgoing.type == "deployment.started" else _state(event)
        deployment.create_status(
            state,
            environment_url=link or unset,
            description=f"{event.attributes.service}: {event.attributes.status.value}"[:140],
        )
