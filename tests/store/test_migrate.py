"""Versioned, idempotent migrations: file rules (unit) and runs against a real engine."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import StoreError
from pipeline.store import Store
from pipeline.store.migrate import (
    MIGRATIONS_DIR,
    Migration,
    MigrationReport,
    load_migrations,
    migrate,
    split_statements,
)

# --- file rules (no engine) ------------------------------------------------------------------


def test_split_statements_ends_statements_at_lines_ending_in_semicolon() -> None:
    sql = (
        "-- header comment;\n"
        "CREATE TABLE a (x String DEFAULT 'a;b')\n"
        "ENGINE = Memory;\n"
        "\n"
        "-- between\n"
        "CREATE TABLE b (x UInt8) ENGINE = Memory ;  \n"
        "SELECT {x:String}\n"
        "-- trailing comment only;\n"
    )
    assert split_statements(sql) == [
        "-- header comment;\nCREATE TABLE a (x String DEFAULT 'a;b')\nENGINE = Memory",
        "-- between\nCREATE TABLE b (x UInt8) ENGINE = Memory",
        "SELECT {x:String}\n-- trailing comment only;",
    ]


def test_split_statements_drops_comment_only_and_blank_chunks() -> None:
    assert split_statements("-- nothing here\n\n;\n   \n") == []


def test_shipped_migrations_load_in_version_order() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    assert migrations[0].version == 1
    assert migrations[0].name == "usage_events"
    assert migrations[0].filename == "0001_usage_events.sql"
    assert len(migrations[0].checksum) == 64
    assert all(m.path.parent == MIGRATIONS_DIR for m in migrations)


def test_database_placeholder_is_the_only_substitution(tmp_path: Path) -> None:
    (tmp_path / "0001_x.sql").write_text(
        "CREATE TABLE IF NOT EXISTS {database}.t (m Map(String, String)) ENGINE = Memory;\n"
        "SELECT {database}, {n:UInt8}, '{}';\n"
    )
    [migration] = load_migrations(tmp_path)
    assert migration.statements("billing") == [
        "CREATE TABLE IF NOT EXISTS billing.t (m Map(String, String)) ENGINE = Memory",
        "SELECT billing, {n:UInt8}, '{}'",
    ]


@pytest.mark.parametrize("name", ["1_short.sql", "0001-dash.sql", "0001_Upper.sql", "abcd_x.sql"])
def test_misnamed_migration_files_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("SELECT 1;\n")
    with pytest.raises(StoreError, match=r"NNNN_name\.sql") as caught:
        load_migrations(tmp_path)
    assert caught.value.fields["file"].endswith(name)


def test_two_files_with_one_version_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0002_a.sql").write_text("SELECT 1;\n")
    (tmp_path / "0002_b.sql").write_text("SELECT 2;\n")
    with pytest.raises(StoreError, match=r"0002_a\.sql and 0002_b\.sql share version 0002"):
        load_migrations(tmp_path)


def test_report_reads_as_one_line_for_operators() -> None:
    report = MigrationReport("metering", applied=(2, 3), already_present=(1,))
    assert str(report) == "database metering: applied 0002, 0003; already present 0001"
    nothing = MigrationReport("m", applied=(), already_present=(1, 2), unknown=(7,))
    assert str(nothing) == (
        "database m: applied none; already present 0001, 0002; "
        "recorded but not shipped with this code 0007"
    )


# --- runs against an engine ------------------------------------------------------------------


@pytest.fixture
def database(store: Store) -> Iterator[str]:
    name = f"migr_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        store.command(f"DROP DATABASE IF EXISTS {name}")


def _write(directory: Path, name: str, text: str) -> Migration:
    (directory / name).write_text(text)
    [migration] = [m for m in load_migrations(directory) if m.filename == name]
    return migration


@pytest.mark.integration
def test_migrate_twice_applies_everything_once(store: Store, database: str) -> None:
    shipped = [m.version for m in load_migrations()]
    first = migrate(store, database)
    assert first.applied == tuple(shipped)
    assert first.already_present == ()
    second = migrate(store, database)
    assert second.applied == ()
    assert second.already_present == tuple(shipped)
    assert second.unknown == ()
    rows = store.query(
        f"SELECT version, name, checksum, applied_at FROM {database}.schema_migrations "
        "ORDER BY version"
    )
    assert [(r["version"], r["name"]) for r in rows] == [
        (m.version, m.name) for m in load_migrations()
    ]
    assert rows[0]["name"] == "usage_events"
    assert [r["checksum"] for r in rows] == [m.checksum for m in load_migrations()]
    assert all(r["applied_at"].tzinfo is not None for r in rows)


@pytest.mark.integration
def test_a_changed_applied_file_is_refused_by_name(
    store: Store, database: str, tmp_path: Path
) -> None:
    original = _write(tmp_path, "0001_things.sql", _table("things"))
    migrate(store, database, migrations=[original])
    edited = _write(tmp_path, "0001_things.sql", _table("things") + "-- edited\n")
    with pytest.raises(StoreError, match=r"0001_things\.sql was changed after it was applied"):
        migrate(
            store, database, migrations=[edited, _write(tmp_path, "0002_more.sql", _table("more"))]
        )
    tables = store.query(
        "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
        {"db": database},
    )
    assert [t["name"] for t in tables] == ["schema_migrations", "things"]


@pytest.mark.integration
def test_a_failure_mid_file_records_nothing_and_a_rerun_completes(
    store: Store, database: str, tmp_path: Path
) -> None:
    broken = _write(tmp_path, "0001_two.sql", _table("first") + "CREATE TABLE oops syntax;\n")
    with pytest.raises(StoreError, match=r"0001_two\.sql, statement 2") as caught:
        migrate(store, database, migrations=[broken])
    assert caught.value.fields["statement"] == 2
    assert store.query(f"SELECT count() AS c FROM {database}.schema_migrations") == [{"c": 0}]
    fixed = _write(tmp_path, "0001_two.sql", _table("first") + _table("second"))
    report = migrate(store, database, migrations=[fixed])
    assert report.applied == (1,)
    assert migrate(store, database, migrations=[fixed]).applied == ()


@pytest.mark.integration
def test_versions_the_code_does_not_ship_are_reported(
    store: Store, database: str, tmp_path: Path
) -> None:
    one = _write(tmp_path, "0001_one.sql", _table("one"))
    two = _write(tmp_path, "0002_two.sql", _table("two"))
    assert migrate(store, database, migrations=[one, two]).applied == (1, 2)
    report = migrate(store, database, migrations=[one])
    assert report.already_present == (1,)
    assert report.unknown == (2,)


@pytest.mark.integration
def test_a_database_name_must_be_an_identifier(store: Store) -> None:
    with pytest.raises(StoreError, match="not a plain identifier"):
        migrate(store, "x; DROP DATABASE default")


def _table(name: str) -> str:
    return (
        f"-- table {name}\n"
        f"CREATE TABLE IF NOT EXISTS {{database}}.{name} (k String)\n"
        "ENGINE = MergeTree ORDER BY k;\n"
    )
