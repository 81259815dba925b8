"""Events indexes chosen from the queries the server serves (docs/search.md).

* The lifecycle's own lookup (``deploy finish``: the newest open deployment of a service
  in an environment) gets (type, service, environment, status, created_at, id), which
  also groups the board; it replaces (type, service, environment, created_at).
* A date-window search answers newest startDate first: (start_date, created_at, id)
  replaces (start_date), so the window is read in page order (on PostgreSQL a one-day
  window used to walk the created_at index backwards through 951k rows).
* (created_at) and (slack_id) end in (created_at, id) as well: a page is read in order.
* A service's events in a period get (service, start_date, created_at, id): without it the
  window's index reads every event of the period (41,000 rows for 30 days at a million
  events) to find one service's 200.
* Four indexes replace four; one is added: fourteen to write per insert instead of
  thirteen.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: name -> columns, created by this revision.
_ADDED = {
    "ix_events_created_at_id": ["created_at", "id"],
    "ix_events_start_date_created_at": ["start_date", "created_at", "id"],
    "ix_events_slack_id_created_at": ["slack_id", "created_at", "id"],
    "ix_events_service_start_date_created_at": ["service", "start_date", "created_at", "id"],
    "ix_events_type_service_environment_status_created_at": [
        "type",
        "service",
        "environment",
        "status",
        "created_at",
        "id",
    ],
}
#: name -> columns, dropped by this revision (and restored by its downgrade).
_DROPPED = {
    "ix_events_created_at": ["created_at"],
    "ix_events_start_date": ["start_date"],
    "ix_events_slack_id": ["slack_id"],
    "ix_events_type_service_environment_created_at": [
        "type",
        "service",
        "environment",
        "created_at",
    ],
}


def _no_statement_timeout() -> None:
    # Building an index on a million events takes longer than the server's statement
    # timeout (db.PG_STATEMENT_TIMEOUT_MS); for this migration's transaction only.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL statement_timeout = 0")


def upgrade() -> None:
    _no_statement_timeout()
    # The new ones first: a server reading meanwhile always has an index to use.
    for name, columns in _ADDED.items():
        op.create_index(name, "events", columns)
    for name in _DROPPED:
        op.drop_index(name, table_name="events")


def downgrade() -> None:
    _no_statement_timeout()
    for name, columns in _DROPPED.items():
        op.create_index(name, "events", columns)
    for name in _ADDED:
        op.drop_index(name, table_name="events")
