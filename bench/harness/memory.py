"""g) memory: the server's peak resident set (VmHWM) under 50 concurrent CI jobs.

A fresh server process on the run's data set; 50 threads (one keep-alive connection each,
as 50 jobs of a busy CI) each repeat a job's cycle for ``seconds``: open a deployment (POST
/event, which takes its lock), look its lock up, search the service's events, close it
(PUT, which releases the lock), plus a lock of its own taken and released and one search
of the benchmark's mix over the data set (which reads its pages). The peak is
the kernel's high-water mark of the process (``/proc/PID/status`` VmHWM), against its
resident set once started (idle). Linux only; n/a elsewhere.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import servers
from harness.client import Http
from harness.report import Figure, Target

API = "/api/v1alpha1"
#: Makes the path of one search from a random source (harness.measures.search_kinds).
Search = Callable[[random.Random], str]
JOBS = 50
#: 2 cores: the pools, page caches and maps of the server must fit a small machine.
RSS_TARGET = Target("<", 512.0, text="peak < 512 MiB")


def resident_mib(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of the process, in MiB (VmRSS now, VmHWM its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def job(url: str, index: int, until: float, searches: list[Search], errors: list[str]) -> None:
    """One CI job's deployments, again and again until ``until``."""
    http = Http(url, timeout=60)
    rng = random.Random(index)
    service = f"rss-{index}"
    attributes = {"service": service, "environment": "production", "type": "deployment"}
    own = {"service": service, "environment": "staging", "who": f"job-{index}"}
    cycle = 0
    try:
        while time.monotonic() < until:
            cycle += 1
            body = {"title": f"deploy {cycle}", "attributes": attributes | {"status": "start"}}
            opened = http.request("POST", f"{API}/event", body | {"links": {}})
            taken = http.request("POST", f"{API}/lock", own)
            if taken[0] == 200:
                http.request("GET", f"{API}/unlock/{json.loads(taken[1])['lock']['id']}")
            # A search of the data set (the benchmark's mix): it reads pages into the cache
            # of the connection that serves it.
            http.request("GET", rng.choice(searches)(rng))
            if opened[0] != 200:
                errors.append(f"POST /event {opened[0]}")
                continue
            event = json.loads(opened[1])["event"]
            closed = http.request("PUT", f"{API}/event", _closed(event))
            if closed[0] != 200:
                errors.append(f"PUT /event {closed[0]}")
    finally:
        http.close()


def _closed(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event["metadata"]["id"],
        "title": event["title"],
        "attributes": event["attributes"] | {"status": "success"},
        "links": event["links"],
    }


def measure_peak_rss(
    database_url: str, log_dir: Path, backend: str, seconds: float, searches: list[Search]
) -> Figure:
    """The server's peak RSS under ``JOBS`` concurrent jobs for ``seconds``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    server = servers.launch(database_url, log_dir)
    try:
        servers.wait_healthy(server, began)
        pid = server.process.pid
        idle = resident_mib(pid)
        errors: list[str] = []
        until = time.monotonic() + seconds
        threads = [
            threading.Thread(target=job, args=(server.url, index, until, searches, errors))
            for index in range(JOBS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 120)
        peak = resident_mib(pid, "VmHWM")
    finally:
        servers.stop(server)
    return Figure(
        "memory",
        f"server peak RSS under load ({JOBS} jobs, {seconds:.0f} s)",
        backend,
        "MiB",
        peak,
        f"{peak:.0f} MiB",
        baseline=idle,
        baseline_text=f"idle {idle:.0f} MiB",
        ratio=peak / idle,
        target=RSS_TARGET,
        repeats=1,
        detail={"idle_mib": round(idle, 1), "jobs": JOBS, "failed_cycles": len(errors)},
        note=f"{len(errors)} failed cycles" if errors else "",
    )
