"""GitHub Deployments through PyGithub: a deployment of the revision that was deployed when
a deployment starts, its statuses (in_progress, then success or failure) after, so the
pull request and the repository's environments show "deployed to production".

The webhook's URL is the API base (``https://api.github.com``), its secret a token with
``deployments: write``; the repository is the one of the event's pull request link.
Requests follow the REST API version ``2022-11-28`` (``X-GitHub-Api-Version``, the
``application/vnd.github+json`` media type, never the retired previews PyGithub's
deployment methods still send, so they go through its requester):

* ``ref``: the event's ``revision`` (what was deployed); the pull request's head commit
  only when the event has none.
* the deployment's ``payload`` (free JSON): ``trackerEventId``, and the service's
  ``owner`` and ``channel`` when its catalog entry names them.
* each status: ``log_url`` the event's page on this server, ``environment_url`` the
  webhook's ``environmentUrl`` option, ``auto_inactive`` so that older deployments of the
  environment turn inactive once this one succeeds.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tracker_ci.models import Event
from tracker_server.sinks.base import BUSY, Answer, Outgoing, ellipsize, skip

API_VERSION = "2022-11-28"
HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
#: GitHub's limit on a deployment's and a status's description.
MAX_DESCRIPTION = 140
_PULL = re.compile(r"https?://[^/]+/(?P<repo>[^/]+/[^/]+)/pull/(?P<number>\d+)")
#: Tracker's final statuses -> GitHub deployment states.
_STATES = {"success": "success", "done": "success", "warning": "success", "failure": "failure"}


def _state(outgoing: Outgoing, event: Event) -> str:
    if outgoing.type == "deployment.started":
        return "in_progress"
    return _STATES.get(event.attributes.status.value, "error")


class _Deployments:
    """The deployments API of one repository, through PyGithub's requester."""

    def __init__(self, requester: Any, full_name: str) -> None:
        self.requester = requester
        self.base = f"/repos/{full_name}"

    def call(self, verb: str, path: str, **arguments: Any) -> Any:
        _headers, data = self.requester.requestJsonAndCheck(
            verb, self.base + path, headers=dict(HEADERS), **arguments
        )
        return data

    def ref(self, event: Event, number: int) -> str:
        """The deployed revision, else the pull request's head commit."""
        if event.attributes.revision:
            return event.attributes.revision
        return str(self.call("GET", f"/pulls/{number}")["head"]["sha"])

    def find(self, environment: str, ids: set[str]) -> dict[str, Any] | None:
        """The deployment made for this Tracker event, if any (among the environment's
        latest 100: an event that closes another may not name the same revision)."""
        parameters = {"environment": environment, "per_page": 100}
        for deployment in self.call("GET", "/deployments", parameters=parameters):
            if (deployment.get("payload") or {}).get("trackerEventId") in ids:
                return dict(deployment)
        return None


def _deployment_body(outgoing: Outgoing, event: Event, ref: str) -> dict[str, Any]:
    environment = event.attributes.environment.value
    payload = {"trackerEventId": event.attributes.related_id or event.id}
    payload |= {name: value for name in ("owner", "channel") if (value := getattr(outgoing, name))}
    return {
        "ref": ref,
        "task": "deploy",
        "auto_merge": False,
        "required_contexts": [],
        "payload": payload,
        "environment": environment,
        "description": ellipsize(event.title or event.attributes.service, MAX_DESCRIPTION),
        "production_environment": environment == "production",
    }


def _status_body(outgoing: Outgoing, event: Event) -> dict[str, Any]:
    attributes = event.attributes
    body: dict[str, Any] = {
        "state": _state(outgoing, event),
        "description": ellipsize(
            f"{attributes.service}: {attributes.status.value}", MAX_DESCRIPTION
        ),
        "auto_inactive": True,
    }
    link = outgoing.event_link(event)
    if link:
        body["log_url"] = link
    if outgoing.options.environment_url:
        body["environment_url"] = outgoing.options.environment_url
    return body


class GitHubDeploymentsSink:
    """Deployments and deployment statuses on the event's repository and revision."""

    def send(self, outgoing: Outgoing, http: httpx.Client) -> Answer:
        """Create the deployment (started) or add its final status (finished)."""
        from github import Auth, Github, GithubException

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
            api = _Deployments(gh.requester, found["repo"])
            self._send(api, outgoing, event, int(found["number"]))
        except GithubException as exc:
            headers = {name.lower(): value for name, value in (exc.headers or {}).items()}
            wait = headers.get("retry-after", "") if exc.status in BUSY else ""
            return Answer(exc.status, f"GitHub answered {exc.status}: {exc.data}", retry_after=wait)
        finally:
            gh.close()
        return Answer(201)

    @staticmethod
    def _send(api: _Deployments, outgoing: Outgoing, event: Event, number: int) -> None:
        environment = event.attributes.environment.value
        ids = {event.id, event.attributes.related_id} - {""}
        deployment = api.find(environment, ids)
        if deployment is None:
            ref = api.ref(event, number)
            body = _deployment_body(outgoing, event, ref)
            deployment = api.call("POST", "/deployments", input=body)
        api.call(
            "POST",
            f"/deployments/{deployment['id']}/statuses",
            input=_status_body(outgoing, event),
        )
