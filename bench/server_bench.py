"""Benchmark of the bundled server (not a test): run ``python bench/server_bench.py``.

It measures, against the real process (``python -m tracker_server``) on loopback:

* event-creation throughput, reported as a RATIO to a trivial endpoint (``GET /health``,
  one ``SELECT 1``) of the same server stack measured in the same run with the same
  client, so the figure says what our event path costs whatever the machine;
* search latency (p50/p95) over HTTP with 1,000,000 stored events, which are
  bulk-inserted directly through the server's storage layer (its tables and engine).

The database is built once under ``--workdir`` and reused by later runs.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, insert, select
from tracker_server.db import create_database_engine, upgrade_schema
from tracker_server.tables import changelog, events

from tracker_ci.models import Environment, EventType, Priority

API = "/api/v1alpha1"
SERVICES = [f"service-{i:03d}" for i in range(200)]
ENVIRONMENTS = Environment.choices()
TYPES = EventType.choices()
STATUSES = ["success", "failure", "start", "open", "close", "done", "in_progress"]
PRIORITIES = Priority.choices()
BATCH = 20_000


def populate(database_url: str, total: int) -> None:
    """Bulk-insert ``total`` events (each with its "created" changelog entry)."""
    engine = create_database_engine(database_url)
    upgrade_schema(engine)
    with engine.connect() as conn:
        present = conn.execute(select(func.count()).select_from(events)).scalar_one()
    if present >= total:
        print(f"database already holds {present} events", flush=True)
        engine.dispose()
        return
    rng = random.Random(42)
    end = datetime.now(UTC)
    span = timedelta(days=730).total_seconds()
    started = time.monotonic()
    for offset in range(present, total, BATCH):
        rows, entries = [], []
        for _ in range(min(BATCH, total - offset)):
            event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            created = end - timedelta(seconds=rng.random() * span)
            rows.append(
                {
                    "id": event_id,
                    "title": "deploy",
                    "message": "benchmark event",
                    "source": rng.choice(("github", "gitlab", "jenkins")),
                    "type": rng.choice(TYPES),
                    "priority": rng.choice(PRIORITIES),
                    "related_id": "",
                    "service": rng.choice(SERVICES),
                    "status": rng.choice(STATUSES),
                    "environment": rng.choice(ENVIRONMENTS),
                    "impact": rng.random() < 0.1,
                    "start_date": created,
                    "end_date": None,
                    "owner": "bench",
                    "stake_holders": [],
                    "notification": False,
                    "notifications": [],
                    "pull_request_link": "",
                    "ticket": "",
                    "slack_id": "",
                    "created_at": created,
                    "duration_seconds": None,
                }
            )
            entries.append(
                {
                    "event_id": event_id,
                    "timestamp": created,
                    "user": "bench",
                    "change_type": "created",
                    "field": "",
                    "old_value": "",
                    "new_value": "",
                    "comment": "Event created",
                }
            )
        with engine.begin() as conn:
            conn.execute(insert(events), rows)
            conn.execute(insert(changelog), entries)
        done = offset + len(rows)
        rate = (done - present) / (time.monotonic() - started)
        print(f"\rinserted {done:>9,} events ({rate:,.0f}/s)", end="", flush=True)
    print(flush=True)
    engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(database_url: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The real server process, once healthy."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tracker_server",
                "--port",
                str(port),
                "--database-url",
                database_url,
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log_path.read_text()}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not become healthy")


def throughput(url: str, request: str, *, clients: int, seconds: float) -> float:
    """Requests per second of ``request`` ("GET /health" or "POST /event") under load."""
    method, path = request.split(" ", 1)
    counts = [0] * clients
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def worker(index: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            n = 0
            while time.monotonic() < stop:
                if method == "GET":
                    response = http.get(path)
                else:
                    response = http.post(path, json=event_body(index, n))
                if response.status_code != 200:
                    errors.append(response.text)
                    return
                n += 1
            counts[index] = n

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{request} failed: {errors[0]}")
    return sum(counts) / (time.monotonic() - began)


def event_body(client: int, n: int) -> dict[str, object]:
    """A realistic event that takes no lock (so every create succeeds)."""
    return {
        "title": f"bench {client}-{n}",
        "attributes": {
            "message": "benchmark",
            "source": "bench",
            "type": "incident",
            "priority": "P3",
            "service": SERVICES[(client * 7 + n) % len(SERVICES)],
            "status": "open",
            "environment": "production",
            "owner": "bench",
            "startDate": datetime.now(UTC).isoformat(),
        },
        "links": {"pullRequestLink": "https://example.com/pr/1", "ticket": ""},
    }


SEARCHES = {
    "service": lambda r: {"service": r.choice(SERVICES)},
    "service+environment": lambda r: {
        "service": r.choice(SERVICES),
        "environment": r.choice(ENVIRONMENTS),
    },
    "type+status": lambda r: {"type": r.choice(TYPES), "status": r.choice(STATUSES)},
    "environment": lambda r: {"environment": r.choice(ENVIRONMENTS)},
    "one-day window": lambda r: _day_window(r),
}


def _day_window(rng: random.Random) -> dict[str, str]:
    day = datetime.now(UTC).date() - timedelta(days=rng.randrange(1, 700))
    return {"start_date": f"{day}T00:00:00Z", "end_date": f"{day}T23:59:59Z"}


def search_latencies(url: str, *, per_kind: int) -> dict[str, list[float]]:
    """Milliseconds of sequential searches (first page of 50), by kind."""
    rng = random.Random(7)
    results: dict[str, list[float]] = {kind: [] for kind in SEARCHES}
    with httpx.Client(base_url=url, timeout=60) as http:
        for params in SEARCHES.values():  # warm-up: one of each
            http.get(f"{API}/events/search", params=params(rng))
        for _ in range(per_kind):
            for kind, params in SEARCHES.items():
                began = time.perf_counter()
                response = http.get(f"{API}/events/search", params=params(rng))
                elapsed = (time.perf_counter() - began) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"search failed: {response.text}")
                results[kind].append(elapsed)
    return results


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    """Build the data set, start the server, measure, print a Markdown summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path(".bench"))
    parser.add_argument("--database-url", default="", help="default: SQLite in --workdir")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--searches", type=int, default=60, help="per search kind")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    database_url = args.database_url or f"sqlite:///{args.workdir / 'bench.db'}"

    populate(database_url, args.events)
    process, url = start_server(database_url, args.workdir / "server.log")
    try:
        load = {"clients": args.clients, "seconds": args.seconds}
        health_rps = throughput(url, "GET /health", **load)
        create_rps = throughput(url, f"POST {API}/event", **load)
        latencies = search_latencies(url, per_kind=args.searches)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    everything = [ms for values in latencies.values() for ms in values]
    print(
        f"\n## Server benchmark ({args.events:,} events, {database_url.split(':')[0]}, "
        f"{os.cpu_count()} CPUs, {args.clients} clients)\n"
    )
    print("| measure | value |\n|---|---|")
    print(f"| GET /health (trivial endpoint) | {health_rps:,.0f} req/s |")
    print(f"| POST /event | {create_rps:,.0f} req/s |")
    print(f"| event creation / trivial endpoint | **{create_rps / health_rps:.2f}** |")
    print(
        f"| search p50 / p95 (all kinds) | {percentile(everything, 50):.1f} ms / "
        f"{percentile(everything, 95):.1f} ms |"
    )
    for kind, values in latencies.items():
        print(
            f"| search by {kind}: p50 / p95 | {percentile(values, 50):.1f} ms / "
            f"{percentile(values, 95):.1f} ms |"
        )


if __name__ == "__main__":
    main()
