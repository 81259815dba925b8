"""Deep page-number paging in a seek: the ``event_order`` epoch, bumped by triggers on
every write that can move an event below the newest ones (a delete or truncate, a changed
key, an insert dated over 10 minutes back), so the per-process anchors of ``store/ranks.py`` are
dropped exactly when the list's older order changes. Inserts dated now (every create) do
not bump it: they land above the anchors.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_TRIGGERS = ("event_order_backdated", "event_order_deleted", "event_order_rekeyed")
_BUMP = "UPDATE event_order SET epoch = epoch + 1 WHERE id = 1"

_SQLITE = [
    # created_at is stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC): compared as text.
    f"""CREATE TRIGGER event_order_backdated AFTER INSERT ON events
    WHEN NEW.created_at < strftime('%Y-%m-%d %H:%M:%f', 'now', '-10 minutes')
    BEGIN {_BUMP}; END""",
    f"CREATE TRIGGER event_order_deleted AFTER DELETE ON events BEGIN {_BUMP}; END",
    f"""CREATE TRIGGER event_order_rekeyed AFTER UPDATE OF created_at, id ON events
    WHEN OLD.created_at IS NOT NEW.created_at OR OLD.id IS NOT NEW.id
    BEGIN {_BUMP}; END""",
]

_POSTGRESQL = [
    f"""CREATE FUNCTION event_order_bump() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN {_BUMP}; RETURN NULL; END $$""",
    # Per statement: a COPY or a batch of a thousand rows bumps once.
    f"""CREATE FUNCTION event_order_bump_if_backdated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM added
                 WHERE created_at < (now() AT TIME ZONE 'UTC') - interval '10 minutes') THEN
        {_BUMP};
      END IF;
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER event_order_backdated AFTER INSERT ON events
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION event_order_bump_if_backdated()""",
    """CREATE TRIGGER event_order_deleted AFTER DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION event_order_bump()""",
    """CREATE TRIGGER event_order_truncated AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION event_order_bump()""",
    """CREATE TRIGGER event_order_rekeyed AFTER UPDATE OF created_at, id ON events
    FOR EACH ROW WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at OR OLD.id <> NEW.id)
    EXECUTE FUNCTION event_order_bump()""",
]


def upgrade() -> None:
    op.create_table(
        "event_order",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO event_order (id, epoch) VALUES (1, 0)")
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRESQL if postgres else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger in (*_TRIGGERS, "event_order_truncated"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON events")
        op.execute("DROP FUNCTION IF EXISTS event_order_bump_if_backdated()")
        op.execute("DROP FUNCTION IF EXISTS event_order_bump()")
    else:
        for trigger in _TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.drop_table("event_order")
