"""The measurements, each against real server processes, each turned into figures with a
baseline measured in the same run (same client, same moment)."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from harness import servers
from harness.client import BenchError, Http, Request, load, percentile, round_robin
from harness.fill import (
    ENVIRONMENTS,
    PRIORITIES,
    SERVICES,
    SOURCES,
    STATUSES,
    TYPES,
    DataSet,
    list_cursor,
)
from harness.report import Figure, Target, not_available, spread

API = "/api/v1alpha1"
SEARCH_TARGET = Target("<", 20.0, text="p95 < 20 ms")
LOOKUP_TARGET = Target("<", 5.0, text="p95 < 5 ms")
INGEST_TARGET = Target(">=", 0.7, text=">= 0.7")
FAIRNESS_TARGET = Target("<=", 3.0, text="p95/p50 <= 3")
STARTUP_TARGET = Target("<", 2.0, text="< 2 s")
BATCH_TARGET = Target(">=", 10.0, on="ratio", text="ratio >= 10")
LOCKS = 20


@dataclass
class Settings:
    """How much each measurement does (bounded in requests and in time)."""

    samples: int  # rounds of the search round-robin
    search_budget: float  # seconds, after which the round-robin stops
    repeats: int  # of each load window, of the restarts
    seconds: float  # one load window
    clients: int = 8
    batch_size: int = 1000
    replicas: tuple[int, ...] = (1, 2, 4)


# ---- a) searches and the lifecycle's lookups ----------------------------------------------


def _search(**params: object) -> str:
    # One page, as our pages and CLI ask: a search naming no paging answers every match
    # (up to 10,000), as upstream does.
    return f"{API}/events/search?{urlencode({**params, 'per_page': 50})}"


def _day(data: DataSet, rng: random.Random, days: int) -> tuple[str, str]:
    first = data.anchor_time.date() - timedelta(days=rng.randrange(days, 700))
    last = first + timedelta(days=days - 1)
    return f"{first}T00:00:00Z", f"{last}T23:59:59Z"


def search_kinds(data: DataSet) -> dict[str, Callable[[random.Random], str]]:
    """Every single filter of /events/search, some combinations, the list endpoints."""

    def window(days: int, **extra: object) -> Callable[[random.Random], str]:
        def make(r: random.Random) -> str:
            start, end = _day(data, r, days)
            return _search(start_date=start, end_date=end, **extra)

        return make

    def stats(**extra: object) -> Callable[[random.Random], str]:
        def make(r: random.Random) -> str:
            start, end = _day(data, r, 30)
            return f"{API}/events/stats?{urlencode({'start_date': start, 'end_date': end})}" + (
                f"&{urlencode(extra)}" if extra else ""
            )

        return make

    return {
        "search source": lambda r: _search(source=r.choice(SOURCES)),
        "search type": lambda r: _search(type=r.choice(TYPES)),
        "search priority": lambda r: _search(priority=r.choice(PRIORITIES)),
        "search status": lambda r: _search(status=r.choice(STATUSES)),
        "search service": lambda r: _search(service=r.choice(SERVICES)),
        "search environment": lambda r: _search(environment=r.choice(ENVIRONMENTS)),
        "search start_date 1 day": window(1),
        "search start_date 30 days": window(30),
        "search impact": lambda r: _search(impact="true"),
        "search slack_id": lambda r: _search(slack_id=r.choice(data.slack_ids)),
        "search service+environment": lambda r: _search(
            service=r.choice(SERVICES), environment=r.choice(ENVIRONMENTS)
        ),
        "search type+status": lambda r: _search(type=r.choice(TYPES), status=r.choice(STATUSES)),
        "search source+type+priority": lambda r: _search(
            source=r.choice(SOURCES), type=r.choice(TYPES), priority=r.choice(PRIORITIES)
        ),
        "search environment+impact": lambda r: _search(
            environment=r.choice(ENVIRONMENTS), impact="true"
        ),
        "search service 30 days": lambda r: window(30, service=r.choice(SERVICES))(r),
        "search type+priority": lambda r: _search(
            type=r.choice(TYPES), priority=r.choice(PRIORITIES)
        ),
        "GET /events/list": lambda r: f"{API}/events/list",
        **deep_pages(data),
        "GET /events/today": lambda r: f"{API}/events/today",
        "GET /events/stats 30 days": stats(),
        "GET /events/stats 30 days+types": stats(types="deployment"),
    }


#: Page-number paging to page 10,000 of the list, with 10 and with 50 a page.
DEEP_PAGE = 10_000


def deep_pages(data: DataSet) -> dict[str, Callable[[random.Random], str]]:
    """Page 10,000 of the list by number (10 a page: 100,000 events deep; 50: 500,000,
    when the data set is that large) and by cursor at the same depth (the cursor of the
    data set's key at that depth, as a previous page's nextCursor would carry it)."""
    kinds: dict[str, Callable[[random.Random], str]] = {}
    for per_page in (10, 50):
        depth = DEEP_PAGE * per_page
        if depth >= data.events:
            continue
        by_number = f"{API}/events/list?page={DEEP_PAGE}&per_page={per_page}"
        by_cursor = f"{API}/events/list?per_page={per_page}&cursor="
        by_cursor += list_cursor(data, depth - per_page)
        kinds[f"GET /events/list page={DEEP_PAGE:,} x{per_page}"] = _fixed(by_number)
        kinds[f"GET /events/list cursor {depth:,} deep x{per_page}"] = _fixed(by_cursor)
    return kinds


def _fixed(path: str) -> Callable[[random.Random], str]:
    return lambda r: path


def lookup_kinds(data: DataSet, lock_ids: list[str]) -> dict[str, Callable[[random.Random], str]]:
    """The lookups of a deploy's own lifecycle (tracker_ci/deploy.py and the lock calls)."""
    return {
        "lookup open deployment": lambda r: _search(
            service=r.choice(SERVICES),
            environment=r.choice(ENVIRONMENTS),
            type="deployment",
            status="start",
        ),
        "lookup GET /event/{id}": lambda r: f"{API}/event/{r.choice(data.sample_ids)}",
        "lookup GET /lock/{id}": lambda r: f"{API}/lock/{r.choice(lock_ids)}",
    }


