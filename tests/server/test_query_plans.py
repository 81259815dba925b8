"""The query plans of every served search and lookup, on SQLite and PostgreSQL: which index
answers, that no query reads the whole events table, that no page is sorted where an index
gives its order (docs/search.md). Plans, not timings: a plan that reads a million rows is
slow on any machine.

Each backend gets its own database, filled once in bulk through the server's tables with
a realistic spread (``EVENTS`` events over a year), its statistics refreshed as the server
does. Every request goes through the real app; a listener captures the SQL each one runs
and the test asks the database to EXPLAIN exactly that SQL with those parameters.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert
from tracker_server import statistics
from tracker_server.app import create_app
from tracker_server.db import create_database_engine, upgrade_schema
from tracker_server.settings import ServerSettings
from tracker_server.store import events as event_store
from tracker_server.tables import changelog, events
from tracker_server.web import queries

from tests.conftest import POSTGRES_ADMIN_DSN
from tests.server.conftest import TestClient
from tests.server.helpers import API

pytestmark = pytest.mark.server

EVENTS = 30_000
SERVICES = [f"service-{i:03d}" for i in range(100)]
ENVIRONMENTS = ["production", "UAT", "development", "preproduction", "staging", "eu-west-1"]
TYPES = ["deployment"] * 6 + ["operation", "incident", "drift", "rpa_usage"]
STATUSES = ["success"] * 5 + ["failure", "start", "in_progress", "open", "done", "close"]
PRIORITIES = ["P1", "P2", "P3", "P3", "P4", "P5"]
SOURCES = ["github", "github", "gitlab", "jenkins", "argo"]
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _rows(rng: random.Random) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Events as CI sends them: mostly deployments that succeeded, a few services and
    environments busier than others, a start just before the creation, some Slack ids."""
    for n in range(EVENTS):
        created = NOW - timedelta(seconds=rng.random() * 365 * 86400)
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        row = {
            "id": event_id,
            "title": f"event {n}",
            "message": "",
            "source": rng.choice(SOURCES),
            "type": rng.choice(TYPES),
            "priority": rng.choice(PRIORITIES),
            "related_id": "",
            "service": SERVICES[min(int(rng.expovariate(1 / 25)), len(SERVICES) - 1)],
            "status": rng.choice(STATUSES),
            "environment": rng.choice(ENVIRONMENTS),
            "impact": rng.random() < 0.1,
            "start_date": None if rng.random() < 0.05 else created - timedelta(seconds=30),
            "end_date": None,
            "owner": "ci",
            "stake_holders": [],
            "notification": False,
            "notifications": [],
            "pull_request_link": "",
            "ticket": "",
            "slack_id": f"C{n:08d}" if rng.random() < 0.05 else "",
            "created_at": created,
            "duration_seconds": None,
            "revision": "",
            "changes": [],
        }
        entry = {
            "event_id": event_id,
            "timestamp": created,
            "user": "ci",
            "change_type": "created",
            "field": "",
            "old_value": "",
            "new_value": "",
            "comment": "Event created",
        }
        yield row, entry


def _fill(engine: Engine) -> None:
    upgrade_schema(engine)
    rows = list(_rows(random.Random(15)))
    with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            chunk = rows[start : start + 5000]
            conn.execute(insert(events), [row for row, _ in chunk])
            conn.execute(insert(changelog), [entry for _, entry in chunk])
    statistics.refresh(engine, bulk=True)
    if engine.dialect.name == "postgresql":
        # What autovacuum has done to any table that lived a while: the visibility map
        # set, so a count reads index entries only (VACUUM cannot run in a transaction).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE events")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def filled_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database of its own, filled once for the module."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('plans') / 'tracker.db'}"
        engine = create_database_engine(url)
        _fill(engine)
        engine.dispose()
        yield url
        return
    request.getfixturevalue("postgres_database_url")  # skips (or fails in CI) without one
    import psycopg

    name = f"tracker_plans_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        engine = create_database_engine(url)
        _fill(engine)
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def app(filled_url: str) -> Iterator[TestClient]:
    settings = ServerSettings(database_url=filled_url, webhook_dispatcher=False, alert_timer=False)
    with TestClient(create_app(settings), raise_server_exceptions=True) as client:
        yield client


@pytest.fixture(scope="module")
def explainer(filled_url: str) -> Iterator[Engine]:
    engine = create_database_engine(filled_url)
    yield engine
    engine.dispose()


