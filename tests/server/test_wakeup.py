"""Wake-ups in one process: a stopping server wakes every long poll at once; the queue's
timeouts count from the server's start at the earliest (tickets survive a restart)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from tracker_server import wakeup
from tracker_server.store.queue import Timeouts

from tests.support.waiting import eventually

pytestmark = pytest.mark.server


@pytest.fixture
def stopping_server() -> Iterator[None]:
    yield
    wakeup.resume()


def test_begin_shutdown_wakes_a_sleeping_waiter_at_once(stopping_server: None) -> None:
    seen = wakeup.version()
    woke: list[float] = []

    def sleeper() -> None:
        wakeup.wait_for_change(seen, timeout=30)
        woke.append(time.monotonic())

    thread = threading.Thread(target=sleeper)
    thread.start()
    assert not wakeup.stopping()
    began = time.monotonic()
    wakeup.begin_shutdown()
    thread.join(timeout=5)
    assert woke and woke[0] - began < 1.0
    assert wakeup.stopping()
    assert wakeup.wait_for_change(seen, timeout=30)  # no sleep at all once stopping


def test_resume_forgets_the_shutdown(stopping_server: None) -> None:
    wakeup.begin_shutdown()
    wakeup.resume()
    assert not wakeup.stopping()
    assert not wakeup.wait_for_change(wakeup.version(), timeout=0.01)


NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("heard_ago", "started_ago", "expired"),
    [
        (20, None, True),  # no start known: as before
        (10, None, False),
        (20, 5, False),  # heard before a crash, the server restarted 5 s ago: kept
        (60, 14, False),
        (60, 16, True),  # the new process has waited the whole timeout: dropped
        (20, 30, True),  # started long ago: the heartbeat decides
        (3, 30, False),
    ],
)
def test_a_silence_counts_from_the_later_of_the_heartbeat_and_the_start(
    heard_ago: int, started_ago: int | None, expired: bool
) -> None:
    started = None if started_ago is None else NOW - timedelta(seconds=started_ago)
    timeouts = Timeouts(heartbeat=15, claim=10, started=started)
    assert timeouts.expired(NOW - timedelta(seconds=heard_ago), 15, NOW) is expired


# ------------------------------------------------------------------ the listener (PostgreSQL)
def _listener_mode(listener: wakeup.PostgresListener) -> str:
    return eventually(lambda: listener.mode, message="the listener decided")


def _wait_for_version_past(seen: int, timeout: float) -> bool:
    # Not `eventually`: the timeout is the wake-up bound under test, not a give-up time.
    deadline = time.monotonic() + timeout
    while wakeup.version() == seen:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _join_a_queue(engine: object) -> None:
    from sqlalchemy import insert
    from tracker_server.tables import lock_queue

    now = datetime.now(UTC)
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(
            insert(lock_queue),
            {
                "id": str(uuid.uuid4()),
                "service": "wakeup",
                "environment": "production",
                "resource": "deployment",
                "joined_at": now,
                "heartbeat_at": now,
            },
        )


@pytest.mark.postgres
@pytest.mark.parametrize("hears", [True, False], ids=["listen", "polling"])
def test_the_listener_listens_when_it_hears_itself_else_polls(
    postgres_database_url: str, hears: bool
) -> None:
    from tracker_server.db import create_database_engine, upgrade_schema

    engine = create_database_engine(postgres_database_url)
    upgrade_schema(engine)
    # A direct URL to another database never hears this one's NOTIFY: like a LISTEN
    # through a pooler in transaction mode.
    direct = postgres_database_url if hears else "postgresql://postgres@127.0.0.1:5432/test"
    listener = wakeup.PostgresListener(engine, direct_database_url=direct)
    listener.start()
    try:
        assert _listener_mode(listener) == ("listen" if hears else "poll")
        seen = wakeup.version()
        _join_a_queue(engine)
        if hears:  # another replica's write: its NOTIFY is what this one hears
            with engine.begin() as conn:
                notify = text("SELECT pg_notify(:channel, :payload)")
                conn.execute(notify, {"channel": wakeup.CHANNEL, "payload": "replica.1 *"})
        assert _wait_for_version_past(seen, timeout=2.0)
    finally:
        listener.stop()
        engine.dispose()


# ------------------------------------------------------------------ bells (one process)
def _granted(ticket: str) -> object:
    from tracker_server.journal import QueueGranted

    key = {"service": "api", "environment": "production", "resource": "deployment"}
    return QueueGranted(ticket=ticket, who="w", **key)


def test_a_turn_rings_only_its_tickets_bell() -> None:
    mine, other = wakeup.Bell(), wakeup.Bell()
    seen = wakeup.version()
    mine.arm("ticket-a", seen)
    other.arm("ticket-b", seen)
    try:
        wakeup.notify(wakeup.wake_of([_granted("ticket-a")]))
        assert mine.wait(0) and mine.mine and not mine.general
        assert not other.wait(0)
        # A freeze's change rings everyone, who then read whether their turn came.
        wakeup.notify(wakeup.Wake(None))
        assert other.wait(0) and other.general and not other.mine
    finally:
        mine.close()
        other.close()


def test_a_write_that_moves_no_ticket_wakes_nobody() -> None:
    from tracker_server.journal import LockAcquired, LockReleased

    from tracker_ci.models import Lock

    lock = Lock(id="l", service="api", environment="production", resource="deployment")
    assert wakeup.wake_of([LockAcquired(lock=lock), LockReleased(lock=lock)]) is None


def test_a_bell_armed_late_rings_for_what_committed_since_the_look() -> None:
    seen = wakeup.version()  # read before the look
    wakeup.notify(wakeup.Wake(frozenset({"ticket-late"})))  # commits during the look
    bell = wakeup.Bell()
    bell.arm("ticket-late", seen)
    try:
        assert bell.wait(0) and bell.mine
        bell.arm("ticket-late", wakeup.version())  # after the next look: nothing new
        assert not bell.wait(0)
    finally:
        bell.close()


def test_the_listener_skips_its_own_echo_and_rings_the_others() -> None:
    bell = wakeup.Bell()
    bell.arm("ticket-echo", wakeup.version())
    try:
        token = wakeup.echo_token()  # the committing transaction's NOTIFY
        wakeup.heard(f"{token} ticket-echo")  # heard before the commit rang it locally
        assert not bell.wait(0)
        wakeup.notify(wakeup.Wake(frozenset({"ticket-echo"})))  # rung locally at commit
        assert bell.wait(0) and bell.mine
        bell.arm("ticket-echo", wakeup.version())
        wakeup.heard("replica.7 ticket-x,ticket-echo")
        assert bell.wait(0) and bell.mine
        bell.arm("ticket-echo", wakeup.version())
        wakeup.heard("")  # an older replica's bare NOTIFY: everyone looks
        assert bell.wait(0) and bell.general
    finally:
        bell.close()
