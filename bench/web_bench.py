"""The pages at scale (not a test). ``make bench`` measures them through
:func:`measure_pages` (bench/run.py), on the same data set and server as the searches;
``python bench/web_bench.py [--events N] [--database-url URL]`` measures them alone.

Every page of the dashboard (the board, the timeline, an event, the locks and freezes
pages, insights and the time-axis views) is requested in turn with ``GET /health`` by one
keep-alive client (harness/client.py's round-robin): p50 / p95 per page against
``/health``'s p50 from the same round-robin, and each page's HTML size and first request
(the first render after start reads what later ones keep, e.g. the board's latest
deployment per pair) in its detail (target: p95 < 50 ms at 1,000,000 events on both
backends). A page the server does not have (404) is
reported n/a.

Alone, the script also adds a busy service (a deployment every 3 hours for a year, each
shipping 3 changes) so DORA reads thousands of deployments, and measures its DORA API and
insights page too.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.client import Http, Request, percentile, round_robin  # noqa: E402
from harness.fill import SERVICES, DataSet  # noqa: E402
from harness.report import Figure, Target, not_available, spread, table  # noqa: E402

API = "/api/v1alpha1"
PAGE_TARGET = Target("<", 50.0, text="p95 < 50 ms")

#: A service with a deployment every 3 hours for a year, each shipping 3 changes: the
#: DORA numbers then read thousands of deployments, not a handful.
BUSY = "busy-service"
BUSY_DEPLOYMENTS = 2920


def page_kinds(data: DataSet) -> dict[str, Callable[[random.Random], str]]:
    """Every page, with the parameters a person uses (a random service, event, day)."""

    def day(r: random.Random) -> str:
        return (data.anchor_time - timedelta(days=r.randrange(0, 60))).strftime("%Y-%m-%d")

    return {
        "board GET /": lambda r: "/",
        "timeline (first page)": lambda r: "/timeline",
        "timeline (service filter)": lambda r: f"/timeline?service={r.choice(SERVICES)}",
        "timeline (page 100)": lambda r: "/timeline?page=100",
        "event page GET /events/{id}": lambda r: f"/events/{r.choice(data.sample_ids)}",
        "insights page (30 days)": lambda r: (
            "/insights?" + urlencode({"service": r.choice(SERVICES), "environment": "production"})
        ),
        "locks page": lambda r: "/locks",
        "freezes page": lambda r: "/freezes",
        "lanes (a day)": lambda r: f"/lanes?{urlencode({'span': 'day', 'at': day(r)})}",
        "lanes (a week)": lambda r: f"/lanes?{urlencode({'span': 'week', 'at': day(r)})}",
        "calendar (a month)": lambda r: f"/calendar?month={day(r)[:7]}",
    }


def measure_pages(
    url: str, data: DataSet, backend: str, *, samples: int, budget: float
) -> list[Figure]:
    """p50 / p95 of every page (round-robin with ``GET /health``), its HTML size; n/a for
    a page this server does not serve."""
    kinds = page_kinds(data)
    http = Http(url)
    sizes: dict[str, int] = {}
    first: dict[str, float] = {}  # the first render after start (e.g. the board's full read)
    missing: dict[str, str] = {}
    rng = random.Random(11)
    try:
        for name, make in kinds.items():
            path = make(rng)
            began = time.perf_counter()
            status, body = http.request("GET", path)
            first[name] = (time.perf_counter() - began) * 1000
            if status == 200:
                sizes[name] = len(body)
            else:
                missing[name] = f"{path} answered {status}"
    finally:
        http.close()
    requests = {"GET /health": _get(lambda r: "/health")}
    requests |= {name: _get(make) for name, make in kinds.items() if name not in missing}
    measured = round_robin(url, requests, samples=samples, budget=budget)
    health = measured.pop("GET /health")
    base = statistics.median(health)
    figures = []
    for name in kinds:
        if name in missing:
            figures.append(not_available("page", name, backend, missing[name], PAGE_TARGET))
            continue
        values = measured[name]
        p50, p95 = percentile(values, 50), percentile(values, 95)
        figures.append(
            Figure(
                "page",
                name,
                backend,
                "ms",
                p95,
                f"p50 {p50:.1f} / p95 {p95:.1f} ms, {sizes[name] / 1000:,.0f} KB",
                baseline=base,
                baseline_text=f"health p50 {base:.1f} ms",
                ratio=p95 / base,
                target=PAGE_TARGET,
                repeats=len(values),
                detail={
                    "p50": p50,
                    "p95": p95,
                    "html_bytes": sizes[name],
                    "first_request_ms": first[name],
                },
                **spread(values),
            )
        )
    return figures


def _get(make: Callable[[random.Random], str]) -> Callable[[random.Random], Request]:
    return lambda r: ("GET", make(r), None)


# ---- alone -------------------------------------------------------------------------------


def populate_busy(database_url: str) -> None:
    """Add the busy service's deployments (once)."""
    from sqlalchemy import func, insert, select
    from tracker_server.db import create_database_engine
    from tracker_server.tables import events

    engine = create_database_engine(database_url)
    with engine.begin() as conn:
        present = conn.execute(
            select(func.count()).select_from(events).where(events.c.service == BUSY)
        ).scalar_one()
        if present:
            engine.dispose()
            return
        now = datetime.now(UTC)
        rows = []
        for n in range(BUSY_DEPLOYMENTS):
            end = now - timedelta(hours=3 * n)
            failed = n % 7 == 0
            changes = [
                {
                    "kind": "commit",
                    "id": f"{n}-{k}",
                    "committedAt": _ts(end - timedelta(hours=k + 1)),
                }
                for k in range(3)
            ]
            rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "title": "deploy",
                    "message": "",
                    "source": "bench",
                    "type": "deployment",
                    "priority": "P3",
                    "related_id": "",
                    "service": BUSY,
                    "status": "failure" if failed else "success",
                    "environment": "production",
                    "impact": False,
                    "start_date": end - timedelta(minutes=5),
                    "end_date": end,
                    "owner": "bench",
                    "stake_holders": [],
                    "notification": False,
                    "notifications": [],
                    "pull_request_link": "",
                    "ticket": "",
                    "slack_id": "",
                    "created_at": end - timedelta(minutes=5),
                    "duration_seconds": 300.0,
                    "revision": f"r{n}",
                    "changes": [] if failed else changes,
                }
            )
        conn.execute(insert(events), rows)
    engine.dispose()


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def busy_kinds() -> dict[str, Callable[[random.Random], str]]:
    """The busy service's DORA API and insights page."""
    year_ago = (datetime.now(UTC) - timedelta(days=365)).strftime("%Y-%m-%d")
    dora = f"{API}/insights/dora?service={BUSY}&environment=production"
    return {
        "DORA API, busy service (30 days)": lambda r: dora,
        "DORA API, busy service (365 days)": lambda r: f"{dora}&start_date={year_ago}",
        "insights page, busy service (30 days)": (
            lambda r: f"/insights?service={BUSY}&environment=production"
        ),
    }