# --------------------------------------------------------------------- plans
@dataclass
class Plan:
    """What EXPLAIN says of one statement, in the same terms on both backends."""

    sql: str
    text: str
    indexes: list[str] = field(default_factory=list)
    full_scans: int = 0
    sorts: int = 0


def _explain(engine: Engine, sql: str, parameters: Any) -> Plan:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            details = [
                row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, parameters)
            ]
            return Plan(
                sql=sql,
                text="\n".join(details),
                indexes=[
                    m for d in details for m in re.findall(r"USING (?:COVERING )?INDEX (\w+)", d)
                ]
                + ["primary key" for d in details if "sqlite_autoindex_events_1" in d],
                full_scans=sum(1 for d in details if re.match(r"SCAN events(?! USING)", d)),
                sorts=sum(1 for d in details if "TEMP B-TREE" in d),
            )
        raw = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, parameters).scalar_one()
    tree = json.loads(raw) if isinstance(raw, str) else raw
    nodes = list(_nodes(tree[0]["Plan"], None))
    return Plan(
        sql=sql,
        text=json.dumps(tree[0]["Plan"], indent=1),
        indexes=[n["Index Name"] for n, _ in nodes if "Index Name" in n]
        + ["primary key" for n, _ in nodes if n.get("Index Name") == "pk_events"],
        full_scans=sum(1 for n, parent in nodes if _reads_all_events(n, parent)),
        sorts=sum(
            1
            for n, _ in nodes
            if n["Node Type"] in ("Sort", "Incremental Sort")
            and n["Plans"][0]["Plan Rows"] > SMALL_SORT
        ),
    )


#: PostgreSQL may sort the few matches a bitmap scan of the right index found rather than
#: read that index in order (the lifecycle's ~50 deployments here): harmless up to this
#: many rows, and at a million events the planner reads the index in order instead.
SMALL_SORT = 1000


def _reads_all_events(node: dict[str, Any], parent: dict[str, Any] | None) -> bool:
    """A sequential scan of events, unless a LIMIT stops it early: the capped count reads
    ``COUNT_CAP + 1`` rows in table order when the planner expects more matches than
    that (an unselective filter), which is the cheapest way to count them."""
    if node["Node Type"] != "Seq Scan" or node.get("Relation Name") != "events":
        return False
    stopped = parent is not None and parent["Node Type"] == "Limit"
    return not (stopped and parent is not None and parent["Plan Rows"] < node["Plan Rows"])


