"""SQLite's WAL: every connection gets the checkpoint settings, checkpoints run in a thread
of their own (not in the commit that crossed SQLite's threshold), and the WAL file stays
bounded under sustained writes, even after a reader held it back (db.py)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from tracker_server import db
from tracker_server.db import Database, create_database_engine

from tests.support.waiting import eventually

ROW = "x" * 2000  # about half a page: every write adds pages to the WAL


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "wal.db"


def _database(path: Path) -> Database:
    database = Database(create_database_engine(f"sqlite:///{path}"))
    with database.write() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS filler (n INTEGER, body TEXT)"))
    return database


@pytest.fixture
def database(path: Path) -> Iterator[Database]:
    database = _database(path)
    yield database
    database.dispose()


def _write(database: Database, rows: int = 20) -> None:
    with database.write() as conn:
        conn.execute(
            text("INSERT INTO filler (n, body) VALUES (:n, :body)"),
            [{"n": n, "body": ROW} for n in range(rows)],
        )


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def test_every_pooled_connection_gets_the_wal_settings(database):
    # Held at once: the pool opens a connection for each, and each must be configured.
    connections = [database.engine.connect() for _ in range(3)]
    try:
        for conn in connections:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "wal_autocheckpoint")
            }
            pragmas["journal_size_limit"] = conn.exec_driver_sql(
                "PRAGMA journal_size_limit"
            ).scalar()
            assert pragmas == {
                "journal_mode": "wal",
                "synchronous": 1,  # NORMAL
                "wal_autocheckpoint": db.SQLITE_AUTOCHECKPOINT_PAGES,
                "journal_size_limit": db.SQLITE_WAL_LIMIT_BYTES,
            }
    finally:
        for conn in connections:
            conn.close()


def test_checkpoints_run_in_the_background_after_a_commit(monkeypatch, path):
    # SQLite's own checkpoint never comes (a threshold no test reaches): only the
    # background thread copies the WAL into the database file.
    monkeypatch.setattr(db, "SQLITE_AUTOCHECKPOINT_PAGES", 1_000_000)
    monkeypatch.setattr(db, "CHECKPOINT_INTERVAL", 0.05)
    database = _database(path)
    try:
        before = _size(path)
        for _ in range(5):
            _write(database)
        assert _size(Path(f"{path}-wal")) > 0

        def copied_into_the_database() -> bool:
            assert _size(path) > before + 100 * 1024, (_size(path), before)
            return True

        eventually(copied_into_the_database)
    finally:
        database.dispose()


def test_the_wal_file_is_cut_back_after_a_reader_held_it(monkeypatch, path):
    limit = 512 * 1024
    monkeypatch.setattr(db, "SQLITE_AUTOCHECKPOINT_PAGES", 64)  # 256 KiB
    monkeypatch.setattr(db, "SQLITE_WAL_LIMIT_BYTES", limit)
    monkeypatch.setattr(db, "CHECKPOINT_INTERVAL", 0.05)
    database = _database(path)
    wal = Path(f"{path}-wal")
    try:
        # A reader's snapshot (an online backup, a long search) keeps the WAL from
        # starting over: it grows past the limit meanwhile.
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM filler").fetchone()
        for _ in range(40):
            _write(database)
        assert _size(wal) > 2 * limit
        reader.execute("COMMIT")
        reader.close()

        # Once it ends, the writes that follow start the WAL over and cut its file back.
        def cut_back() -> bool:
            _write(database, rows=2)
            assert _size(wal) <= limit, _size(wal)
            return True

        eventually(cut_back)
        # Sustained writes keep it there: a checkpoint every 256 KiB of WAL at the latest.
        grown = 0
        for _ in range(60):
            _write(database)
            grown = max(grown, _size(wal))
        assert grown <= limit, grown
        with database.read() as conn:
            assert conn.execute(text("SELECT count(*) FROM filler")).scalar() > 40 * 20
    finally:
        database.dispose()
