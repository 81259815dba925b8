"""Start-up skips migration work on an up-to-date database; the planner's statistics are
gathered at start and kept current while the server writes (statistics.py, upkeep.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, insert
from tracker_server import db as db_module
from tracker_server import statistics
from tracker_server.db import (
    Database,
    alembic_config,
    create_database_engine,
    migration_heads,
    schema_is_current,
    upgrade_schema,
)
from tracker_server.tables import events
from tracker_server.upkeep import StatisticsUpkeep

pytestmark = pytest.mark.server


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
    yield engine
    engine.dispose()


def _rows(count: int) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [
        {
            "id": str(uuid.uuid4()),
            "type": "deployment",
            "priority": "P3",
            "status": "success",
            "environment": "production",
            "service": f"svc-{n % 50}",
            "created_at": now,
            "stake_holders": [],
            "notifications": [],
            "changes": [],
        }
        for n in range(count)
    ]


def _insert(engine: Engine, count: int) -> None:
    with engine.begin() as conn:
        conn.execute(insert(events), _rows(count))


def _events_stat(engine: Engine) -> dict[str, int]:
    """The row count sqlite_stat1 records for each index of events."""
    with engine.connect() as conn:
        exists = "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
        if conn.exec_driver_sql(exists).first() is None:
            return {}
        rows = conn.exec_driver_sql("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'events'").all()
    return {idx: int(stat.split()[0]) for idx, stat in rows}


def test_the_heads_read_from_the_files_are_alembics_heads(engine: Engine) -> None:
    with engine.connect() as conn:
        script = ScriptDirectory.from_config(alembic_config(conn))
        assert migration_heads() == frozenset(script.get_heads())


def test_an_up_to_date_database_is_not_migrated_again(engine: Engine, monkeypatch) -> None:
    assert not schema_is_current(engine)  # a new database
    upgrade_schema(engine)
    assert schema_is_current(engine)

    def no_migration(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("alembic ran on an up-to-date database")

    monkeypatch.setattr("alembic.command.upgrade", no_migration)
    upgrade_schema(engine)  # one query, no Alembic


def test_a_database_behind_the_heads_is_migrated(engine: Engine) -> None:
    upgrade_schema(engine, "0004")
    assert not schema_is_current(engine)
    upgrade_schema(engine)
    assert schema_is_current(engine)


def test_start_analyzes_events_then_only_when_their_number_moved(engine: Engine) -> None:
    upgrade_schema(engine)
    statistics.refresh(engine)
    assert _events_stat(engine) == {}  # an empty table has no statistics to gather
    _insert(engine, 300)
    statistics.refresh(engine)
    first = _events_stat(engine)
    assert first and set(first.values()) == {300}
    _insert(engine, 100)  # 400 rows: within 2x of what the statistics say
    statistics.refresh(engine)
    assert _events_stat(engine) == first
    _insert(engine, 500)  # 900 rows: 3x
    statistics.refresh(engine)
    assert set(_events_stat(engine).values()) == {900}


def test_the_statistics_name_the_lookup_index_the_planner_then_uses(engine: Engine) -> None:
    upgrade_schema(engine)
    _insert(engine, 2000)
    statistics.refresh(engine)
    assert any(name.startswith("ix_events_") for name in _events_stat(engine))


def test_upkeep_refreshes_after_enough_writes_in_the_writers_queue(
    engine: Engine, monkeypatch
) -> None:
    upgrade_schema(engine)
    database = Database(engine)
    turns: list[str] = []
    real_turn = database.writer_turn

    def counted_turn():  # the refresh waits for its turn like any writer
        turns.append("turn")
        return real_turn()

    monkeypatch.setattr(database, "writer_turn", counted_turn)
    upkeep = StatisticsUpkeep(database, every=250)
    _insert(engine, 300)
    upkeep.wrote(249)
    upkeep.join(timeout=30)
    assert _events_stat(engine) == {} and turns == []
    upkeep.wrote(1)
    upkeep.join(timeout=30)
    assert set(_events_stat(engine).values()) == {300}
    assert turns == ["turn"]


def test_upkeep_failure_is_logged_not_raised(engine: Engine, monkeypatch, caplog) -> None:
    upgrade_schema(engine)
    upkeep = StatisticsUpkeep(Database(engine), every=1)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk gone")

    monkeypatch.setattr(statistics, "refresh", broken)
    upkeep.wrote(1)
    upkeep.join(timeout=30)
    assert "statistics upkeep failed" in caplog.text
    upkeep.wrote(1)  # a later check runs again
    upkeep.join(timeout=30)
    assert caplog.text.count("statistics upkeep failed") == 2


def test_heads_parse_tuples_and_ignore_none(tmp_path: Path, monkeypatch) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (versions / "b.py").write_text('revision = "b"\ndown_revision = "a"\n')
    (versions / "c.py").write_text("revision = 'c'\ndown_revision = 'a'\n")
    (versions / "d.py").write_text('revision = "d"\ndown_revision = ("b", "c")\n')
    (versions / "e.py").write_text('revision = "e"\ndown_revision = "a"\n')
    monkeypatch.setattr(db_module, "MIGRATIONS_DIR", tmp_path)
    assert migration_heads() == frozenset({"d", "e"})


def test_annotated_revisions_count_and_an_unreadable_file_falls_back_to_alembic(
    tmp_path: Path, monkeypatch, engine: Engine
) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (versions / "b.py").write_text('revision: str = "b"\ndown_revision: str | None = "a"\n')
    monkeypatch.setattr(db_module, "MIGRATIONS_DIR", tmp_path)
    assert migration_heads() == frozenset({"b"})
    (versions / "c.py").write_text("REVISION = 'c'\n")  # no revision this reading sees
    assert migration_heads() == frozenset()
    assert not schema_is_current(engine)  # then Alembic decides