def make_locks(url: str, count: int = LOCKS) -> list[str]:
    """Locks to read back (POST /lock), on keys no measurement uses otherwise."""
    http = Http(url)
    try:
        answers = [
            http.json(
                "POST",
                f"{API}/lock",
                {"service": f"bench-lock-{n}", "environment": "production", "who": "bench"},
            )
            for n in range(count)
        ]
    finally:
        http.close()
    return [str(answer["lock"]["id"]) for answer in answers]


def _get(make: Callable[[random.Random], str]) -> Callable[[random.Random], Request]:
    return lambda r: ("GET", make(r), None)


def measure_searches(
    url: str, data: DataSet, lock_ids: list[str], settings: Settings, backend: str
) -> list[Figure]:
    """p50 / p95 of every search kind and lookup, against GET /health's p50 measured in
    the same round-robin."""
    kinds: dict[str, Callable[[random.Random], str]] = {
        "GET /health": lambda r: "/health",
        **search_kinds(data),
        **lookup_kinds(data, lock_ids),
    }
    requests = {name: _get(make) for name, make in kinds.items()}
    measured = round_robin(url, requests, samples=settings.samples, budget=settings.search_budget)
    health = measured.pop("GET /health")
    base = statistics.median(health)
    figures = [
        Figure(
            "latency",
            "GET /health (baseline)",
            backend,
            "ms",
            base,
            f"p50 {base:.1f} / p95 {percentile(health, 95):.1f} ms",
            repeats=len(health),
            **spread(health),
        )
    ]
    for name, values in measured.items():
        p50, p95 = percentile(values, 50), percentile(values, 95)
        lookup = name.startswith("lookup")
        figures.append(
            Figure(
                "lookup" if lookup else "search",
                name,
                backend,
                "ms",
                p95,
                f"p50 {p50:.1f} / p95 {p95:.1f} ms",
                baseline=base,
                baseline_text=f"health p50 {base:.1f} ms",
                ratio=p95 / base,
                target=LOOKUP_TARGET if lookup else SEARCH_TARGET,
                repeats=len(values),
                detail={"p50": p50, "p95": p95},
                **spread(values),
            )
        )
    return figures


