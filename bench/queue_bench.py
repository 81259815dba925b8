"""Benchmark of the lock queue's handoff (not a test): ``python bench/queue_bench.py``, and
part of ``make bench`` / ``make bench-quick`` (bench/run.py calls :func:`figures` on each
backend's server).

Against the real server process on loopback, a holder takes a lock and N waiters (10 by
default) queue behind it one after another, each through the library's one lock waiter
(``tracker_ci.waiter.LockWaiter``) with its own client, as N CI jobs would. When the holder
releases, each waiter in turn gets the lock, holds it for ``--hold`` seconds and releases
it. Two kinds of waiter, in the same run:

* ``grant``: the waiter asks the long poll for the grant (``run(..., granted=)``): the
  answer carries the lock, which the waiter then claims;
* ``claim``: an older client: the long poll answers "your turn" and the waiter takes the
  lock naming its ticket (``POST /lock``).

Measured per handoff, on the client's monotonic clock:

* server-side handoff: from the answer to one waiter's release to the answer that gives
  the next waiter its lock (the grant answer; for ``claim``, the answer to its
  ``POST /lock``), in milliseconds and in RTTs, the RTT being the median of sequential
  ``GET /health`` requests through the same client stack in the same run;
* start: from the release's answer until the next waiter's ``run`` returned (for
  ``grant``, after its claim);
* inversions (pairs served out of arrival order) and overlaps (a waiter's lock answered
  before the previous holder stopped using its own, i.e. before it sent its release).

Per round, the p50 of its handoffs; the figures are min / median / max over rounds.

Between two ``deploy run`` processes (``--deploy-pairs``): the first holds the lock running
``sleep``, the second waits in the queue (``--wait``); measured from the moment the first's
command ended to the moment the second's command began (each writes the time with
``date``), min / median / max over the pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.report import Figure, Target  # noqa: E402

from tests.support.servers import run_server  # noqa: E402
from tracker_ci.client import TrackerClient  # noqa: E402
from tracker_ci.models import Lock, QueueResponse  # noqa: E402
from tracker_ci.waiter import LockWaiter  # noqa: E402

API = "/api/v1alpha1"
ENV = "production"
MODES = ("grant", "claim")
#: p50 of the server-side handoff, in RTTs (issue 23).
HANDOFF_TARGET_RTT = 5.0
#: p50 between two ``deploy run``s on a quiet machine, in milliseconds (issue 23).
DEPLOY_TARGET_MS = 10.0


class _TimedClient(TrackerClient):
    """Notes when the queue's answer carrying our grant landed."""

    granted_at = 0.0

    def wait_in_queue(self, **fields: Any) -> QueueResponse:
        answer = super().wait_in_queue(**fields)
        if answer.granted is not None and not self.granted_at:
            self.granted_at = time.monotonic()
        return answer


@dataclass
class Run:
    """One waiter's turn: arrival index, lock answered, run returned, released."""

    index: int
    answered: float
    started: float
    ended: float
    released: float
    fence: int


@dataclass
class Round:
    """One round: the holder's release answer and every waiter's turn."""

    released_at: float = 0.0
    runs: list[Run] = field(default_factory=list)

    def _ordered(self) -> list[Run]:
        return sorted(self.runs, key=lambda run: run.answered)

    def handoffs(self) -> list[float]:
        """Release answered -> the next waiter's lock answered (seconds)."""
        ordered = self._ordered()
        releases = [self.released_at] + [run.released for run in ordered[:-1]]
        return [run.answered - rel for run, rel in zip(ordered, releases, strict=True)]

    def starts(self) -> list[float]:
        """Release answered -> the next waiter's ``run`` returned (seconds)."""
        ordered = self._ordered()
        releases = [self.released_at] + [run.released for run in ordered[:-1]]
        return [run.started - rel for run, rel in zip(ordered, releases, strict=True)]

    def inversions(self) -> int:
        order = [run.index for run in self._ordered()]
        return sum(1 for i, a in enumerate(order) for b in order[i + 1 :] if a > b)

    def overlaps(self) -> int:
        runs = self._ordered()
        return sum(
            1
            for i, first in enumerate(runs)
            for later in runs[i + 1 :]
            if later.answered < first.ended
        )

    def fences_grow(self) -> bool:
        fences = [run.fence for run in self._ordered()]
        return all(a < b for a, b in zip(fences, fences[1:], strict=False))


