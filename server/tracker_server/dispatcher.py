"""The dispatcher: sends the outbox's due deliveries, at least once, from every replica.

A delivery is *claimed* in a short transaction: on PostgreSQL ``FOR UPDATE SKIP LOCKED``
(SQLite's write transactions are serial already), and a lease (``lease_until``) marks it
taken, so two replicas never send the same delivery at once. It is sent outside any
transaction, then its outcome is recorded only if the lease is still ours. A failed
attempt is due again after an exponential, jittered delay; once the delivery is older
than ``webhook_max_age_seconds`` a failure makes it dead. A replica killed mid-send
leaves a lease that simply runs out: the delivery is due again, with the same id.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from sqlalchemy import Connection, delete, func, or_, select, update

from tracker_ci.models import format_timestamp
from tracker_ci.wire.webhooks import WebhookOptions
from tracker_server import targets
from tracker_server.clock import Clock
from tracker_server.db import Database
from tracker_server.outbox import DEAD, DELIVERED, PENDING
from tracker_server.settings import ServerSettings
from tracker_server.sinks import sink_for
from tracker_server.sinks.base import GONE, Answer, Outgoing
from tracker_server.store import webhooks as webhook_store
from tracker_server.tables import webhook_deliveries as deliveries
from tracker_server.tables import webhooks

logger = logging.getLogger("tracker_server.dispatcher")
_PRUNE_EVERY_SECONDS = 600.0
#: A delivery keeps (and ``webhook deliveries`` shows) this much of the receiver's answer:
#: enough to see why it refused, not a page of someone else's HTML.
MAX_ERROR_CHARS = 300
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")
#: The shortest wait a Retry-After gets (a receiver answering "0" is not hammered).
MIN_RETRY_AFTER_SECONDS = 1.0


def excerpt(text: str) -> str:
    """A short, one-line excerpt of an error or an answer's body (``MAX_ERROR_CHARS``)."""
    line = _UNPRINTABLE.sub(" ", text).strip()
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "\u2026"


def retry_after_seconds(value: str, now: datetime) -> float | None:
    """The seconds a ``Retry-After`` asks for (delta-seconds or an HTTP date); None when
    there is none or it cannot be read."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - now).total_seconds(), 0.0)


def retry_delay(
    attempts: int, *, base: float, cap: float, rng: random.Random | None = None
) -> timedelta:
    """The wait after the ``attempts``-th failure: base doubling up to cap, "equal jitter"
    (half fixed, half random) so that receivers coming back are not hit all at once."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    jitter = (rng or random).uniform(0, ceiling / 2)
    return timedelta(seconds=ceiling / 2 + jitter)


def _still_signing(row: Any, now: datetime) -> tuple[str, ...]:
    """The replaced secret while it still signs (after a rotation), else nothing."""
    until = row.previous_secret_until
    if row.previous_secret and until is not None and now < until:
        return (row.previous_secret,)
    return ()


@dataclass(frozen=True)
class Claim:
    """A delivery reserved for one attempt until ``lease_until``."""

    outgoing: Outgoing
    webhook_id: str
    kind: str
    created_at: datetime
    lease_until: datetime


