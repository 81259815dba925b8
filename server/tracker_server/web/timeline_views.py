"""The time-axis views' layout: deployments, incidents, freeze occurrences and lock holds
as bars on lanes (x and width in the SVG's units), the overlaps, the "now" line, the ticks,
and a month's grid for the calendar.

Pure functions: no database, no HTTP (``web/time_axis.py`` reads the rows and renders).
Every moment is UTC; a window is ``[start, end)``. A recurring freeze's occurrences are
found by the board's own rule (``queries.occurrence``: read in the window's zone, then
converted), so the lanes and the board never disagree about when a freeze is in force.
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tracker_server.store.freezes import _in_scope
from tracker_server.web.queries import occurrence
from tracker_server.web.render import human_seconds, moment

#: The spans a lanes view can show, and how long each is.
SPANS = {"day": timedelta(days=1), "week": timedelta(days=7)}
#: The SVG's width in its own units; the label column; the plot's right margin.
WIDTH = 1000.0
LABEL = 180.0
RIGHT = 12.0
PLOT = WIDTH - LABEL - RIGHT
#: Height of the axis at the top, of one row of bars, and the lane's padding.
AXIS = 30.0
ROW = 18.0
PAD = 6.0
#: A lane is at least this tall (its two label lines).
MIN_LANE = 38.0
#: The narrowest bar (an instant, or a few seconds on a week) stays visible and clickable.
MIN_WIDTH = 4.0
#: Overlapping bars stack in rows; past this many they share the last one.
MAX_ROWS = 4
#: At most this many bars per lane, and this many lanes: the rest are counted and said.
BAR_CAP = 150
LANE_CAP = 60
#: At most this many bars in the text list under the lanes.
LIST_CAP = 200
#: At most this many overlaps are listed (all are counted).
OVERLAP_CAP = 100
#: At most this many occurrences of one freeze window in a window (a every-minute cron).
OCCURRENCE_CAP = 400
#: Environments in pipeline order; others follow, sorted.
PIPELINE = (
    "development",
    "integration",
    "TNR",
    "UAT",
    "recette",
    "staging",
    "preproduction",
    "production",
    "mco",
)


@dataclass(frozen=True)
class Window:
    """The stretch a lanes view shows: a UTC day or a week starting on Monday."""

    span: str
    day: date
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def step(self) -> timedelta:
        return SPANS[self.span]

    @property
    def previous_day(self) -> date:
        return self.day - self.step

    @property
    def next_day(self) -> date:
        return self.day + self.step

    def x(self, when: datetime) -> float:
        """The x of a moment, clamped to the plot."""
        share = (when - self.start).total_seconds() / self.seconds
        return LABEL + min(max(share, 0.0), 1.0) * PLOT

    def covers(self, when: datetime) -> bool:
        return self.start <= when < self.end

    @property
    def title(self) -> str:
        if self.span == "day":
            return self.start.strftime("%A %d %B %Y (UTC)")
        last = self.end - timedelta(days=1)
        return f"Week of {self.start:%A %d %B %Y} to {last:%A %d %B %Y} (UTC)"


def window(span: str, day: date) -> Window:
    """The UTC day of ``day``, or the Monday-to-Sunday week holding it."""
    first = day if span == "day" else day - timedelta(days=day.weekday())
    start = datetime.combine(first, time.min, tzinfo=UTC)
    return Window(span=span, day=day, start=start, end=start + SPANS[span])


@dataclass(slots=True)
class Item:
    """Something with a start and an end to draw: a deployment, an incident, a lock hold
    or a freeze occurrence. ``end`` is where the bar stops (now, for what still runs);
    ``open`` says it still runs. ``freeze`` is the freeze window of an occurrence."""

    kind: str
    id: str
    title: str
    service: str
    environment: str
    status: str
    start: datetime
    end: datetime
    open: bool = False
    href: str = ""
    hard: bool = False
    freeze: Any = None

    @property
    def lane(self) -> tuple[str, str]:
        return (self.service, self.environment)

    def covers(self, service: str, environment: str) -> bool:
        """A freeze occurrence's scope holds this service and environment."""
        return self.freeze is not None and _in_scope(
            self.freeze, service=service, environment=environment
        )


