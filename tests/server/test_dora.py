"""DORA's four keys on seeded histories, against hand-computed answers (SQLite, PostgreSQL).

The history of ``api`` in production (every time 2026-03, UTC; S = success, F = failure):

    02-28 12:00 S                                        (before every window)
    03-02 10:00 S  commits 03-02 08:00 (2 h), 03-01 10:00 (24 h)
    03-03 10:00 F  commit 03-03 09:00 (a failure delivers nothing)
    03-03 12:00 S  commit 03-03 11:00 (1 h)               recovers 03-03 10:00 F in 2 h
    03-04 00:30 S  opened 00:00, closed in place (createdAt + duration)
    03-05 10:00 F
    03-06 10:00 F
    03-07 10:00 S                                         recovers 03-05 F (48 h), 03-06 F (24 h)
    03-08 01:00 S  a closing event linked to a start at 00:00 (dated by its createdAt)
    03-10 20:00 F
    03-11 02:00 S                                         recovers 03-10 F in 6 h (after the window)

plus noise that must not count: another service, another environment, an operation, a
deployment still running.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tracker_server.clock import ManualClock
from tracker_server.dora import percentile

from tests.server.helpers import API, assert_error, create_event, update_body

pytestmark = pytest.mark.server

H = 3600.0
DAY = 24 * H


def _at(text: str) -> str:
    return f"2026-{text}:00Z".replace(" ", "T")


def _deploy(client, end: str, status: str, *commits: str, **attributes) -> None:
    changes = [
        {"kind": "commit", "id": f"c{i}", "committedAt": _at(commit)}
        for i, commit in enumerate(commits)
    ]
    create_event(
        client,
        f"deploy {end}",
        status=status,
        endDate=_at(end),
        startDate=_at(end),
        changes=changes,
        **attributes,
    )


@pytest.fixture
def history(make_client):
    clock = ManualClock(datetime(2026, 3, 4, 0, 0, tzinfo=UTC))
    client = make_client(clock=clock)
    # Closed in place: created at 00:00, success at 00:30 (no endDate: createdAt + duration).
    opened = create_event(client, "in place", status="start", startDate=None)
    clock.advance(datetime(2026, 3, 4, 0, 30, tzinfo=UTC) - clock.now())
    response = client.put(f"{API}/event", json=update_body(opened, status="success"))
    assert response.status_code == 200, response.text
    # A start at 03-08 00:00 and a closing event linked to it at 01:00.
    clock.advance(datetime(2026, 3, 8, 0, 0, tzinfo=UTC) - clock.now())
    start = create_event(client, "linked start", status="start", startDate=None)
    clock.advance(datetime(2026, 3, 8, 1, 0, tzinfo=UTC) - clock.now())
    create_event(
        client, "linked end", status="success", startDate=None, relatedId=start["metadata"]["id"]
    )
    _deploy(client, "02-28 12:00", "success")
    _deploy(client, "03-02 10:00", "success", "03-02 08:00", "03-01 10:00")
    _deploy(client, "03-03 10:00", "failure", "03-03 09:00")
    _deploy(client, "03-03 12:00", "success", "03-03 11:00")
    _deploy(client, "03-05 10:00", "failure")
    _deploy(client, "03-06 10:00", "failure")
    _deploy(client, "03-07 10:00", "success")
    _deploy(client, "03-10 20:00", "failure")
    _deploy(client, "03-11 02:00", "success")
    # Noise: none of these is a deployment of api in production that ended.
    _deploy(client, "03-02 11:00", "success", "02-01 00:00", service="web")
    _deploy(client, "03-02 11:00", "failure", environment="UAT")
    _deploy(client, "03-02 11:00", "success", "02-01 00:00", type="operation")
    _deploy(client, "03-09 11:00", "start", service="web")
    return client


def _dora(client, start: str, end: str, service: str = "api", environment: str = "production"):
    response = client.get(
        f"{API}/insights/dora",
        params={
            "service": service,
            "environment": environment,
            "start_date": start,
            "end_date": end,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_the_whole_window(history):
    report = _dora(history, "2026-03-01", "2026-03-10")
    assert report["service"] == "api"
    assert report["environment"] == "production"
    assert report["startDate"] == "2026-03-01T00:00:00Z"
    assert report["endDate"] == "2026-03-10T23:59:59.999999Z"
    assert report["deployments"] == 9
    assert report["deploymentsPerDay"] == pytest.approx(0.9)
    # Lead times 2 h, 24 h, 1 h: the median 2 h; p90 = 2 h + 0.8 x (24 h - 2 h).
    assert report["leadTimeSeconds"] == {"p50": 2 * H, "p90": pytest.approx(70560.0)}
    assert report["changeFailureRate"] == pytest.approx(4 / 9, abs=1e-4)
    # Recoveries 2 h, 6 h, 24 h, 48 h: p50 = (6 h + 24 h) / 2; p90 = 24 h + 0.7 x 24 h.
    assert report["recoveryTimeSeconds"] == {"p50": 15 * H, "p90": pytest.approx(146880.0)}
    assert report["level"] == "low"  # a change failure rate above 15 %


def test_a_window_keeps_only_deployments_that_ended_in_it(history):
    report = _dora(history, "2026-03-01", "2026-03-03")
    assert report["deployments"] == 3
    assert report["deploymentsPerDay"] == pytest.approx(1.0)
    assert report["leadTimeSeconds"] == {"p50": 2 * H, "p90": pytest.approx(70560.0)}
    assert report["changeFailureRate"] == pytest.approx(0.3333)
    assert report["recoveryTimeSeconds"] == {"p50": 2 * H, "p90": 2 * H}


def test_a_window_without_failures_or_changes(history):
    report = _dora(history, "2026-03-07", "2026-03-09")
    assert report["deployments"] == 2  # 03-07 10:00 and the linked 03-08 01:00
    assert report["deploymentsPerDay"] == pytest.approx(0.6667)
    assert report["leadTimeSeconds"] == {"p50": None, "p90": None}
    assert report["changeFailureRate"] == 0.0
    assert report["recoveryTimeSeconds"] == {"p50": None, "p90": None}
    assert report["level"] == "high"  # weekly or more, but not daily


def test_a_failure_not_yet_recovered_has_no_recovery_time(history):
    report = _dora(history, "2026-03-10T00:00:00Z", "2026-03-10T23:00:00Z")
    assert report["deployments"] == 1
    assert report["changeFailureRate"] == 1.0
    # Recovered at 03-11 02:00, after the window: still its recovery time.
    assert report["recoveryTimeSeconds"] == {"p50": 6 * H, "p90": 6 * H}
    only_failure = _dora(history, "2026-03-10T00:00:00Z", "2026-03-10T23:00:00Z", service="web")
    assert only_failure["deployments"] == 0


def test_other_services_and_environments_have_their_own_numbers(history):
    web = _dora(history, "2026-03-01", "2026-03-10", service="web")
    assert web["deployments"] == 1
    assert web["leadTimeSeconds"]["p50"] == pytest.approx(28 * DAY + 11 * H + 1 * DAY)
    uat = _dora(history, "2026-03-01", "2026-03-10", environment="UAT")
    assert uat["deployments"] == 1
    assert uat["changeFailureRate"] == 1.0
    assert uat["recoveryTimeSeconds"] == {"p50": None, "p90": None}


def test_an_empty_window(history):
    report = _dora(history, "2026-04-01", "2026-04-02")
    assert report["deployments"] == 0
    assert report["deploymentsPerDay"] == 0.0
    assert report["changeFailureRate"] is None
    assert report["level"] is None


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"environment": "production"}, "service and environment are required"),
        ({"service": "api"}, "service and environment are required"),
        ({"service": "api", "environment": "moon base"}, "environment"),
        (
            {"service": "api", "environment": "production", "start_date": "yesterday"},
            "not an RFC 3339 timestamp",
        ),
        (
            {
                "service": "api",
                "environment": "production",
                "start_date": "2026-03-02",
                "end_date": "2026-03-01",
            },
            "start_date is after end_date",
        ),
    ],
)
def test_bad_requests_are_400_with_the_error_body(client, params, fragment):
    assert_error(client.get(f"{API}/insights/dora", params=params), 400, 3, fragment)


def test_percentiles_interpolate_between_ranks():
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([10.0, 0.0], 0.9) == 9.0