def _nodes(
    node: dict[str, Any], parent: dict[str, Any] | None
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    yield node, parent
    for child in node.get("Plans", []):
        yield from _nodes(child, node)


class Served:
    """The statements on the events table one request ran, and their plans."""

    def __init__(self, engine: Engine, statements: list[tuple[str, Any]], answer: Any) -> None:
        self.answer = answer
        self.plans = [
            _explain(engine, sql, parameters)
            for sql, parameters in statements
            if sql.lstrip().upper().startswith(("SELECT", "WITH"))
            and re.search(r"\bFROM events\b", sql)
        ]
        assert self.plans, "the request read no events"

    def assert_index_served(self, *, ordered: bool = True) -> None:
        """No statement reads the whole events table; with ``ordered``, none sorts."""
        for plan in self.plans:
            assert plan.full_scans == 0, f"a full scan of events:\n{plan.sql}\n{plan.text}"
            if ordered:
                assert plan.sorts == 0, f"a sort an index should give:\n{plan.sql}\n{plan.text}"

    def assert_uses(self, index: str) -> None:
        """The first statement (the page, or the one event) is answered through ``index``;
        a count after it may read any index with the same leading columns."""
        plan = self.plans[0]
        assert index in plan.indexes, f"not through {index}:\n{plan.sql}\n{plan.text}"


@pytest.fixture
def serve(app: TestClient, explainer: Engine):
    """GET a path through the app; the plans of the SQL it ran on events."""

    def run(path: str, params: dict[str, Any] | None = None) -> Served:
        statements: list[tuple[str, Any]] = []

        def capture(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
            statements.append((statement, parameters))

        if path.endswith("/events/search") and not {"per_page", "page", "cursor"} & set(
            params or {}
        ):
            # A page, as our pages and CLI ask (an unpaged search answers every match, as
            # upstream: test_search_unpaged.py).
            params = {**(params or {}), "per_page": 50}
        event.listen(Engine, "before_cursor_execute", capture)
        try:
            response = app.get(path, params=params)
        finally:
            event.remove(Engine, "before_cursor_execute", capture)
        assert response.status_code == 200, response.text
        html = response.headers["content-type"].startswith("text/html")
        return Served(explainer, statements, response.text if html else response.json())

    return run


def _busy(app: TestClient, **params: str) -> dict[str, Any]:
    """Any event matching ``params`` (the fill has one for each value used below)."""
    [found] = app.get(f"{API}/events/search", params={**params, "per_page": 1}).json()["events"]
    return found


# ------------------------------------------------------------ the lifecycle
@pytest.mark.parametrize("status", ["start", "success"])
def test_the_lifecycle_lookup_reads_its_own_index(serve, status):
    # deploy finish: the newest open deployment of a service in an environment (start);
    # the shipped changes: the previous successful one (success).
    params = {
        "service": "service-000",
        "environment": "production",
        "type": "deployment",
        "status": status,
    }
    served = serve(f"{API}/events/search", params)
    assert served.answer["events"], "the fill has such deployments"
    served.assert_index_served()
    served.assert_uses("ix_events_type_service_environment_status_created_at")


def test_an_event_by_id_and_by_slack_id_reads_one_index_entry(serve, app):
    some = _busy(app, service="service-001")
    by_id = serve(f"{API}/event/{some['metadata']['id']}")
    by_id.assert_index_served()
    by_id.assert_uses("primary key")
    slacked = next(
        e
        for e in app.get(f"{API}/events/list", params={"per_page": 1000}).json()["events"]
        if e["metadata"]["slackId"]
    )
    by_slack = serve(f"{API}/event/{slacked['metadata']['slackId']}")
    assert by_slack.answer["event"]["metadata"]["id"] == slacked["metadata"]["id"]
    by_slack.assert_index_served()
    by_slack.assert_uses("ix_events_slack_id_created_at")


def test_the_changelog_reads_its_index(serve, app):
    some = _busy(app, service="service-002")
    served = serve(f"{API}/event/{some['metadata']['id']}/changelog")
    served.assert_index_served()


# ---------------------------------------------------------------- searches
SINGLE = {
    "source": ("argo", "ix_events_source_created_at"),
    "type": ("incident", "ix_events_type_created_at"),
    "priority": ("P1", "ix_events_priority_created_at"),
    "status": ("failure", "ix_events_status_created_at"),
    "service": ("service-007", "ix_events_service_created_at"),
    "environment": ("eu-west-1", "ix_events_environment_created_at"),
    "impact": ("true", "ix_events_impact_created_at"),
}


@pytest.mark.parametrize("name", SINGLE)
def test_each_filter_alone_reads_its_index_in_page_order(serve, name):
    value, index = SINGLE[name]
    served = serve(f"{API}/events/search", {name: value})
    assert served.answer["events"]
    served.assert_index_served()
    served.assert_uses(index)


def test_a_slack_id_search_reads_its_index(serve, app):
    served = serve(f"{API}/events/search", {"slack_id": "C00000001"})
    served.assert_index_served()
    served.assert_uses("ix_events_slack_id_created_at")


@pytest.mark.parametrize(
    ("params", "index"),
    [
        (
            {"service": "service-003", "environment": "UAT"},
            "ix_events_service_environment_created_at",
        ),
        ({"type": "incident", "status": "open"}, "ix_events_type_status_created_at"),
    ],
)
def test_the_common_pairs_read_their_composite(serve, params, index):
    served = serve(f"{API}/events/search", params)
    assert served.answer["events"]
    served.assert_index_served()
    served.assert_uses(index)


FILTERS = {
    "source": "gitlab",
    "type": "operation",
    "priority": "P2",
    "status": "done",
    "service": "service-004",
    "environment": "development",
    "impact": "true",
    "slack_id": "C00000003",
    "start_date": "2026-06-01",
}


@pytest.mark.parametrize("pair", list(itertools.combinations(FILTERS, 2)), ids="+".join)
def test_every_pair_of_filters_is_index_served(serve, pair):
    # No composite for most pairs: the planner reads the index of the more selective one
    # (or the window) and checks the other on the rows; never the whole table.
    params = {name: FILTERS[name] for name in pair}
    if "start_date" in params:
        params["end_date"] = "2026-06-30"
    serve(f"{API}/events/search", params).assert_index_served(ordered=False)


@pytest.mark.parametrize(
    "params",
    [
        {"start_date": "2026-06-01T00:00:00Z", "end_date": "2026-06-01T23:59:59Z"},
        {"start_date": "2026-01-01", "end_date": "2026-11-30"},
        {"end_date": "2026-03-01"},
        {"start_date": "2026-11-01"},
    ],
    ids=["one day", "eleven months", "until", "since"],
)
def test_a_date_window_is_read_along_start_date_in_page_order(serve, params):
    served = serve(f"{API}/events/search", params)
    assert served.answer["events"]
    served.assert_index_served()
    served.assert_uses("ix_events_start_date_created_at")
    starts = [e["attributes"]["startDate"] for e in served.answer["events"]]
    assert starts == sorted(starts, reverse=True)  # newest startDate first


def test_a_service_in_a_period_reads_its_own_index(serve):
    params = {"service": "service-000", "start_date": "2026-05-01", "end_date": "2026-05-31"}
    served = serve(f"{API}/events/search", params)
    assert served.answer["events"]
    served.assert_index_served()
    served.assert_uses("ix_events_service_start_date_created_at")


def test_list_and_today_read_their_index_in_page_order(serve):
    listed = serve(f"{API}/events/list")
    listed.assert_index_served()
    listed.assert_uses("ix_events_created_at_id")
    today = serve(f"{API}/events/today")  # none today (the fill ends before): a count only
    today.assert_index_served()
    today.assert_uses("ix_events_start_date_created_at")


@pytest.mark.parametrize(
    ("params", "index"),
    [
        (
            {"service": "service-000", "environment": "production"},
            "ix_events_service_environment_created_at",
        ),
        ({"start_date": "2026-01-01", "end_date": "2026-11-30"}, "ix_events_start_date_created_at"),
        ({}, "ix_events_created_at_id"),
    ],
    ids=["service+environment", "window", "list"],
)
def test_a_next_page_by_cursor_reads_the_same_index_from_the_cursor(serve, app, params, index):
    path = f"{API}/events/list" if not params else f"{API}/events/search"
    first = app.get(path, params={**params, "per_page": 20}).json()
    assert first["nextCursor"]
    served = serve(path, {**params, "per_page": 20, "cursor": first["nextCursor"]})
    served.assert_index_served()
    served.assert_uses(index)
    second = [e["metadata"]["id"] for e in served.answer["events"]]
    by_offset = app.get(path, params={**params, "per_page": 20, "page": 2}).json()
    assert second == [e["metadata"]["id"] for e in by_offset["events"]]


def test_type_and_priority_read_one_index_and_skip_a_count_past_the_cap(serve, monkeypatch):
    # No composite for the pair: the page reads the index of one and checks the other on
    # its rows (a few per match); the statistics expect more matches than the count's cap,
    # so no count runs (it could only reach the cap, or its budget, first). At a million
    # events this pair matches 40,000; here 6,000, so the cap is lowered to match.
    monkeypatch.setattr(event_store, "COUNT_CAP", 1000)
    monkeypatch.setattr(event_store, "ESTIMATE_ONLY_ABOVE", 1000)
    served = serve(f"{API}/events/search", {"type": "deployment", "priority": "P3"})
    assert served.answer["events"]
    served.assert_index_served()
    pair = {"ix_events_type_created_at", "ix_events_priority_created_at"}
    assert pair & set(served.plans[0].indexes), served.plans[0].text  # the more selective
    assert not any("count(" in plan.sql.lower() for plan in served.plans), served.plans
    assert served.answer["totalCountExact"] is False
    assert served.answer["totalCount"] > event_store.COUNT_CAP


def _index_only(plan: Plan, index: str) -> bool:
    """Whether ``plan`` reads ``index`` without the table's rows."""
    if "SCAN events" in plan.text or "SEARCH events" in plan.text:  # SQLite
        return f"COVERING INDEX {index}" in plan.text
    return '"Index Only Scan"' in plan.text and f'"{index}"' in plan.text


@pytest.mark.parametrize(
    ("path", "params", "index"),
    [
        (f"{API}/events/list", {}, "ix_events_created_at_id"),
        (f"{API}/events/search", {"type": "deployment"}, "ix_events_type_created_at"),
        (
            f"{API}/events/search",
            {"start_date": "2025-12-01", "end_date": "2026-11-30"},
            "ix_events_start_date_created_at",
        ),
    ],
    ids=["list", "type", "window"],
)
def test_a_deep_page_by_number_skips_index_entries_not_rows(serve, app, path, params, index):
    # Page-number paging: the skipped matches are read as index entries only (a deferred
    # join: the page's keys first, then its rows by primary key), never as whole rows.
    deep = {**params, "per_page": 20, "page": 300}  # 5,980 matches skipped
    served = serve(path, deep)
    assert len(served.answer["events"]) == 20
    served.assert_index_served(ordered=False)  # the page's 21 rows are put in order
    page = served.plans[0]
    assert "page_keys" in page.sql, page.sql
    assert _index_only(page, index), f"not index-only through {index}:\n{page.text}"
    assert "primary key" in page.indexes, page.text
    # The same events as the cursor after page 299's last one (keyset: no skipping).
    before = app.get(path, params={**deep, "page": 299}).json()["events"][-1]
    order = event_store.Order.STARTED if "start_date" in params else event_store.Order.CREATED
    key = SimpleNamespace(
        id=before["metadata"]["id"],
        created_at=datetime.fromisoformat(before["metadata"]["createdAt"]),
        start_date=datetime.fromisoformat(before["attributes"]["startDate"]),
    )
    cursor = event_store.encode_cursor(order, key, 298 * 20)
    by_cursor = app.get(path, params={**params, "per_page": 20, "cursor": cursor}).json()
    ids = [e["metadata"]["id"] for e in served.answer["events"]]
    assert ids == [e["metadata"]["id"] for e in by_cursor["events"]]


# ------------------------------------------------------------------- pages
def test_the_pages_service_and_environment_lists_seek_one_entry_per_name(serve, monkeypatch):
    # The timeline's and insights' pickers: a loose index scan (one seek per name), not a
    # GROUP BY over every event; the timeline's page reads its index in order.
    for path in ("/timeline", "/insights"):
        monkeypatch.setattr(queries, "_kept_names", {})  # read, not kept from a render before
        served = serve(path)
        served.assert_index_served(ordered=False)
        listed = [p for p in served.plans if "WITH RECURSIVE" in p.sql.upper()]
        assert len(listed) == 2, [p.sql for p in served.plans]  # services, environments
        for plan in listed:
            assert not any(re.search(r"GROUP BY", p.sql) for p in listed)
            assert plan.indexes, plan.text


def test_an_event_page_reads_its_linked_events_from_their_index(serve, app):
    some = _busy(app, service="service-003")
    served = serve(f"/events/{some['metadata']['id']}")
    [linked] = [plan for plan in served.plans if "related_id" in plan.sql and "OR" in plan.sql]
    assert linked.full_scans == 0, linked.text
    assert "ix_events_related_id" in linked.indexes, linked.text


def test_the_board_reads_every_deployment_once_then_only_what_the_journal_changed(serve):
    # The latest deployment per pair is read in full at the first render (a GROUP BY over
    # every deployment), then kept and brought up to date from the journal: a render reads
    # no whole table.
    serve("/")
    served = serve("/")
    assert not any("GROUP BY" in plan.sql for plan in served.plans), served.plans
    served.assert_index_served(ordered=False)


# ------------------------------------------------------------------- stats
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"service": "service-005"},
        {"environments": ["production", "UAT"]},
        {"types": ["deployment"], "statuses": ["failure"]},
        {"priorities": ["P1"]},
        {"source": "jenkins"},
        {"impact": "true"},
    ],
    ids=["window", "service", "environments", "types+statuses", "priorities", "source", "impact"],
)
@pytest.mark.parametrize("path", ["/events/stats", "/events/stats/monthly"])
def test_stats_count_exactly_from_an_index(serve, path, params):
    window = {"start_date": "2026-05-01", "end_date": "2026-05-31"}
    served = serve(f"{API}{path}", {**window, **params})
    served.assert_index_served(ordered=False)  # monthly groups the matches it counts


