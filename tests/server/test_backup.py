"""``tracker-ci server backup`` / ``restore``: an online SQLite copy restores into a fresh
server with every event and lock; refusals are one line with the documented exit code."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.server.helpers import API, event_body
from tests.support.servers import run_server
from tracker_ci.exit_codes import ExitCode

pytestmark = pytest.mark.server


def tracker_ci(*args: str) -> subprocess.CompletedProcess[str]:
    """``tracker-ci ARGS`` as a user runs it (environment without TRACKER_* from the tests)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    return subprocess.run(
        [sys.executable, "-m", "tracker_ci", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def snapshot(url: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str, str]]]:
    """Every event (id, title, status) and every lock (id, service, who, event id)."""
    with httpx.Client(base_url=url, timeout=10) as http:
        events = http.get(f"{API}/events/list", params={"per_page": 1000}).json()["events"]
        locks = http.get(f"{API}/locks/list").json()["locks"]
    return (
        sorted((e["metadata"]["id"], e["title"], e["attributes"]["status"]) for e in events),
        sorted((k["id"], k["service"], k["who"], k.get("eventId", "")) for k in locks),
    )


def keep_writing(url: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=10) as http:
        n = 0
        while not stop.is_set():
            body = event_body(f"during {n}", service="busy", status="success")
            assert http.post(f"{API}/event", json=body).status_code == 200
            n += 1


def test_a_backup_taken_while_the_server_runs_restores_every_event_and_lock(tmp_path: Path):
    live = tmp_path / "live.db"
    backup = tmp_path / "backup" / "tracker.db"
    backup.parent.mkdir()
    with run_server(f"sqlite:///{live}", log_dir=tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for n in range(20):
                body = event_body(f"deploy {n}", service=f"svc-{n % 3}", status="success")
                assert http.post(f"{API}/event", json=body).status_code == 200
            held = http.post(f"{API}/event", json=event_body("held", service="api", status="start"))
            assert held.status_code == 200, held.text
            lock = http.post(
                f"{API}/lock",
                json={"service": "db", "environment": "staging", "resource": "x", "who": "bob"},
            )
            assert lock.status_code == 200, lock.text
        done = tracker_ci("server", "backup", "--database-url", f"sqlite:///{live}", str(backup))
        assert done.returncode == 0, done.stderr
        assert f"to {backup}" in done.stdout
        before = snapshot(server.url)
        # A second backup while writers keep writing: the online copy is consistent.
        busy = tmp_path / "busy.db"
        stop = threading.Event()
        writer = threading.Thread(target=keep_writing, args=(server.url, stop))
        writer.start()
        try:
            during = tracker_ci(
                "server", "backup", "--database-url", f"sqlite:///{live}", str(busy)
            )
        finally:
            stop.set()
            writer.join()
        assert during.returncode == 0, during.stderr
        with sqlite3.connect(busy) as copy:
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        copy.close()
        assert server.process.poll() is None  # the server ran through the backups
    assert len(before[0]) == 21 and len(before[1]) == 2

    fresh = tmp_path / "restored" / "fresh.db"  # a new directory too
    restored = tracker_ci("server", "restore", "--database-url", f"sqlite:///{fresh}", str(backup))
    assert restored.returncode == 0, restored.stderr
    with run_server(f"sqlite:///{fresh}", log_dir=tmp_path) as server:
        assert snapshot(server.url) == before
        with httpx.Client(base_url=server.url, timeout=10) as http:
            again = http.post(
                f"{API}/event", json=event_body("held again", service="api", status="start")
            )
            assert again.status_code == 409  # the restored lock still holds

    refused = tracker_ci("server", "restore", "--database-url", f"sqlite:///{fresh}", str(backup))
    assert refused.returncode == ExitCode.USAGE
    assert "already holds a database" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    # --database-url may also come before the subcommand, as the server takes it.
    forced = tracker_ci(
        "server", "--database-url", f"sqlite:///{fresh}", "restore", "--force", str(backup)
    )
    assert forced.returncode == 0, forced.stderr
    assert f"into {fresh}" in forced.stdout


def test_backup_refusals_are_one_line_with_their_exit_code(tmp_path: Path):
    missing = tracker_ci(
        "server", "backup", "--database-url", f"sqlite:///{tmp_path / 'none.db'}", "out.db"
    )
    assert missing.returncode == ExitCode.USAGE
    assert "no SQLite database at" in missing.stderr
    assert not (tmp_path / "none.db").exists()  # looking did not create it

    pg = tracker_ci(
        "server", "backup", "--database-url", "postgresql://u:secret@db/tracker", "out.dump"
    )
    assert pg.returncode == ExitCode.USAGE
    assert pg.stderr.count("\n") == 1
    assert "pg_dump --format=custom" in pg.stderr and "pg_restore" in pg.stderr
    assert "secret" not in pg.stderr

    not_ours = tmp_path / "other.db"
    with sqlite3.connect(not_ours) as connection:
        connection.execute("CREATE TABLE t (x)")
    connection.close()
    wrong = tracker_ci("server", "restore", "--database-url", "sqlite:///x.db", str(not_ours))
    assert wrong.returncode == ExitCode.USAGE
    assert "not a tracker-ci server backup" in wrong.stderr


@pytest.mark.postgres
def test_the_postgres_guidance_restores_every_event_and_lock(
    postgres_database_url: str, tmp_path: Path
):
    """The pg_dump and pg_restore lines `backup` prints, run as printed, restore a server."""
    import shlex
    import uuid

    import psycopg

    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump / pg_restore are not installed")
    with run_server(postgres_database_url, log_dir=tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            service = f"pg-{uuid.uuid4().hex[:8]}"
            for n in range(5):
                body = event_body(f"deploy {n}", service=service, status="success")
                assert http.post(f"{API}/event", json=body).status_code == 200
            held = http.post(
                f"{API}/event", json=event_body("held", service=service, status="start")
            )
            assert held.status_code == 200, held.text
        before = snapshot(server.url)
    said = tracker_ci("server", "backup", "--database-url", postgres_database_url, "x.dump")
    assert said.returncode == ExitCode.USAGE
    line = said.stderr.strip()
    dump = tmp_path / "tracker.dump"
    fresh = f"tracker_restore_{uuid.uuid4().hex[:12]}"
    dump_line = line[line.index("pg_dump") : line.index(", restored with")]
    restore_line = line[line.index("pg_restore") : line.index(" (docs/server.md)")]
    fresh_url = postgres_database_url.rsplit("/", 1)[0] + "/" + fresh
    libpq_fresh = fresh_url.replace("postgresql+psycopg://", "postgresql://")
    dump_args = shlex.split(dump_line.replace("--file=PATH", f"--file={dump}"))
    restore_args = shlex.split(restore_line.replace(" PATH", f" {dump}"))
    restore_args = [
        f"--dbname={libpq_fresh}" if a.startswith("--dbname=") else a for a in restore_args
    ]
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{fresh}"')
    try:
        for args in (dump_args, restore_args):
            done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, f"{args}: {done.stderr}"
        with run_server(fresh_url, log_dir=tmp_path) as server:
            assert snapshot(server.url) == before
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