# ---- b) ingest -------------------------------------------------------------------------------


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


def _create(client: int, n: int) -> Request:
    return ("POST", f"{API}/event", event_body(client, n))


def _health(client: int, n: int) -> Request:
    return ("GET", "/health", None)


def measure_ingest(url: str, settings: Settings, backend: str) -> tuple[list[Figure], float]:
    """POST /event's rate against GET /health's, same client, same concurrency, windows
    alternated; the creates' latencies under ``clients`` concurrent writers."""
    ratios, health_rates, create_rates, fairness = [], [], [], []
    latencies: list[float] = []
    for _ in range(settings.repeats):
        health = load([url], _health, clients=settings.clients, seconds=settings.seconds)
        create = load([url], _create, clients=settings.clients, seconds=settings.seconds)
        health_rates.append(health.rate)
        create_rates.append(create.rate)
        ratios.append(create.rate / health.rate)
        latencies += create.latencies
        fairness.append(percentile(create.latencies, 95) / percentile(create.latencies, 50))
    health_rate, create_rate = statistics.median(health_rates), statistics.median(create_rates)
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    writers = settings.clients
    figures = [
        Figure(
            "ingest",
            f"POST /event rate / GET /health rate ({writers} clients)",
            backend,
            "ratio",
            statistics.median(ratios),
            f"{create_rate:,.0f} creates/s",
            baseline=health_rate,
            baseline_text=f"health {health_rate:,.0f} req/s",
            ratio=statistics.median(ratios),
            target=INGEST_TARGET,
            repeats=len(ratios),
            detail={"create_rates": create_rates, "health_rates": health_rates, "ratios": ratios},
            **spread(ratios),
        ),
        Figure(
            "ingest",
            f"POST /event p95 / p50 ({writers} writers)",
            backend,
            "ratio",
            statistics.median(fairness),
            f"p50 {p50:.1f} / p95 {p95:.1f} ms",
            baseline=p50,
            baseline_text=f"p50 {p50:.1f} ms",
            ratio=statistics.median(fairness),
            target=FAIRNESS_TARGET,
            repeats=len(fairness),
            detail={"p50": p50, "p95": p95, "per_repeat": fairness},
            **spread(fairness),
        ),
    ]
    return figures, create_rate


# ---- c) several server processes on one PostgreSQL ---------------------------------------


def measure_replicas(
    database_url: str, log_dir: Path, settings: Settings, backend: str
) -> list[Figure]:
    """Creates/s through 1, 2 and 4 processes on one database (client threads turn
    round-robin over the processes), windows alternated, against 1 process."""
    counts = settings.replicas
    rates: dict[int, list[float]] = {n: [] for n in counts}
    with servers.running(database_url, log_dir, count=max(counts)) as running:
        urls = [server.url for server in running]
        # Fresh processes: one unrecorded window through all of them first.
        load(urls, _create, clients=settings.clients, seconds=min(1.0, settings.seconds))
        for _ in range(settings.repeats):
            for n in counts:
                window = load(urls[:n], _create, clients=settings.clients, seconds=settings.seconds)
                rates[n].append(window.rate)
    base = statistics.median(rates[counts[0]])
    figures = []
    for n in counts:
        rate = statistics.median(rates[n])
        figures.append(
            Figure(
                "replicas",
                f"POST /event through {n} process{'es' if n > 1 else ''}",
                backend,
                "creates/s",
                rate,
                f"{rate:,.0f} creates/s",
                baseline=base,
                baseline_text=f"1 process {base:,.0f}/s",
                ratio=rate / base,
                repeats=len(rates[n]),
                detail={"rates": rates[n]},
                **spread(rates[n]),
            )
        )
    return figures


# ---- d) start-up ---------------------------------------------------------------------------