def _queued(url: str, service: str) -> int:
    params = {"service": service, "environment": ENV}
    return len(httpx.get(f"{url}{API}/locks/status", params=params).json().get("queue", []))


def one_round(url: str, service: str, waiters: int, hold: float, mode: str) -> Round:
    """Queue ``waiters`` behind a holder, release, and time every turn."""
    result = Round()
    guard = threading.Lock()
    failures: list[BaseException] = []

    def waiter(index: int) -> None:
        who = f"w{index}"
        try:
            client = _TimedClient(base_url=url)
            with client:
                client.health()  # learns it is our server (the queue is used only there)
                lock_waiter = LockWaiter(
                    client, service=service, environment=ENV, wait=300, who=who, ttl_seconds=600
                )
                taken_at = [0.0]

                def attempt(ticket: str) -> Lock:
                    lock = client.acquire_lock(
                        service=service,
                        environment=ENV,
                        who=who,
                        ttl_seconds=600,
                        queue_ticket=ticket,
                    )
                    taken_at[0] = time.monotonic()
                    return lock

                granted = (lambda lock: lock) if mode == "grant" else None
                lock = lock_waiter.run(attempt, granted=granted)
                started = time.monotonic()
                answered = client.granted_at if mode == "grant" else taken_at[0]
                time.sleep(hold)  # the deploy itself
                ended = time.monotonic()
                client.release_lock(lock.id)
                released = time.monotonic()
            with guard:
                result.runs.append(Run(index, answered, started, ended, released, lock.fence))
        except BaseException as error:  # noqa: BLE001 - reported by the round
            failures.append(error)

    with TrackerClient(base_url=url) as holder_client:
        holder = holder_client.acquire_lock(service=service, environment=ENV, who="holder")
        threads = []
        for index in range(waiters):
            thread = threading.Thread(target=waiter, args=(index,))
            thread.start()
            threads.append(thread)
            # Arrival order is the order they joined: wait until this one is in line.
            deadline = time.monotonic() + 30
            while _queued(url, service) < index + 1 and time.monotonic() < deadline:
                time.sleep(0.005)
        holder_client.release_lock(holder.id)
        result.released_at = time.monotonic()
    for thread in threads:
        thread.join(timeout=300)
    if failures:
        raise RuntimeError(f"a waiter failed: {failures[0]!r}")
    return result


#: The pause before each ``GET /health`` of the RTT after idle: longer than a CPU stays
#: awake without work (every step of a ``deploy run`` pair comes after such a pause).
IDLE_GAP = 0.05
#: How many ``GET /health`` the RTT after idle samples.
IDLE_SAMPLES = 40


def rtt(url: str, samples: int = 200, gap: float = 0.0) -> list[float]:
    """Sequential ``GET /health`` times (seconds) through the waiters' client stack, each
    after ``gap`` s of nothing (``IDLE_GAP``: the round trip that wakes an idle machine;
    on a VM that halts idle CPUs, about 3x the busy one)."""
    with TrackerClient(base_url=url) as client:
        client.health()
        times = []
        for _ in range(samples):
            if gap:
                time.sleep(gap)
            began = time.perf_counter()
            client.health()
            times.append(time.perf_counter() - began)
    return times


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


# ---------------------------------------------------------------- deploy run pairs
def _cli(url: str, service: str, command: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKER_", "GITHUB_", "CI"))}
    env |= {"TRACKER_URL": url, "TRACKER_FAIL_POLICY": "closed"}
    argv = [sys.executable, "-m", "tracker_ci", "deploy", "run", "-s", service, "-e", ENV]
    argv += ["--wait", "120", "--", "sh", "-c", command]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def deploy_pair(url: str, service: str, workdir: Path) -> float:
    """Seconds from the first ``deploy run``'s command end to the second's command start."""
    end_file, start_file = workdir / f"{service}.end", workdir / f"{service}.start"
    go = workdir / f"{service}.go"  # the first's command ends once the second is queued
    first = _cli(
        url, service, f"while [ ! -e {go} ]; do sleep 0.005; done; date +%s.%N > {end_file}"
    )
    params = {"service": service, "environment": ENV}
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}{API}/locks/status", params=params).json().get("lock") is None:
        if time.monotonic() > deadline or first.poll() is not None:
            raise RuntimeError("the first deploy run never took its lock")
        time.sleep(0.01)
    second = _cli(url, service, f"date +%s.%N > {start_file}")
    while _queued(url, service) < 1:
        if time.monotonic() > deadline or second.poll() is not None:
            raise RuntimeError("the second deploy run never queued")
        time.sleep(0.005)
    go.touch()
    for process in (first, second):
        _, stderr = process.communicate(timeout=120)
        if process.returncode != 0:
            raise RuntimeError(f"deploy run exited {process.returncode}: {stderr.decode()[-500:]}")
    return float(start_file.read_text()) - float(end_file.read_text())


