"""Wake-ups for long-polling lock waiters: a change that may move a queue wakes them.

A write names whom it wakes (:func:`wake_of` its journal): the tickets whose turn came,
that were superseded or that left, each waiter's own :class:`Bell`; a freeze window's
change wakes every waiter (a turn held back by a freeze may go on). Waking only those
keeps the other waiters of a busy key from reading the queue in front of the handoff.
Every committed wake bumps a version (:func:`notify`) and is remembered for a while, so
a bell armed with the version read before its waiter's look (:meth:`Bell.arm`) rings
for what committed between that look and its sleep: nothing is missed. Replicas sharing
PostgreSQL hear each other through ``LISTEN/NOTIFY`` (:class:`PostgresListener`): a write
transaction sends ``NOTIFY`` with the tickets, which PostgreSQL delivers at commit, and
each replica's listener thread rings the same bells there (its own writes' echo is
skipped, known before it is sent: they ring locally once committed). A waiter also
looks again at least every ``MAX_SLICE`` seconds, which notices expired leases and
dropped waiters no write announced.

Behind a connection pooler (PgBouncer in transaction mode) a LISTEN through the pool hears
nothing: the listener then LISTENs on the direct URL (``--direct-database-url``) when one
is set. It proves it hears by sending itself a NOTIFY through the main URL (the way writes
announce); when that probe is not heard, it polls the queue table instead (every
``POLL_SECONDS``) and wakes local waiters when it changed.

A stopping server (:func:`begin_shutdown`) wakes every waiter, whose long poll then answers
at once: the waiter comes back (to another replica, or to this one restarted).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

logger = logging.getLogger("tracker_server.wakeup")

CHANNEL = "tracker_queue"
#: The longest a waiter sleeps without looking again.
MAX_SLICE = 1.0
#: How long the listener waits to hear its own probe before it falls back to polling.
PROBE_SECONDS = 2.0
#: The polling fallback's period: a waiter's turn is seen this late at most.
POLL_SECONDS = 0.1
#: What the polling fallback compares: any join, leave or grant of any queue moves it.
_QUEUE_STATE = "SELECT count(*), coalesce(max(seq), 0), max(granted_at) FROM lock_queue"

#: How many recent wakes a bell armed late can still hear (:meth:`Bell.arm`); one armed
#: later than that rings anyway (it looks again, as after any wake).
RECENT = 1024
#: The longest NOTIFY payload sent with tickets (PostgreSQL allows 8000 bytes); a write
#: waking more tickets than fit wakes everyone instead.
MAX_PAYLOAD = 7000
#: How many of this process's own NOTIFYs are remembered, for the listener to skip.
ECHOES = 4096

_condition = threading.Condition()
_version = 0
_stopping = False
#: (version, tickets woken or None for everyone) of the latest wakes, oldest first.
_recent: deque[tuple[int, frozenset[str] | None]] = deque(maxlen=RECENT)
#: The armed bells by ticket, and every armed bell.
_bells: dict[str, set[Bell]] = {}
_armed: set[Bell] = set()
#: This process's NOTIFY tokens, rung locally at commit (the listener skips their echo).
_echoes: OrderedDict[str, None] = OrderedDict()
_tokens = itertools.count()
_ORIGIN = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Wake:
    """Whom a committed write wakes: ``tickets`` (None: everyone)."""

    tickets: frozenset[str] | None = None


#: The journal entries whose ticket's waiter must look again, and those that wake all.
_TICKET_KINDS = frozenset({"queue_granted", "queue_left", "queue_superseded"})
_EVERYONE_KINDS = frozenset({"freeze_created", "freeze_updated", "freeze_deleted"})


def wake_of(entries: Iterable[Any]) -> Wake | None:
    """Whom these journal entries wake (None: nobody). Only a waiter's own ticket moving
    (its turn, its place taken, its ticket gone) or a freeze changing can change what its
    look answers: a holder released with nobody in line, or taken, wakes nobody."""
    tickets: set[str] = set()
    for entry in entries:
        kind = getattr(entry, "KIND", "")
        if kind in _EVERYONE_KINDS:
            return Wake(None)
        if kind in _TICKET_KINDS:
            tickets.add(entry.ticket)
    return Wake(frozenset(tickets)) if tickets else None


def version() -> int:
    """The current wake-up version (read before looking, pass to :meth:`Bell.arm`)."""
    with _condition:
        return _version


def notify(wake: Wake | None = None) -> None:
    """Ring the bells of ``wake``'s tickets (every local waiter without one): it committed."""
    global _version
    tickets = wake.tickets if wake is not None else None
    with _condition:
        _version += 1
        _recent.append((_version, tickets))
        _condition.notify_all()
        if tickets is None:
            for bell in _armed:
                bell._ring(mine=False)
        else:
            for ticket in tickets:
                for bell in _bells.get(ticket, ()):
                    bell._ring(mine=True)


