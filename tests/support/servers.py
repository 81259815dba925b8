"""Run the real bundled server for tests: as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    database_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def spawn_server(
    database_url: str,
    *,
    log_dir: Path,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[str, subprocess.Popen[bytes], Path]:
    """Start ``python -m tracker_server`` on a free loopback port, its output in a log file
    under ``log_dir``; ``env`` is its whole environment (None: this one's). Answers its URL,
    the process and the log's path; the caller waits for it to answer and stops it."""
    port = free_port()
    log_path = log_dir / f"server-{port}.log"
    # The tests' webhook receivers listen on loopback: a private address for webhooks.
    env = {**(os.environ if env is None else env)}
    env.setdefault("TRACKER_ALLOW_PRIVATE_WEBHOOKS", "true")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tracker_server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--database-url",
                database_url,
                *(extra_args or []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return f"http://127.0.0.1:{port}", process, log_path


@contextmanager
def run_server(
    database_url: str,
    *,
    log_dir: Path,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    startup_timeout: float = 120.0,
) -> Iterator[RunningServer]:
    """Start ``python -m tracker_server`` and stop it (SIGTERM) afterwards.

    The start-up wait is long on purpose: a start costs ~2.5 s of CPU (imports, then the
    migrations) and took over 30 s on a 2-core machine with a load of 10; a healthy server
    ends the wait at once, and a server that dies ends it at once too (its exit code)."""
    url, process, log_path = spawn_server(
        database_url, log_dir=log_dir, extra_args=extra_args, env={**os.environ, **(env or {})}
    )
    server = RunningServer(url=url, database_url=database_url, process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
            try:
                if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not become healthy:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