# ---------------------------------------------------------------- the figures
@dataclass
class Measured:
    """Everything one backend's queue bench measured (seconds)."""

    rtts: list[float]
    rounds: dict[str, list[Round]]
    deploy_pairs: list[float]
    #: ``GET /health`` after a pause (``IDLE_GAP``), as each step of a pair comes.
    idle_rtts: list[float] = field(default_factory=list)


def measure(
    url: str, *, waiters: int, rounds: int, hold: float, deploy_pairs: int, workdir: Path
) -> Measured:
    """Run every mode's rounds and the deploy pairs against the server at ``url``."""
    tag = uuid.uuid4().hex[:6]
    rtts = rtt(url)
    by_mode = {
        mode: [
            one_round(url, f"bench-queue-{mode}-{tag}-{n}", waiters, hold, mode)
            for n in range(rounds)
        ]
        for mode in MODES
    }
    pairs = [deploy_pair(url, f"bench-deploy-{tag}-{n}", workdir) for n in range(deploy_pairs)]
    idle = rtt(url, IDLE_SAMPLES, gap=IDLE_GAP) if deploy_pairs else []
    return Measured(rtts, by_mode, pairs, idle)


def _ms(values: list[float]) -> str:
    low, mid, high = (v * 1000 for v in (min(values), statistics.median(values), max(values)))
    return f"{low:.1f} / {mid:.1f} / {high:.1f} ms"


def _in_rtt(values: list[float], unit: float) -> str:
    low, mid, high = (v / unit for v in (min(values), statistics.median(values), max(values)))
    return f"{low:.1f} / {mid:.1f} / {high:.1f} RTT"


def to_figures(measured: Measured, backend: str) -> list[Figure]:
    """The figures bench/run.py tabulates and writes to results.json."""
    unit = statistics.median(measured.rtts)
    rtt_text = f"RTT {unit * 1000:.2f} ms (GET /health p50)"
    found: list[Figure] = []
    for mode, rounds in measured.rounds.items():
        p50s = [_percentile(r.handoffs(), 0.5) for r in rounds]
        starts = [_percentile(r.starts(), 0.5) for r in rounds]
        every = [h for r in rounds for h in r.handoffs()]
        median = statistics.median(p50s)
        label = "grant in the answer" if mode == "grant" else "older clients: turn, then POST /lock"
        found.append(
            Figure(
                "queue",
                f"queue handoff p50, {label}",
                backend,
                "RTT",
                median / unit,
                f"{median / unit:.1f} RTT ({median * 1000:.1f} ms)",
                baseline=unit * 1000,
                baseline_text=rtt_text,
                ratio=median / unit,
                target=Target("<=", HANDOFF_TARGET_RTT, text="p50 <= 5 RTT")
                if mode == "grant"
                else None,
                low=min(p50s) / unit,
                median=median / unit,
                high=max(p50s) / unit,
                repeats=len(rounds),
                detail={
                    "round_p50_ms": [round(v * 1000, 2) for v in p50s],
                    "round_p95_ms": [
                        round(_percentile(r.handoffs(), 0.95) * 1000, 2) for r in rounds
                    ],
                    "every_handoff_ms": {
                        "min": round(min(every) * 1000, 2),
                        "median": round(statistics.median(every) * 1000, 2),
                        "max": round(max(every) * 1000, 2),
                    },
                    "start_round_p50_ms": [round(v * 1000, 2) for v in starts],
                    "inversions": [r.inversions() for r in rounds],
                    "overlaps": [r.overlaps() for r in rounds],
                    "fences_grow": all(r.fences_grow() for r in rounds),
                    "waiters": len(rounds[0].runs),
                },
            )
        )
    wrong = sum(r.inversions() + r.overlaps() for rs in measured.rounds.values() for r in rs)
    found.append(
        Figure(
            "queue",
            "queue inversions + overlaps (every round)",
            backend,
            "",
            float(wrong),
            str(wrong),
            target=Target("<=", 0, text="0"),
            repeats=sum(len(rs) for rs in measured.rounds.values()),
        )
    )
    if measured.deploy_pairs:
        pairs = measured.deploy_pairs
        median = statistics.median(pairs)
        idle = statistics.median(measured.idle_rtts)
        found.append(
            Figure(
                "queue",
                "deploy run -> deploy run handoff p50",
                backend,
                "ms",
                median * 1000,
                f"{median * 1000:.1f} ms ({median / unit:.0f} RTT; {median / idle:.1f} RTT "
                f"after idle, {idle * 1000:.2f} ms)",
                baseline=unit * 1000,
                baseline_text=rtt_text,
                ratio=median / unit,
                target=Target("<=", DEPLOY_TARGET_MS, text="p50 <= 10 ms (quiet machine)"),
                low=min(pairs) * 1000,
                median=median * 1000,
                high=max(pairs) * 1000,
                repeats=len(pairs),
                detail={
                    "pairs_ms": [round(v * 1000, 2) for v in pairs],
                    "rtt_after_idle_ms": round(idle * 1000, 3),
                    "idle_gap_ms": IDLE_GAP * 1000,
                },
            )
        )
    return found


