"""Webhook options and disabling: each sink's settings (Slack mention, GitHub environment
URL, Grafana dashboard and panel), and when and why a receiver's 410 disabled a webhook.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from tracker_server.tables import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(sa.Column("options", sa.JSON, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("disabled_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("disabled_reason", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("disabled_reason")
        batch.drop_column("disabled_at")
        batch.drop_column("options")
