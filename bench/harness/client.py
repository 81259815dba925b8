"""The load generator: keep-alive ``http.client`` connections, timed request by request.

``http.client`` costs a fraction of httpx's CPU per request, and on two cores the client
shares the CPU with the server: a lighter client leaves the server more of it, so the
ratios say more about the server than about the client.
"""

from __future__ import annotations

import http.client
import json
import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: (method, path, JSON body or None)
Request = tuple[str, str, Any]


class BenchError(RuntimeError):
    """A request the benchmark needs did not succeed."""


class Http:
    """One keep-alive connection to one server."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """Status and body; reconnects once when the kept-alive connection was closed."""
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, path, body=payload, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
                if response.will_close:
                    self.close()
                return response.status, data
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded answer of a request that must answer 200."""
        status, data = self.request(method, path, body)
        if status != 200:
            raise BenchError(f"{method} {path} answered {status}: {data[:300]!r}")
        return json.loads(data)

    def timed(self, request: Request) -> float:
        """Milliseconds of one request, which must answer 200."""
        return self.exchange(request)[0]

    def exchange(self, request: Request) -> tuple[float, bytes]:
        """Milliseconds of one request, which must answer 200, and its answer."""
        method, path, body = request
        began = time.perf_counter()
        status, data = self.request(method, path, body)
        elapsed = (time.perf_counter() - began) * 1000
        if status != 200:
            raise BenchError(f"{method} {path} answered {status}: {data[:300]!r}")
        return elapsed, data

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (inclusive method); the value itself for one sample."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def round_robin(
    url: str,
    kinds: dict[str, Callable[[random.Random], Request]],
    *,
    samples: int,
    budget: float,
    min_rounds: int = 3,
) -> dict[str, list[float]]:
    """Sequential requests of every kind in turn (one warm-up each), ``samples`` rounds
    or until ``budget`` seconds are spent (never fewer than ``min_rounds`` rounds): a
    change of the machine's load touches every kind alike."""
    rng = random.Random(7)
    http = Http(url)
    measured: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        for make in kinds.values():
            http.timed(make(rng))
        stop = time.monotonic() + budget
        for round_number in range(samples):
            if round_number >= min_rounds and time.monotonic() > stop:
                break
            for kind, make in kinds.items():
                measured[kind].append(http.timed(make(rng)))
    finally:
        http.close()
    return measured


@dataclass
class Window:
    """What a load window did: requests done, its length, each request's latency."""

    requests: int
    seconds: float
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def load(
    urls: Sequence[str],
    make: Callable[[int, int], Request],
    *,
    clients: int,
    seconds: float,
    weight: Callable[[Request, bytes], int] = lambda _request, _answer: 1,
) -> Window:
    """``clients`` threads, each sending ``make(client, n)`` back to back for ``seconds``;
    each thread turns round-robin over ``urls`` (one keep-alive connection to each).
    ``weight``: how many units a request and its answer count (the events of a batch)."""
    barrier = threading.Barrier(clients + 1)
    counts = [0] * clients
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    stop = [0.0]

    def worker(index: int) -> None:
        connections = [Http(url) for url in urls]
        barrier.wait()
        n = 0
        try:
            while time.monotonic() < stop[0] and not errors:
                request = make(index, n)
                elapsed, answer = connections[n % len(connections)].exchange(request)
                latencies[index].append(elapsed)
                counts[index] += weight(request, answer)
                n += 1
        except (BenchError, OSError, http.client.HTTPException) as exc:
            errors.append(f"{exc.__class__.__name__}: {exc}")
        finally:
            for connection in connections:
                connection.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    stop[0] = began + seconds
    barrier.wait()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    elapsed = time.monotonic() - began
    if errors:
        raise BenchError(errors[0])
    return Window(sum(counts), elapsed, [ms for per in latencies for ms in per])
