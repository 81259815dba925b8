"""The board opens with what needs a human (in-process, SQLite and PostgreSQL): failed
latest deployments, open P1/P2 incidents, hard freezes in force with the deployments that
broke glass through them, queues with expected waits, locks near expiry."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
from tracker_server.clock import ManualClock

from tests.server.helpers import API, create_event, event_body

pytestmark = pytest.mark.server

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _items(page: str, kind: str) -> list[str]:
    """The text of each problem of a kind, tags dropped."""
    found = re.findall(rf'<li class="problem[^"]*" data-problem="{kind}">(.*?)</li>\n', page, re.S)
    texts = [re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", f))).strip() for f in found]
    return [t.replace("( ", "(").replace(" )", ")").replace(" ,", ",") for t in texts]


@pytest.fixture
def troubled(make_client):
    client = make_client(clock=ManualClock(NOW))
    # web in UAT usually takes 10 minutes.
    for hour in (8, 9):
        create_event(
            client,
            "deploy web",
            service="web",
            environment="UAT",
            startDate=f"2026-03-10T0{hour}:00:00Z",
            endDate=f"2026-03-10T0{hour}:10:00Z",
        )
    create_event(client, "deploy api 1.2", status="failure", endDate="2026-03-10T11:00:00Z")
    create_event(client, "db down", type="incident", status="open", priority="P1")
    create_event(client, "slow page", type="incident", status="open", priority="P3")
    create_event(client, "old outage", type="incident", status="close", priority="P1")
    key = {"service": "web", "environment": "UAT", "resource": "deployment"}
    held = client.post(f"{API}/lock", json=key | {"who": "carol", "ttlSeconds": 120})
    assert held.status_code == 200, held.text
    queued = client.post(f"{API}/lock/queue", json=key | {"who": "dave", "reason": "release 2.4"})
    assert queued.status_code == 200, queued.text
    freeze = {
        "title": "Quarter close",
        "type": "FREEZE_TYPE_HARD",
        "scopeType": "FREEZE_SCOPE_ENVIRONMENT",
        "scopeIds": ["production"],
        "startsAt": "2026-03-10T06:00:00Z",
        "endsAt": "2026-03-11T06:00:00Z",
    }
    assert client.post(f"{API}/freeze-window", json=freeze).status_code == 200
    body = event_body("hotfix billing", service="billing", status="start")
    broke = client.post(f"{API}/event", json=body | {"breakGlass": "hotfix INC-42"})
    assert broke.status_code == 200, broke.text
    return client


def test_the_board_opens_with_what_needs_a_human(troubled):
    page = troubled.get("/").text
    assert page.index("Needs attention (5)") < page.index('id="running-h"')
    [failed] = _items(page, "failed")
    assert failed.startswith("Failed: latest deployment of api in production, deploy api 1.2")
    [incident] = _items(page, "incident")
    assert incident.startswith("Open P1 incident: db down on api in production, opened")
    assert "slow page" not in page and "old outage" not in "".join(_items(page, "incident"))
    [freeze] = _items(page, "freeze")
    assert "Hard freeze in force: Quarter close (environment: production) until 2026-03-11" in (
        freeze
    )
    assert "broke glass through it:" in freeze
    assert "hotfix billing (billing in production) by alice" in freeze
    assert "hotfix INC-42" in freeze
    [queue] = _items(page, "queue")
    assert "1 waiting for web in UAT (deployment), held by carol" in queue
    # carol started just now and web usually takes 10 minutes: dave waits about that.
    assert "dave (release 2.4), waiting since 2026-03-10 12:00:00 UTC now" in queue
    assert "expected wait about 10 min 00 s" in queue
    [expiring] = _items(page, "expiring")
    assert "Lock near expiry: web in UAT (deployment), held by carol, expires" in expiring
    assert expiring.endswith("2026-03-10 12:02:00 UTC in 2 min")


def test_a_quiet_board_says_so(client):
    page = client.get("/").text
    assert "Needs attention</h2>" in page
    assert "Nothing needs a human now" in page
