"""Every time on the pages is converted to UTC before it is labelled UTC, recurring freezes
show their current occurrence, relative times stand beside absolute ones (in-process,
SQLite and PostgreSQL, with the server's clock held still)."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
from tracker_server.clock import ManualClock

from tests.server.helpers import API

pytestmark = pytest.mark.server

# 07:20 in Paris (UTC+1 in January): inside the daily 07:00-08:00 Paris freeze, which is
# 06:00-07:00 UTC. The bug printed "until 08:00:00 UTC" (the Paris time, labelled UTC).
NOW = datetime(2026, 1, 15, 6, 20, tzinfo=UTC)


def _text(page: str) -> str:
    """The page's text, tags dropped, spaces collapsed."""
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))
    return text.replace(" ,", ",")


@pytest.fixture
def paris(make_client):
    client = make_client(clock=ManualClock(NOW))
    window = {
        "title": "Paris mornings",
        "type": "FREEZE_TYPE_HARD",
        "scopeType": "FREEZE_SCOPE_GLOBAL",
        "cronStart": "0 7 * * *",
        "cronEnd": "0 8 * * *",
        "timezone": "Europe/Paris",
    }
    response = client.post(f"{API}/freeze-window", json=window)
    assert response.status_code == 200, response.text
    return client


@pytest.mark.parametrize("path", ["/", "/freezes"])
def test_a_recurring_freeze_in_paris_shows_its_occurrence_in_utc(paris, path):
    page = paris.get(path)
    assert page.status_code == 200, page.text
    text = _text(page.text)
    assert (
        "in force since 2026-01-15 06:00:00 UTC (2026-01-15 07:00 Europe/Paris) 20 min ago "
        "until 2026-01-15 07:00:00 UTC (2026-01-15 08:00 Europe/Paris) in 40 min"
    ) in text
    assert "08:00:00 UTC" not in text  # never the Paris time with a UTC label
    assert '<time datetime="2026-01-15T07:00:00Z">' in page.text


def test_the_api_says_the_same_end(paris):
    [active] = paris.get(f"{API}/freeze-windows/active").json()["freezes"]
    assert active["freezeWindow"]["title"] == "Paris mornings"
    assert active["until"] == "2026-01-15T07:00:00Z"


def test_outside_an_occurrence_the_next_one_is_announced(make_client):
    # 23:00 UTC = midnight in Paris: the next occurrence starts at 06:00 UTC, in 7 h.
    client = make_client(clock=ManualClock(datetime(2026, 1, 14, 23, 0, tzinfo=UTC)))
    window = {
        "title": "Paris mornings",
        "cronStart": "0 7 * * *",
        "cronEnd": "0 8 * * *",
        "timezone": "Europe/Paris",
    }
    assert client.post(f"{API}/freeze-window", json=window).status_code == 200
    text = _text(client.get("/").text)
    assert (
        "starts 2026-01-15 06:00:00 UTC (2026-01-15 07:00 Europe/Paris) in 7 h, "
        "ends 2026-01-15 07:00:00 UTC (2026-01-15 08:00 Europe/Paris) in 8 h"
    ) in text


def test_event_times_are_utc_with_their_distance_from_now(paris):
    body = {
        "title": "deploy api",
        "attributes": {
            "type": "deployment",
            "status": "success",
            "service": "api",
            "environment": "production",
            # Given in Paris: stored and shown in UTC.
            "startDate": "2026-01-15T06:50:00+01:00",
            "endDate": "2026-01-15T06:55:00+01:00",
        },
    }
    created = paris.post(f"{API}/event", json=body)
    assert created.status_code == 200, created.text
    event_id = created.json()["event"]["metadata"]["id"]
    text = _text(paris.get(f"/events/{event_id}").text)
    assert "Start 2026-01-15 05:50:00 UTC 30 min ago" in text
    assert "End 2026-01-15 05:55:00 UTC 25 min ago" in text
    timeline = _text(paris.get("/timeline").text)
    assert "Thursday 15 January 2026 (UTC)" in timeline
    assert "06:20:00 UTC now" in timeline  # created at the clock's now
