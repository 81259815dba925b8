"""The database schema (SQLAlchemy Core). Alembic migrations create and upgrade it.

Enums are stored by name. The events indexes are chosen from the queries the server
serves (docs/search.md says which index serves which): each filter column leads an index
that ends in the order a page is read in, so a search stays fast with millions of events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)

# Stable constraint names so migrations can refer to them on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and read back timezone-aware (UTC) on every backend."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


#: Event columns that search and stats filter on by equality.
FILTER_COLUMNS = ("source", "type", "priority", "service", "status", "environment", "impact")

events = Table(
    "events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("title", Text, nullable=False, default=""),
    Column("message", Text, nullable=False, default=""),
    Column("source", String(200), nullable=False, default=""),
    Column("type", String(32), nullable=False),
    Column("priority", String(32), nullable=False),
    Column("related_id", String(36), nullable=False, default=""),
    Column("service", String(200), nullable=False, default=""),
    Column("status", String(32), nullable=False),
    Column("environment", String(32), nullable=False),
    Column("impact", Boolean, nullable=False, default=False),
    Column("start_date", UTCDateTime, nullable=True),
    Column("end_date", UTCDateTime, nullable=True),
    Column("owner", String(200), nullable=False, default=""),
    Column("stake_holders", JSON, nullable=False, default=list),
    Column("notification", Boolean, nullable=False, default=False),
    Column("notifications", JSON, nullable=False, default=list),
    Column("pull_request_link", Text, nullable=False, default=""),
    Column("ticket", Text, nullable=False, default=""),
    Column("slack_id", String(200), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("duration_seconds", Float, nullable=True),
    # Revision 0006: what a deployment shipped (extensions attributes.revision / .changes).
    Column("revision", String(200), nullable=False, default=""),
    Column("changes", JSON, nullable=False, default=list),
    # Revision 0010 (docs/search.md): every index ends in the order a page is read in, so a
    # search reads one page of index entries instead of sorting every match. Each filter
    # column leads one; every page and count is index-served.
    Index("ix_events_created_at_id", "created_at", "id"),  # list, stats: newest first
    # A date-window search (start_date, end_date, today) answers newest startDate first.
    Index("ix_events_start_date_created_at", "start_date", "created_at", "id"),
    Index("ix_events_slack_id_created_at", "slack_id", "created_at", "id"),
    *(
        Index(f"ix_events_{column}_created_at", column, "created_at", "id")
        for column in FILTER_COLUMNS
    ),
    # A service's events in a period (search by service with a date window), in page order:
    # the window's index alone would read every event of the period to find the service's.
    Index("ix_events_service_start_date_created_at", "service", "start_date", "created_at", "id"),
    # The most common CI question: "the newest events of this service in this environment".
    Index("ix_events_service_environment_created_at", "service", "environment", "created_at", "id"),
    # "Open deployments", "failed incidents": type and status together (revision 0003).
    Index("ix_events_type_status_created_at", "type", "status", "created_at", "id"),
    # The lifecycle's own lookups (``deploy finish``: the newest open deployment of this
    # service in this environment; the previous successful one) and the board (the newest
    # deployment of every service x environment, grouped in this index's order).
    Index(
        "ix_events_type_service_environment_status_created_at",
        "type",
        "service",
        "environment",
        "status",
        "created_at",
        "id",
    ),
    # Revision 0013: the events linked to one (the event page), from the few that link:
    # partial, so the many events without a link cost no index write.
    Index(
        "ix_events_related_id",
        "related_id",
        sqlite_where=text("related_id != ''"),
        postgresql_where=text("related_id != ''"),
    ),
)

changelog = Table(
    "changelog",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "event_id",
        String(36),
        ForeignKey("events.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("timestamp", UTCDateTime, nullable=True),
    Column("user", String(200), nullable=False, default=""),
    Column("change_type", String(32), nullable=False),
    Column("field", String(200), nullable=False, default=""),
    Column("old_value", Text, nullable=False, default=""),
    Column("new_value", Text, nullable=False, default=""),
    Column("comment", Text, nullable=False, default=""),
)

locks = Table(
    "locks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("service", String(200), nullable=False),
    Column("environment", String(100), nullable=False),
    Column("resource", String(200), nullable=False),
    Column("who", String(200), nullable=False, default=""),
    Column("event_id", String(36), nullable=False, default="", index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    # Revision 0005: the grant's fencing token (from lock_fences), why, the holder's CI job.
    Column("fence", Integer, nullable=False, default=0),
    Column("reason", Text, nullable=False, default=""),
    Column("job_url", Text, nullable=False, default=""),
    # Revision 0008: the token that took the lock ("" with auth off or the admin token).
    Column("token_id", String(36), nullable=False, default=""),
    # The database itself decides who wins a race for a key.
    UniqueConstraint("service", "environment", "resource"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(100), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response_body", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, index=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    # sha256 of the secret: the secret itself is never stored.
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("services", JSON, nullable=False, default=list),
    Column("admin", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    # Revision 0008: a token for dashboards and scripts, which may only read.
    Column("read_only", Boolean, nullable=False, default=False),
)

# Every change, written in the change's own transaction (see journal/); read in id order.
journal = Table(
    "journal",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
)

# Notification subscriptions (outbox.py): the secret signs or authorizes, never shown back.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("url", Text, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("events", JSON, nullable=False, default=list),
    Column("service", String(200), nullable=False, default=""),
    Column("environment", String(100), nullable=False, default=""),
    Column("secret", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    # Revision 0012: the sink's options (WebhookOptions), a receiver's 410 (gone), and the
    # secret a rotation replaced (it still signs, beside the new one, until its time ends).
    Column("options", JSON, nullable=False, default=dict),
    Column("disabled_at", UTCDateTime, nullable=True),
    Column("disabled_reason", Text, nullable=False, default=""),
    Column("previous_secret", Text, nullable=False, default=""),
    Column("previous_secret_until", UTCDateTime, nullable=True),
)

# The outbox: one row per (journal entry, matching webhook), written in the entry's
# transaction; its id is the X-Tracker-Delivery of every attempt (dispatcher.py).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "webhook_id",
        String(36),
        ForeignKey("webhooks.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("journal_id", Integer, nullable=False),
    Column("type", String(64), nullable=False),
    Column("body", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("last_attempt_at", UTCDateTime, nullable=True),
    Column("response_code", Integer, nullable=True),
    Column("error", Text, nullable=False, default=""),
    Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
)

# ---- the lock queue, fences, policies and freeze windows (revision 0005) -----------------
# The last fence handed out per key: it only grows, and outlives the locks it numbered.
lock_fences = Table(
    "lock_fences",
    metadata,
    Column("service", String(200), primary_key=True),
    Column("environment", String(100), primary_key=True),
    Column("resource", String(200), primary_key=True),
    Column("fence", Integer, nullable=False),
)

# Waiters per key, served in ``seq`` order; ``granted_at`` set when the key came free for
# the head; ``heartbeat_at`` moved by every call of the waiter.
lock_queue = Table(
    "lock_queue",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("service", String(200), nullable=False),
    Column("environment", String(100), nullable=False),
    Column("resource", String(200), nullable=False),
    Column("who", String(200), nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),
    Column("job_url", Text, nullable=False, default=""),
    Column("joined_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("granted_at", UTCDateTime, nullable=True),
    Column("superseded_by", String(200), nullable=True),
    Index("ix_lock_queue_key", "service", "environment", "resource", "seq"),
)

lock_policies = Table(
    "lock_policies",
    metadata,
    Column("environment", String(100), primary_key=True),
    Column("service", String(200), primary_key=True),  # "" = every service
    Column("policy", String(16), nullable=False),
)

freeze_windows = Table(
    "freeze_windows",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("type", String(32), nullable=False),
    Column("scope_type", String(32), nullable=False),
    Column("scope_ids", JSON, nullable=False, default=list),
    Column("starts_at", UTCDateTime, nullable=True),
    Column("ends_at", UTCDateTime, nullable=True),
    Column("timezone", String(64), nullable=False, default=""),
    Column("cron_start", String(120), nullable=False, default=""),
    Column("cron_end", String(120), nullable=False, default=""),
    Column("created_by", String(200), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
)

# Alerts fired (alerts.py): the key names an occurrence, so it fires once on any replica.
alerts = Table(
    "alerts",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("rule", String(64), nullable=False),
    Column("fired_at", UTCDateTime, nullable=False),
)

# The service catalog (revision 0011): one entry per service name, in upstream's wire shape
# (``entry``, without its timestamps); owner and type are columns too, to read without JSON.
catalog = Table(
    "catalog",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("type", String(32), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("entry", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The order of older events (revision 0014): ``epoch`` grows whenever a write can move an
# event below the newest ones in the newest-first list (a delete, a changed key, an insert
# dated over 10 minutes back), so deep-page anchors (store/ranks.py) know when to go. The
# database's triggers bump it, on any replica and for any writer. One row, id 1.
event_order = Table(
    "event_order",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("epoch", BigInteger, nullable=False, default=0),
)
