"""Real server processes (``python -m tracker_server``) on free loopback ports."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# The repository's root, for the one way a server process is started (tests/support).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.servers import spawn_server  # noqa: E402

#: How often a starting server is asked whether it answers /health.
POLL_SECONDS = 0.01


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    #: Seconds from the process's start until /health first answered 200.
    startup_seconds: float = 0.0


def clean_env() -> dict[str, str]:
    """This environment without tracker or CI settings (the server's defaults apply)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRACKER_", "GITHUB_", "GITLAB_", "CI_"))
    }


def launch(database_url: str, log_dir: Path) -> Server:
    """Start a server process; ``wait_healthy`` tells when it answers."""
    url, process, log_path = spawn_server(
        database_url, log_dir=log_dir, extra_args=["--log-level", "warning"], env=clean_env()
    )
    return Server(url, process, log_path)


def _answers(server: Server) -> bool:
    port = int(server.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def wait_healthy(server: Server, began: float, timeout: float = 180.0) -> None:
    """Poll /health every POLL_SECONDS; records the start-up time since ``began``."""
    deadline = began + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"server exited with {server.process.returncode}:\n"
                + server.log_path.read_text(errors="replace")[-3000:]
            )
        if _answers(server):
            server.startup_seconds = time.monotonic() - began
            return
        if time.monotonic() > deadline:
            stop(server)
            raise RuntimeError(f"server did not answer /health within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def stop(server: Server) -> None:
    """SIGTERM (graceful), SIGKILL if it does not end within 20 s."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextmanager
def running(database_url: str, log_dir: Path, count: int = 1) -> Iterator[list[Server]]:
    """``count`` server processes on one database, all answering, stopped afterwards."""
    log_dir.mkdir(parents=True, exist_ok=True)
    servers: list[Server] = []
    try:
        began = time.monotonic()
        servers = [launch(database_url, log_dir) for _ in range(count)]
        for server in servers:
            wait_healthy(server, began)
        yield servers
    finally:
        for server in servers:
            stop(server)


def startup_time(database_url: str, log_dir: Path) -> float:
    """Seconds from the process's start until /health answers (then it is stopped)."""
    began = time.monotonic()
    server = launch(database_url, log_dir)
    try:
        wait_healthy(server, began)
    finally:
        stop(server)
    return server.startup_seconds
