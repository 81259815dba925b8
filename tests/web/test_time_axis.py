"""The time-axis views (issue 25 part 4): lanes per service x environment over a day or a
week, and a month's calendar.

- the layout's pure functions: bar geometry, rows, overlaps, the now line, caps, a
  recurring freeze's occurrences in Europe/Paris (across a DST change), the month grid;
- the pages served in-process with the clock held still (SQLite and PostgreSQL): the bars,
  their links and UTC tooltips, overlaps, filters, the calendar's counts, refusals;
- the real server in Chromium: without JavaScript, at 390x844 in both themes (no sideways
  scroll, axe 0 serious), and a live update. Screenshots go to /tmp/tracker-pages/.
"""

from __future__ import annotations

import collections
import dataclasses
import html
import re
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from tracker_server.clock import ManualClock
from tracker_server.web import time_axis
from tracker_server.web import timeline_views as views

from tests.conftest import RUNNING_IN_CI
from tests.web.conftest import AXE
from tests.web.seed import deployment
from tests.web.time_axis_seed import seed_time_axis
from tracker_ci.models import FreezeScope

SHOTS = "/tmp/tracker-pages"
PHONE = {"width": 390, "height": 844}
#: Thursday 15 January 2026, 12:00 UTC (13:00 in Paris, UTC+1 in winter).
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
DAY = views.window("day", date(2026, 1, 14))


def _at(hour: int, minute: int = 0, day: int = 14) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


def _deploy(
    item_id: str,
    start: datetime,
    end: datetime,
    *,
    service: str = "api",
    environment: str = "production",
    status: str = "success",
) -> views.Item:
    return views.Item(
        kind="deployment",
        id=item_id,
        title=item_id,
        service=service,
        environment=environment,
        status=status,
        start=start,
        end=end,
        href=f"/events/{item_id}",
    )


def _window(**fields: Any) -> SimpleNamespace:
    """A freeze window as the store gives it (the fields the layout reads)."""
    found = {
        "id": "w1",
        "title": "Paris mornings",
        "type": SimpleNamespace(value="FREEZE_TYPE_HARD"),
        "scope_type": FreezeScope.FREEZE_SCOPE_ENVIRONMENT,
        "scope_ids": ["production"],
        "starts_at": None,
        "ends_at": None,
        "cron_start": "0 7 * * *",
        "cron_end": "0 8 * * *",
        "timezone": "Europe/Paris",
        "active": True,
    }
    found.update(fields)
    return SimpleNamespace(**found)


def _freeze(start: datetime, end: datetime, *, hard: bool = True, **fields: Any) -> views.Item:
    window = _window(**fields)
    return views.Item(
        kind="freeze",
        id=f"freeze-{start:%H%M}",
        title=window.title,
        service="",
        environment="",
        status="hard" if hard else "soft",
        start=start,
        end=end,
        href="/freezes",
        hard=hard,
        freeze=window,
    )


