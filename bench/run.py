"""The benchmark (not a test): ``make bench`` (1,000,000 events) or ``make bench-quick``
(100,000 events), i.e. ``python bench/run.py [--events N] [--quick] [--backends
sqlite,postgresql] [--json bench/results.json]``.

For each backend, side by side in one run: the data set is bulk-loaded once (cached under
``--workdir`` / as a PostgreSQL database, keyed by the event count and the schema; see
harness/fill.py) and copied fresh for the run; then, against real server processes
(``python -m tracker_server``) on loopback:

a) every search kind and the lifecycle's own lookups: p50 / p95, baseline GET /health's
   p50 from the same round-robin (targets: searches p95 < 20 ms, lookups p95 < 5 ms);
   then every page of the dashboard the same way (web_bench.py; target p95 < 50 ms);
b) ingest: POST /event's rate against GET /health's, same client and concurrency
   (target >= 0.7), and the creates' p95 / p50 under 8 concurrent writers (<= 3);
c) PostgreSQL: creates/s through 1, 2 and 4 processes on one database, against 1;
d) start-up: seconds until /health answers on the up-to-date database, min / median /
   max of a few restarts (target < 2 s), against a process that only imports the
   server's libraries;
e) batch: POST /events/batch events/s against single creates', at capacity (2 batch
   clients against the 8-client create rate of b; target >= 10x) and from one client
   each way (for reference); n/a when the server has no batch endpoint;
f) the CLI: bench/cli_bench.py's figures;
g) memory: the server's peak RSS under 50 concurrent CI jobs (deploy open/close, a lock
   taken and released, a search) for 20 s (quick: 8 s), against its idle RSS.

Absolute timings are noisy on a shared machine: every figure has its baseline from the
same run and their ratio; repeated figures carry min / median / max. The table is printed
at the end and everything goes to ``--json`` (with the machine, date, commit, counts and
fill durations). Exit status: 0 when everything was measured (whatever the targets say),
1 when a measurement could not run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import web_bench  # noqa: E402
from harness import cli, fill, floor, measures, memory, report, servers  # noqa: E402
from harness.report import Figure, not_available  # noqa: E402

BACKENDS = ("sqlite", "postgresql")
CLIENT = (
    "python http.client, keep-alive, in this process on the same machine; load windows "
    "from 8 threads (batch: 2), latencies from 1 thread, sequential"
)
FULL_EVENTS = 1_000_000
QUICK_EVENTS = 100_000


class Run:
    """One run: its settings, its figures, what failed, its log."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.began = time.monotonic()
        self.figures: list[Figure] = []
        self.errors: list[str] = []
        self.fills: dict[str, Any] = {}
        full = not args.quick
        self.settings = measures.Settings(
            samples=args.samples or (60 if full else 12),
            search_budget=args.search_budget or (60.0 if full else 10.0),
            repeats=args.repeats or (5 if full else 2),
            seconds=args.seconds or (2.5 if full else 1.0),
        )
        self.load_at_start = list(os.getloadavg())
        self.log_dir = args.workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.began:6.1f} s] {message}", flush=True)

    def guarded(
        self, group: str, name: str, backend: str, measure: Callable[[], list[Figure]]
    ) -> list[Figure]:
        """The figures of ``measure``; one n/a figure naming the error when it fails."""
        self.log(f"{backend or 'cli'}: {name} ...")
        try:
            found = measure()
        except Exception as exc:  # noqa: BLE001 - reported, and the run goes on
            message = f"{backend or 'cli'} {name}: {exc.__class__.__name__}: {exc}"
            self.errors.append(message)
            self.log(f"ERROR {message}")
            found = [not_available(group, name, backend, f"error: {exc}"[:200], None)]
        self.figures += found
        return found

    def backend(self, backend: str) -> None:
        """Fill (or reuse) the backend's data set, then measure on a fresh copy of it."""
        missing = _postgres_missing() if backend == "postgresql" else ""
        done: list[fill.Prepared] = []

        def prepare() -> list[Figure]:
            if missing:
                raise RuntimeError(missing)
            done.append(fill.prepare(backend, self.args.events, self.args.workdir, self.log))
            return [_fill_figure(backend, done[0])]

        self.guarded("fill", "data set", backend, prepare)
        if not done:
            return
        prepared = done[0]
        self.fills[backend] = {
            "events": prepared.data.events,
            "changelog_entries": prepared.data.events,
            "fill_seconds": prepared.data.fill_seconds,
            "filled_at": prepared.data.fill_date,
            "reused_cache": prepared.reused,
            "copy_seconds": round(prepared.copy_seconds, 2),
            "cache_key": prepared.cache_key,
        }
        try:
            self.measure(backend, prepared)
        except Exception as exc:  # noqa: BLE001 - e.g. the server did not start: reported
            message = f"{exc}"[-500:]
            self.guarded("server", "server", backend, lambda: _raise(message))

    def measure(self, backend: str, prepared: fill.Prepared) -> None:
        settings, url, logs = self.settings, prepared.database_url, self.log_dir
        single_rate = [0.0]
        with servers.running(url, logs) as (server,):
            self.fills[backend]["first_start_seconds"] = round(server.startup_seconds, 2)
            lock_ids = measures.make_locks(server.url)
            self.guarded(
                "search",
                "searches and lookups",
                backend,
                lambda: measures.measure_searches(
                    server.url, prepared.data, lock_ids, settings, backend
                ),
            )

            self.guarded(
                "page",
                "pages",
                backend,
                lambda: web_bench.measure_pages(
                    server.url,
                    prepared.data,
                    backend,
                    samples=settings.samples,
                    budget=settings.search_budget,
                ),
            )

            def ingest() -> list[Figure]:
                found, single_rate[0] = measures.measure_ingest(server.url, settings, backend)
                return found

            self.guarded("ingest", "ingest", backend, ingest)
            if single_rate[0]:
                batch = self.guarded(
                    "batch",
                    "batch",
                    backend,
                    lambda: measures.measure_batch(server.url, settings, backend, single_rate[0]),
                )
                capacity = batch[0].value  # None when not measured (n/a)
                if capacity:
                    self.guarded(
                        "batch",
                        "batch's storage floor",
                        backend,
                        lambda: [
                            floor.measure_storage_floor(
                                url,
                                backend,
                                batches=2 * settings.repeats,
                                size=settings.batch_size,
                                single_rate=single_rate[0],
                                batch_rate=capacity,
                                make_body=measures.event_body,
                            )
                        ],
                    )

            def queue() -> list[Figure]:
                import queue_bench  # bench/queue_bench.py: the lock queue's handoff, in RTTs

                return queue_bench.figures(server.url, backend, repeats=settings.repeats)

            self.guarded("queue", "lock queue handoff", backend, queue)
        if backend == "postgresql":
            self.guarded(
                "replicas",
                "1, 2 and 4 processes",
                backend,
                lambda: measures.measure_replicas(url, logs, settings, backend),
            )
        self.guarded(
            "startup",
            "start-up",
            backend,
            lambda: [measures.measure_startup(url, logs, settings, backend)],
        )
        load_seconds = min(20.0, 8 * settings.seconds)  # 20 s; quick: 8 s
        searches = list(measures.search_kinds(prepared.data).values())
        self.guarded(
            "memory",
            "server peak RSS under load",
            backend,
            lambda: [memory.measure_peak_rss(url, logs, backend, load_seconds, searches)],
        )

    def cli(self) -> None:
        def measure() -> list[Figure]:
            runs = self.args.cli_runs or (3 if self.args.quick else 10)
            data, source = cli.run_cli_bench(runs)
            return cli.figures(data, source)

        self.guarded("cli", "CLI (bench/cli_bench.py)", "", measure)

    def document(self) -> dict[str, Any]:
        return {
            "format": 1,
            **report.provenance(),
            "machine": {**report.machine(), "load_average_at_start": self.load_at_start},
            "client": CLIENT,
            "command": sys.argv,
            "quick": self.args.quick,
            "events": self.args.events,
            "backends": self.args.backends,
            "settings": asdict(self.settings),
            "fills": self.fills,
            "figures": [report.figure_json(f) for f in self.figures],
            "summary": report.summary(self.figures),
            "errors": self.errors,
            "duration_seconds": round(time.monotonic() - self.began, 1),
        }


