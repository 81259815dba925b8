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
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: Every write needs a bearer token (reads too unless ``public_reads``).
    auth: bool = False
    admin_token: str = ""
    public_reads: bool = True
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    log_level: LogLevel = "info"

    @model_validator(mode="after")
    def _auth_needs_admin_token(self) -> ServerSettings:
        # Without an admin token nobody could ever create the first token.
        if self.auth and not self.admin_token:
            raise ValueError(
                "auth is on but no admin token is set: pass --admin-token "
                "(or TRACKER_ADMIN_TOKEN) so that tokens can be created"
            )
        return self