# --------------------------------------------------------------- totalCount
def test_total_count_past_the_cap_is_the_planners_estimate(app, monkeypatch):
    page = {"service": "service-010", "per_page": 50}
    exact = app.get(f"{API}/events/search", params=page).json()
    assert exact["totalCountExact"] is True and 10 < exact["totalCount"] < 1000
    monkeypatch.setattr(event_store, "COUNT_CAP", 10)
    estimated = app.get(f"{API}/events/search", params=page).json()
    assert estimated["totalCountExact"] is False
    assert estimated["events"] == exact["events"]  # the page itself is the same
    # The estimate comes from the statistics of 30,000 events: close, never below the cap.
    assert estimated["totalCount"] > 10
    assert exact["totalCount"] / 3 <= estimated["totalCount"] <= exact["totalCount"] * 3
    # A date window: the share of the span it covers (SQLite), the histogram (PostgreSQL).
    window = {"start_date": "2026-03-01", "end_date": "2026-03-31", "per_page": 50}
    monkeypatch.setattr(event_store, "COUNT_CAP", 100_000)
    month = app.get(f"{API}/events/search", params=window).json()
    monkeypatch.setattr(event_store, "COUNT_CAP", 10)
    guessed = app.get(f"{API}/events/search", params=window).json()
    assert month["totalCountExact"] is True and guessed["totalCountExact"] is False
    assert month["totalCount"] / 3 <= guessed["totalCount"] <= month["totalCount"] * 3
    # /events/stats is a count API: exact whatever the cap.
    year = {"start_date": "2025-01-01", "end_date": "2026-12-31", "service": "service-010"}
    counted = app.get(f"{API}/events/stats", params=year).json()["totalCount"]
    assert counted == str(exact["totalCount"])