# ------------------------------------------------------------------ layout (pure)
@pytest.mark.unit
class TestLayout:
    def test_a_day_and_a_week_are_utc_and_a_week_starts_on_monday(self):
        assert (DAY.start, DAY.end) == (_at(0), _at(0, day=15))
        week = views.window("week", date(2026, 1, 15))  # a Thursday
        assert (week.start, week.end) == (_at(0, day=12), _at(0, day=19))
        assert (week.previous_day, week.next_day) == (date(2026, 1, 8), date(2026, 1, 22))
        assert week.title == "Week of Monday 12 January 2026 to Sunday 18 January 2026 (UTC)"

    def test_bar_geometry_is_the_share_of_the_window(self):
        drawn = views.layout([_deploy("a", _at(6), _at(12))], [], DAY, NOW)
        [bar] = drawn.lanes[0].bars
        assert bar.x == views.LABEL + views.PLOT * 0.25
        assert bar.width == round(views.PLOT * 0.25, 1)
        assert not bar.clipped_start and not bar.clipped_end

    def test_an_instant_has_the_narrowest_width_and_an_early_start_is_clipped(self):
        drawn = views.layout(
            [_deploy("instant", _at(12), _at(12)), _deploy("early", _at(22, day=13), _at(1))],
            [],
            DAY,
            NOW,
        )
        bars = {bar.item.id: bar for bar in drawn.lanes[0].bars}
        assert bars["instant"].width == views.MIN_WIDTH
        assert bars["early"].x == views.LABEL and bars["early"].clipped_start
        assert bars["early"].width == round(views.PLOT / 24, 1)

    def test_what_is_outside_the_window_is_not_drawn(self):
        drawn = views.layout([_deploy("before", _at(9, day=13), _at(10, day=13))], [], DAY, NOW)
        assert drawn.lanes == [] and drawn.counts["deployment"] == 0

    def test_two_deployments_of_one_lane_at_once_overlap_and_stack(self):
        items = [
            _deploy("a", _at(10), _at(10, 30)),
            _deploy("b", _at(10, 20), _at(10, 40)),
            _deploy("c", _at(10, 30), _at(11)),  # starts when a ends: not with a
            _deploy("other-env", _at(10), _at(11), environment="staging"),
        ]
        drawn = views.layout(items, [], DAY, NOW)
        pairs = [(o.item.id, o.other.id) for o in drawn.overlaps]
        assert pairs == [("a", "b"), ("b", "c")]
        assert drawn.overlaps[0].start == _at(10, 20) and drawn.overlaps[0].end == _at(10, 30)
        production = next(lane for lane in drawn.lanes if lane.environment == "production")
        rows = {bar.item.id: bar.row for bar in production.bars}
        assert rows["a"] != rows["b"] and production.rows == 2
        assert all(bar.overlap for bar in production.bars)
        staging = next(lane for lane in drawn.lanes if lane.environment == "staging")
        assert not staging.bars[0].overlap

    def test_a_deployment_during_a_hard_freeze_of_its_scope_is_an_overlap(self):
        freeze = _freeze(_at(6), _at(7))
        soft = _freeze(_at(8), _at(9), hard=False)
        items = [
            _deploy("inside", _at(6, 20), _at(6, 24)),
            _deploy("instant-inside", _at(6, 30), _at(6, 30)),
            _deploy("after", _at(7), _at(7, 5)),  # starts as it ends
            _deploy("other-scope", _at(6, 20), _at(6, 24), environment="staging"),
            _deploy("in-soft", _at(8, 10), _at(8, 20)),
        ]
        found = views.overlaps(items, [freeze, soft])
        assert [(o.kind, o.item.id) for o in found] == [
            ("freeze", "inside"),
            ("freeze", "instant-inside"),
        ]
        drawn = views.layout(items, [freeze, soft], DAY, NOW)
        production = next(lane for lane in drawn.lanes if lane.environment == "production")
        assert [band.hard for band in production.bands] == [True, False]
        staging = next(lane for lane in drawn.lanes if lane.environment == "staging")
        assert staging.bands == []  # the freezes cover production only
        assert [lane.service for lane in drawn.freezes] == ["Paris mornings"]

    def test_the_now_line_only_within_the_window(self):
        assert views.layout([], [], DAY, NOW).now_x is None  # NOW is the next day
        today = views.window("day", NOW.date())
        assert views.layout([], [], today, NOW).now_x == views.LABEL + views.PLOT / 2

    def test_a_lane_holds_at_most_the_cap_keeping_incidents_and_overlaps(self):
        items = [
            _deploy(f"d{n}", _at(0) + timedelta(minutes=5 * n), _at(0) + timedelta(minutes=5 * n))
            for n in range(views.BAR_CAP + 10)
        ]
        incident = views.Item(
            kind="incident",
            id="late-incident",
            title="",
            service="api",
            environment="production",
            status="open",
            start=_at(23),
            end=_at(23, 30),
        )
        drawn = views.layout([*items, incident], [], DAY, NOW)
        lane = drawn.lanes[0]
        assert len(lane.bars) == views.BAR_CAP and lane.hidden == 11
        assert drawn.hidden_bars == 11
        assert "late-incident" in {bar.item.id for bar in lane.bars}
        assert len(lane.bars) + lane.hidden == drawn.counts["deployment"] + 1

    def test_lanes_by_service_then_pipeline_order(self):
        items = [
            _deploy(f"{s}-{e}", _at(1), _at(2), service=s, environment=e)
            for s, e in [
                ("web", "production"),
                ("api", "production"),
                ("api", "eu-west-1"),
                ("api", "staging"),
                ("api", "development"),
            ]
        ]
        drawn = views.layout(items, [], DAY, NOW)
        assert [(lane.service, lane.environment) for lane in drawn.lanes] == [
            ("api", "development"),
            ("api", "staging"),
            ("api", "production"),
            ("api", "eu-west-1"),
            ("web", "production"),
        ]

    def test_the_tooltip_says_where_what_and_when_in_utc(self):
        item = _deploy("x", _at(6, 20), _at(6, 24))
        assert views.tooltip(item) == (
            "api · production · deployment success · x · 2026-01-14 06:20:00 UTC – "
            "2026-01-14 06:24:00 UTC (4 min 00 s)"
        )
        running = dataclasses.replace(item, open=True, status="start")
        assert views.tooltip(running).endswith("06:20:00 UTC – running now (4 min 00 s)")

    def test_ticks_of_a_day_and_a_week(self):
        day_ticks = views.ticks(DAY)
        assert [t.label for t in day_ticks][:3] == ["00:00", "03:00", "06:00"]
        assert day_ticks[-1].x == views.LABEL + views.PLOT
        week = views.ticks(views.window("week", date(2026, 1, 14)))
        assert [t.label for t in week if t.label] == [
            "Mon 12",
            "Tue 13",
            "Wed 14",
            "Thu 15",
            "Fri 16",
            "Sat 17",
            "Sun 18",
        ]


