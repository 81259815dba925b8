"""Server settings from pydantic-settings: flag > ``TRACKER_*`` environment > default."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["critical", "error", "warning", "info", "debug"]


class ServerSettings(BaseSettings):
    """Everything the bundled server needs to run; read from ``TRACKER_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="TRACKER_", extra="ignore")

    database_url: str = "sqlite:///./tracker.db"
    #: PostgreSQL behind a pooler (PgBouncer): a direct, unpooled URL for the replicas'
    #: LISTEN/NOTIFY wake-ups ("" = the database URL; wakeup.py polls when it cannot hear).
    direct_database_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: Every write needs a bearer token (reads too unless ``public_reads``).
    auth: bool = False
    admin_token: str = ""
    public_reads: bool = True
    #: Who may approve a deployment waiting for approval (with auth on): ``any`` token that
    #: may write its service but the requester's, or only the ``catalog-owner``'s (a token
    #: named as the service's catalog owner, or ``<owner>/<anything>``) and admins.
    approvers: Literal["any", "catalog-owner"] = "any"
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    log_level: LogLevel = "info"
    #: The address users reach this server at: links in notifications (Slack, GitHub).
    public_url: str = ""
    #: The path prefix a reverse proxy serves us under ("/tracker"): the pages link with it.
    root_path: str = Field(default="", pattern=r"^(/[A-Za-z0-9._~-]+)*$")
    #: Webhooks (outbox.py, dispatcher.py): a dispatcher thread in every replica polls
    #: for due deliveries; a failed one is retried with exponential backoff and jitter
    #: (base doubling up to the cap) until it is ``webhook_max_age_seconds`` old, then dead.
    webhook_dispatcher: bool = True
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_base_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_max_age_seconds: float = Field(default=86400.0, ge=0)
    #: How long a claimed delivery is reserved for the replica sending it (then it is
    #: due again: a replica killed mid-send loses nothing).
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    webhook_workers: int = Field(default=4, ge=1, le=64)
    #: Delivered and dead deliveries are shown for this long, then deleted.
    webhook_keep_days: float = Field(default=7.0, gt=0)
    #: Webhooks may send to loopback, private, multicast and reserved addresses (a test
    #: or an intranet receiver); link-local and cloud metadata stay refused (targets.py).
    allow_private_webhooks: bool = False
    #: Alerts (alerts.py), evaluated every ``alert_interval_seconds`` by every replica.
    alert_timer: bool = True
    alert_interval_seconds: float = Field(default=30.0, gt=0)
    alert_slow_factor: float = Field(default=1.5, gt=0)
    alert_slow_history: int = Field(default=20, ge=1)
    alert_slow_min_samples: int = Field(default=5, ge=1)
    alert_failed_count: int = Field(default=3, ge=1)
    alert_failed_window_seconds: float = Field(default=3600.0, gt=0)
    alert_lock_held_seconds: float = Field(default=7200.0, gt=0)
    #: The lock queue: a waiter whose heartbeat (its long poll) stops this long is
    #: dropped; a turn not claimed this long passes to the next waiter.
    queue_heartbeat_seconds: float = Field(default=15.0, gt=0)
    queue_claim_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _auth_needs_admin_token(self) -> ServerSettings:
        # Without an admin token nobody could ever create the first token.
        if self.auth and not self.admin_token:
            raise ValueError(
                "auth is on but no admin token is set: pass --admin-token "
                "(or TRACKER_ADMIN_TOKEN) so that tokens can be created"
            )
        return self