def test_past_its_time_budget_a_count_gives_way_to_the_estimate(app, monkeypatch):
    params = {"service": "service-010", "per_page": 5}
    exact = app.get(f"{API}/events/search", params=params).json()
    assert exact["totalCountExact"] is True
    monkeypatch.setattr(event_store, "COUNT_BUDGET_MS", 0)  # no time to count at all
    estimated = app.get(f"{API}/events/search", params=params).json()
    assert estimated["totalCountExact"] is False
    assert estimated["events"] == exact["events"]
    assert exact["totalCount"] / 3 <= estimated["totalCount"] <= exact["totalCount"] * 3


def test_a_count_is_stopped_when_its_time_is_up(explainer):
    from sqlalchemy import func, select

    # A condition on every row (a bare count(*) is one step on SQLite: the b-tree's count).
    every = select(func.count()).select_from(events).where(events.c.title != "")
    with explainer.connect() as conn:
        assert statistics.count_within(conn, every, budget_ms=60_000) == EVENTS
        if explainer.dialect.name == "postgresql":
            slow = select(func.count()).select_from(func.pg_sleep(0.2))
            assert statistics.count_within(conn, slow, budget_ms=20) is None
        else:  # the progress handler looks every 1,000 steps: the first look stops it
            assert statistics.count_within(conn, every, budget_ms=1e-6) is None
        # The connection goes on as before: the next statement runs without the limit.
        assert statistics.count_within(conn, every, budget_ms=60_000) == EVENTS
        assert conn.execute(every).scalar_one() == EVENTS


