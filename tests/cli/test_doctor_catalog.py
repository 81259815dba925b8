"""`tracker-ci doctor` warns about services deploying without a catalog entry: against the
real bundled server, and against an upstream-shaped server with and without a catalog."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.cli.conftest import Invoke
from tests.support.receivers import Received, run_receiver
from tests.support.servers import RunningServer
from tracker_ci.commands.doctor import CATALOG_FIX

API = "/api/v1alpha1"


def _report(result: Any) -> dict[str, dict[str, str]]:
    return {row["check"]: row for row in json.loads(result.stdout)}


def _event(service: str, kind: str = "deployment", **extra: Any) -> dict[str, Any]:
    attributes = {"type": kind, "status": "success", "service": service}
    return {
        "title": f"{kind} of {service}",
        "attributes": attributes | {"environment": "UAT"},
    } | extra


@pytest.mark.server
def test_doctor_names_the_services_that_deployed_without_an_entry(
    fresh_sqlite_server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    invoke = Invoke(fresh_sqlite_server.url, tmp_path)
    forty_days_ago = (datetime.now(UTC) - timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
    services = [f"svc-{n:02d}" for n in range(12)]
    items = [_event(name) for name in services]
    items += [
        _event("db", kind="incident"),  # not a deployment
        _event("retired", metadata={"createdAt": forty_days_ago}),  # before the 30 days
    ]
    with httpx.Client(base_url=fresh_sqlite_server.url, timeout=10) as http:
        written = http.post(f"{API}/events/batch", json={"events": items})
        assert written.status_code == 200 and written.json()["created"] == 14, written.text
    assert invoke("catalog", "set", "svc-00", "--owner", "team-a", "--version", "1").exit_code == 0

    warned = invoke("doctor", "-o", "json")
    assert warned.exit_code == 0, warned.output  # a warning, not a failure
    assert _report(warned)["catalog"] == {
        "check": "catalog",
        "verdict": "warn",
        "found": "11 service(s) deployed in the last 30 days without a catalog entry: "
        + ", ".join(services[1:11])
        + " and 1 more",
        "fix": CATALOG_FIX,
    }
    text = invoke("doctor").stdout.splitlines()
    line = next(n for n, found in enumerate(text) if found.startswith("warn  catalog"))
    assert text[line + 1].split() == ["fix:", *CATALOG_FIX.split()]

    for name in services[1:]:
        assert invoke("catalog", "set", name, "--owner", "team-b", "--version", "2").exit_code == 0
    fine = _report(invoke("doctor", "-o", "json"))["catalog"]
    assert fine == {
        "check": "catalog",
        "verdict": "ok",
        "found": "12 entries; every service that deployed in the last 30 days has one",
        "fix": "",
    }


@pytest.mark.parametrize("has_catalog", [False, True], ids=["no catalog", "with a catalog"])
def test_doctor_against_upstream_checks_the_catalog_only_when_it_has_one(
    has_catalog: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_found = (404, {"code": 5, "message": "Not Found", "details": []})

    def upstream(request: Received) -> tuple[int, Any]:
        """Upstream's Go server: no /health, no server header; a catalog since e2c702a."""
        path = urlsplit(request.path).path
        if path == f"{API}/locks/list":
            return 200, {"locks": [], "totalCount": "0"}
        if path == f"{API}/catalogs/list" and has_catalog:
            entry = {"name": "api", "owner": "team-a", "version": "1"}
            return 200, {"catalogs": [entry], "totalCount": 1}
        if path == f"{API}/events/stats/monthly":
            stats = [
                {"year": 2026, "month": 12, "count": "3", "service": "api"},
                {"year": 2026, "month": 12, "count": "1", "service": "web"},
            ]
            return 200, {"stats": stats, "totalCount": "4"}
        return not_found

    monkeypatch.chdir(tmp_path)
    with run_receiver(upstream) as receiver:
        result = Invoke(receiver.url, tmp_path)("doctor", "-o", "json")
    assert result.exit_code == 0, result.output
    report = _report(result)
    assert "an upstream Tracker" in report["server"]["found"]
    asked = [urlsplit(r.path) for r in receiver.requests]
    stats = [parts for parts in asked if parts.path == f"{API}/events/stats/monthly"]
    if not has_catalog:
        assert report["catalog"] == {
            "check": "catalog",
            "verdict": "ok",
            "found": "this server has no service catalog: not checked",
            "fix": "",
        }
        assert stats == []  # nothing more is asked
        return
    assert report["catalog"]["verdict"] == "warn"
    assert report["catalog"]["found"] == (
        "1 service(s) deployed in the last 30 days without a catalog entry: web"
    )
    (query,) = [parts.query for parts in stats]
    assert "types=deployment" in query and "group_by_service=true" in query