@pytest.mark.unit
class TestFreezeOccurrences:
    def test_a_daily_paris_freeze_is_converted_to_utc(self):
        week = views.window("week", date(2026, 1, 14))
        found = views.freeze_occurrences(_window(), week.start, week.end)
        assert len(found) == 7
        assert found[0] == (_at(6, day=12), _at(7, day=12))  # 07:00-08:00 Paris = UTC+1
        assert all((s.hour, e.hour) == (6, 7) for s, e in found)

    def test_across_the_spring_dst_change_the_utc_hour_moves(self):
        # Paris goes from UTC+1 to UTC+2 on Sunday 29 March 2026.
        start = datetime(2026, 3, 27, tzinfo=UTC)
        found = views.freeze_occurrences(_window(), start, start + timedelta(days=4))
        assert [(s.day, s.hour, e.hour) for s, e in found] == [
            (27, 6, 7),
            (28, 6, 7),
            (29, 5, 6),
            (30, 5, 6),
        ]

    def test_an_occurrence_in_force_at_the_start_is_kept_and_bounds_apply(self):
        # A weekend freeze Friday 22:00 to Monday 06:00 UTC, seen from Sunday.
        weekend = _window(cron_start="0 22 * * 5", cron_end="0 6 * * 1", timezone="UTC")
        sunday = views.window("day", date(2026, 1, 18))
        assert views.freeze_occurrences(weekend, sunday.start, sunday.end) == [
            (_at(22, day=16), _at(6, day=19))
        ]
        bounded = _window(starts_at=_at(6, 30, day=13), ends_at=_at(6, 45, day=15))
        week = views.window("week", date(2026, 1, 14))
        found = views.freeze_occurrences(bounded, week.start, week.end)
        assert found == [
            (_at(6, 30, day=13), _at(7, day=13)),
            (_at(6, day=14), _at(7, day=14)),
            (_at(6, day=15), _at(6, 45, day=15)),
        ]

    def test_a_one_off_window_and_an_inactive_one(self):
        one_off = _window(cron_start="", cron_end="", starts_at=_at(20), ends_at=_at(4, day=15))
        assert views.freeze_occurrences(one_off, DAY.start, DAY.end) == [(_at(20), _at(4, day=15))]
        assert views.freeze_occurrences(_window(active=False), DAY.start, DAY.end) == []

    def test_the_month_grid_starts_on_monday_and_marks_freeze_days(self):
        weeks = views.month_grid(2026, 1, today=date(2026, 1, 15))
        assert weeks[0][0].day == date(2025, 12, 29) and not weeks[0][0].in_month
        assert weeks[-1][-1].day == date(2026, 2, 1)
        days = [d for week in weeks for d in week]
        assert [d.day for d in days if d.today] == [date(2026, 1, 15)]
        views.mark_freezes(
            days,
            [_freeze(_at(22, day=16), _at(6, day=19)), _freeze(_at(8), _at(9), hard=False)],
        )
        marked = {d.day.day: (d.freeze, d.frozen_text) for d in days if d.freeze and d.in_month}
        assert marked == {
            14: ("soft", "1 h 00 min"),
            16: ("hard", "2 h 00 min"),
            17: ("hard", "all day"),
            18: ("hard", "all day"),
            19: ("hard", "6 h 00 min"),
        }


