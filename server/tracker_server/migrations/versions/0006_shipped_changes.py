"""What a deployment shipped: events.revision and events.changes (DORA's lead time); the
index the board reads the newest deployment of every service x environment from.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("revision", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("changes", sa.JSON, nullable=False, server_default="[]"))
    op.create_index(
        "ix_events_type_service_environment_created_at",
        "events",
        ["type", "service", "environment", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_events_type_service_environment_created_at", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("changes")
        batch.drop_column("revision")
