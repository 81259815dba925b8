"""API tokens (extension): create (the secret is shown once), list and revoke."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from tracker_ci.models import (
    API_PREFIX,
    TokenCreatedResponse,
    TokenCreateRequest,
    TokenListResponse,
    TokenResponse,
)
from tracker_server.deps import Admin, AdminWriteDep, DatabaseDep
from tracker_server.domain import InvalidInput
from tracker_server.errors import ERROR_RESPONSES, NOT_FOUND_RESPONSE
from tracker_server.routes.common import wire
from tracker_server.store import tokens as token_store
from tracker_server.validation import MAX_NAME, check_list, check_text

router = APIRouter(prefix=API_PREFIX, tags=["tokens"])


@router.post(
    "/tokens", status_code=201, response_model=TokenCreatedResponse, responses=ERROR_RESPONSES
)
def create_token(body: TokenCreateRequest, write: AdminWriteDep) -> Response:
    """Create a token; its secret (``trk_...``) is in this answer and never again."""
    check_text(body.name, "name", max_length=MAX_NAME, required=True)
    check_list(body.services, "services")
    if body.read_only and body.admin:
        raise InvalidInput("invalid request: readOnly: an admin token cannot be read-only")
    with write.transaction() as conn:
        token, secret = token_store.create_token(
            conn,
            name=body.name,
            services=body.services,
            admin=body.admin,
            now=write.now,
            journal=write.journal,
            read_only=body.read_only,
        )
    return wire(TokenCreatedResponse(token=token, secret=secret), status_code=201)


@router.get("/tokens", response_model=TokenListResponse, responses=ERROR_RESPONSES)
def list_tokens(database: DatabaseDep, _admin: Admin) -> Response:
    """Every token (never a secret)."""
    with database.read() as conn:
        found = token_store.list_tokens(conn)
    return wire(TokenListResponse(tokens=found, total_count=len(found)))


@router.delete(
    "/tokens/{id}",
    response_model=TokenResponse,
    responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSE},
)
def revoke_token(
    id: Annotated[uuid.UUID, Path(description="The token's id.")], write: AdminWriteDep
) -> Response:
    """Revoke a token: it stops working at once."""
    with write.transaction() as conn:
        token = token_store.revoke_token(conn, token_id=str(id), journal=write.journal)
    return wire(TokenResponse(token=token))
