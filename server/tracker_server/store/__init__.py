"""Persistence functions: keyword-only, each runs inside the caller's transaction."""

from typing import Any

from sqlalchemy import Connection, Table


def insert_ignoring_conflicts(conn: Connection, table: Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` (both backends spell it so): a row whose key
    is taken inserts nothing (add ``RETURNING`` to tell), and leaves the transaction
    usable on PostgreSQL, with no savepoint; a key a concurrent transaction inserted waits
    for it first."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing()
