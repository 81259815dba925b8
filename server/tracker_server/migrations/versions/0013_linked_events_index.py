"""The events linked to one (``relatedId``), read by the event page: a partial index on
``related_id`` holding only the events that link (most do not, so inserts mostly skip it).
Without it the page read every event (266 ms at a million events on SQLite).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_LINKED = sa.text("related_id != ''")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Building it reads every event: longer than the server's statement timeout at a
        # million events; for this migration's transaction only.
        op.execute("SET LOCAL statement_timeout = 0")
    op.create_index(
        "ix_events_related_id",
        "events",
        ["related_id"],
        sqlite_where=_LINKED,
        postgresql_where=_LINKED,
    )


def downgrade() -> None:
    op.drop_index("ix_events_related_id", table_name="events")
