"""A history for the time-axis views (tests and `make screenshots`), written through the API:
overlapping deployments, a deployment inside a recurring hard freeze in Europe/Paris, a
failure, incidents (one still open), a custom environment and lock holds, around ``now``.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.web.seed import API, _post, _ts, deployment

PARIS = ZoneInfo("Europe/Paris")
#: A daily hard freeze, 07:00-08:00 in Paris, on production.
PARIS_FREEZE = {
    "title": "Paris mornings",
    "type": "FREEZE_TYPE_HARD",
    "scopeType": "FREEZE_SCOPE_ENVIRONMENT",
    "scopeIds": ["production"],
    "cronStart": "0 7 * * *",
    "cronEnd": "0 8 * * *",
    "timezone": "Europe/Paris",
}


def incident(
    http: httpx.Client,
    *,
    service: str,
    environment: str,
    status: str,
    start: datetime,
    end: datetime | None = None,
    title: str,
    priority: str = "P1",
) -> dict[str, Any]:
    """Create one incident event (open while it has no end)."""
    body = {
        "title": title,
        "attributes": {
            "type": "incident",
            "status": status,
            "service": service,
            "environment": environment,
            "priority": priority,
            "owner": "oncall",
            "source": "pagerduty",
            "startDate": _ts(start),
            "endDate": _ts(end) if end else None,
        },
    }
    return _post(http, "/event", body)["event"]  # type: ignore[no-any-return]


def in_paris(day: datetime, hour: int, minute: int) -> datetime:
    """``hour:minute`` in Paris on ``day``'s date, as UTC."""
    return datetime.combine(day.date(), time(hour, minute), PARIS).astimezone(UTC)


def seed_time_axis(http: httpx.Client, now: datetime) -> dict[str, Any]:
    """Write the history; the events made, by name (ids for the tests)."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    made: dict[str, Any] = {}

    def deploy(
        name: str,
        service: str,
        environment: str,
        status: str,
        start: datetime,
        minutes: int,
        title: str,
    ) -> None:
        made[name] = deployment(
            http,
            service=service,
            environment=environment,
            status=status,
            start=start,
            end=start + timedelta(minutes=minutes),
            title=title,
        )

    deploy("api_ok", "api", "production", "success", yesterday + timedelta(hours=9), 6, "api 1.4.0")
    deploy(
        "api_failed",
        "api",
        "production",
        "failure",
        yesterday + timedelta(hours=14),
        7,
        "api 1.4.1",
    )
    deploy(
        "api_fix", "api", "production", "success", yesterday + timedelta(hours=15), 5, "api 1.4.2"
    )
    # Inside yesterday's Paris-morning freeze (created before the freeze, as history).
    deploy(
        "in_freeze",
        "api",
        "production",
        "success",
        in_paris(yesterday, 7, 20),
        4,
        "api hotfix in the freeze",
    )
    # Two deployments of billing in production at once.
    deploy(
        "billing_a",
        "billing",
        "production",
        "success",
        yesterday + timedelta(hours=10),
        30,
        "billing 7.1",
    )
    deploy(
        "billing_b",
        "billing",
        "production",
        "success",
        yesterday + timedelta(hours=10, minutes=20),
        20,
        "billing 7.1 again",
    )
    deploy(
        "web_staging",
        "web",
        "staging",
        "success",
        yesterday + timedelta(hours=11),
        3,
        "web to staging",
    )
    deploy(
        "web_prod", "web", "production", "success", yesterday + timedelta(hours=16), 8, "web 3.0"
    )
    made["incident"] = incident(
        http,
        service="api",
        environment="production",
        status="close",
        start=yesterday + timedelta(hours=14, minutes=10),
        end=yesterday + timedelta(hours=15, minutes=10),
        title="api 5xx after 1.4.1",
    )
    made["open_incident"] = incident(
        http,
        service="billing",
        environment="production",
        status="open",
        start=now - timedelta(hours=2),
        title="billing slow invoices",
        priority="P2",
    )
    # A lock taken and released (a past hold, from the journal) and one held now.
    taken = _post(
        http,
        "/lock",
        {"service": "billing", "environment": "production", "resource": "db", "who": "erin"},
    )["lock"]
    http.delete(f"{API}/lock/{taken['id']}").raise_for_status()
    made["lock"] = _post(
        http,
        "/lock",
        {"service": "web", "environment": "staging", "resource": "deployment", "who": "carol"},
    )["lock"]
    made["freeze"] = _post(http, "/freeze-window", PARIS_FREEZE)["freezeWindow"]
    return made
