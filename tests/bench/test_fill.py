"""The benchmark's bulk fill: the loaded database has exactly the schema the migrations
make (every index and key rebuilt after the load), the rows and their changelog, planner
statistics; a second run reuses the cached fill and measures on a fresh copy of it."""

from __future__ import annotations

import sqlite3
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from tracker_server.db import create_database_engine, upgrade_schema

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from harness import fill  # noqa: E402

pytestmark = pytest.mark.server

EVENTS = 1000


def _sqlite_schema(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as con:
        return con.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%' "
            "ORDER BY type, name"
        ).fetchall()


def test_sqlite_fill_keeps_the_migrated_schema_and_is_reused(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    engine = create_database_engine(f"sqlite:///{fresh}")
    upgrade_schema(engine)
    engine.dispose()

    first = fill.prepare("sqlite", EVENTS, tmp_path / "work", log=lambda _: None)
    assert not first.reused and first.data.events == EVENTS
    run_db = Path(first.database_url.removeprefix("sqlite:///"))
    assert _sqlite_schema(run_db) == _sqlite_schema(fresh)
    with sqlite3.connect(run_db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        assert con.execute("SELECT count(*) FROM events").fetchone() == (EVENTS,)
        assert con.execute(
            "SELECT count(*) FROM changelog JOIN events ON events.id = changelog.event_id "
            "WHERE change_type = 'created' AND timestamp = created_at"
        ).fetchone() == (EVENTS,)
        analyzed = {t for (t,) in con.execute("SELECT DISTINCT tbl FROM sqlite_stat1")}
        assert {"events", "changelog"} <= analyzed
        sample = first.data.sample_ids[3]
        assert con.execute("SELECT count(*) FROM events WHERE id = ?", (sample,)).fetchone() == (1,)
        slack = first.data.slack_ids[0]
        assert con.execute("SELECT id FROM events WHERE slack_id = ?", (slack,)).fetchone()
        con.execute("DELETE FROM changelog")  # a run's writes never reach the cache

    second = fill.prepare("sqlite", EVENTS, tmp_path / "work", log=lambda _: None)
    assert second.reused and second.data == first.data
    with sqlite3.connect(run_db) as con:
        assert con.execute("SELECT count(*) FROM changelog").fetchone() == (EVENTS,)


_PG_SCHEMA = """
SELECT 'index', indexname, indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename IN ('events', 'changelog')
UNION ALL
SELECT 'constraint', conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid IN ('events'::regclass, 'changelog'::regclass)
ORDER BY 1, 2
"""


@pytest.mark.postgres
def test_postgres_fill_keeps_the_migrated_schema(
    postgres_database_url: str, tmp_path: Path
) -> None:
    engine = create_database_engine(postgres_database_url)
    upgrade_schema(engine)
    with engine.connect() as conn:
        migrated = conn.execute(text(_PG_SCHEMA)).all()
    engine.dispose()

    tag = uuid.uuid4().hex[:8]
    names = fill.PostgresNames(cache_prefix=f"tracker_benchtest_{tag}_c", run=f"bt_{tag}_run")
    try:
        first = fill.prepare("postgresql", EVENTS, tmp_path, log=lambda _: None, names=names)
        assert not first.reused
        engine = create_database_engine(first.database_url)
        with engine.connect() as conn:
            assert conn.execute(text(_PG_SCHEMA)).all() == migrated
            assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == EVENTS
            assert conn.execute(text("SELECT count(*) FROM changelog")).scalar_one() == EVENTS
            analyzed = "SELECT count(*) FROM pg_stats WHERE tablename = 'events'"
            assert conn.execute(text(analyzed)).scalar_one() > 0  # planner statistics
            conn.execute(text("DELETE FROM changelog"))
            conn.commit()
        engine.dispose()
        second = fill.prepare("postgresql", EVENTS, tmp_path, log=lambda _: None, names=names)
        assert second.reused
        for meta in (tmp_path / "cache").glob("postgresql-*.json"):
            meta.unlink()  # the database is there, its description lost: filled again
        third = fill.prepare("postgresql", EVENTS, tmp_path, log=lambda _: None, names=names)
        assert not third.reused
        engine = create_database_engine(second.database_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM changelog")).scalar_one() == EVENTS
        engine.dispose()
    finally:
        fill.forget_postgres(names)


def test_fill_in_place_appends_to_a_database_in_use(tmp_path: Path) -> None:
    """bench/web_bench.py's populate: a database brought to N events, then to more."""
    db = tmp_path / "web.db"
    fill.fill_in_place(f"sqlite:///{db}", 300)
    fill.fill_in_place(f"sqlite:///{db}", 700)
    fill.fill_in_place(f"sqlite:///{db}", 500)  # already more: left alone
    fresh = tmp_path / "fresh.db"
    engine = create_database_engine(f"sqlite:///{fresh}")
    upgrade_schema(engine)
    engine.dispose()
    assert _sqlite_schema(db) == _sqlite_schema(fresh)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(DISTINCT id) FROM events").fetchone() == (700,)
        assert con.execute("SELECT count(*) FROM changelog").fetchone() == (700,)
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
