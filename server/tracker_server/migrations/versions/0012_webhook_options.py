"""Webhook options, disabling and secret rotation: each sink's settings (Slack mention,
GitHub environment URL, Grafana dashboard and panel), when and why a receiver's 410
disabled a webhook, and the secret a rotation replaced with how long it still signs.

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
        batch.add_column(sa.Column("previous_secret", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("previous_secret_until", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("previous_secret_until")
        batch.drop_column("previous_secret")
        batch.drop_column("disabled_reason")
        batch.drop_column("disabled_at")
        batch.drop_column("options")
