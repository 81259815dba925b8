"""A SQLite server killed with SIGKILL in the middle of sustained creates, while its
background thread checkpoints the WAL (db.WalCheckpoints): every create it answered is
there after the restart (real processes, loopback)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tracker_server.db import CHECKPOINT_INTERVAL

from tests.faults.conftest import API
from tests.server.helpers import event_body
from tests.support import api
from tests.support.servers import RunningServer, spawn_server
from tests.support.waiting import eventually

pytestmark = [pytest.mark.server, pytest.mark.timeout(180)]

WRITERS = 4


def start(database_url: str, log_dir: Path) -> RunningServer:
    """Spawn a server; return once /health answers."""
    url, process, log = spawn_server(database_url, log_dir=log_dir, env=dict(os.environ))
    server = RunningServer(url=url, database_url=database_url, process=process, log_path=log)

    def healthy() -> bool:
        assert process.poll() is None, server.log()
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    eventually(healthy, timeout=120)
    return server


@pytest.fixture
def servers() -> Iterator[list[RunningServer]]:
    """Every server a test started, killed at the end whatever happened."""
    started: list[RunningServer] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)


def _create(url: str, answered: list[str], stop: threading.Event) -> None:
    """Create events until stopped or the server dies; note each id answered."""
    with httpx.Client(base_url=url, timeout=10) as http:
        while not stop.is_set():
            try:
                response = http.post(f"{API}/event", json=event_body(title="crash"))
            except httpx.HTTPError:
                return  # killed under it: that is the point
            if response.status_code == 200:
                answered.append(response.json()["event"]["metadata"]["id"])


def test_answered_creates_survive_a_sigkill_during_checkpoints(tmp_path, servers):
    database = tmp_path / "tracker.db"
    database_url = f"sqlite:///{database}"
    servers.append(start(database_url, tmp_path))
    answered: list[str] = []
    stop = threading.Event()
    writers = [
        threading.Thread(target=_create, args=(servers[0].url, answered, stop))
        for _ in range(WRITERS)
    ]
    for writer in writers:
        writer.start()
    try:
        # Long enough for background checkpoints to have copied part of the WAL into the
        # database file (it grows only through them), and writes to go on after them.
        size = database.stat().st_size

        def checkpointed_and_more() -> bool:
            assert database.stat().st_size > size, "no checkpoint yet"
            return len(answered) > 200

        eventually(checkpointed_and_more, timeout=60 + 10 * CHECKPOINT_INTERVAL)
        servers[0].process.send_signal(signal.SIGKILL)
        servers[0].process.wait(timeout=10)
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
    kept = list(answered)
    assert Path(f"{database}-wal").exists()  # the crash left a WAL to recover
    servers.append(start(database_url, tmp_path))
    missing = [
        event_id
        for event_id in kept
        if httpx.get(f"{servers[1].url}{API}/event/{event_id}", timeout=30).status_code != 200
    ]
    assert not missing, f"{len(missing)} of {len(kept)} answered creates lost"
    assert api.event(servers[1].url, kept[-1])["metadata"]["id"] == kept[-1]
