"""Alerts: rules the server evaluates on a timer, fired once per occurrence as ``alert.fired``.

Each rule looks at the stored state and names its occurrences by a key
(``slow_deploy:<event id>``, ``lock_held:<lock id>``...). A key is stored in ``alerts``
(unique) in the same transaction as the :class:`AlertFired` journal entry, so the webhook
outbox delivers it like any change, and an occurrence fires once: on the next tick, and on
another replica, the key is already there.

Rules (thresholds in :class:`~tracker_server.settings.ServerSettings`, ``alert_*``):

- ``slow_deploy``: an open deployment running longer than ``alert_slow_factor`` (1.5) x the
  p95 of the durations of its service's last ``alert_slow_history`` (20) deployments in that
  environment, when there are at least ``alert_slow_min_samples`` (5);
- ``failed_deploys``: ``alert_failed_count`` (3) failed deployments of a service in one
  environment started within ``alert_failed_window_seconds`` (1 h);
- ``lock_held``: a lock held longer than ``alert_lock_held_seconds`` (2 h);
- ``freeze_broken``: a hard freeze passed with ``--break-glass`` (the ``glass_broken``
  journal entries of the last day).

The same timer notices freeze windows coming into force and ending (they change with
time, not with a request): ``freeze.started`` and ``freeze.ended``, once per stretch.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import Connection, and_, exists, insert, or_, select
from sqlalchemy.exc import IntegrityError

from tracker_ci.models import Event, FreezeWindow, Lock, format_timestamp
from tracker_server.clock import Clock
from tracker_server.db import Database
from tracker_server.journal import Journal, JournalEntry
from tracker_server.metrics import Metrics
from tracker_server.settings import ServerSettings
from tracker_server.store import events as event_store
from tracker_server.store import locks as lock_store
from tracker_server.tables import alerts as alerts_table
from tracker_server.tables import events, journal, locks

logger = logging.getLogger("tracker_server.alerts")

_DEPLOYMENT = "deployment"
_OPEN = ("start", "in_progress")
_GLASS_LOOKBACK = timedelta(days=1)


class AlertFired(JournalEntry):
    """An alert rule found an occurrence (delivered to webhooks as ``alert.fired``)."""

    KIND = "alert_fired"
    rule: str
    key: str
    message: str
    service: str = ""
    environment: str = ""
    event: Event | None = None
    lock: Lock | None = None
    values: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Occurrence:
    """What a rule found: its key names it once and for all."""

    rule: str
    key: str
    message: str
    service: str = ""
    environment: str = ""
    event: Event | None = None
    lock: Lock | None = None
    values: dict[str, Any] = field(default_factory=dict)
    #: What it is journaled as: an alert, or (for freeze windows) a timed change.
    entry: JournalEntry | None = None


class FreezeWindowStarted(JournalEntry):
    """A freeze window came into force (seen by the timer; ``freeze.started``)."""

    KIND = "freeze_window_started"
    window: FreezeWindow
    until: datetime | None = None
    service: str = ""
    environment: str = ""


class FreezeWindowEnded(JournalEntry):
    """A stretch of a freeze window ended (seen by the timer; ``freeze.ended``)."""

    KIND = "freeze_window_ended"
    window: FreezeWindow
    until: datetime | None = None
    service: str = ""
    environment: str = ""


def _scope(window: FreezeWindow) -> dict[str, str]:
    """The service or environment a single-target window is about (for webhook filters)."""
    if len(window.scope_ids) != 1:
        return {}
    name = {"FREEZE_SCOPE_SERVICE": "service", "FREEZE_SCOPE_ENVIRONMENT": "environment"}
    field_name = name.get(window.scope_type.value)
    return {field_name: window.scope_ids[0]} if field_name else {}


def p95(samples: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


class Alerts:
    """The rules, their timer, and the one place alerts are fired."""

    def __init__(
        self, database: Database, clock: Clock, settings: ServerSettings, metrics: Metrics
    ) -> None:
        self.database = database
        self.clock = clock
        self.settings = settings
        self.metrics = metrics
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ rules
    def _slow_deploys(self, conn: Connection, now: datetime) -> Iterator[Occurrence]:
        s = self.settings
        open_rows = conn.execute(
            select(events.c.id, events.c.service, events.c.environment, events.c.created_at)
            .where(events.c.type == _DEPLOYMENT, events.c.status.in_(_OPEN))
            .order_by(events.c.created_at)
            .limit(500)
        ).all()
        # Each tick reads one history per service and environment, and nothing for a deploy
        # whose alert fired already (abandoned deploys stay open for ever: at a million
        # events the former per-deploy reads took seconds of CPU every tick).
        fired = self._fired_keys(conn, [f"slow_deploy:{row.id}" for row in open_rows])
        limits: dict[tuple[str, str], tuple[float, int] | None] = {}
        for row in open_rows:
            key = f"slow_deploy:{row.id}"
            if key in fired:
                continue
            scope = (row.service, row.environment)
            if scope not in limits:
                limits[scope] = self._slow_limit(conn, *scope)
            known = limits[scope]
            if known is None:
                continue
            limit, samples = known
            running = (now - row.created_at).total_seconds()
            if running > limit:
                yield Occurrence(
                    "slow_deploy",
                    key,
                    f"deployment of {row.service} to {row.environment} has run {running:.0f}s, "
                    f"over {s.alert_slow_factor}x the p95 of its last {samples} "
                    f"({limit:.0f}s)",
                    row.service,
                    row.environment,
                    event=event_store.get_event(conn, event_id=row.id),
                    values={"runningSeconds": running, "limitSeconds": limit},
                )

    def _slow_limit(
        self, conn: Connection, service: str, environment: str
    ) -> tuple[float, int] | None:
        """The running time past which a deploy of (service, environment) is slow, and how
        many finished deploys it comes from; None with too few of them."""
        s = self.settings
        history = conn.execute(
            select(events.c.duration_seconds)
            .where(
                events.c.type == _DEPLOYMENT,
                events.c.service == service,
                events.c.environment == environment,
                events.c.duration_seconds.is_not(None),
                events.c.status.not_in(_OPEN),
            )
            .order_by(events.c.created_at.desc())
            .limit(s.alert_slow_history)
        ).scalars()
        samples = [float(value) for value in history]
        if len(samples) < s.alert_slow_min_samples:
            return None
        return s.alert_slow_factor * p95(samples), len(samples)

    def _failed_deploys(self, conn: Connection, now: datetime) -> Iterator[Occurrence]:
        s = self.settings
        since = now - timedelta(seconds=s.alert_failed_window_seconds)
        rows = conn.execute(
            select(events.c.id, events.c.service, events.c.environment)
            .where(
                events.c.type == _DEPLOYMENT,
                events.c.status == "failure",
                events.c.created_at >= since,
            )
            .order_by(events.c.created_at, events.c.id)
        ).all()
        by_key: dict[tuple[str, str], list[str]] = {}
        for row in rows:
            by_key.setdefault((row.service, row.environment), []).append(row.id)
        for (service, environment), ids in by_key.items():
            if len(ids) >= s.alert_failed_count:
                # One occurrence per run of failures: named by the oldest in the window.
                yield Occurrence(
                    "failed_deploys",
                    f"failed_deploys:{service}:{environment}:{ids[0]}",
                    f"{len(ids)} failed deployments of {service} to {environment} in the last "
                    f"{s.alert_failed_window_seconds:.0f}s",
                    service,
                    environment,
                    values={"count": len(ids), "eventIds": ids},
                )

    def _held_locks(self, conn: Connection, now: datetime) -> Iterator[Occurrence]:
        limit = timedelta(seconds=self.settings.alert_lock_held_seconds)
        rows = conn.execute(
            select(locks)
            .where(
                locks.c.created_at <= now - limit,
                or_(locks.c.expires_at.is_(None), locks.c.expires_at > now),
            )
            .limit(500)
        ).all()
        for row in rows:
            lock = lock_store.row_to_lock(row)
            held = (now - row.created_at).total_seconds()
            yield Occurrence(
                "lock_held",
                f"lock_held:{lock.id}",
                f"{lock.service} in {lock.environment} ({lock.resource}) has been locked by "
                f"{lock.who or 'someone'} for {held:.0f}s",
                lock.service,
                lock.environment,
                lock=lock,
                values={"heldSeconds": held},
            )

    @staticmethod
    def _broken_glass(conn: Connection, now: datetime) -> Iterator[Occurrence]:
        rows = conn.execute(
            select(journal.c.id, journal.c.payload).where(
                journal.c.kind == "glass_broken", journal.c.occurred_at >= now - _GLASS_LOOKBACK
            )
        ).all()
        for row in rows:
            payload = row.payload
            window = payload.get("window") or {}
            yield Occurrence(
                "freeze_broken",
                f"freeze_broken:{row.id}",
                f"{payload.get('who', '')} broke the freeze {window.get('title', '')!r} for "
                f"{payload.get('service', '')} in {payload.get('environment', '')}: "
                f"{payload.get('reason', '')}",
                str(payload.get("service", "")),
                str(payload.get("environment", "")),
                values={"reason": payload.get("reason", ""), "freeze": window},
            )

    @staticmethod
    def _freeze_windows(conn: Connection, now: datetime) -> Iterator[Occurrence]:
        """freeze.started once per stretch in force; freeze.ended once it is over."""
        from tracker_server.store import freezes

        for window in freezes.list_windows(conn):
            stretch = freezes.in_force(window, now)
            if stretch is None:
                continue
            until = format_timestamp(stretch.until) if stretch.until else "open"
            entry = FreezeWindowStarted(window=window, until=stretch.until, **_scope(window))
            yield Occurrence(
                "freeze_started",
                f"freeze_started:{window.id}:{until}",
                f"freeze {window.title!r} in force until {stretch.until_text()}",
                entry=entry,
            )
        started = conn.execute(
            select(alerts_table.c.key).where(alerts_table.c.rule == "freeze_started")
        ).scalars()
        for key in started:
            _, window_id, until = key.split(":", 2)
            if until == "open" or datetime.fromisoformat(until) > now:
                continue
            if Alerts._fired(conn, f"freeze_ended:{window_id}:{until}"):
                continue
            found = conn.execute(
                select(journal.c.payload)
                .where(journal.c.kind == FreezeWindowStarted.KIND)
                .order_by(journal.c.id.desc())
            ).scalars()
            payload = next((p for p in found if p["window"]["id"] == window_id), None)
            if payload is None:
                continue
            ended = FreezeWindowEnded.model_validate(payload)
            yield Occurrence(
                "freeze_ended",
                f"freeze_ended:{window_id}:{until}",
                f"freeze {ended.window.title!r} ended",
                entry=ended,
            )

    # ------------------------------------------------------------------ firing
    def occurrences(self, now: datetime) -> list[Occurrence]:
        """Every occurrence the rules see now that has not fired yet."""
        with self.database.read() as conn:
            found = [
                *self._slow_deploys(conn, now),
                *self._failed_deploys(conn, now),
                *self._held_locks(conn, now),
                *self._broken_glass(conn, now),
                *self._freeze_windows(conn, now),
            ]
            return [o for o in found if not self._fired(conn, o.key)]

    @staticmethod
    def _fired_keys(conn: Connection, keys: list[str]) -> set[str]:
        """Which of ``keys`` have fired already (one query)."""
        if not keys:
            return set()
        query = select(alerts_table.c.key).where(alerts_table.c.key.in_(keys))
        return set(conn.execute(query).scalars())

    @staticmethod
    def _fired(conn: Connection, key: str) -> bool:
        return bool(conn.execute(select(exists().where(and_(alerts_table.c.key == key)))).scalar())

    def fire(self, occurrence: Occurrence, now: datetime, outbox: Any) -> bool:
        """Store the occurrence and its journal entry; False when it had fired already."""
        entry = occurrence.entry or AlertFired(
            rule=occurrence.rule,
            key=occurrence.key,
            message=occurrence.message,
            service=occurrence.service,
            environment=occurrence.environment,
            event=occurrence.event,
            lock=occurrence.lock,
            values=occurrence.values,
        )
        log = Journal(metrics=self.metrics, now=now, outbox=outbox)
        log.record(entry)
        try:
            with self.database.write() as conn:
                if self._fired(conn, occurrence.key):
                    return False
                conn.execute(
                    insert(alerts_table).values(
                        key=occurrence.key, rule=occurrence.rule, fired_at=now
                    )
                )
                log.persist(conn)
        except IntegrityError:  # another replica fired it in between
            return False
        log.flush()
        logger.warning("alert %s: %s", occurrence.rule, occurrence.message)
        return True

    def evaluate(self, outbox: Any) -> list[Occurrence]:
        """One tick: fire every new occurrence; the ones fired."""
        now = self.clock.now()
        return [o for o in self.occurrences(now) if self.fire(o, now, outbox)]

    # ------------------------------------------------------------------ the timer
    def start(self, outbox: Any) -> None:
        """Evaluate every ``alert_interval_seconds`` in a daemon thread until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.wait(self.settings.alert_interval_seconds):
                try:
                    self.evaluate(outbox)
                except Exception:  # a database outage: try again next tick
                    logger.exception("alerts: evaluation failed")

        if self._thread is None:
            self._thread = threading.Thread(target=loop, name="alerts", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the timer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
