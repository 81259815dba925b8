"""The queue's grant through the library's waiter and real server processes: waiters
asking for the grant start with the lock the long poll answered (in arrival order, fences
growing, the TTL they asked for once claimed); an answer lost on the way is answered again
with the same grant; two replicas on one PostgreSQL grant one key once, in order."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.proxy import LossyProxy, _close_after, _read_request, _read_response
from tests.support.servers import RunningServer, run_server
from tests.support.waiting import eventually
from tracker_ci import models
from tracker_ci.client import TrackerClient
from tracker_ci.models import Lock
from tracker_ci.waiter import LockWaiter

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]

API = "/api/v1alpha1"
ENV = "production"


def _queued(url: str, service: str) -> list[str]:
    params = {"service": service, "environment": ENV}
    return [
        entry["who"]
        for entry in httpx.get(f"{url}{API}/locks/status", params=params).json()["queue"]
    ]


def _wait_in_line(
    url: str, service: str, who: str, taken: list[Lock], **options: object
) -> threading.Thread:
    """A waiter thread asking for the grant; its lock lands in ``taken``."""

    def wait() -> None:
        with TrackerClient(base_url=url) as client:
            client.health()  # learns it is our server: the queue is used only there
            waiter = LockWaiter(
                client, service=service, environment=ENV, wait=60, who=who, **options
            )
            lock = waiter.run(
                lambda ticket: client.acquire_lock(
                    service=service, environment=ENV, who=who, queue_ticket=ticket
                ),
                granted=lambda lock: lock,
            )
            taken.append(lock)

    thread = threading.Thread(target=wait)
    thread.start()
    return thread


def test_waiters_start_with_their_grant_in_arrival_order(
    sqlite_server: RunningServer, service: str
) -> None:
    url = sqlite_server.url
    with TrackerClient(base_url=url) as client:
        holder = client.acquire_lock(service=service, environment=ENV, who="holder")
        taken: list[Lock] = []
        threads = []
        names = ["w0", "w1", "w2"]
        for index, who in enumerate(names):
            threads.append(_wait_in_line(url, service, who, taken, ttl_seconds=600))
            eventually(lambda n=index: len(_queued(url, service)) == n + 1)
        assert _queued(url, service) == names
        lock_id = holder.id
        for index in range(len(names)):
            client.release_lock(lock_id)
            eventually(lambda n=index: len(taken) == n + 1)
            lock_id = taken[-1].id
        client.release_lock(lock_id)
    for thread in threads:
        thread.join(timeout=30)
    assert [lock.who for lock in taken] == names
    assert [lock.fence for lock in taken] == [holder.fence + 1, holder.fence + 2, holder.fence + 3]
    # Claimed: the TTL asked for, not the claim window.
    now = datetime.now(UTC)
    assert all(lock.expires_at and lock.expires_at > now + timedelta(seconds=500) for lock in taken)


class _GrantLosingProxy(LossyProxy):
    """Loses the first answer that carries a grant (the work is done on the server)."""

    def handle(self, client: socket.socket) -> None:
        while (request := _read_request(client)) is not None:
            with socket.create_connection(self.target, timeout=30) as server:
                server.sendall(_close_after(request))
                answer = _read_response(server)
            with self._lock:
                lose = b'"granted":{' in answer and not self.seen.dropped
                if lose:
                    self.seen.dropped.append(answer.partition(b"\r\n\r\n")[2].decode())
            if lose:
                return
            client.sendall(answer)


@contextmanager
def _grant_losing_proxy(upstream: str) -> Iterator[tuple[str, _GrantLosingProxy]]:
    proxy = _GrantLosingProxy(upstream)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            proxy.handle(self.request)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", proxy
    finally:
        server.shutdown()
        server.server_close()


def test_a_lost_grant_answer_is_answered_again_the_same(
    sqlite_server: RunningServer, service: str
) -> None:
    with (
        _grant_losing_proxy(sqlite_server.url) as (url, proxy),
        TrackerClient(base_url=sqlite_server.url) as client,
    ):
        holder = client.acquire_lock(service=service, environment=ENV, who="holder")
        taken: list[Lock] = []
        thread = _wait_in_line(url, service, "w0", taken, ttl_seconds=600)
        eventually(lambda: _queued(sqlite_server.url, service) == ["w0"])
        client.release_lock(holder.id)
        thread.join(timeout=30)
        [lock] = taken
        [lost] = proxy.seen.dropped
        first = json.loads(lost)["granted"]
        assert lock.id == first["id"] and lock.fence == first["fence"] == holder.fence + 1
        found = client.find_lock(service=service, environment=ENV)
        assert found is not None and found.id == lock.id
        client.release_lock(lock.id)


@pytest.mark.postgres
def test_two_replicas_grant_one_key_once_in_order(
    postgres_database_url: str, tmp_path: Path
) -> None:
    key = {"service": f"api-{uuid.uuid4().hex[:8]}", "environment": ENV, "resource": "deployment"}
    with (
        run_server(postgres_database_url, log_dir=tmp_path) as a,
        run_server(postgres_database_url, log_dir=tmp_path) as b,
    ):
        urls = (a.url, b.url)
        holder = httpx.post(f"{a.url}{API}/lock", json=key | {"who": "holder"}).json()["lock"]
        tickets = []
        for index in range(4):  # joined alternately through each replica
            joined = httpx.post(
                f"{urls[index % 2]}{API}/lock/queue", json=key | {"who": f"w{index}"}
            )
            tickets.append(joined.json()["ticket"]["ticket"])
        lock_id, fences = holder["id"], []

        def ask(url: str, n: int) -> dict:
            body = key | {"who": f"w{n}", "ticket": tickets[n], "grant": True}
            answer = httpx.post(f"{url}{API}/lock/queue", json=body)
            assert answer.status_code == 200, answer.text
            return answer.json()

        for index in range(len(tickets)):
            httpx.get(f"{urls[index % 2]}{API}/unlock/{lock_id}")
            # The later waiters ask through either replica: only the head is granted.
            for n in range(index + 1, len(tickets)):
                assert ask(urls[n % 2], n)["granted"] is None
            granted = ask(urls[(index + 1) % 2], index)["granted"]
            again = ask(urls[index % 2], index)["granted"]  # the claim, through the other
            assert again["id"] == granted["id"] and granted["who"] == f"w{index}"
            fences.append(granted["fence"])
            lock_id = granted["id"]
        httpx.get(f"{a.url}{API}/unlock/{lock_id}")
    assert fences == [holder["fence"] + n for n in range(1, 5)]


class _Counting(TrackerClient):
    """Counts the claims (asking again with a ticket, at once) the waiter sends."""

    claims = 0

    def wait_in_queue(self, **fields: Any) -> models.QueueResponse:
        if fields.get("grant") and fields.get("ticket") and not fields.get("wait_seconds"):
            self.claims += 1
        return super().wait_in_queue(**fields)


@pytest.mark.parametrize(("ttl", "claims"), [(5, 0), (600, 1)])
def test_a_grant_with_the_whole_lease_is_not_claimed_again(
    sqlite_server: RunningServer, service: str, ttl: int, claims: int
) -> None:
    url = sqlite_server.url
    with TrackerClient(base_url=url) as holder_client:
        holder = holder_client.acquire_lock(service=service, environment=ENV, who="holder")
        waiter_client = _Counting(base_url=url)
        with waiter_client:
            waiter_client.health()
            waiter = LockWaiter(
                waiter_client, service=service, environment=ENV, wait=30, who="w", ttl_seconds=ttl
            )
            taken: list[Lock] = []

            def attempt(ticket: str) -> Lock:
                assert not ticket, "the grant, not the attempt, ends the wait"
                return waiter_client.acquire_lock(service=service, environment=ENV, who="w")

            def wait() -> None:
                taken.append(waiter.run(attempt, granted=lambda lock: lock))

            thread = threading.Thread(target=wait)
            thread.start()
            eventually(lambda: _queued(url, service) == ["w"])
            holder_client.release_lock(holder.id)
            thread.join(timeout=30)
        [lock] = taken
        assert lock.expires_at is not None and lock.created_at is not None
        # The server's claim window is 10 s: a 5 s lease came whole, a longer one claimed.
        assert (lock.expires_at - lock.created_at).total_seconds() >= ttl
        assert waiter_client.claims == claims
        holder_client.release_lock(lock.id)
