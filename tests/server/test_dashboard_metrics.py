"""Prometheus additions: deployments by status, their duration and lead time, and the
locks, queues and freezes of the database; examples/grafana uses exactly these names."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tracker_server.clock import ManualClock
from tracker_server.metrics import METRIC_NAMES

from tests.server.helpers import API, create_event, update_body

pytestmark = pytest.mark.server

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "grafana" / "tracker-dashboard.json"
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _value(text: str, line: str) -> float:
    match = re.search(rf"^{re.escape(line)} (\S+)$", text, re.MULTILINE)
    assert match, f"{line} not in:\n{text}"
    return float(match.group(1))


def test_a_deployment_is_counted_timed_and_its_lead_time_observed(make_client):
    clock = ManualClock(START)
    client = make_client(clock=clock)
    committed = (START - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    opened = create_event(
        client,
        status="start",
        startDate=None,
        changes=[{"kind": "commit", "id": "abc", "committedAt": committed}],
    )
    text = client.get("/metrics").text
    labels = 'environment="production",service="api"'  # prometheus-client: in name order
    assert _value(text, f'tracker_deployments_total{{{labels},status="start"}}') == 1
    assert _value(text, "tracker_locks_held") == 1
    clock.advance(timedelta(seconds=120))
    response = client.put(f"{API}/event", json=update_body(opened, status="success"))
    assert response.status_code == 200, response.text
    text = client.get("/metrics").text
    assert _value(text, f'tracker_deployments_total{{{labels},status="success"}}') == 1
    assert _value(text, "tracker_deployment_duration_seconds_count") == 1
    assert _value(text, "tracker_deployment_duration_seconds_sum") == 120.0
    # Ended 120 s after the start, committed 2 h before it.
    assert _value(text, "tracker_lead_time_seconds_sum") == 7320.0
    assert _value(text, 'tracker_lead_time_seconds_bucket{le="3600"}') == 0
    assert _value(text, 'tracker_lead_time_seconds_bucket{le="14400"}') == 1
    assert _value(text, "tracker_locks_held") == 0


def test_freezes_in_force_are_a_gauge(make_client):
    clock = ManualClock(START)
    client = make_client(clock=clock)
    assert _value(client.get("/metrics").text, "tracker_freezes_active") == 0
    response = client.post(
        f"{API}/freeze-window",
        json={
            "title": "now",
            "type": "FREEZE_TYPE_SOFT",
            "scopeType": "FREEZE_SCOPE_GLOBAL",
            "startsAt": "2026-03-02T09:00:00Z",
            "endsAt": "2026-03-02T11:00:00Z",
        },
    )
    assert response.status_code == 200, response.text
    assert _value(client.get("/metrics").text, "tracker_freezes_active") == 1
    clock.advance(timedelta(hours=2))
    assert _value(client.get("/metrics").text, "tracker_freezes_active") == 0


def test_every_metric_is_exposed(client):
    text = client.get("/metrics").text
    exposed = set(re.findall(r"^# TYPE (\w+) ", text, re.MULTILINE))
    assert exposed == set(METRIC_NAMES)


def test_the_grafana_dashboard_uses_exactly_our_metric_names():
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    used = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for expr in expressions
        for name in re.findall(r"\btracker_\w+", expr)
    }
    assert used == set(METRIC_NAMES), used