def main() -> None:
    """Bring a database to N events (bulk load), start the server, measure, print a table."""
    from harness import fill, servers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=Path(".bench/web"))
    parser.add_argument("--database-url", default="", help="default: SQLite in --workdir")
    parser.add_argument("--samples", type=int, default=30, help="rounds of the round-robin")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    database_url = args.database_url or f"sqlite:///{args.workdir / 'web.db'}"
    began = time.monotonic()
    fill.fill_in_place(database_url, args.events)
    populate_busy(database_url)
    print(f"database holds {args.events:,} events ({time.monotonic() - began:.1f} s)")
    # Any real event id of the database for the event page.
    from sqlalchemy import select
    from tracker_server.db import create_database_engine
    from tracker_server.tables import events

    engine = create_database_engine(database_url)
    with engine.connect() as conn:
        ids = list(conn.execute(select(events.c.id).limit(200)).scalars())
    engine.dispose()
    data = DataSet(events=args.events, anchor=datetime.now(UTC).isoformat(), sample_ids=ids)
    backend = database_url.split(":")[0].split("+")[0]
    with servers.running(database_url, args.workdir) as (server,):
        figures = measure_pages(
            server.url, data, backend, samples=args.samples, budget=10.0 * args.samples
        )
        requests = {"GET /health": _get(lambda r: "/health")}
        requests |= {name: _get(make) for name, make in busy_kinds().items()}
        measured = round_robin(server.url, requests, samples=args.samples, budget=60.0)
    base = statistics.median(measured.pop("GET /health"))
    for name, values in measured.items():
        p95 = percentile(values, 95)
        figures.append(
            Figure(
                "page",
                name,
                backend,
                "ms",
                p95,
                f"p50 {percentile(values, 50):.1f} / p95 {p95:.1f} ms",
                baseline=base,
                baseline_text=f"health p50 {base:.1f} ms",
                ratio=p95 / base,
                repeats=len(values),
                **spread(values),
            )
        )
    print(f"\n{args.events:,} events, {backend}, {os.cpu_count()} CPUs\n")
    print(table(figures))


if __name__ == "__main__":
    main()