def _raise(reason: str) -> list[Figure]:
    raise RuntimeError(reason)


def _postgres_missing() -> str:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        with psycopg.connect(fill.POSTGRES_ADMIN, connect_timeout=3):
            return ""
    except Exception as exc:  # noqa: BLE001 - any failure means: no PostgreSQL here
        return f"no PostgreSQL at 127.0.0.1:5432 ({exc.__class__.__name__}: {exc})"


def _fill_figure(backend: str, prepared: fill.Prepared) -> Figure:
    data = prepared.data
    how = "cached, copied" if prepared.reused else "filled now"
    return Figure(
        "fill",
        f"fill {data.events:,} events + changelog (bulk)",
        backend,
        "s",
        data.fill_seconds,
        f"{data.fill_seconds:.1f} s ({how} in {prepared.copy_seconds:.1f} s)",
        repeats=1,
        detail={"reused": prepared.reused, "copy_seconds": prepared.copy_seconds},
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=0, help="default 1,000,000 (quick: 100,000)")
    parser.add_argument("--quick", action="store_true", help="100k events, shorter windows")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".bench")
    parser.add_argument("--samples", type=int, default=0, help="search rounds (default 60/12)")
    parser.add_argument("--search-budget", type=float, default=0, help="seconds (60/10)")
    parser.add_argument("--repeats", type=int, default=0, help="of each window (5/2)")
    parser.add_argument("--seconds", type=float, default=0, help="one load window (2.5/1)")
    parser.add_argument("--cli-runs", type=int, default=0, help="cli_bench.py --runs (10/3)")
    parser.add_argument("--no-cli", action="store_true", help="skip bench/cli_bench.py")
    args = parser.parse_args(argv)
    args.events = args.events or (QUICK_EVENTS if args.quick else FULL_EVENTS)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(args.backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend {', '.join(unknown)}: choose from {', '.join(BACKENDS)}")
    if args.events < fill.SAMPLES:
        parser.error(f"--events must be at least {fill.SAMPLES}")
    return args


def main(argv: list[str] | None = None) -> int:
    run = Run(parse_args(argv))
    args = run.args
    run.log(f"benchmark: {args.events:,} events, backends {', '.join(args.backends)}")
    for backend in args.backends:
        run.backend(backend)
    if not args.no_cli:
        run.cli()
    document = run.document()
    report.write(args.json, document)
    print()
    print(report.table(run.figures))
    totals = document["summary"]
    print(
        f"\n{totals['pass']} PASS, {totals['fail']} FAIL, {totals['n/a']} n/a; "
        f"{document['duration_seconds']:.0f} s; written to {args.json}"
    )
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
