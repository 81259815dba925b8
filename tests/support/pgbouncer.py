"""A real PgBouncer (Debian's ``pgbouncer``) for tests: on a free loopback port, in front of
the machine's PostgreSQL (127.0.0.1:5432, trust auth), in session or transaction pooling.

Every database name is passed through (``* =``), so a session's own test database is
reachable as it is. As root, PgBouncer refuses to run: it is started with ``-u nobody``
(its files are made readable to it; it logs to stderr, which goes to a file of ours).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import free_port

POOL_MODES = ("session", "transaction")


def pgbouncer_binary() -> str | None:
    """The ``pgbouncer`` executable (Debian installs it in /usr/sbin), or None."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")


@dataclass
class RunningPgBouncer:
    host: str
    port: int
    pool_mode: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def url(self, database: str) -> str:
        """A SQLAlchemy URL of ``database`` through this PgBouncer."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _config(directory: Path, port: int, pool_mode: str) -> Path:
    userlist = directory / "userlist.txt"
    userlist.write_text('"postgres" ""\n')
    ini = directory / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        "* = host=127.0.0.1 port=5432\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {userlist}\n"
        f"pool_mode = {pool_mode}\n"
        "max_client_conn = 400\n"
        "default_pool_size = 30\n"
        # psycopg sends none, but a libpq default may: never refuse a client for it.
        "ignore_startup_parameters = extra_float_digits\n"
    )
    for path in (directory, userlist, ini):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return ini


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def run_pgbouncer(pool_mode: str, *, startup_timeout: float = 15.0) -> Iterator[RunningPgBouncer]:
    """Start PgBouncer in ``pool_mode`` on a free loopback port; stop it (SIGTERM) after."""
    binary = pgbouncer_binary()
    if binary is None:
        raise RuntimeError("pgbouncer is not installed")
    directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    port = free_port()
    ini = _config(directory, port, pool_mode)
    log_path = directory / "pgbouncer.log"
    command = [binary, *(["-u", "nobody"] if os.geteuid() == 0 else []), str(ini)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    bouncer = RunningPgBouncer("127.0.0.1", port, pool_mode, process, log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while not _accepts(port):
            if process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {process.returncode}:\n{bouncer.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not listen:\n{bouncer.log()}")
            time.sleep(0.05)
        yield bouncer
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # immediate shutdown
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(directory, ignore_errors=True)
