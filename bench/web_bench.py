"""Benchmark of the pages (not a test): run ``python bench/web_bench.py``.

With 100,000 events stored (bulk-inserted through the server's tables, as
``server_bench.py`` does: 200 services x 8 environments, 2 years), it measures over HTTP
against the real process (``python -m tracker_server``) on loopback the latency of the
board (``GET /``), the insights page, the DORA API (also of a busy service: a deployment
every 3 hours for a year) and the timeline, each also as a
RATIO to a trivial endpoint (``GET /health``) measured in the same run with the same
client. ``--database-url postgresql://...`` measures PostgreSQL (the database is emptied
first when it holds another count).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, insert, select
from tracker_server.db import create_database_engine
from tracker_server.tables import events

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_bench import API, SERVICES, populate, start_server  # noqa: E402

#: A service with a deployment every 3 hours for a year, each shipping 3 changes: the
#: DORA numbers then read thousands of deployments, not a handful.
BUSY = "busy-service"
BUSY_DEPLOYMENTS = 2920


def populate_busy(database_url: str) -> None:
    """Add the busy service's deployments (once)."""
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


PAGES = {
    "GET /health (baseline)": "/health",
    "board GET /": "/",
    "insights page": f"/insights?service={SERVICES[7]}&environment=production",
    "DORA API (30 days)": f"{API}/insights/dora?service={SERVICES[7]}&environment=production",
    "DORA API, busy service (30 days, 240 deployments)": (
        f"{API}/insights/dora?service={BUSY}&environment=production"
    ),
    "DORA API, busy service (365 days, 2,920 deployments)": (
        f"{API}/insights/dora?service={BUSY}&environment=production"
        f"&start_date={(datetime.now(UTC) - timedelta(days=365)).strftime('%Y-%m-%d')}"
    ),
    "insights page, busy service (30 days)": f"/insights?service={BUSY}&environment=production",
    "timeline (first page)": "/timeline",
    "timeline (service filter)": f"/timeline?service={SERVICES[3]}",
}


def latencies(url: str, path: str, *, count: int) -> list[float]:
    """Milliseconds of ``count`` sequential GETs (after two warm-up requests)."""
    out = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(2):
            http.get(path).raise_for_status()
        for _ in range(count):
            started = time.perf_counter()
            http.get(path).raise_for_status()
            out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    """Build the data set, start the server, measure, print a Markdown summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=Path(".bench/web"))
    parser.add_argument("--database-url", default="", help="default: SQLite in --workdir")
    parser.add_argument("--requests", type=int, default=30, help="per page")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    database_url = args.database_url or f"sqlite:///{args.workdir / 'web.db'}"

    populate(database_url, args.events)
    populate_busy(database_url)
    process, url = start_server(database_url, args.workdir / "server.log")
    try:
        measured = {name: latencies(url, path, count=args.requests) for name, path in PAGES.items()}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    base = statistics.median(measured["GET /health (baseline)"])
    print(
        f"\n## Pages benchmark ({args.events:,} events, {database_url.split(':')[0]}, "
        f"{os.cpu_count()} CPUs, {args.requests} requests each)\n"
    )
    print("| page | min | median | max | median / GET /health |\n|---|---|---|---|---|")
    for name, values in measured.items():
        median = statistics.median(values)
        print(
            f"| {name} | {min(values):.1f} ms | {median:.1f} ms | {max(values):.1f} ms "
            f"| {median / base:.1f} |"
        )


if __name__ == "__main__":
    main()