# ------------------------------------------------------------- time-axis views
@pytest.mark.parametrize("span", ["day", "week"])
def test_the_lanes_read_the_services_they_draw_from_their_index(serve, monkeypatch, span):
    # The lanes read their services' rows in the window through (service, startDate), a
    # batch of services at a time (time_axis.window_events), never the whole window.
    from tracker_server.web import time_axis

    monkeypatch.setattr(time_axis, "_cache", type(time_axis._cache)())
    served = serve("/lanes", {"span": span, "at": "2026-11-18"})
    served.assert_index_served(ordered=False)
    batches = [p for p in served.plans if "UNION ALL" in p.sql and "start_date" in p.sql]
    assert batches, [plan.sql for plan in served.plans]
    window_indexes = {"ix_events_service_start_date_created_at", "ix_events_start_date_created_at"}
    for plan in batches:
        assert len(plan.indexes) == 2 and set(plan.indexes) <= window_indexes, plan.text


def test_the_calendar_counts_a_month_from_the_window_index(serve, monkeypatch):
    from tracker_server.web import time_axis

    monkeypatch.setattr(time_axis, "_cache", type(time_axis._cache)())
    served = serve("/calendar", {"month": "2026-11"})
    served.assert_index_served(ordered=False)
    counted = [plan for plan in served.plans if "GROUP BY" in plan.sql]
    assert len(counted) == 2 and all(plan.indexes for plan in counted), counted