class Bell:
    """One long poll's wake-up: rung when its ticket moves (``mine``) or for everyone
    (``general``: its waiter reads whether its turn came), or when the server stops."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.ticket = ""
        self.mine = False
        self.general = False

    def arm(self, ticket: str, seen: int) -> None:
        """Listen for ``ticket`` from version ``seen`` on (read before the last look):
        what committed since rings at once."""
        with _condition:
            self._forget()
            self.ticket = ticket
            self.mine = self.general = False
            self._event.clear()
            _armed.add(self)
            _bells.setdefault(ticket, set()).add(self)
            if _stopping or (_recent and _recent[0][0] > seen + 1 and _version > seen):
                self._ring(mine=False)  # stopping, or some wakes since are forgotten
            for number, tickets in reversed(_recent):
                if number <= seen:
                    break
                if tickets is None or ticket in tickets:
                    self._ring(mine=tickets is not None)

    def wait(self, timeout: float) -> bool:
        """Sleep until rung or ``timeout`` passes; True if rung."""
        return self._event.wait(max(0.0, timeout))

    def close(self) -> None:
        """Stop listening (the long poll answered)."""
        with _condition:
            self._forget()

    def _ring(self, *, mine: bool) -> None:  # under _condition
        if mine:
            self.mine = True
        else:
            self.general = True
        self._event.set()

    def _forget(self) -> None:  # under _condition
        _armed.discard(self)
        bells = _bells.get(self.ticket)
        if bells is not None:
            bells.discard(self)
            if not bells:
                del _bells[self.ticket]


def wait_for_change(seen: int, timeout: float) -> bool:
    """Sleep until the version moves past ``seen`` or ``timeout`` passes (or the server
    stops); True if it moved."""
    with _condition:
        return _condition.wait_for(lambda: _version != seen or _stopping, timeout=max(0.0, timeout))


def begin_shutdown() -> None:
    """The server is stopping: every long poll answers now (see :func:`stopping`)."""
    global _stopping
    with _condition:
        _stopping = True
        _condition.notify_all()
        for bell in _armed:
            bell._ring(mine=False)


def stopping() -> bool:
    """True once the server began stopping: long polls answer at once."""
    return _stopping


def resume() -> None:
    """Forget a :func:`begin_shutdown` (tests that run several apps in one process)."""
    global _stopping
    with _condition:
        _stopping = False


def announce(conn: Connection, wake: Wake | None = None) -> Wake:
    """Inside a write transaction: on PostgreSQL tell the other replicas at commit whom it
    wakes (``wake``; None: everyone). Pass the answer to :func:`notify` after the commit:
    this process rings its own bells then, and its listener skips the echo."""
    wake = wake or Wake(None)
    if conn.dialect.name != "postgresql":
        return wake
    token = echo_token()
    names = "*" if wake.tickets is None else ",".join(sorted(wake.tickets))
    if len(names) > MAX_PAYLOAD:
        names = "*"
    conn.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CHANNEL, "payload": f"{token} {names}"},
    )
    return wake


def echo_token() -> str:
    """A new NOTIFY token of this process, known to its listener as an echo from now on:
    the listener may hear a NOTIFY before the process that committed it rings its own
    bells (and runs the transaction's ``Journal.on_commit``), and must not wake a waiter
    early. A token of a transaction rolled back is never heard; the oldest ones go."""
    token = f"{_ORIGIN}.{next(_tokens)}"
    with _condition:
        _echoes[token] = None
        while len(_echoes) > ECHOES:
            _echoes.popitem(last=False)
    return token


def heard(payload: str) -> None:
    """A NOTIFY from any replica: ring whom it names (everyone when it names nobody, as
    an older replica's bare NOTIFY), unless it is this process's own echo."""
    token, _, names = payload.partition(" ")
    if token:
        with _condition:
            if token in _echoes:
                del _echoes[token]
                return
    if not names or names == "*":
        notify()
        return
    notify(Wake(frozenset(names.split(","))))


class PostgresListener:
    """A thread LISTENing on PostgreSQL: every NOTIFY from any replica wakes local waiters;
    polling the queue table when LISTEN does not hear (see the module's docstring)."""

    def __init__(self, engine: Engine, direct_database_url: str | None = None) -> None:
        self.engine = engine
        self.direct_database_url = direct_database_url
        #: "listen" or "poll" once the probe told; "" before (tests, logs).
        self.mode = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen in the background (PostgreSQL only)."""
        if self.engine.dialect.name != "postgresql" or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="queue-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._listen():
                    continue
                self._poll()
            except Exception:  # the database went away: wait, then listen again
                logger.warning("queue listener lost its connection; retrying", exc_info=True)
                self._stop.wait(1.0)

    def _dsn(self) -> Any:
        from tracker_server.db import normalize_database_url

        direct = self.direct_database_url
        url = normalize_database_url(direct) if direct else self.engine.url
        return url.set(drivername="postgresql").render_as_string(hide_password=False)

    def _listen(self) -> bool:
        """LISTEN until stopped (True), or False when the probe was not heard."""
        import psycopg

        with psycopg.connect(self._dsn(), autocommit=True, connect_timeout=5) as conn:
            try:
                conn.execute(f"LISTEN {CHANNEL}")
            except psycopg.Error as exc:  # refused by a pooler: LISTEN is not possible
                self._cannot_hear(f"LISTEN refused ({exc})")
                return False
            if not self._probe(conn):
                return False
            self.mode = "listen"
            while not self._stop.is_set():
                for message in conn.notifies(timeout=0.5, stop_after=1):
                    heard(message.payload)
        return True

    def _probe(self, conn: Any) -> bool:
        """Send a NOTIFY the way writes do (through the main URL) and wait to hear it."""
        token = f"probe-{uuid.uuid4().hex}"
        with self.engine.begin() as sender:
            sender.execute(
                text("SELECT pg_notify(:channel, :token)"), {"channel": CHANNEL, "token": token}
            )
        waited = 0.0
        while waited < PROBE_SECONDS and not self._stop.is_set():
            for message in conn.notifies(timeout=0.2, stop_after=1):
                if message.payload == token:
                    return True
                heard(message.payload)  # a real change meanwhile
            waited += 0.2
        if not self._stop.is_set():
            self._cannot_hear("LISTEN does not hear NOTIFY (a pooler in transaction mode?)")
        return False

    def _cannot_hear(self, why: str) -> None:
        direct = self.direct_database_url
        logger.warning(
            "%s on %s: polling the queue every %.1f s instead; set --direct-database-url "
            "(TRACKER_DIRECT_DATABASE_URL) to a direct connection for instant wake-ups",
            why,
            "the direct URL" if direct else "the database URL",
            POLL_SECONDS,
        )

    def _poll(self) -> None:
        """Until stopped: wake local waiters whenever any queue changed."""
        seen = self._queue_state()
        self.mode = "poll"
        while not self._stop.wait(POLL_SECONDS):
            state = self._queue_state()
            if state != seen:
                notify()
            seen = state

    def _queue_state(self) -> tuple[Any, ...]:
        with self.engine.connect() as conn:
            state = tuple(conn.execute(text(_QUEUE_STATE)).one())
            conn.rollback()
        return state
