"""Benchmark of the deploy queue (not a test): run ``python bench/queue_bench.py``.

Against the real server process (``python -m tracker_server``) on loopback, a holder takes
a lock and N waiters (10 by default) queue behind it one after another, each through the
library's one lock waiter (``tracker_ci.waiter.LockWaiter``) with its own client, as N CI
jobs would. When the holder releases, each waiter in turn takes the lock, holds it for
``--hold`` seconds, and releases it. Measured per round:

* handoff: from one deploy's release to the next one's start (p50, p95, max);
* inversions: pairs of waiters served out of arrival order;
* overlaps: pairs of waiters that held the lock at the same time.

The same rounds run twice in the same process: with the server's queue (long poll) and
with the polling waiter (``queue=False``, what an upstream server gets: jittered backoff
up to 2 s), the baseline. The figures are printed with min / median / max over rounds and
the ratio of the queue's p50 handoff to the baseline's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.servers import run_server  # noqa: E402
from tracker_ci.client import TrackerClient  # noqa: E402
from tracker_ci.waiter import LockWaiter  # noqa: E402

API = "/api/v1alpha1"


@dataclass
class Round:
    """One round: each waiter's (arrival index, start, end) in the order they ran."""

    runs: list[tuple[int, float, float]] = field(default_factory=list)
    released_at: float = 0.0

    def handoffs(self) -> list[float]:
        ordered = sorted(self.runs, key=lambda run: run[1])
        ends = [self.released_at] + [end for _, _, end in ordered[:-1]]
        return [start - end for (_, start, _), end in zip(ordered, ends, strict=True)]

    def inversions(self) -> int:
        order = [index for index, _, _ in sorted(self.runs, key=lambda run: run[1])]
        return sum(1 for i, a in enumerate(order) for b in order[i + 1 :] if a > b)

    def overlaps(self) -> int:
        runs = sorted(self.runs, key=lambda run: run[1])
        return sum(
            1
            for i, (_, start_a, end_a) in enumerate(runs)
            for _, start_b, _ in runs[i + 1 :]
            if start_b < end_a
        )


def queued(url: str, service: str) -> int:
    params = {"service": service, "environment": "production"}
    answer = httpx.get(f"{url}{API}/locks/status", params=params).json()
    return len(answer.get("queue", []))


def one_round(url: str, service: str, waiters: int, hold: float, use_queue: bool) -> Round:
    """Queue ``waiters`` behind a holder, release, and time every turn."""
    result = Round()
    lock = threading.Lock()
    holder_client = TrackerClient(base_url=url)
    holder = holder_client.acquire_lock(service=service, environment="production", who="holder")
    threads = []
    waiting = 0

    def waiter(index: int) -> None:
        nonlocal waiting
        with TrackerClient(base_url=url) as client:
            client.health()  # learns it is our server (the queue is used only there)
            took = LockWaiter(
                client,
                service=service,
                environment="production",
                wait=300,
                who=f"w{index}",
                queue=use_queue,
            )
            with lock:
                waiting += 1
            taken = took.run(
                lambda: client.acquire_lock(
                    service=service, environment="production", who=f"w{index}"
                )
            )
            started = time.monotonic()
            time.sleep(hold)  # the deploy itself
            ended = time.monotonic()
            client.release_lock(taken.id)
            with lock:
                result.runs.append((index, started, ended))

    for index in range(waiters):
        thread = threading.Thread(target=waiter, args=(index,))
        thread.start()
        threads.append(thread)
        # Arrival order is the order they joined: wait until this one is in line.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if use_queue and queued(url, service) == index + 1:
                break
            if not use_queue and waiting == index + 1:
                time.sleep(0.3)  # a polling waiter has no place to check; let it poll once
                break
            time.sleep(0.01)
    result.released_at = time.monotonic()
    holder_client.release_lock(holder.id)
    holder_client.close()
    for thread in threads:
        thread.join(timeout=300)
    return result


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def spread(values: list[float]) -> str:
    return (
        f"min {min(values) * 1000:.0f} / median {statistics.median(values) * 1000:.0f} / "
        f"max {max(values) * 1000:.0f} ms"
    )


def report(name: str, rounds: list[Round]) -> float:
    """Print one mode's figures; its median p50 handoff (seconds)."""
    p50s = [percentile(r.handoffs(), 0.50) for r in rounds]
    p95s = [percentile(r.handoffs(), 0.95) for r in rounds]
    inversions = [r.inversions() for r in rounds]
    overlaps = [r.overlaps() for r in rounds]
    print(f"{name}:")
    print(f"  handoff p50  {spread(p50s)}")
    print(f"  handoff p95  {spread(p95s)}")
    print(f"  inversions   {inversions} (per round)")
    print(f"  overlaps     {overlaps} (per round)")
    return statistics.median(p50s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--waiters", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hold", type=float, default=0.05, help="seconds each deploy holds")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite:///{tmp}/queue.db"
        env = {"TRACKER_LOG_LEVEL": "warning"}
        with run_server(database_url, log_dir=Path(tmp), env=env) as server:
            print(f"{args.waiters} waiters, {args.rounds} rounds, hold {args.hold}s")
            modes = {}
            for name, use_queue in (("queue (long poll)", True), ("polling (baseline)", False)):
                rounds = [
                    one_round(
                        server.url, f"bench-{name[:5]}-{n}", args.waiters, args.hold, use_queue
                    )
                    for n in range(args.rounds)
                ]
                modes[name] = report(name, rounds)
            queue_p50, poll_p50 = modes["queue (long poll)"], modes["polling (baseline)"]
            print(
                f"ratio: queue p50 handoff / polling p50 handoff = {queue_p50 / poll_p50:.3f} "
                f"({queue_p50 * 1000:.0f} ms vs {poll_p50 * 1000:.0f} ms)"
            )


if __name__ == "__main__":
    main()