@pytest.mark.unit
def test_a_closing_event_ends_the_deployment_it_names_an_incident_stays():
    def row(row_id: str, **fields: Any) -> tuple[Any, ...]:
        found = {
            "id": row_id,
            "title": row_id,
            "type": "deployment",
            "service": "api",
            "environment": "production",
            "status": "start",
            "created_at": _at(10),
            "start_date": None,
            "end_date": None,
            "duration_seconds": None,
            "related_id": "",
        }
        # A result row: read by position (the columns of time_axis.COLUMNS) and by name.
        values = found | fields
        return Row(*(values[name] for name in time_axis.COLUMNS))

    Row = collections.namedtuple("Row", time_axis.COLUMNS)  # noqa: PYI024
    rows = [
        row("started"),
        row("closer", status="success", created_at=_at(10, 20), related_id="started"),
        row("cause", type="incident", status="open", created_at=_at(10, 30), related_id="started"),
        row("running", service="web", created_at=_at(11)),
    ]
    items = {item.id: item for item in time_axis._merged(rows, NOW)}
    assert set(items) == {"started", "cause", "running"}
    assert (items["started"].end, items["started"].status) == (_at(10, 20), "success")
    assert not items["started"].open
    assert items["cause"].open and items["cause"].end == NOW  # open incident: until now
    assert items["running"].open and items["running"].end == NOW


# ------------------------------------------------------------------ pages, in-process
def _text(page: str) -> str:
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))
    return text.replace(" .", ".").replace(" ,", ",")


@pytest.fixture
def seeded(make_client):
    client = make_client(clock=ManualClock(NOW))
    made = seed_time_axis(client, NOW)
    return client, made


def _ids(made: dict[str, Any], *names: str) -> list[str]:
    return [made[name]["metadata"]["id"] for name in names]


@pytest.mark.server
def test_the_day_lanes_link_every_bar_and_flag_the_overlaps(seeded):
    client, made = seeded
    response = client.get("/lanes?span=day&at=2026-01-14")
    assert response.status_code == 200, response.text
    page = html.unescape(response.text)
    drawn = [
        "api_ok",
        "api_failed",
        "api_fix",
        "in_freeze",
        "billing_a",
        "billing_b",
        "web_staging",
        "web_prod",
        "incident",
    ]
    for event_id in _ids(made, *drawn):
        assert f'<a href="/events/{event_id}"' in page, event_id
    assert f"/events/{_ids(made, 'open_incident')[0]}" not in page  # the next day
    flagged = set(re.findall(r'data-id="([^"]+)" data-overlap="yes"', page))
    assert flagged == set(_ids(made, "in_freeze", "billing_a", "billing_b"))
    text = _text(response.text)
    assert (
        'Deployment during hard freeze "Paris mornings": api hotfix in the freeze '
        "(api in production), 2026-01-14 06:20:00 UTC to 2026-01-14 06:24:00 UTC." in text
    )
    assert (
        "Two deployments of billing in production at once: billing 7.1 and billing 7.1 again"
        in text
    )
    assert "8 deployments, 1 incident, 1 freeze occurrence, 0 lock holds; 2 overlaps." in text
    # Tooltips: converted to UTC, then labelled (the freeze is 07:00-08:00 in Paris).
    assert (
        "<title>api · production · deployment success · api hotfix in the freeze · "
        "2026-01-14 06:20:00 UTC – 2026-01-14 06:24:00 UTC (4 min 00 s)</title>"
    ) in page
    assert (
        '<title>hard freeze "Paris mornings" · environment: production · '
        "2026-01-14 06:00:00 UTC – 2026-01-14 07:00:00 UTC (1 h 00 min)</title>"
    ) in page
    [freeze_x] = re.findall(r'class="bar bar-freeze bar-hard" x="([\d.]+)"', page)
    assert float(freeze_x) == views.LABEL + views.PLOT / 4
    assert 'id="now-line"' not in page
    # Zoom and move.
    assert 'href="/lanes?span=day&at=2026-01-13"' in page
    assert 'href="/lanes?span=week&at=2026-01-14"' in page
    assert 'href="/calendar?month=2026-01"' in page


