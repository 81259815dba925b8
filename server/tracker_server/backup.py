"""``tracker-ci server backup PATH`` and ``tracker-ci server restore PATH``.

SQLite is copied with its online backup API (``sqlite3.Connection.backup``): consistent and
safe while the server runs and writes. A restore writes into a fresh database file and
refuses a database that already holds tables unless ``--force``. PostgreSQL has its own
tools: these commands print the ``pg_dump`` / ``pg_restore`` line and exit 2 (usage).
Exit codes come from the client's error classes (``tracker_ci.exit_codes``).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import click
from click.core import ParameterSource

DATABASE_URL_HELP = "The server's database: sqlite:///PATH (postgresql://: prints pg_dump's line)."


def _refusal(message: str) -> Exception:
    """A refusal of the command's input: ``ConfigError``, exit 2 (imported here, so that
    ``tracker-ci server`` itself imports only click and the standard library)."""
    from tracker_ci.exceptions import ConfigError

    return ConfigError(message)


def sqlite_path(database_url: str, verb: str) -> Path:
    """The file of a ``sqlite:///`` URL; PostgreSQL (or anything else) is a ConfigError."""
    from tracker_server.db import normalize_database_url

    try:
        url = normalize_database_url(database_url)
    except Exception as exc:  # ValueError, or SQLAlchemy's ArgumentError for a non-URL
        raise _refusal(f"--database-url: {exc}") from None
    if url.get_backend_name() == "sqlite":
        return Path(str(url.database))
    shown = url.set(drivername="postgresql").render_as_string(hide_password=True)
    raise _refusal(
        f"{verb} works on SQLite only; for PostgreSQL use its own tools: "
        f"pg_dump --format=custom --file=PATH '{shown}', restored with "
        f"pg_restore --clean --if-exists --no-owner --dbname='{shown}' PATH (docs/server.md)"
    )


def _open_read_only(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise _refusal(f"no SQLite database at {path}: check --database-url / the path")
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _tables(connection: sqlite3.Connection) -> list[str]:
    rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return [row[0] for row in rows]


def _copy(source: sqlite3.Connection, target: Path) -> None:
    """Copy ``source`` into a new file beside ``target``, then move it into place: a reader
    never sees half a copy. The copy is a single file (rollback journal, not WAL)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    destination = sqlite3.connect(partial)
    try:
        source.backup(destination)
        destination.execute("PRAGMA journal_mode=DELETE")
    finally:
        destination.close()
    os.replace(partial, target)


def backup_sqlite(database: Path, target: Path, *, force: bool = False) -> int:
    """Copy the live database to ``target``; answers the number of tables copied."""
    if target.exists() and not force:
        raise _refusal(f"{target} exists: choose another path, or pass --force to replace it")
    source = _open_read_only(database)
    try:
        tables = _tables(source)
        if "alembic_version" not in tables:
            raise _refusal(f"{database} is not a tracker-ci server database (no schema)")
        _copy(source, target)
    finally:
        source.close()
    return len(tables)


def restore_sqlite(backup: Path, database: Path, *, force: bool = False) -> int:
    """Write ``backup`` into ``database`` (fresh, or any with ``force``): tables restored."""
    source = _open_read_only(backup)
    try:
        tables = _tables(source)
        if "alembic_version" not in tables:
            raise _refusal(f"{backup} is not a tracker-ci server backup (no schema)")
        if database.exists() and not force:
            existing = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
            try:
                in_use = bool(_tables(existing))
            finally:
                existing.close()
            if in_use:
                raise _refusal(
                    f"{database} already holds a database: restore into a fresh file, or "
                    "stop its server and pass --force to replace it"
                )
        for leftover in ("-wal", "-shm"):
            Path(f"{database}{leftover}").unlink(missing_ok=True)
        _copy(source, database)
    finally:
        source.close()
    return len(tables)


def _given_url(database_url: str) -> str:
    """This command's --database-url, else the one given to ``server`` before it
    (``tracker-ci server --database-url URL backup PATH``), else the default."""
    ctx = click.get_current_context()
    source = ctx.get_parameter_source("database_url")
    before = ctx.parent.params.get("database_url") if ctx.parent is not None else None
    if source is not ParameterSource.COMMANDLINE and isinstance(before, str) and before:
        return before
    return database_url


def _run(command: str, database_url: str, work: Callable[[Path], str]) -> None:
    """Run one command on the database's file; a refusal is one line and its exit code."""
    from tracker_ci.exceptions import TrackerError

    database_url = _given_url(database_url)
    try:
        click.echo(work(sqlite_path(database_url, command)))
    except TrackerError as exc:
        click.echo(f"tracker-ci server {command}: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (sqlite3.Error, OSError) as exc:
        click.echo(f"tracker-ci server {command}: failed: {exc}", err=True)
        sys.exit(TrackerError.exit_code)


_database_url = click.option(
    "--database-url",
    envvar="TRACKER_DATABASE_URL",
    default="sqlite:///./tracker.db",
    help=DATABASE_URL_HELP,
)
_force = click.option("--force", is_flag=True, help="Replace what is at the destination.")
_path = click.argument("path", type=click.Path(dir_okay=False, path_type=Path))


@click.command(name="backup")
@_database_url
@_force
@_path
def backup_command(database_url: str, force: bool, path: Path) -> None:
    """Copy the SQLite database to PATH while the server runs (online backup)."""

    def work(database: Path) -> str:
        tables = backup_sqlite(database, path, force=force)
        return f"backed up {database} to {path} ({tables} tables)"

    _run("backup", database_url, work)


@click.command(name="restore")
@_database_url
@_force
@_path
def restore_command(database_url: str, force: bool, path: Path) -> None:
    """Restore the backup at PATH into a fresh SQLite database (--force: replace one)."""

    def work(database: Path) -> str:
        tables = restore_sqlite(path, database, force=force)
        return f"restored {path} into {database} ({tables} tables); start the server on it"

    _run("restore", database_url, work)
