"""One write request: who asks, what they may touch, one transaction and its journal.

Every write route takes a :class:`Write` (the ``WriteDep`` / ``AdminWriteDep`` dependencies in
``deps.py``) and changes the database only inside :meth:`Write.transaction` (or
:meth:`Write.once`), which persists the journal in that transaction and announces it after
the commit. The ownership checks of stored records live here, next to the caller's rights,
and run inside the transaction, so the record cannot move to another service between the
check and the change.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import Connection

from tracker_ci.models import Event, Lock
from tracker_server import wakeup
from tracker_server.auth import Principal, authorize
from tracker_server.db import Database
from tracker_server.domain import Forbidden
from tracker_server.journal import Journal, LockOverridden, persist_together
from tracker_server.store import batch as batch_store
from tracker_server.store import events as event_store
from tracker_server.store import idempotency
from tracker_server.store import locks as lock_store
from tracker_server.upkeep import StatisticsUpkeep

#: The header carrying an admin's reason for acting on a lock another token took.
REASON_HEADER = "X-Tracker-Reason"


@dataclass
class Write:
    """The caller's rights, the database, the request's journal and its moment (``now``)."""

    principal: Principal
    database: Database
    journal: Journal
    now: datetime
    #: ``X-Tracker-Reason``: why an admin acts on a lock another token took.
    reason: str = ""
    #: Told how many changes each transaction committed (the planner's statistics).
    upkeep: StatisticsUpkeep | None = None
    #: ``X-Tracker-New-Environment: 1``: the caller means to create a new environment name
    #: (``operations.check_environment``).
    new_environment: bool = False
    #: Who may approve a deployment (the ``approvers`` setting): ``any`` or ``catalog-owner``.
    approvers: str = "any"

    def allow(self, service: str) -> None:
        """Refuse unless the caller may write this service."""
        authorize(self.principal, "write", service=service)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction; the journal is persisted in it and announced after."""
        try:
            with self.database.write() as conn:
                yield conn
                changed = self._persist(conn)
        except BaseException:
            self.journal.discard()
            raise
        self._announce(changed)

    async def grouped(
        self, work: Callable[[Connection], Response], *, shares_freely: bool = False
    ) -> Response:
        """``work``'s answer, once it committed in a transaction it may share with other
        requests of this process (``db.GroupCommit``: one commit, one fsync for all).

        ``work`` runs in the committer's thread, in a savepoint of its own: its error
        refuses this request only, and it may run twice (again alone, if its group could
        not commit), so it changes nothing but the database and the journal.
        ``shares_freely``: it only inserts new rows (``db.PG_MAX_GROUP``).
        """
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Response] = loop.create_future()
        grouped = _Grouped(self, work, _answers_of(loop), answer)
        grouped.shares_freely = shares_freely
        self.database.groups.submit(grouped)
        return await answer

    def _persist(self, conn: Connection) -> wakeup.Wake | None:
        """Persist the journal on ``conn``; whom the change wakes (None: nobody)."""
        # A change may move a lock queue: wake its waiters (other replicas too).
        wake = wakeup.wake_of(self.journal.pending)
        if wake is not None:
            wake = wakeup.announce(conn, wake)
        self.journal.persist(conn)
        return wake

    def _announce(self, wake: wakeup.Wake | None) -> None:
        """After the commit: waiters first (a handoff waits on nothing else), then the
        statistics' count, the audit lines and metrics."""
        committed, self.journal.on_commit = self.journal.on_commit, []
        for hook in committed:
            hook()
        if wake is not None:
            wakeup.notify(wake)
        if self.upkeep is not None:
            self.upkeep.wrote(sum(entry.rows() for entry in self.journal.committed))
        self.journal.flush()

    def owned_event(self, conn: Connection, event_id: str) -> Event:
        """The event (locked for the transaction) when the caller may write it."""
        event = event_store.require_event(conn, event_id=event_id, for_update=True)
        self.allow(event.attributes.service)
        return event

    def owned_lock(self, conn: Connection, lock_id: str, action: str = "change") -> Lock:
        """The live lock when the caller may write it."""
        lock = lock_store.require_lock(conn, lock_id=lock_id, now=self.now)
        self.allow(lock.service)
        self.check_holder(conn, lock, action)
        return lock

    def owned_lock_if_any(
        self, conn: Connection, lock_id: str, action: str = "release"
    ) -> Lock | None:
        """The live lock when the caller may write it; None when there is none."""
        lock = lock_store.find_lock(conn, lock_id=lock_id, now=self.now)
        if lock is not None:
            self.allow(lock.service)
            self.check_holder(conn, lock, action)
        return lock

    def check_holder(
        self, conn: Connection, lock: Lock, action: str, owner: str | None = None
    ) -> None:
        """A lock belongs to the token that took it (``owner``, read when not given; the
        server's admin token too): another token may ``action`` it only as an admin giving
        a reason (break glass, audited in the journal)."""
        if owner is None:
            owner = lock_store.lock_token(conn, lock_id=lock.id)
        caller = self.principal
        if not owner or owner == caller.lock_owner:
            return
        if not caller.admin:
            raise Forbidden(
                f"lock {lock.id} was taken by another token: only that token, or an admin "
                f"giving a reason ({REASON_HEADER}), may {action} it"
            )
        if not self.reason:
            raise Forbidden(
                f"lock {lock.id} was taken by another token: as an admin, say why you "
                f"{action} it ({REASON_HEADER} header; tracker-ci lock release --reason)"
            )
        self.journal.record(
            LockOverridden(lock=lock, by=caller.name, action=action, reason=self.reason)
        )

    def once(
        self,
        *,
        scope: str,
        key: str | None,
        body: BaseModel,
        work: Callable[[Connection], Response],
    ) -> Response:
        """Run ``work`` in one transaction; with a key, at most once (see idempotency).

        A repeat must carry the same ``body``: its fingerprint is stored with the key. A
        repeat writes nothing, so it has no journal entry.
        """
        if key is not None:
            idempotency.check_key(key)
        with self.transaction() as conn:
            return self._once(conn, scope=scope, key=key, body=body, work=work)

    async def grouped_once(
        self,
        *,
        scope: str,
        key: str | None,
        body: BaseModel,
        work: Callable[[Connection], Response],
        shares_freely: bool = False,
    ) -> Response:
        """:meth:`once` in a shared transaction (:meth:`grouped`); a key's row is one
        another request may wait for, so a write with a key never ``shares_freely``."""
        if key is not None:
            idempotency.check_key(key)
        return await self.grouped(
            lambda conn: self._once(conn, scope=scope, key=key, body=body, work=work),
            shares_freely=shares_freely and key is None,
        )

    def _once(
        self,
        conn: Connection,
        *,
        scope: str,
        key: str | None,
        body: BaseModel,
        work: Callable[[Connection], Response],
    ) -> Response:
        stored = self._claim(conn, scope=scope, key=key, body=body)
        if stored is not None:
            return stored
        response = work(conn)
        if key is not None:
            idempotency.remember(
                conn,
                scope=scope,
                key=key,
                status_code=response.status_code,
                body=bytes(response.body).decode(),
            )
        return response

    def _claim(
        self, conn: Connection, *, scope: str, key: str | None, body: BaseModel
    ) -> Response | None:
        if key is None:
            return None
        stored = idempotency.claim(
            conn,
            scope=scope,
            key=key,
            fingerprint=idempotency.request_fingerprint(body.model_dump_json()),
            now=self.now,
        )
        if stored is None:
            return None
        response = Response(
            stored.body, status_code=stored.status_code, media_type="application/json"
        )
        response.headers["Idempotent-Replayed"] = "true"
        return response