@pytest.mark.server
def test_today_has_the_now_line_the_open_incident_and_lock_holds(seeded):
    client, made = seeded
    page = html.unescape(client.get("/lanes").text)
    assert "Thursday 15 January 2026 (UTC)" in page
    now_line = re.search(r'<g class="now" id="now-line"><line x1="([\d.]+)"', page)
    assert now_line and float(now_line.group(1)) == views.LABEL + views.PLOT / 2
    assert "now 12:00 UTC" in page
    incident = _ids(made, "open_incident")[0]
    assert f'<a href="/events/{incident}"' in page
    assert "billing slow invoices · 2026-01-15 10:00:00 UTC – open now (2 h 00 min)" in page
    # The lock held now and the one taken and released (from the journal).
    assert "web · staging · lock held · deployment held by carol" in page
    assert "billing · production · lock released · db held by erin" in page
    assert "2 lock holds" in _text(page)


@pytest.mark.server
def test_a_week_and_the_filters(seeded):
    client, made = seeded
    week = client.get("/lanes?span=week&at=2026-01-14")
    text = _text(week.text)
    assert "Week of Monday 12 January 2026 to Sunday 18 January 2026 (UTC)" in text
    assert "7 freeze occurrences" in text
    billing = html.unescape(client.get("/lanes?at=2026-01-14&service=billing").text)
    assert all(f"/events/{i}" in billing for i in _ids(made, "billing_a", "billing_b"))
    assert not any(f"/events/{i}" in billing for i in _ids(made, "api_ok", "web_prod"))
    assert "Paris mornings" in billing  # production, any environment: it may apply
    staging = html.unescape(client.get("/lanes?at=2026-01-14&environment=staging").text)
    assert f"/events/{_ids(made, 'web_staging')[0]}" in staging
    assert "Paris mornings" not in staging  # production only
    assert "<option selected>staging</option>" in staging


@pytest.mark.server
def test_the_month_counts_each_day_and_links_it(seeded):
    client, _ = seeded
    response = client.get("/calendar?month=2026-01")
    assert response.status_code == 200, response.text
    page = html.unescape(response.text)
    cell = re.search(r'data-day="2026-01-14">(.*?)</td>', page, re.S)
    assert cell, page
    assert 'href="/lanes?span=day&at=2026-01-14"' in cell.group(1)
    assert 'data-deployments="8"' in cell.group(1)
    assert 'data-failed="1"' in cell.group(1)
    assert 'data-incidents="1"' in cell.group(1)
    assert 'data-freeze="hard"' in cell.group(1)
    assert "hard freeze 1 h 00 min" in _text(cell.group(1))
    today = re.search(r'data-day="2026-01-15">(.*?)</td>', page, re.S)
    assert today and 'aria-current="date"' in today.group(1)
    assert 'data-incidents="1"' in today.group(1) and "data-deployments" not in today.group(1)
    assert "January 2026 (UTC days)" in _text(page)
    assert 'href="/calendar?month=2025-12"' in page and 'href="/calendar?month=2026-02"' in page
    staging = html.unescape(client.get("/calendar?month=2026-01&environment=staging").text)
    cell = re.search(r'data-day="2026-01-14">(.*?)</td>', staging, re.S)
    assert cell and 'data-deployments="1"' in cell.group(1) and "data-freeze" not in cell.group(1)


