"""Who is calling, and THE access rule: :func:`authorize`.

With auth off (the default, meant for a local or in-job server) every caller may do
everything. With auth on, writes need a token; reads too unless ``public_reads``; a token
scoped to services writes only those; managing tokens needs an admin token. Every check
of the server (the read, write and admin dependencies, and ownership of stored events and
locks in ``writes.py``) goes through :func:`authorize`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from tracker_server.domain import Forbidden, Unauthenticated
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
    #: A token for dashboards and scripts: it may read, never write.
    read_only: bool = False
    #: Whom the locks it takes belong to: its API token's id, ``ADMIN_LOCK_OWNER`` for the
    #: server's admin token; nobody ("") without auth, where every caller is the same.
    lock_owner: str = ""

    def may_write(self, service: str) -> bool:
        """True when the caller may write events and locks of this service."""
        if self.read_only:
            return False
        return self.admin or not self.services or service in self.services


#: Everyone, when auth is off.
ANONYMOUS = Principal(name="anonymous", admin=True)
#: The owner of the locks the server's admin token (``--admin-token``) takes: not a token
#: id (those are UUIDs), so no API token owns them.
ADMIN_LOCK_OWNER = "admin-token"
ADMIN = Principal(name="admin", admin=True, lock_owner=ADMIN_LOCK_OWNER)


def authorize(
    principal: Principal | None, action: str, *, service: str | None = None, admin: bool = False
) -> Principal:
    """The caller, when it may ``action`` (on ``service``; as an admin): else a refusal.

    ``Unauthenticated`` without a token; ``Forbidden`` when an admin is needed and the
    token is not one, or when the token is scoped to other services.
    """
    if principal is None:
        raise Unauthenticated(
            f"this server requires a token to {action}: send Authorization: Bearer <token>"
        )
    if admin and not principal.admin:
        raise Forbidden(f"token {principal.name!r} is not an admin token: it cannot {action}")
    if principal.read_only and action != "read":
        raise Forbidden(f"token {principal.name!r} is read-only: it cannot {action}")
    if service is not None and not principal.may_write(service):
        allowed = ", ".join(sorted(principal.services))
        raise Forbidden(
            f"token {principal.name!r} may only write services {allowed}; not {service!r}"
        )
    return principal


async def identify(
    request: Request, credentials: HTTPAuthorizationCredentials | None, now: datetime
) -> Principal | None:
    """The caller's principal, None when no token was sent; 401 for a bad token. The one
    place that says who calls: anonymous (and allowed everything) when auth is off; ``now``
    is the request's one reading of the clock."""
    settings = request.app.state.settings
    if not settings.auth:
        return ANONYMOUS
    if credentials is None or not credentials.credentials:
        return None
    secret = credentials.credentials
    if hmac.compare_digest(secret.encode(), settings.admin_token.encode()):
        return ADMIN
    return await run_in_threadpool(_token_principal, request, secret, now)


def _token_principal(request: Request, secret: str, now: datetime) -> Principal:
    """The principal of an API token (a database read; its use noted once a minute)."""
    database = request.app.state.database
    with database.read() as conn:
        token = token_store.find_token_by_secret(conn, secret=secret)
    if token is None:
        raise Unauthenticated("unknown or revoked token: create one with `tracker-ci token create`")
    if token.last_used_at is None or now - token.last_used_at > _TOUCH_INTERVAL:
        # Bookkeeping of the token, not a change a client made: it has no journal entry.
        with database.write() as conn:
            token_store.touch_token(conn, token_id=token.id, now=now)
    return Principal(
        name=token.name,
        token_id=token.id,
        admin=token.admin,
        services=frozenset(token.services),
        read_only=token.read_only,
        lock_owner=token.id,
    )
