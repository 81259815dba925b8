"""The server benchmark's former entry point: ``python bench/server_bench.py [ARGS]`` now
runs ``bench/run.py`` (same arguments; see its docstring), which measures SQLite and
PostgreSQL side by side on a bulk-loaded data set.

For scripts that manage their own database: ``populate`` (a database brought to N
events by bulk load, harness/fill.py), ``start_server`` (the real process, once it answers
/health), ``API`` and ``SERVICES`` (the fill's service names). The pages are measured by
bench/web_bench.py (within ``make bench``, or alone).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from subprocess import Popen

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import servers  # noqa: E402
from harness.fill import SERVICES, fill_in_place  # noqa: E402
from harness.measures import API  # noqa: E402

__all__ = ["API", "SERVICES", "main", "populate", "start_server"]


def populate(database_url: str, total: int) -> None:
    """Bring the database to ``total`` events (each with its "created" changelog entry),
    bulk-loaded after the ones it holds, dated over two years up to now."""
    began = time.monotonic()
    fill_in_place(database_url, total)
    print(f"database holds {total:,} events ({time.monotonic() - began:.1f} s)", flush=True)


def start_server(database_url: str, log_path: Path) -> tuple[Popen[bytes], str]:
    """The real server process, once healthy, and its URL (stop it with SIGTERM)."""
    began = time.monotonic()
    server = servers.launch(database_url, log_path.parent)
    servers.wait_healthy(server, began)
    return server.process, server.url


def main() -> int:
    import run

    return run.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