def figures(url: str, backend: str, repeats: int = 5) -> list[Figure]:
    """bench/run.py's entry: the queue's figures against the running server at ``url``,
    ``repeats`` rounds of each kind (at least 2) and three times as many ``deploy run``
    pairs: a pair's time moves by a few milliseconds from one to the next (each of its
    steps wakes an idle CPU), and its median wants more of them than a round's does."""
    with tempfile.TemporaryDirectory() as tmp:
        measured = measure(
            url,
            waiters=10,
            rounds=max(2, repeats),
            hold=0.02,
            deploy_pairs=3 * max(2, repeats),
            workdir=Path(tmp),
        )
    return to_figures(measured, backend)


def print_report(measured: Measured) -> None:
    """The figures as text, min / median / max over rounds (pairs)."""
    unit = statistics.median(measured.rtts)
    print(f"RTT (GET /health, {len(measured.rtts)} sequential): {_ms(measured.rtts)}")

    def line(name: str, values: list[float]) -> None:
        print(f"  {name:<50} {_ms(values)} = {_in_rtt(values, unit)}")

    for mode, rounds in measured.rounds.items():
        print(f"{mode}:")
        line(
            "handoff p50 (release answered -> lock answered)",
            [_percentile(r.handoffs(), 0.5) for r in rounds],
        )
        line("handoff p95", [_percentile(r.handoffs(), 0.95) for r in rounds])
        line(
            "start p50 (release answered -> run returned)",
            [_percentile(r.starts(), 0.5) for r in rounds],
        )
        inversions = [r.inversions() for r in rounds]
        overlaps = [r.overlaps() for r in rounds]
        grow = all(r.fences_grow() for r in rounds)
        print(f"  inversions {inversions}  overlaps {overlaps}  fences grow {grow}")
    if measured.deploy_pairs:
        idle = measured.idle_rtts
        print(f"RTT after {IDLE_GAP * 1000:.0f} ms idle ({len(idle)}): {_ms(idle)}")
        print("deploy run -> deploy run:")
        line("command end -> next command start", measured.deploy_pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--waiters", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hold", type=float, default=0.02, help="seconds each waiter holds")
    parser.add_argument("--deploy-pairs", type=int, default=5)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite:///{tmp}/queue.db"
        env = {"TRACKER_LOG_LEVEL": "warning"}
        with run_server(database_url, log_dir=Path(tmp), env=env) as server:
            kind = database_url.split(":")[0]
            print(f"{args.waiters} waiters, {args.rounds} rounds, hold {args.hold}s, {kind}")
            measured = measure(
                server.url,
                waiters=args.waiters,
                rounds=args.rounds,
                hold=args.hold,
                deploy_pairs=args.deploy_pairs,
                workdir=Path(tmp),
            )
    print_report(measured)
    if args.json:
        backend = "postgresql" if "postgres" in database_url else "sqlite"
        found = [
            vars(f) | {"target": vars(f.target) if f.target else None}
            for f in to_figures(measured, backend)
        ]
        args.json.write_text(json.dumps(found, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
