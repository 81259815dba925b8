"""A demo history for the pages (tests and `make screenshots`), written through the API.

Two services over the last 14 days, with shipped changes, a failure and its recovery,
a deployment running now (past its usual duration), a held lock and a freeze window.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

API = "/api/v1alpha1"
#: Pull request numbers, one per shipped change (100, 101, ...).
_CHANGE_NUMBERS = itertools.count(100)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _post(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(API + path, json=body)
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def deployment(
    http: httpx.Client,
    *,
    service: str,
    environment: str,
    status: str,
    start: datetime | None = None,
    end: datetime | None = None,
    commits: tuple[datetime, ...] = (),
    title: str = "",
    owner: str = "alice",
    pr: str = "",
) -> dict[str, Any]:
    """Create one deployment event (imported history when ``end`` is given)."""
    # DORA counts a change once, by id: each commit here is a change of its own.
    numbers = [next(_CHANGE_NUMBERS) for _ in commits]
    changes = [
        {
            "kind": "pull_request",
            "id": str(number),
            "url": f"https://github.com/acme/{service}/pull/{number}",
            "title": f"Change {number}",
            "author": "bob",
            "committedAt": _ts(moment),
            "mergedAt": _ts(moment + timedelta(minutes=30)),
        }
        for number, moment in zip(numbers, commits, strict=True)
    ]
    attributes = {
        "type": "deployment",
        "status": status,
        "service": service,
        "environment": environment,
        "priority": "P3",
        "owner": owner,
        "message": f"{service} to {environment}",
        "source": "github",
        "startDate": _ts(start) if start else None,
        "endDate": _ts(end) if end else None,
        "revision": "4f2a9c1" if changes else "",
        "changes": changes,
    }
    body = {
        "title": title or f"Deploy {service} to {environment}",
        "attributes": attributes,
        "links": {"pullRequestLink": pr, "ticket": ""},
    }
    return _post(http, "/event", body)["event"]  # type: ignore[no-any-return]


def seed(url: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Write the demo history to the server at ``url``; what the tests look for."""
    now = now or datetime.now(UTC)
    made: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=10.0) as http:
        for day in range(14, 0, -1):
            end = now - timedelta(days=day, hours=-2)
            failed = day in (9, 4)
            deployment(
                http,
                service="api",
                environment="production",
                status="failure" if failed else "success",
                start=end - timedelta(minutes=4),
                end=end,
                commits=() if failed else (end - timedelta(hours=5), end - timedelta(hours=20)),
                pr=f"https://github.com/acme/api/pull/{200 + day}",
            )
            if failed:  # recovered 3 hours later
                made["shipped"] = deployment(
                    http,
                    service="api",
                    environment="production",
                    status="success",
                    start=end + timedelta(hours=3) - timedelta(minutes=4),
                    end=end + timedelta(hours=3),
                    commits=(end + timedelta(hours=1),),
                    title="Fix forward api",
                )
            if day % 3 == 0:
                deployment(
                    http,
                    service="web",
                    environment="UAT",
                    status="success",
                    start=end - timedelta(minutes=2),
                    end=end,
                    owner="carol",
                )
        made["running"] = deployment(
            http, service="api", environment="production", status="start", title="Deploy api v2"
        )
        made["lock"] = _post(
            http,
            "/lock",
            {"service": "web", "environment": "UAT", "resource": "deployment", "who": "carol"},
        )["lock"]
        # Someone waits for that lock (a server with lock queues).
        http.post(
            API + "/lock/queue",
            json={
                "service": "web",
                "environment": "UAT",
                "resource": "deployment",
                "who": "dave",
                "reason": "release 2.4",
            },
        )
        freeze = http.post(
            API + "/freeze-window",
            json={
                "title": "Year-end freeze",
                "type": "FREEZE_TYPE_SOFT",
                "scopeType": "FREEZE_SCOPE_ENVIRONMENT",
                "scopeIds": ["production"],
                "startsAt": _ts(now + timedelta(hours=6)),
                "endsAt": _ts(now + timedelta(days=3)),
                "timezone": "UTC",
            },
        )
        made["freeze"] = freeze.json().get("freezeWindow") if freeze.is_success else None
    return made
