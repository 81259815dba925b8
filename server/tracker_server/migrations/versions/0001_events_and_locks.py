"""Events, their changelog and locks: the upstream feature set.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from tracker_server.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Columns every search or stats query filters on by equality: each leads an index that
# also gives the newest-first order (created_at, id), so a page is read, not sorted.
_FILTER_COLUMNS = ("source", "type", "priority", "service", "status", "environment", "impact")
# Range or lookup columns: a plain index each.
_PLAIN_INDEXED_COLUMNS = ("start_date", "slack_id", "created_at")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("priority", sa.String(32), nullable=False),
        sa.Column("related_id", sa.String(36), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("environment", sa.String(32), nullable=False),
        sa.Column("impact", sa.Boolean, nullable=False),
        sa.Column("start_date", UTCDateTime, nullable=True),
        sa.Column("end_date", UTCDateTime, nullable=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("stake_holders", sa.JSON, nullable=False),
        sa.Column("notification", sa.Boolean, nullable=False),
        sa.Column("notifications", sa.JSON, nullable=False),
        sa.Column("pull_request_link", sa.Text, nullable=False),
        sa.Column("ticket", sa.Text, nullable=False),
        sa.Column("slack_id", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("duration_seconds", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    for column in _PLAIN_INDEXED_COLUMNS:
        op.create_index(f"ix_events_{column}", "events", [column])
    for column in _FILTER_COLUMNS:
        op.create_index(f"ix_events_{column}_created_at", "events", [column, "created_at", "id"])
    op.create_index(
        "ix_events_service_environment_created_at",
        "events",
        ["service", "environment", "created_at", "id"],
    )

    op.create_table(
        "changelog",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("timestamp", UTCDateTime, nullable=True),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("change_type", sa.String(32), nullable=False),
        sa.Column("field", sa.String(200), nullable=False),
        sa.Column("old_value", sa.Text, nullable=False),
        sa.Column("new_value", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_changelog"),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name="fk_changelog_event_id_events",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_changelog_event_id", "changelog", ["event_id"])

    op.create_table(
        "locks",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(100), nullable=False),
        sa.Column("resource", sa.String(200), nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_locks"),
        sa.UniqueConstraint(
            "service", "environment", "resource", name="uq_locks_service_environment_resource"
        ),
    )
    op.create_index("ix_locks_event_id", "locks", ["event_id"])


def downgrade() -> None:
    op.drop_table("locks")
    op.drop_table("changelog")
    op.drop_table("events")
