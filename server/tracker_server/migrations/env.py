"""Alembic environment: runs on the connection the server passes in (or the ini's URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from tracker_server.tables import metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: let Alembic copy tables when it must.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from tracker_server.db import normalize_database_url

    url = normalize_database_url(context.config.get_main_option("sqlalchemy.url") or "")
    with create_engine(url).connect() as own_connection:
        _run(own_connection)
        own_connection.commit()