def intersects(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Two stretches share time; an instant (start == end) is inside a stretch holding it."""
    if a_start == a_end:
        return b_start <= a_start < b_end
    if b_start == b_end:
        return a_start <= b_start < a_end
    return a_start < b_end and b_start < a_end


def tooltip(item: Item) -> str:
    """The bar's title: what, where, status, from-to in UTC and how long."""
    if item.kind == "freeze":
        kind = "hard freeze" if item.hard else "soft freeze"
        where = _scope_text(item.freeze)
        head = f'{kind} "{item.title}" · {where}'
    else:
        head = f"{item.service} · {item.environment} · {item.kind} {item.status}".rstrip()
        if item.title:
            head += f" · {item.title}"
    ongoing = {"deployment": "running", "incident": "open", "lock": "held"}.get(item.kind, "")
    if item.open and ongoing:
        until = f"{ongoing} now ({human_seconds((item.end - item.start).total_seconds())})"
    elif item.end == item.start:
        return f"{head} · {moment(item.start)}"
    else:
        until = f"{moment(item.end)} ({human_seconds((item.end - item.start).total_seconds())})"
    return f"{head} · {moment(item.start)} – {until}"


def _scope_text(window: Any) -> str:
    if window is None:
        return ""
    scope = str(window.scope_type.value).replace("FREEZE_SCOPE_", "").lower()
    ids = ", ".join(window.scope_ids)
    return f"{scope}: {ids}" if ids else scope


@dataclass(frozen=True)
class Bar:
    """One bar: its item, x and width in the SVG's units, its row in the lane, whether it
    runs past an edge of the window, whether it is part of an overlap."""

    item: Item
    x: float
    width: float
    row: int
    clipped_start: bool
    clipped_end: bool
    overlap: bool
    text: str

    @property
    def kind(self) -> str:
        return self.item.kind


@dataclass(frozen=True)
class Band:
    """A freeze in force behind a lane (x, width), hard or soft, and its title."""

    x: float
    width: float
    hard: bool
    text: str


@dataclass
class Lane:
    """One lane: a service x environment (or a freeze window), its bars and bands."""

    service: str
    environment: str
    bars: list[Bar] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    rows: int = 1
    hidden: int = 0
    y: float = 0.0

    @property
    def height(self) -> float:
        return max(self.rows * ROW + 2 * PAD, MIN_LANE)

    def bar_y(self, bar: Bar) -> float:
        return self.y + PAD + bar.row * ROW

    @property
    def label(self) -> str:
        return _short(self.service, 24)

    @property
    def sub(self) -> str:
        return _short(self.environment, 28)


def _short(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


@dataclass(frozen=True)
class Overlap:
    """Two deployments of one service and environment at once, or a deployment during a
    hard freeze (``other`` is the freeze occurrence); ``start``-``end`` is the shared time."""

    kind: str
    item: Item
    other: Item
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Tick:
    """A line of the axis, with its label (empty: a minor line)."""

    x: float
    label: str


@dataclass
class Layout:
    """Everything the lanes SVG draws."""

    window: Window
    freezes: list[Lane]
    lanes: list[Lane]
    ticks: list[Tick]
    now_x: float | None
    overlaps: list[Overlap]
    overlap_count: int
    hidden_lanes: int
    height: float
    counts: dict[str, int]

    @property
    def hidden_bars(self) -> int:
        return sum(lane.hidden for lane in [*self.freezes, *self.lanes])

    def listed(self) -> tuple[list[tuple[Lane, list[Bar]]], int]:
        """The bars the text list under the lanes shows (at most LIST_CAP, lane by lane),
        and how many it leaves out."""
        shown: list[tuple[Lane, list[Bar]]] = []
        room = LIST_CAP
        left = 0
        for lane in [*self.freezes, *self.lanes]:
            taken = lane.bars[: max(room, 0)]
            room -= len(taken)
            left += len(lane.bars) - len(taken)
            if taken:
                shown.append((lane, taken))
        return shown, left


def environment_order(name: str) -> tuple[int, str]:
    """Pipeline order: development -> ... -> production, then the others by name."""
    return (PIPELINE.index(name), "") if name in PIPELINE else (len(PIPELINE), name.lower())


def overlaps(items: Sequence[Item], freezes: Sequence[Item]) -> list[Overlap]:
    """Deployments of one service x environment at the same time (each pair once), and
    deployments during a hard freeze whose scope holds them; by start."""
    found: list[Overlap] = []
    deployments = sorted(
        (i for i in items if i.kind == "deployment"), key=lambda i: (i.start, i.end, i.id)
    )
    by_lane: dict[tuple[str, str], list[Item]] = {}
    for item in deployments:
        by_lane.setdefault(item.lane, []).append(item)
    for lane in by_lane.values():
        running: list[Item] = []
        for item in lane:  # a sweep: only those still running when this one starts
            running = [r for r in running if r.end > item.start or r.start == item.start]
            for other in running:
                if intersects(other.start, other.end, item.start, item.end):
                    found.append(
                        Overlap(
                            "deployments",
                            other,
                            item,
                            max(other.start, item.start),
                            min(other.end, item.end),
                        )
                    )
            running.append(item)
    hard = [f for f in freezes if f.hard]
    for item in deployments:
        for freeze in hard:
            if freeze.covers(item.service, item.environment) and intersects(
                item.start, item.end, freeze.start, freeze.end
            ):
                begins = max(item.start, freeze.start)
                ends = max(min(item.end, freeze.end), begins)
                found.append(Overlap("freeze", item, freeze, begins, ends))
    return sorted(found, key=lambda o: (o.start, o.item.id, o.other.id))


def _bars(items: Iterable[Item], where: Window, flagged: set[str]) -> tuple[list[Bar], int]:
    """Bars packed into rows (greedy, by start): (bars, rows used)."""
    bars: list[Bar] = []
    ends: list[float] = []  # the right edge of the last bar of each row
    for item in sorted(items, key=lambda i: (i.start, i.end, i.id)):
        x = where.x(item.start)
        width = max(where.x(item.end) - x, MIN_WIDTH)
        x = min(x, LABEL + PLOT - MIN_WIDTH)
        row = next((r for r, right in enumerate(ends) if right <= x + 0.01), None)
        if row is None:
            if len(ends) < MAX_ROWS:
                ends.append(0.0)
                row = len(ends) - 1
            else:
                row = min(range(len(ends)), key=ends.__getitem__)
        ends[row] = max(ends[row], x + width)
        bars.append(
            Bar(
                item=item,
                x=round(x, 1),
                width=round(width, 1),
                row=row,
                clipped_start=item.start < where.start,
                clipped_end=item.end > where.end,
                overlap=item.id in flagged,
                text=tooltip(item),
            )
        )
    return bars, max(len(ends), 1)


def _capped(items: list[Item], flagged: set[str]) -> tuple[list[Item], int]:
    """At most BAR_CAP items, overlaps, incidents and failures kept first."""
    if len(items) <= BAR_CAP:
        return items, 0

    def rank(item: Item) -> tuple[int, int, int, datetime]:
        return (
            item.id not in flagged,
            item.kind != "incident",
            item.status not in ("failure", "error"),
            item.start,
        )

    kept = sorted(items, key=rank)[:BAR_CAP]
    return kept, len(items) - len(kept)


def ticks(where: Window) -> list[Tick]:
    """Every 3 hours on a day (labelled), every day on a week (labelled) with 6-hour lines."""
    found = []
    if where.span == "day":
        for hour in range(0, 25, 3):
            moment_ = where.start + timedelta(hours=hour)
            label = f"{hour:02d}:00" if hour < 24 else ""
            found.append(Tick(x=round(where.x(moment_), 1), label=label))
        return found
    for quarter in range(0, 7 * 4 + 1):
        moment_ = where.start + timedelta(hours=6 * quarter)
        label = moment_.strftime("%a %d") if quarter % 4 == 0 and quarter < 28 else ""
        found.append(Tick(x=round(where.x(moment_), 1), label=label))
    return found


def layout(
    items: Sequence[Item],
    freezes: Sequence[Item],
    where: Window,
    now: datetime,
    *,
    lanes_wanted: Iterable[tuple[str, str]] = (),
) -> Layout:
    """Lanes of bars for ``items`` (deployments, incidents, lock holds) and ``freezes``
    (occurrences), within ``where``: one lane per service x environment (services by name,
    environments in pipeline order), the freeze windows on top, overlaps flagged."""
    shown = [i for i in items if intersects(i.start, i.end, where.start, where.end)]
    shown_freezes = [f for f in freezes if intersects(f.start, f.end, where.start, where.end)]
    found = overlaps(shown, shown_freezes)
    flagged = {o.item.id for o in found} | {o.other.id for o in found if o.kind == "deployments"}
    by_lane: dict[tuple[str, str], list[Item]] = {key: [] for key in lanes_wanted}
    for item in shown:
        by_lane.setdefault(item.lane, []).append(item)
    keys = sorted(by_lane, key=lambda k: (k[0].lower(), environment_order(k[1])))
    hidden_lanes = max(len(keys) - LANE_CAP, 0)
    lanes = []
    for service, environment in keys[:LANE_CAP]:
        kept, hidden = _capped(by_lane[(service, environment)], flagged)
        bars, rows = _bars(kept, where, flagged)
        lane = Lane(service=service, environment=environment, bars=bars, rows=rows, hidden=hidden)
        lane.bands = [
            Band(
                x=round(where.x(f.start), 1),
                width=round(max(where.x(f.end) - where.x(f.start), 1.0), 1),
                hard=f.hard,
                text=tooltip(f),
            )
            for f in shown_freezes
            if f.covers(service, environment)
        ]
        lanes.append(lane)
    freeze_lanes: dict[str, Lane] = {}
    by_window: dict[str, list[Item]] = {}
    for occurrence_ in shown_freezes:
        window_id = occurrence_.freeze.id
        by_window.setdefault(window_id, []).append(occurrence_)
        if window_id not in freeze_lanes:
            kind = "hard freeze" if occurrence_.hard else "soft freeze"
            freeze_lanes[window_id] = Lane(
                service=occurrence_.title,
                environment=f"{kind} · {', '.join(occurrence_.freeze.scope_ids) or 'everything'}",
            )
    for window_id, lane in freeze_lanes.items():
        kept, lane.hidden = _capped(by_window[window_id], set())
        lane.bars, lane.rows = _bars(kept, where, set())
    y = AXIS
    for lane in [*freeze_lanes.values(), *lanes]:
        lane.y = y
        y += lane.height
    counts = {
        kind: sum(1 for i in shown if i.kind == kind) for kind in ("deployment", "incident", "lock")
    }
    counts["freeze"] = len(shown_freezes)
    return Layout(
        window=where,
        freezes=list(freeze_lanes.values()),
        lanes=lanes,
        ticks=ticks(where),
        now_x=round(where.x(now), 1) if where.covers(now) else None,
        overlaps=found[:OVERLAP_CAP],
        overlap_count=len(found),
        hidden_lanes=hidden_lanes,
        height=y + PAD,
        counts=counts,
    )


# ------------------------------------------------------------------ freezes
def freeze_occurrences(
    window: Any, start: datetime, end: datetime, *, cap: int = OCCURRENCE_CAP
) -> list[tuple[datetime, datetime]]:
    """The stretches of a freeze window in force within ``[start, end)``: its one stretch
    (``startsAt``-``endsAt``), or each occurrence of a recurring one (cron read in its
    zone, converted to UTC, within ``startsAt``/``endsAt``). An open end is ``end``."""
    if not getattr(window, "active", True):
        return []
    if not window.cron_start:
        begins = window.starts_at or start
        ends = window.ends_at or end
        return [(begins, ends)] if intersects(begins, ends, start, end) and begins < ends else []
    found: list[tuple[datetime, datetime]] = []
    at = start if window.starts_at is None else max(start, window.starts_at)
    while len(found) < cap and at < end:
        stretch = occurrence(window, at)
        if stretch is None:
            break
        begins, ends = stretch
        if begins >= end or (window.ends_at is not None and begins >= window.ends_at):
            break
        if window.starts_at is not None:
            begins = max(begins, window.starts_at)
        if ends > begins and (not found or found[-1] != (begins, ends)):
            found.append((begins, ends))
        at = max(ends, at + timedelta(minutes=1))  # always forward
    return found


# ------------------------------------------------------------------ the month
@dataclass
class Day:
    """One day of the month grid: its counts and whether a freeze is in force in it."""

    day: date
    in_month: bool
    deployments: int = 0
    failed: int = 0
    incidents: int = 0
    #: "hard", "soft" or "" (no freeze in force that day), and the freezes' titles.
    freeze: str = ""
    freezes: list[str] = field(default_factory=list)
    #: Seconds of the day under a freeze (occurrences added; at most the day).
    frozen: float = 0.0
    today: bool = False

    @property
    def frozen_text(self) -> str:
        """``all day``, or how long: ``1 h 00 min``."""
        return "all day" if self.frozen >= 86400 else human_seconds(self.frozen)


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """The month's first moment and the next month's, UTC."""
    first = datetime(year, month, 1, tzinfo=UTC)
    days = _calendar.monthrange(year, month)[1]
    return first, first + timedelta(days=days)


def month_grid(year: int, month: int, today: date | None = None) -> list[list[Day]]:
    """Weeks (Monday first) covering the month, days of the months around it included."""
    weeks = _calendar.Calendar(firstweekday=0).monthdatescalendar(year, month)
    return [
        [Day(day=d, in_month=d.month == month, today=d == today) for d in week] for week in weeks
    ]


def mark_freezes(days: Iterable[Day], freezes: Iterable[Item]) -> None:
    """Mark each day a freeze occurrence touches (hard wins over soft)."""
    by_day = {d.day: d for d in days}
    for occurrence_ in freezes:
        last = occurrence_.end - timedelta(microseconds=1)
        day = occurrence_.start.date()
        while day <= last.date():
            found = by_day.get(day)
            if found is not None:
                begins = datetime.combine(day, time.min, tzinfo=UTC)
                shared = min(occurrence_.end, begins + timedelta(days=1)) - max(
                    occurrence_.start, begins
                )
                found.frozen = min(found.frozen + shared.total_seconds(), 86400.0)
                if occurrence_.title not in found.freezes:
                    found.freezes.append(occurrence_.title)
                if occurrence_.hard or not found.freeze:
                    found.freeze = "hard" if occurrence_.hard else "soft"
            day += timedelta(days=1)
