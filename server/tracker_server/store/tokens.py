"""API tokens: ``trk_<random>`` secrets shown once and stored only as sha256 hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from tracker_ci.models import TokenInfo
from tracker_server.domain import TokenNotFound
from tracker_server.journal import Journal, TokenCreated, TokenRevoked
from tracker_server.tables import tokens

SECRET_PREFIX = "trk_"


def hash_secret(secret: str) -> str:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def row_to_token(row: Any) -> TokenInfo:
    """The wire model of a ``tokens`` row (never the secret)."""
    return TokenInfo(
        id=row.id,
        name=row.name,
        services=row.services or [],
        admin=row.admin,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        prefix=row.prefix,
        read_only=row.read_only,
    )


def create_token(
    conn: Connection,
    *,
    name: str,
    services: list[str],
    admin: bool,
    now: datetime,
    journal: Journal,
    read_only: bool = False,
) -> tuple[TokenInfo, str]:
    """A new token and its secret (the only time the secret exists in clear)."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    values = {
        "id": str(uuid.uuid4()),
        "name": name,
        "secret_hash": hash_secret(secret),
        "prefix": secret[:8],
        "services": sorted(set(services)),
        "admin": admin,
        "read_only": read_only,
        "created_at": now,
        "last_used_at": None,
    }
    conn.execute(insert(tokens), values)
    row = conn.execute(select(tokens).where(tokens.c.id == values["id"])).one()
    token = row_to_token(row)
    journal.record(TokenCreated(token=token))
    return token, secret


def list_tokens(conn: Connection) -> list[TokenInfo]:
    """Every token, oldest first."""
    rows = conn.execute(select(tokens).order_by(tokens.c.created_at, tokens.c.id))
    return [row_to_token(row) for row in rows]


def find_token_by_secret(conn: Connection, *, secret: str) -> TokenInfo | None:
    """The token whose secret this is."""
    row = conn.execute(select(tokens).where(tokens.c.secret_hash == hash_secret(secret))).first()
    return row_to_token(row) if row else None


def touch_token(conn: Connection, *, token_id: str, now: datetime) -> None:
    """Record that the token was used."""
    conn.execute(update(tokens).where(tokens.c.id == token_id).values(last_used_at=now))


def revoke_token(conn: Connection, *, token_id: str, journal: Journal) -> TokenInfo:
    """Delete a token; the token as it was, or :class:`TokenNotFound`."""
    row = conn.execute(delete(tokens).where(tokens.c.id == token_id).returning(*tokens.c)).first()
    if row is None:
        raise TokenNotFound(f"token {token_id} not found")
    token = row_to_token(row)
    journal.record(TokenRevoked(token=token))
    return token
