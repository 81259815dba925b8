"""Who is calling: bearer tokens when auth is on, scoped to services or admin.

With auth off (the default, meant for a local or in-job server) every caller may do
everything. With auth on, writes need a token; reads too unless ``public_reads``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tracker_ci.models import utcnow
from tracker_server.errors import Forbidden, Unauthenticated
from tracker_server.store import tokens as token_store

# Writing last_used_at on every request would turn each read into a write.
_TOUCH_INTERVAL = timedelta(seconds=60)

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API token (`trk_...`) or the admin token; needed when auth is on.",
)


@dataclass(frozen=True)
class Principal:
    """The caller: a token's name, whether it is admin, the services it may write."""

    name: str
    token_id: str = ""
    admin: bool = False
    services: frozenset[str] = field(default_factory=frozenset)

    def may_write(self, service: str) -> bool:
        """True when the caller may write events and locks of this service."""
        return self.admin or not self.services or service in self.services

    def require_service(self, service: str) -> None:
        """A 403 unless the caller may write this service."""
        if not self.may_write(service):
            allowed = ", ".join(sorted(self.services))
            raise Forbidden(
                f"token {self.name!r} may only write services {allowed}; not {service!r}"
            )


#: Everyone, when auth is off.
ANONYMOUS = Principal(name="anonymous", admin=True)
ADMIN = Principal(name="admin", admin=True)


def identify(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal | None:
    """The caller's principal, None when no token was sent; 401 for a bad token."""
    settings = request.app.state.settings
    if not settings.auth:
        return ANONYMOUS
    if credentials is None or not credentials.credentials:
        return None
    secret = credentials.credentials
    if hmac.compare_digest(secret.encode(), settings.admin_token.encode()):
        return ADMIN
    database = request.app.state.database
    with database.read() as conn:
        token = token_store.find_token_by_secret(conn, secret=secret)
    if token is None:
        raise Unauthenticated("unknown or revoked token: create one with `tracker-ci token create`")
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > _TOUCH_INTERVAL:
        with database.write() as conn:
            token_store.touch_token(conn, token_id=token.id, now=now)
    return Principal(
        name=token.name, token_id=token.id, admin=token.admin, services=frozenset(token.services)
    )


def require_token(principal: Principal | None, action: str) -> Principal:
    """The principal, or a 401 saying how to authenticate."""
    if principal is None:
        raise Unauthenticated(
            f"this server requires a token to {action}: send Authorization: Bearer <token>"
        )
    return principal