class _Grouped:
    """A request's write in a group (``db.GroupedWrite``): answered on its event loop."""

    def __init__(
        self,
        write: Write,
        work: Callable[[Connection], Response],
        answers: _LoopAnswers,
        answer: asyncio.Future[Response],
    ) -> None:
        self.write, self.work, self.answers, self.answer = write, work, answers, answer
        self.response: Response | None = None
        self.changed: wakeup.Wake | None = None
        #: The event and changelog rows the work inserted, sent with the group's.
        self.rows: batch_store.HeldRows = {}
        #: It only inserts new rows: it may share a transaction on PostgreSQL too.
        self.shares_freely = False

    def apply(self, conn: Connection) -> None:
        """The work and its journal, in the group's transaction; its plain inserts and
        its journal entries are held back for :meth:`finish_group`."""
        journal = self.write.journal
        # A second run (alone): the first one never committed.
        journal.committed.clear()
        journal.discard()
        journal.held = True
        buffered = batch_store.BufferedInserts(conn)
        try:
            self.response = self.work(cast(Connection, buffered))
            self.changed = self.write._persist(conn)
        except BaseException:
            journal.discard()
            raise
        self.rows = buffered.take()

    @staticmethod
    def finish_group(conn: Connection, writes: list[_Grouped]) -> None:
        """Once the group's writes applied: their rows and journal entries, in one
        statement per table for all (a plain create sends no statement of its own)."""
        batch_store.insert_held(conn, [write.rows for write in writes])
        persist_together(conn, [write.write.journal for write in writes])

    def settle(self, error: BaseException | None) -> Callable[[], None]:
        """Announce what committed (as :meth:`Write.transaction` does); the answer is
        handed to the event loop with the group's others."""
        if error is None:
            self.write._announce(self.changed)
        else:
            self.write.journal.discard()
            self.write.journal.committed.clear()
        self.answers.add(self.answer, self.response, error)
        return self.answers.hand_over


class _LoopAnswers:
    """The answers of grouped writes for one event loop, handed over in one wake-up per
    group: a wake-up per write would give the GIL to the loop between two answers, and
    the committer would wait for it back (up to the interpreter's switch interval)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._ready: list[tuple[asyncio.Future[Response], Response | None, BaseException | None]]
        self._ready = []

    def add(
        self,
        answer: asyncio.Future[Response],
        response: Response | None,
        error: BaseException | None,
    ) -> None:
        """Note one answer (from the committer thread)."""
        with self._lock:
            self._ready.append((answer, response, error))

    def hand_over(self) -> None:
        """Wake the loop to deliver the answers noted so far."""
        self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for answer, response, error in ready:
            if answer.done():  # the request was cancelled (its client went away)
                continue
            if error is not None:
                answer.set_exception(error)
            else:
                assert response is not None
                answer.set_result(response)


#: Each event loop's answers (a server has one loop; tests may start several apps).
_answers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopAnswers]
_answers = weakref.WeakKeyDictionary()


def _answers_of(loop: asyncio.AbstractEventLoop) -> _LoopAnswers:
    answers = _answers.get(loop)
    if answers is None:
        answers = _answers[loop] = _LoopAnswers(loop)
    return answers
