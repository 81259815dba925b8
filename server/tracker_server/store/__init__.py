"""Persistence functions: keyword-only, each runs inside the caller's transaction."""

import functools
from typing import Any

from sqlalchemy import Column, Connection, Table


def insert_ignoring_conflicts(conn: Connection, table: Table, *returning: Column[Any]) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` (both backends spell it so), ``RETURNING``
    these columns: a row whose key is taken inserts nothing (and returns no row), and
    leaves the transaction usable on PostgreSQL, with no savepoint; a key a concurrent
    transaction inserted waits for it first. Built once per backend and table."""
    return _insert_ignoring_conflicts(conn.dialect.name, table, returning)


@functools.cache
def _insert_ignoring_conflicts(dialect: str, table: Table, returning: tuple[Any, ...]) -> Any:
    statement = backend_insert(dialect, table).on_conflict_do_nothing()
    return statement.returning(*returning) if returning else statement


def backend_insert(dialect: str, table: Table) -> Any:
    """The backend's own ``insert(table)``, the one with ``on_conflict_do_nothing()`` and
    ``on_conflict_do_update()`` (spelt the same on SQLite and PostgreSQL)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)
