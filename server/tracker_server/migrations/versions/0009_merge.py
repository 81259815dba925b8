"""Join the branches of the queue (0005), shipped changes (0006), the outbox (0007) and lock
ownership (0008), developed side by side after the journal (0004). Changes nothing.

Revision ID: 0009
Revises: 0005, 0006, 0007, 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0009"
down_revision = ("0005", "0006", "0007", "0008")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing: the four revisions it joins made every change."""


def downgrade() -> None:
    """Nothing: see upgrade."""
