"""The lock queue: fences, waiters, policies; freeze windows; lock reason and CI job.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from tracker_server.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("locks") as batch:
        batch.add_column(sa.Column("fence", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("reason", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("job_url", sa.Text, nullable=False, server_default=""))
    op.create_table(
        "lock_fences",
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(100), nullable=False),
        sa.Column("resource", sa.String(200), nullable=False),
        sa.Column("fence", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("service", "environment", "resource", name="pk_lock_fences"),
    )
    op.create_table(
        "lock_queue",
        sa.Column("seq", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(100), nullable=False),
        sa.Column("resource", sa.String(200), nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("job_url", sa.Text, nullable=False),
        sa.Column("joined_at", UTCDateTime, nullable=False),
        sa.Column("heartbeat_at", UTCDateTime, nullable=False),
        sa.Column("granted_at", UTCDateTime, nullable=True),
        sa.Column("superseded_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_lock_queue"),
        sa.UniqueConstraint("id", name="uq_lock_queue_id"),
    )
    op.create_index(
        "ix_lock_queue_key", "lock_queue", ["service", "environment", "resource", "seq"]
    )
    op.create_table(
        "lock_policies",
        sa.Column("environment", sa.String(100), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("environment", "service", name="pk_lock_policies"),
    )
    op.create_table(
        "freeze_windows",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("scope_type", sa.String(32), nullable=False),
        sa.Column("scope_ids", sa.JSON, nullable=False),
        sa.Column("starts_at", UTCDateTime, nullable=True),
        sa.Column("ends_at", UTCDateTime, nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("cron_start", sa.String(120), nullable=False),
        sa.Column("cron_end", sa.String(120), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_freeze_windows"),
    )


def downgrade() -> None:
    op.drop_table("freeze_windows")
    op.drop_table("lock_policies")
    op.drop_index("ix_lock_queue_key", table_name="lock_queue")
    op.drop_table("lock_queue")
    op.drop_table("lock_fences")
    with op.batch_alter_table("locks") as batch:
        batch.drop_column("job_url")
        batch.drop_column("reason")
        batch.drop_column("fence")