@pytest.mark.server
def test_a_window_read_again_after_a_change(seeded):
    client, _ = seeded
    first = client.get("/lanes?at=2026-01-14").text
    assert client.get("/lanes?at=2026-01-14").text == first  # kept: nothing changed
    later = deployment(
        client,
        service="api",
        environment="staging",
        status="success",
        start=_at(20),
        end=_at(20, 5),
        title="After the first look",
    )
    again = client.get("/lanes?at=2026-01-14").text
    assert f'<a href="/events/{later["metadata"]["id"]}"' in again
    month = client.get("/calendar?month=2026-01").text
    assert 'data-day="2026-01-14">' in month and 'data-deployments="9"' in month


@pytest.mark.server
def test_a_busy_window_reads_the_lanes_it_draws_first_services_by_name(seeded, monkeypatch):
    # One lane is drawn: the services are read by name, one at a time, and the read stops
    # at the first lane (api); billing's and web's events are not read, and it is said.
    client, made = seeded
    monkeypatch.setattr(views, "LANE_CAP", 1)
    monkeypatch.setattr(time_axis, "SERVICE_BATCH", 1)
    page = html.unescape(client.get("/lanes?at=2026-01-14").text)
    assert all(f"/events/{i}" in page for i in _ids(made, "api_ok", "api_failed", "in_freeze"))
    assert not any(f"/events/{i}" in page for i in _ids(made, "billing_a", "web_prod"))
    assert "Capped: this window has more events than one view reads" in _text(page)
    # One service: all its rows are read (its second lane is not drawn, and said so).
    web = _text(client.get("/lanes?at=2026-01-14&service=web").text)
    assert "1 lane not drawn" in web and "more events than one view reads" not in web
    assert "2 deployments" in web
    assert time_axis._batch(0, []) == 1 and time_axis._batch(1, ["api"]) >= 1


@pytest.mark.server
def test_the_lanes_say_when_they_are_capped(seeded, monkeypatch):
    client, _ = seeded
    monkeypatch.setattr(time_axis, "ROW_LIMIT", 3)
    monkeypatch.setattr(time_axis, "JOURNAL_SCAN", 0)
    monkeypatch.setattr(views, "BAR_CAP", 1)
    text = _text(client.get("/lanes?at=2026-01-14").text)
    assert "Capped: this window has more events than one view reads" in text
    assert "not drawn (at most 1 a lane, overlaps, incidents and failures first" in text
    # Today's journal holds more entries than the (patched) scan: current holds only.
    today = _text(client.get("/lanes").text)
    assert "Only the locks held now are drawn" in today
    assert "web · staging · lock held" in today  # held now: still drawn
    assert "lock released" not in today


@pytest.mark.server
@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/lanes?span=month", "span: 'month' is not day or week"),
        ("/lanes?at=yesterday", "at: 'yesterday' is not a date"),
        ("/calendar?month=2026-13", "month: '2026-13' is not a month"),
        ("/lanes?span=week&at=9999-12-31", "at: '9999-12-31' is out of range"),
        ("/lanes?at=0001-01-01", "at: '0001-01-01' is out of range"),
        ("/calendar?month=0001-01", "month: '0001-01' is out of range"),
        ("/lanes?environment=" + "x" * 300, ""),
    ],
)
def test_bad_input_is_one_line_and_400(make_client, path, words):
    client = make_client(clock=ManualClock(NOW))
    response = client.get(path)
    assert response.status_code in (400, 422), response.text
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert words in body["message"] and "\n" not in body["message"]


# ------------------------------------------------------------------ Chromium, real server
SERIOUS = """async () => (await axe.run(document)).violations
    .filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => v.id + ": " + v.help + " " + v.nodes.map(n => n.target.join(" ")).join(", "))"""


