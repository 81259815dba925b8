"""DORA's four keys on a seeded history, against hand-computed answers (SQLite, PostgreSQL),
counted as DORA, fourkeys and GitLab count them (docs/dora.md); the page shows the API's.

The history of ``api`` in production (every time 2026, UTC; S = success, F = failure,
E = error, which is a failed deployment too; a change is named by its id):

    02-28 12:00 S  ships A (committed 02-27 12:00: 24 h)  (the previous period)
    03-02 10:00 S  ships B (03-02 08:00: 2 h), C (03-01 10:00: 24 h)
    03-03 10:00 F  ships D (a failure delivers nothing)
    03-03 12:00 S  ships E (03-03 11:00: 1 h), B and A again     episode 1 ends: 2 h
    03-04 00:30 S  opened 00:00, closed in place (createdAt + duration)
    03-05 10:00 F                                                  episode 2 starts
    03-06 10:00 E                                                  (the same episode)
    03-07 10:00 S  ships F committed 03-07 12:00, after the deploy: a data problem;
                   episode 2 ends: 48 h (from its FIRST failure)
    03-08 01:00 S  a closing event linked to a start at 00:00 (dated by its createdAt)
    03-10 20:00 F                                                  episode 3 starts
    03-11 02:00 S                            episode 3 ends: 6 h (after the 03-01..03-10 window)

and incidents of api in production (the second, incident-based recovery figure): opened
03-04 09:00, closed 03-04 12:00 (3 h); opened 03-09 10:00, done 03-09 10:30 (30 min); one
still open.

plus noise that must not count: another service, another environment, an operation, a
deployment still running, an incident of another service.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from tracker_server.clock import ManualClock
from tracker_server.dora import lead_times, percentile

from tests.server.helpers import API, assert_error, create_event, update_body
from tracker_ci.models import Event

pytestmark = pytest.mark.server

H = 3600.0
DAY = 24 * H
COMMITS = {
    "A": "02-27 12:00",
    "B": "03-02 08:00",
    "C": "03-01 10:00",
    "D": "03-03 09:00",
    "E": "03-03 11:00",
    "F": "03-07 12:00",
    "W": "02-01 00:00",
}


def _at(text: str) -> str:
    return f"2026-{text}:00Z".replace(" ", "T")


def _deploy(client, end: str, status: str, changes: str = "", **attributes) -> None:
    shipped = [
        {"kind": "commit", "id": name, "committedAt": _at(COMMITS[name])} for name in changes
    ]
    create_event(
        client,
        f"deploy {end}",
        status=status,
        endDate=_at(end),
        startDate=_at(end),
        changes=shipped,
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
    _deploy(client, "02-28 12:00", "success", "A")
    _deploy(client, "03-02 10:00", "success", "BC")
    _deploy(client, "03-03 10:00", "failure", "D")
    _deploy(client, "03-03 12:00", "success", "EBA")
    _deploy(client, "03-05 10:00", "failure")
    _deploy(client, "03-06 10:00", "error")
    _deploy(client, "03-07 10:00", "success", "F")
    _deploy(client, "03-10 20:00", "failure")
    _deploy(client, "03-11 02:00", "success")
    # Noise: none of these is a deployment of api in production that ended.
    _deploy(client, "03-02 11:00", "success", "W", service="web")
    _deploy(client, "03-02 11:00", "failure", environment="UAT")
    _deploy(client, "03-02 11:00", "success", "W", type="operation")
    _deploy(client, "03-09 11:00", "start", service="web")
    for opened, resolved, status, service in [
        ("03-04 09:00", "03-04 12:00", "close", "api"),
        ("03-09 10:00", "03-09 10:30", "done", "api"),
        ("03-09 10:00", None, "open", "api"),
        ("03-05 10:00", "03-05 11:00", "close", "web"),
    ]:
        create_event(
            client,
            f"incident {opened}",
            type="incident",
            status=status,
            priority="P2",
            service=service,
            startDate=_at(opened),
            endDate=_at(resolved) if resolved else None,
        )
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


def _key(value, rating, previous=None, change=None) -> dict:
    return {"value": value, "rating": rating, "previous": previous, "change": change}


def test_the_whole_window(history):
    report = _dora(history, "2026-03-01", "2026-03-10")
    assert report["service"] == "api"
    assert report["environment"] == "production"
    assert report["startDate"] == "2026-03-01T00:00:00Z"
    assert report["endDate"] == "2026-03-10T23:59:59.999999Z"
    # Every ended deployment (the change failure denominator); 5 of the 9 succeeded.
    assert report["deployments"] == 9
    assert report["successfulDeployments"] == 5
    assert report["failedDeployments"] == 4  # three failures and an error
    # Frequency: successful deployments per day, 5 in 10 days.
    assert report["deploymentsPerDay"] == pytest.approx(0.5)
    # Lead times B 2 h, C 24 h, E 1 h (B and A again are not counted again; F is committed
    # after its deploy): the median 2 h; p90 = 2 h + 0.8 x (24 h - 2 h).
    assert report["changes"] == 3
    assert report["changesCommittedAfterDeployment"] == 1
    assert report["leadTimeSeconds"] == {"p50": 2 * H, "p90": pytest.approx(70560.0)}
    assert report["changeFailureRate"] == pytest.approx(0.4444)
    # Episodes 2 h, 48 h, 6 h (the 03-05 F and 03-06 E are one): p50 6 h;
    # p90 = 6 h + 0.8 x (48 h - 6 h) = 39.6 h.
    assert report["failureEpisodes"] == 3
    assert report["recoveryTimeSeconds"] == {"p50": 6 * H, "p90": pytest.approx(39.6 * H)}
    assert report["level"] == "low"  # a change failure rate above 15 %
    # Incidents 3 h and 30 min: p50 1 h 45 min, p90 = 30 min + 0.9 x 2 h 30 min.
    assert report["incidentsResolved"] == 2
    assert report["incidentRecoverySeconds"] == {"p50": 1.75 * H, "p90": pytest.approx(2.75 * H)}
    assert report["ratedBy"] == "DORA, 2023 Accelerate State of DevOps report"
    # The previous 10 days (02-19..02-28) hold 02-28 S: 0.1 a day, lead time 24 h (A).
    assert report["previousStartDate"] == "2026-02-19T00:00:00Z"
    assert report["previousEndDate"] == "2026-02-28T23:59:59.999999Z"
    assert report["keys"] == {
        "deploymentFrequency": _key(0.5, "high", 0.1, 0.4),
        "leadTime": _key(2 * H, "elite", DAY, 2 * H - DAY),
        "changeFailureRate": _key(0.4444, "low", 0.0, 0.4444),
        "recoveryTime": _key(6 * H, "high"),
    }


def test_a_window_keeps_only_deployments_that_ended_in_it(history):
    report = _dora(history, "2026-03-01", "2026-03-03")
    assert report["deployments"] == 3
    assert report["successfulDeployments"] == 2
    assert report["deploymentsPerDay"] == pytest.approx(0.6667)
    assert report["leadTimeSeconds"] == {"p50": 2 * H, "p90": pytest.approx(70560.0)}
    assert report["changeFailureRate"] == pytest.approx(0.3333)
    assert report["recoveryTimeSeconds"] == {"p50": 2 * H, "p90": 2 * H}
    assert report["keys"]["deploymentFrequency"]["rating"] == "high"
    assert report["incidentsResolved"] == 0
    assert report["incidentRecoverySeconds"] == {"p50": None, "p90": None}


def test_a_change_committed_after_its_deploy_is_a_data_problem_not_a_lead_time(history):
    report = _dora(history, "2026-03-07", "2026-03-09")
    assert report["deployments"] == 2  # 03-07 10:00 and the linked 03-08 01:00
    assert report["deploymentsPerDay"] == pytest.approx(0.6667)
    assert report["changes"] == 0
    assert report["changesCommittedAfterDeployment"] == 1
    assert report["leadTimeSeconds"] == {"p50": None, "p90": None}
    assert report["changeFailureRate"] == 0.0
    # The episode ended here began on 03-05: it belongs to that window.
    assert report["failureEpisodes"] == 0
    assert report["recoveryTimeSeconds"] == {"p50": None, "p90": None}
    assert report["keys"]["leadTime"] == _key(None, None)  # 03-04..03-06 shipped none
    assert report["level"] == "high"  # weekly or more, but not daily


def test_an_error_is_a_failed_deployment_of_the_episode_it_continues(history):
    report = _dora(history, "2026-03-06", "2026-03-06")
    assert report["deployments"] == 1
    assert report["failedDeployments"] == 1
    assert report["changeFailureRate"] == 1.0
    assert report["deploymentsPerDay"] == 0.0
    assert report["failureEpisodes"] == 0  # the run began on 03-05
    assert report["keys"]["deploymentFrequency"]["rating"] == "low"
    first = _dora(history, "2026-03-05", "2026-03-06")
    assert first["failureEpisodes"] == 1
    assert first["recoveryTimeSeconds"] == {"p50": 48 * H, "p90": 48 * H}


def test_a_change_counts_once_at_its_first_successful_deployment(history):
    # 03-03 12:00 ships E, B and A: B went out on 03-02, A on 02-28 (before the window).
    report = _dora(history, "2026-03-03", "2026-03-03")
    assert report["changes"] == 1
    assert report["leadTimeSeconds"] == {"p50": 1 * H, "p90": 1 * H}


def test_an_episode_not_recovered_in_the_window_is_recovered_after_it(history):
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
    assert uat["failureEpisodes"] == 1
    assert uat["recoveryTimeSeconds"] == {"p50": None, "p90": None}


def test_an_empty_window(history):
    report = _dora(history, "2026-04-01", "2026-04-02")
    assert report["deployments"] == 0
    assert report["deploymentsPerDay"] == 0.0
    assert report["changeFailureRate"] is None
    assert report["level"] is None
    assert report["keys"]["deploymentFrequency"] == _key(None, None, None, None)


def _shown(html: str, key: str) -> str:
    found = re.search(rf'data-key="{key}" data-value="([^"]*)"', html)
    assert found, f"{key} not on the page"
    return found.group(1)


def test_the_insights_page_shows_the_api_answer(history):
    api = _dora(history, "2026-03-01", "2026-03-10")
    response = history.get(
        "/insights",
        params={
            "service": "api",
            "environment": "production",
            "start_date": "2026-03-01",
            "end_date": "2026-03-10",
        },
    )
    assert response.status_code == 200, response.text
    html = response.text
    assert float(_shown(html, "deploymentsPerDay")) == api["deploymentsPerDay"] == 0.5
    assert int(_shown(html, "deployments")) == api["deployments"]
    assert int(_shown(html, "successfulDeployments")) == api["successfulDeployments"]
    assert float(_shown(html, "leadTimeP50")) == api["leadTimeSeconds"]["p50"]
    assert float(_shown(html, "changeFailureRate")) == api["changeFailureRate"]
    assert float(_shown(html, "recoveryTimeP50")) == api["recoveryTimeSeconds"]["p50"]
    assert int(_shown(html, "changesCommittedAfterDeployment")) == 1
    assert _shown(html, "level") == api["level"]
    for key, name in [
        ("deploymentFrequency", "deploymentFrequencyRating"),
        ("leadTime", "leadTimeRating"),
        ("changeFailureRate", "changeFailureRateRating"),
        ("recoveryTime", "recoveryTimeRating"),
    ]:
        assert _shown(html, name) == api["keys"][key]["rating"]
    assert "2023 Accelerate State of DevOps report" in html
    assert float(_shown(html, "incidentRecoveryP50")) == api["incidentRecoverySeconds"]["p50"]
    assert int(_shown(html, "incidentsResolved")) == 2
    assert "-2 d" not in html  # no negative duration is printed


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


def test_the_lead_time_metric_leaves_out_a_change_committed_after_its_deploy():
    event = Event.model_validate(
        {
            "title": "deploy",
            "attributes": {
                "type": "deployment",
                "status": "success",
                "endDate": "2026-03-02T10:00:00Z",
                "changes": [
                    {"id": "a", "committedAt": "2026-03-02T08:00:00Z"},
                    {"id": "b", "committedAt": "2026-03-02T12:00:00Z"},
                ],
            },
        }
    )
    assert lead_times(event) == [2 * H]