def measure_startup(database_url: str, log_dir: Path, settings: Settings, backend: str) -> Figure:
    """Seconds from process start to a /health answer on the up-to-date database, against
    a process that only imports the server's libraries, the two alternated."""
    times, floor = [], []
    for _ in range(settings.repeats):
        floor.append(import_floor())
        times.append(servers.startup_time(database_url, log_dir))
    base = statistics.median(floor)
    value = statistics.median(times)
    return Figure(
        "startup",
        "start-up until /health answers",
        backend,
        "s",
        value,
        f"{value:.2f} s",
        baseline=base,
        baseline_text=f"imports {base:.2f} s",
        ratio=value / base,
        target=STARTUP_TARGET,
        repeats=len(times),
        detail={"seconds": times, "import_floor": floor},
        **spread(times),
    )


# ---- e) batch ------------------------------------------------------------------------------


def _batch(size: int) -> Callable[[int, int], Request]:
    def make(client: int, n: int) -> Request:
        base = (client * 1_000_003 + n) * size
        items = [event_body(client, base + k) for k in range(size)]
        return ("POST", f"{API}/events/batch", {"events": items})

    return make


def _created_in(request: Request, answer: bytes) -> int:
    """The events a batch created; every item must have been (none refused)."""
    result = json.loads(answer)
    if result.get("refused"):
        refused = next(r for r in result["results"] if r["outcome"] == "refused")
        raise BenchError(f"a batch item was refused: {refused.get('error')}")
    return int(result["created"])


def measure_batch(url: str, settings: Settings, backend: str, single_rate: float) -> list[Figure]:
    """Events/s through POST /events/batch against single creates' events/s (same run):

    * the server's capacity each way: batches from 2 clients (two requests of 1,000
      events keep it busy) against the single creates' rate from 8 clients (b);
    * one client each way, sequential, windows alternated: what one importer or seeder
      gains by batching.
    """
    name = f"POST /events/batch x{settings.batch_size}"
    http = Http(url)
    try:
        status, _ = http.request("POST", f"{API}/events/batch", {"events": [event_body(0, 0)]})
    finally:
        http.close()
    if status in (404, 405):
        why = f"no batch endpoint ({status})"
        return [not_available("batch", name, backend, why, BATCH_TARGET)]
    batches = _batch(settings.batch_size)
    saturated, alone, ratios = [], [], []
    for _ in range(settings.repeats):
        window = load([url], batches, clients=2, seconds=settings.seconds, weight=_created_in)
        saturated.append(window.rate)
        single = load([url], _create, clients=1, seconds=settings.seconds)
        one = load([url], batches, clients=1, seconds=settings.seconds, weight=_created_in)
        alone.append(one.rate)
        ratios.append(one.rate / single.rate)
    rate = statistics.median(saturated)
    return [
        Figure(
            "batch",
            f"{name}, capacity (2 vs 8 clients)",  # against POST /event
            backend,
            "events/s",
            rate,
            f"{rate:,.0f} events/s",
            baseline=single_rate,
            baseline_text=f"single {single_rate:,.0f}/s",
            ratio=rate / single_rate,
            target=BATCH_TARGET,
            repeats=len(saturated),
            detail={"rates": saturated, "probe_status": status},
            **spread(saturated),
        ),
        Figure(
            "batch",
            f"{name}, 1 client vs 1 client",
            backend,
            "ratio",
            statistics.median(ratios),
            f"{statistics.median(alone):,.0f} events/s",
            baseline=statistics.median(alone) / statistics.median(ratios),
            baseline_text="single, 1 client",
            ratio=statistics.median(ratios),
            repeats=len(ratios),
            detail={"batch_rates": alone, "ratios": ratios},
            **spread(ratios),
        ),
    ]


def import_floor() -> float:
    """Seconds of a process that only imports the libraries the server is made of (its
    web framework, its server, its database toolkit): the floor of any start-up."""
    began = time.monotonic()
    code = "import uvicorn, fastapi, sqlalchemy"
    subprocess.run([sys.executable, "-c", code], check=True, env=servers.clean_env())
    return time.monotonic() - began