class Dispatcher:
    """Claims due deliveries, sends them through their sink, records the answers."""

    def __init__(self, database: Database, clock: Clock, settings: ServerSettings) -> None:
        self.database = database
        self.clock = clock
        self.settings = settings
        self._http: httpx.Client | None = None
        self._http_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=settings.webhook_workers, thread_name_prefix="webhook"
        )

    @property
    def http(self) -> httpx.Client:
        """The HTTP client of every sink (made on first use)."""
        with self._http_lock:  # the pool's threads ask at once the first time
            if self._http is None:
                # Connects only to checked addresses, reads a bounded answer (targets.py).
                transport = targets.CheckedTransport(
                    allow_private=self.settings.allow_private_webhooks
                )
                self._http = httpx.Client(
                    timeout=self.settings.webhook_timeout_seconds,
                    follow_redirects=False,
                    transport=transport,
                )
            return self._http

    # ----------------------------------------------------------------- claiming
    @staticmethod
    def _due(now: datetime) -> list[Any]:
        return [
            deliveries.c.state == PENDING,
            deliveries.c.next_attempt_at <= now,
            or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now),
        ]

    def anything_due(self) -> bool:
        """A read (no write lock): is any delivery due? Idle polls stay this cheap."""
        with self.database.read() as conn:
            found = conn.execute(
                select(deliveries.c.id).where(*self._due(self.clock.now())).limit(1)
            ).first()
        return found is not None

    def claim(self, limit: int) -> list[Claim]:
        """Reserve up to ``limit`` due deliveries for this replica."""
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.settings.webhook_lease_seconds)
        query = (
            select(
                deliveries.c.id,
                deliveries.c.type,
                deliveries.c.body,
                deliveries.c.attempts,
                deliveries.c.created_at,
                deliveries.c.webhook_id,
                webhooks.c.url,
                webhooks.c.kind,
                webhooks.c.secret,
                webhooks.c.options,
                webhooks.c.previous_secret,
                webhooks.c.previous_secret_until,
            )
            .select_from(deliveries.join(webhooks, deliveries.c.webhook_id == webhooks.c.id))
            .where(*self._due(now), webhooks.c.disabled_at.is_(None))
            .order_by(deliveries.c.next_attempt_at, deliveries.c.journal_id, deliveries.c.id)
            .limit(limit)
        )
        with self.database.write() as conn:
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True, of=deliveries)
            rows = conn.execute(query).all()
            if rows:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_([row.id for row in rows]))
                    .values(
                        lease_until=lease_until,
                        last_attempt_at=now,
                        attempts=deliveries.c.attempts + 1,
                    )
                )
        return [self._claim_of(row, now, lease_until) for row in rows]

    def _claim_of(self, row: Any, now: datetime, lease_until: datetime) -> Claim:
        outgoing = Outgoing(
            id=row.id,
            type=row.type,
            body=row.body,
            attempt=row.attempts + 1,
            url=row.url,
            secret=row.secret,
            now=now,
            public_url=self.settings.public_url,
            options=WebhookOptions.model_validate(row.options or {}),
            previous_secrets=_still_signing(row, now),
        )
        return Claim(outgoing, row.webhook_id, row.kind, row.created_at, lease_until)

    # ----------------------------------------------------------------- sending
    def send(self, claim: Claim) -> Answer:
        """One attempt; transport failures and sink bugs are answers, never raised. The
        URL's address is checked first (the GitHub sink does not use our transport) and
        again at the connection: a refused address is a failed attempt, nothing is sent."""
        allow_private = self.settings.allow_private_webhooks
        try:
            targets.check_url(claim.outgoing.url, allow_private=allow_private)
            return sink_for(claim.kind).send(claim.outgoing, self.http)
        except targets.RefusedTarget as exc:
            return Answer(None, str(exc))
        except targets.UnresolvedTarget as exc:
            return Answer(None, f"ConnectError: {exc}"[:300])
        except httpx.HTTPError as exc:
            return Answer(None, f"{exc.__class__.__name__}: {exc}"[:300])
        except Exception as exc:  # a sink's bug must not stop the dispatcher
            logger.exception("webhook sink %s failed", claim.kind)
            return Answer(None, f"{exc.__class__.__name__}: {exc}"[:300])

    def record(self, claim: Claim, answer: Answer) -> None:
        """Store the outcome, if the lease is still ours (else another replica took over).
        A 410 (gone) disables the webhook; a 429 or 503 is retried after its Retry-After."""
        now = self.clock.now()
        values: dict[str, Any] = {
            "lease_until": None,
            "response_code": answer.status_code,
            "error": excerpt(answer.error),
        }
        max_age = timedelta(seconds=self.settings.webhook_max_age_seconds)
        if answer.ok:
            values["state"] = DELIVERED
        elif answer.status_code == GONE or now - claim.created_at >= max_age:
            values["state"] = DEAD
        else:
            values["next_attempt_at"] = now + self._wait(claim, answer, now)
        with self.database.write() as conn:
            finished = self._finish(conn, claim, values)
            if finished and answer.status_code == GONE:
                reason = f"the receiver answered 410 (gone) on {format_timestamp(now)}"
                webhook_store.disable_webhook(
                    conn, webhook_id=claim.webhook_id, now=now, reason=reason
                )
                logger.warning("webhook %s disabled: %s", claim.webhook_id, reason)

    def _wait(self, claim: Claim, answer: Answer, now: datetime) -> timedelta:
        """Until the next attempt: the receiver's Retry-After when it gave one (at least
        a second, so "0" cannot make a busy loop; at most the max age), else the backoff."""
        asked = retry_after_seconds(answer.retry_after, now)
        if asked is not None:
            seconds = min(
                max(asked, MIN_RETRY_AFTER_SECONDS), self.settings.webhook_max_age_seconds
            )
            return timedelta(seconds=seconds)
        return retry_delay(
            claim.outgoing.attempt,
            base=self.settings.webhook_retry_base_seconds,
            cap=self.settings.webhook_retry_max_seconds,
        )

    @staticmethod
    def _finish(conn: Connection, claim: Claim, values: dict[str, Any]) -> bool:
        result = conn.execute(
            update(deliveries)
            .where(
                deliveries.c.id == claim.outgoing.id,
                deliveries.c.state == PENDING,
                deliveries.c.lease_until == claim.lease_until,
            )
            .values(values)
        )
        return bool(result.rowcount)

    def deliver(self, claim: Claim) -> Answer:
        """Send and record one claimed delivery."""
        answer = self.send(claim)
        self.record(claim, answer)
        return answer

    def run_once(self, limit: int = 50) -> int:
        """Claim the due deliveries (up to ``limit``) and send them; how many were tried."""
        if not self.anything_due():
            return 0
        claims = self.claim(limit)
        # In order within a webhook (a deployment's start before its end), webhooks in
        # parallel (a slow receiver does not hold up the others).
        by_webhook: dict[str, list[Claim]] = {}
        for claim in claims:
            by_webhook.setdefault(claim.webhook_id, []).append(claim)
        list(self._pool.map(self._deliver_in_order, by_webhook.values()))
        return len(claims)

    def _deliver_in_order(self, claims: list[Claim]) -> None:
        for claim in claims:
            if self.deliver(claim).status_code == GONE:
                return  # the webhook is disabled: its other deliveries died with it

    def prune(self) -> int:
        """Delete the deliveries that ended (delivered or dead) more than
        ``webhook_keep_days`` ago; how many. Pending ones are never deleted."""
        before = self.clock.now() - timedelta(days=self.settings.webhook_keep_days)
        ended = func.coalesce(deliveries.c.last_attempt_at, deliveries.c.created_at)
        old = [deliveries.c.state.in_((DELIVERED, DEAD)), ended < before]
        with self.database.read() as conn:  # no write lock when there is nothing to delete
            if conn.execute(select(deliveries.c.id).where(*old).limit(1)).first() is None:
                return 0
        with self.database.write() as conn:
            result = conn.execute(delete(deliveries).where(*old))
        return int(result.rowcount or 0)

    # ----------------------------------------------------------------- the thread
    def _loop(self) -> None:
        next_prune = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_prune:
                    self.prune()
                    next_prune = time.monotonic() + _PRUNE_EVERY_SECONDS
                busy = self.run_once() > 0
            except Exception:  # the database may be down for a while: keep polling
                logger.exception("webhook dispatcher: cannot claim deliveries")
                busy = False
            if not busy:
                self._wake.wait(self.settings.webhook_poll_seconds)
                self._wake.clear()

    def start(self) -> None:
        """Run the dispatcher in a daemon thread until :meth:`stop`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread (an attempt in flight finishes), close the HTTP client."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.webhook_timeout_seconds + 5)
            self._thread = None
        self._pool.shutdown(wait=True)
        if self._http is not None:
            self._http.close()
            self._http = None