@pytest.fixture(scope="module")
def lanes_server(web_server):
    """The demo server, with the time-axis history on top (around the real now)."""
    now = datetime.now(UTC)
    with httpx.Client(base_url=web_server.url, timeout=10.0) as http:
        made = seed_time_axis(http, now)
    web_server.time_axis = made
    web_server.yesterday = (now - timedelta(days=1)).date().isoformat()
    return web_server


def _clean(watched: Any, server: Any) -> None:
    outside = [u for u in watched.requests if not u.startswith(server.url)]
    assert outside == [], f"requests leaving the server: {outside}"
    assert watched.errors == [], f"console errors: {watched.errors}"


@pytest.mark.e2e
def test_the_lanes_work_without_javascript(lanes_server, open_page):
    watched = open_page(java_script_enabled=False)
    page = watched.page
    page.goto(f"{lanes_server.url}/lanes?at={lanes_server.yesterday}")
    event_id = lanes_server.time_axis["billing_a"]["metadata"]["id"]
    bar = page.locator(f'svg.lanes a[data-id="{event_id}"]')
    assert bar.get_attribute("data-overlap") == "yes"
    assert "billing · production · deployment success" in bar.get_attribute("aria-label")
    bar.click()
    page.wait_for_url(f"**/events/{event_id}")
    assert "billing 7.1" in page.inner_text("main")
    page.goto(f"{lanes_server.url}/calendar")
    page.locator("a.day[aria-current=date]").click()
    page.wait_for_url("**/lanes?span=day&at=*")
    assert page.locator("svg.lanes").count() == 1
    _clean(watched, lanes_server)


@pytest.mark.e2e
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("name", ["lanes-day", "lanes-week", "calendar"])
def test_the_time_axis_pages_fit_a_phone_and_pass_axe(lanes_server, open_page, scheme, name):
    if not AXE.exists():
        if RUNNING_IN_CI:
            pytest.fail("axe-core is required under CI=true: bash scripts/bootstrap.sh")
        pytest.skip("axe-core is not installed: `bash scripts/bootstrap.sh --with-test-tools`")
    watched = open_page(viewport=PHONE, color_scheme=scheme, bypass_csp=True)
    page = watched.page
    path = {
        "lanes-day": f"/lanes?at={lanes_server.yesterday}",
        "lanes-week": "/lanes?span=week",
        "calendar": "/calendar",
    }[name]
    page.goto(lanes_server.url + path)
    page.screenshot(path=f"{SHOTS}/{name}-{scheme}-390.png", full_page=True)
    assert page.evaluate("() => document.scrollingElement.scrollWidth") <= PHONE["width"], path
    if name == "lanes-day":  # the lanes scroll inside their box; their labels stay in view
        assert page.evaluate("() => document.querySelector('.lanes-scroll').scrollWidth") > 390
        page.locator(".lanes-scroll").evaluate("box => { box.scrollLeft = 300; }")
        page.wait_for_function(
            "() => (document.getElementById('lane-labels').getAttribute('transform') || '')"
            ".startsWith('translate(')"
        )
    page.add_script_tag(path=str(AXE))
    assert page.evaluate(SERIOUS) == [], path
    _clean(watched, lanes_server)


@pytest.mark.e2e
def test_the_lanes_follow_a_new_deployment_live(lanes_server, open_page):
    watched = open_page()
    page = watched.page
    page.goto(lanes_server.url + "/lanes")
    page.wait_for_function("() => !!document.body.dataset.live")
    now = datetime.now(UTC)
    with httpx.Client(base_url=lanes_server.url) as http:
        made = deployment(
            http,
            service="live-lanes",
            environment="staging",
            status="success",
            start=max(now - timedelta(minutes=10), now.replace(hour=0, minute=0)),
            end=now,
            title="Live lane",
        )
    page.locator(f'svg.lanes a[data-id="{made["metadata"]["id"]}"]').wait_for(timeout=15_000)
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1
    _clean(watched, lanes_server)
