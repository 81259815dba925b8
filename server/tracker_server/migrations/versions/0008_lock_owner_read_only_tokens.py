"""Lock ownership and read-only tokens: the token that took a lock; tokens that only read.

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("locks") as batch:
        # The id of the token that took the lock ("" with auth off or the admin token).
        batch.add_column(sa.Column("token_id", sa.String(36), nullable=False, server_default=""))
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(
            sa.Column("read_only", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("read_only")
    with op.batch_alter_table("locks") as batch:
        batch.drop_column("token_id")
