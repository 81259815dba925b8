"""Webhooks survive a killed server (subprocess, ``kill -9``) and two replicas on
PostgreSQL deliver each entry once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from tracker_server.app import create_app
from tracker_server.settings import ServerSettings

from tests.server.conftest import _empty_postgres
from tests.server.helpers import API, event_body
from tests.support.receivers import Received, run_receiver
from tests.support.servers import run_server
from tests.support.waiting import eventually

pytestmark = pytest.mark.server


def test_a_delivery_in_flight_when_the_server_is_killed_is_sent_again(tmp_path: Path) -> None:
    release = threading.Event()
    first = threading.Event()

    def answer(_request: Received) -> tuple[int, Any]:
        if not first.is_set():
            first.set()
            release.wait(30)  # the server is killed while this request is in flight
        return 200, None

    database_url = f"sqlite:///{tmp_path / 'tracker.db'}"
    env = {"TRACKER_WEBHOOK_LEASE_SECONDS": "2", "TRACKER_WEBHOOK_POLL_SECONDS": "0.2"}
    with run_receiver(answer) as receiver:
        with run_server(database_url, log_dir=tmp_path, env=env) as server:
            hook = httpx.post(
                f"{server.url}{API}/webhooks",
                json={"url": receiver.url, "events": ["deployment.*"], "secret": "k"},
            ).json()["webhook"]
            body = event_body(status="start")
            assert httpx.post(f"{server.url}{API}/event", json=body).status_code == 200
            receiver.wait_for(1)
            server.process.kill()  # kill -9, mid-send
            server.process.wait()
        release.set()
        with run_server(database_url, log_dir=tmp_path, env=env) as server:
            requests = receiver.wait_for(2)

            def delivered() -> list[dict[str, Any]]:
                url = f"{server.url}{API}/webhooks/{hook['id']}/deliveries"
                found = httpx.get(url).json()["deliveries"]
                return found if found and found[0]["state"] == "delivered" else []

            (delivery,) = eventually(delivered)
    first_id, second_id = (r.headers["x-tracker-delivery"] for r in requests[:2])
    assert first_id == second_id == delivery["id"]
    assert requests[0].body == requests[1].body or (
        requests[0].json()["event"] == requests[1].json()["event"]
    )
    assert delivery["attempts"] == 2 and delivery["responseCode"] == 200


def test_changes_made_while_nobody_dispatches_are_delivered_after_a_kill(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'tracker.db'}"
    with run_receiver() as receiver:
        quiet = {"TRACKER_WEBHOOK_DISPATCHER": "false"}
        with run_server(database_url, log_dir=tmp_path, env=quiet) as server:
            httpx.post(
                f"{server.url}{API}/webhooks", json={"url": receiver.url, "events": ["lock.*"]}
            ).raise_for_status()
            for n in range(3):
                body = event_body(status="start", service=f"svc-{n}")
                assert httpx.post(f"{server.url}{API}/event", json=body).status_code == 200
            server.process.kill()
            server.process.wait()
        assert receiver.requests == []
        with run_server(
            database_url, log_dir=tmp_path, env={"TRACKER_WEBHOOK_POLL_SECONDS": "0.2"}
        ):
            requests = receiver.wait_for(3)
    assert sorted(r.json()["lock"]["service"] for r in requests) == ["svc-0", "svc-1", "svc-2"]


@pytest.mark.postgres
def test_two_replicas_on_postgresql_send_each_delivery_once(postgres_database_url: str) -> None:
    _empty_postgres(postgres_database_url)
    settings = ServerSettings(
        database_url=postgres_database_url, webhook_dispatcher=False, allow_private_webhooks=True
    )
    replicas = [create_app(settings), create_app(settings)]
    count = 40
    with run_receiver() as receiver:
        from starlette.testclient import TestClient

        with TestClient(replicas[0]) as client:
            hook = {"url": receiver.url, "events": ["deployment.started"]}
            assert client.post(f"{API}/webhooks", json=hook).status_code == 201
            for n in range(count):
                body = event_body(status="start", service=f"replicated-{n}")
                assert client.post(f"{API}/event", json=body).status_code == 200
            sent = [0, 0]

            def drain(index: int) -> None:
                dispatcher = replicas[index].state.dispatcher
                while dispatcher.anything_due():
                    sent[index] += dispatcher.run_once(limit=3)

            threads = [threading.Thread(target=drain, args=(i,)) for i in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            requests = receiver.wait_for(count)
            shown = client.get(f"{API}/webhooks/deliveries", params={"limit": 100}).json()
        for replica in replicas:
            replica.state.dispatcher.stop()
            replica.state.database.dispose()
    ids = [r.headers["x-tracker-delivery"] for r in requests]
    assert len(ids) == count and len(set(ids)) == count  # each once, none twice
    assert sum(sent) == count
    assert all(d["state"] == "delivered" and d["attempts"] == 1 for d in shown["deliveries"])
