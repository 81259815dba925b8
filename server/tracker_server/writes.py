"""One write request: who asks, what they may touch, one transaction and its journal.

Every write route takes a :class:`Write` (the ``WriteDep`` / ``AdminWriteDep`` dependencies in
``deps.py``) and changes the database only inside :meth:`Write.transaction` (or
:meth:`Write.once`), which persists the journal in that transaction and announces it after
the commit. The ownership checks of stored records live here, next to the caller's rights,
and run inside the transaction, so the record cannot move to another service between the
check and the change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import Connection

from tracker_ci.models import Event, Lock
from tracker_server import wakeup
from tracker_server.auth import Principal, authorize
from tracker_server.db import Database
from tracker_server.domain import Forbidden
from tracker_server.journal import Journal, LockOverridden
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

    def allow(self, service: str) -> None:
        """Refuse unless the caller may write this service."""
        authorize(self.principal, "write", service=service)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction; the journal is persisted in it and announced after."""
        changed = False
        try:
            with self.database.write() as conn:
                yield conn
                # A change may move a lock queue: wake the waiters (other replicas too).
                changed = self.journal.wakes_waiters()
                if changed:
                    wakeup.announce(conn)
                self.journal.persist(conn)
        except BaseException:
            self.journal.discard()
            raise
        if self.upkeep is not None:
            self.upkeep.wrote(sum(entry.rows() for entry in self.journal.committed))
        self.journal.flush()
        if changed:
            wakeup.notify()

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

    def check_holder(self, conn: Connection, lock: Lock, action: str) -> None:
        """A lock belongs to the token that took it: another token may ``action`` it only
        as an admin giving a reason (break glass, audited in the journal)."""
        owner = lock_store.lock_token(conn, lock_id=lock.id)
        caller = self.principal
        if not owner or owner == caller.token_id:
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
