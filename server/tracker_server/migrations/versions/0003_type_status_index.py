"""An index for searches and stats that filter on type AND status.

Counting the matches of two filters through a one-column index reads every row of the
first (about 400 ms at a million events on SQLite); this index answers from its entries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_events_type_status_created_at", "events", ["type", "status", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_events_type_status_created_at", table_name="events")
