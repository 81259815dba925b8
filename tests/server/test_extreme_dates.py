"""No 5xx from any window, date or duration: the extremes answer a correct 200 or a 400
naming what to fix, on SQLite and PostgreSQL (the ``client`` fixture runs on both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tracker_server import dora

from tests.server.helpers import API, assert_error, create_event, event_body

pytestmark = pytest.mark.server

DORA = f"{API}/insights/dora?service=api&environment=production"


def _history(created_at: str, duration: str, **attributes: Any) -> dict[str, Any]:
    return {**event_body(**attributes), "metadata": {"createdAt": created_at, "duration": duration}}


def _batch(client: Any, *items: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(f"{API}/events/batch", json={"events": list(items)})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01", "9999-12-30"),
        ("0001-01-01", "9999-12-31"),
        ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"),
        ("0001-01-01", "0001-01-01"),
        ("9999-12-31", "9999-12-31"),
    ],
)
def test_dora_over_all_of_time_answers_the_report(client: Any, start: str, end: str) -> None:
    create_event(client, endDate="2026-01-02T00:00:00Z")
    response = client.get(f"{DORA}&start_date={start}&end_date={end}")
    assert response.status_code == 200, response.text
    report = response.json()
    whole = start.startswith("0001") and end.startswith("9999")
    assert report["deployments"] == (1 if whole else 0)
    assert report["startDate"].startswith(start[:10])


def test_dora_without_start_near_year_one_says_to_give_it(client: Any) -> None:
    response = client.get(f"{DORA}&end_date=0001-01-05")
    assert_error(response, 400, 3, "end_date", "give start_date")


@pytest.mark.parametrize("value", ["0000-12-31", "10000-01-01", "0001-01-01T00:00:00+01:00"])
def test_dates_beyond_the_calendar_are_400(client: Any, value: str) -> None:
    assert_error(client.get(f"{DORA}&start_date={value}"), 400, 3, "start_date")
    assert_error(client.get(f"{API}/events/search?start_date={value}"), 400, 3, "start_date")


def test_search_and_stats_over_all_of_time(client: Any) -> None:
    create_event(client)
    window = "start_date=0001-01-01&end_date=9999-12-31"
    for path in ("/events/search", "/events/stats", "/events/stats/monthly"):
        response = client.get(f"{API}{path}?{window}")
        assert response.status_code == 200, (path, response.text)
    assert client.get(f"{API}/events/stats?{window}").json()["totalCount"] == "1"  # int64


def test_history_at_the_edges_of_time(client: Any) -> None:
    results = _batch(
        client,
        _history("0001-01-01T00:00:00Z", "3600s"),
        _history("9999-12-30T00:00:00Z", "3600s"),
        _history("9999-12-31T00:00:00Z", "172800s"),
        _history("0001-01-01T00:00:00Z", "1e300s"),
        _history("0001-01-01T00:00:00Z", "99999999999999999999s"),
    )
    assert [r["outcome"] for r in results] == ["created", "created", *["refused"] * 3]
    assert "after the year 9999" in results[2]["error"]["message"]
    for refused in results[2:]:
        assert set(refused["error"]) == {"code", "message", "details"}
        assert refused["error"]["code"] == 3
    assert "out of range" in results[3]["error"]["message"]
    response = client.get(f"{DORA}&start_date=0001-01-01&end_date=9999-12-31")
    assert response.status_code == 200, response.text
    assert response.json()["deployments"] == 2


def test_a_windows_slices_stop_at_the_end_of_time() -> None:
    end = dora.LATEST
    start = datetime(9999, 12, 20, tzinfo=UTC)
    ended = dora.Deployment(ended_at=end, succeeded=True)
    weeks = dora.slices(
        [ended], service="api", environment="production", start=start, end=end,
        length=timedelta(days=7),
    )  # fmt: skip
    assert [w.deployments for w in weeks] == [0, 1]
    assert weeks[-1].end_date == end


def test_shifted_holds_within_the_calendar() -> None:
    assert dora.shifted(dora.EARLIEST, -timedelta(days=1)) == dora.EARLIEST
    assert dora.shifted(dora.LATEST, timedelta(days=1)) == dora.LATEST
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    assert dora.shifted(moment, timedelta(days=1)) == moment + timedelta(days=1)
