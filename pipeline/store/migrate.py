"""Versioned, idempotent ClickHouse schema migrations (``python -m pipeline migrate``).

Migration files live in ``pipeline/store/migrations/`` and are named ``NNNN_name.sql``
(four-digit version, lower-case name). Rules for their content:

* ``{database}`` is replaced by the target database name (a plain identifier); nothing else
  is substituted, so ``{name:Type}`` and other braces are left alone.
* Several statements per file: a statement ends at a line whose last non-blank character is
  ``;`` (comment lines, starting with ``--``, never end a statement). Do not put two
  statements on one line.
* Every statement must be idempotent on its own (``CREATE ... IF NOT EXISTS``,
  ``ALTER ... ADD COLUMN IF NOT EXISTS``, ...). ClickHouse DDL is not transactional: a crash
  in the middle of a file leaves the earlier statements applied and the file unrecorded, and
  the next run re-executes the whole file. Idempotent statements make that safe.
* Never edit a file once it has been applied anywhere: the runner records each file's SHA-256
  and refuses to run when an applied file's checksum changed. Add a new file instead.

:func:`migrate` creates the database and ``{database}.schema_migrations``, applies pending files
in version order, records each one after all of its statements succeeded, and reports what it
applied and what was already present. A second run applies nothing. Two runners racing on one
server may both apply a file (harmless: statements are idempotent) and both record it; the
reader tolerates duplicate records with the same checksum.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import StoreError
from pipeline.store import Store

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Migration:
    """One migration file: its version, name, raw text and checksum."""

    version: int
    name: str
    path: Path
    text: str

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def statements(self, database: str) -> list[str]:
        """The file's statements for ``database``, in order, without their closing ``;``."""
        return split_statements(self.text.replace("{database}", database))


@dataclass(frozen=True)
class MigrationReport:
    """What one :func:`migrate` run found and did."""

    database: str
    applied: tuple[int, ...]
    already_present: tuple[int, ...]
    unknown: tuple[int, ...] = ()
    """Versions recorded in the database that this code does not ship (newer code ran there)."""

    def __str__(self) -> str:
        def versions(numbers: tuple[int, ...]) -> str:
            return ", ".join(f"{number:04d}" for number in numbers) or "none"

        text = (
            f"database {self.database}: applied {versions(self.applied)}; "
            f"already present {versions(self.already_present)}"
        )
        if self.unknown:
            text += f"; recorded but not shipped with this code {versions(self.unknown)}"
        return text


def split_statements(sql: str) -> list[str]:
    """Split a migration file at lines ending in ``;``; drop statements that are only comments."""
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        stripped = line.strip()
        ends = stripped.endswith(";") and not stripped.startswith("--")
        current.append(line.rstrip()[:-1] if ends else line)
        if ends:
            statements.append("\n".join(current))
            current = []
    statements.append("\n".join(current))
    return [statement.strip() for statement in statements if _has_code(statement)]


def _has_code(statement: str) -> bool:
    return any(
        line.strip() and not line.strip().startswith("--") for line in statement.splitlines()
    )


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The ``NNNN_name.sql`` files in ``directory`` by version; misnamed or duplicate ones fail."""
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise StoreError(
                f"migration file {path} is not named NNNN_name.sql (four digits, underscore, "
                "lower-case name); rename it",
                file=str(path),
                engine=None,
                sql=None,
            )
        version = int(match.group(1))
        if version in migrations:
            raise StoreError(
                f"migration files {migrations[version].filename} and {path.name} share version "
                f"{version:04d}; give the newer one the next free number",
                file=str(path),
                engine=None,
                sql=None,
            )
        migrations[version] = Migration(
            version, match.group(2), path, path.read_text(encoding="utf-8")
        )
    return [migrations[version] for version in sorted(migrations)]


def _schema_statements(database: str) -> list[str]:
    return [
        f"CREATE DATABASE IF NOT EXISTS {database}",
        f"""CREATE TABLE IF NOT EXISTS {database}.schema_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC')
) ENGINE = MergeTree ORDER BY version""",
    ]


def _recorded(store: Store, database: str) -> dict[int, tuple[str, str]]:
    rows = store.query(f"SELECT version, name, checksum FROM {database}.schema_migrations")
    recorded: dict[int, tuple[str, str]] = {}
    for row in rows:
        version, name, checksum = int(row["version"]), str(row["name"]), str(row["checksum"])
        earlier = recorded.setdefault(version, (name, checksum))
        if earlier[1] != checksum:
            raise StoreError(
                f"{database}.schema_migrations records version {version:04d} twice with different "
                "checksums; the schema history is inconsistent, inspect it by hand",
                database=database,
                version=version,
                engine=store.engine,
                sql=None,
            )
    return recorded


def migrate(
    store: Store, database: str, *, migrations: list[Migration] | None = None
) -> MigrationReport:
    """Bring ``database`` up to date with ``migrations`` (default: the shipped files)."""
    if not _DATABASE.match(database):
        raise StoreError(
            f"database name {database!r} is not a plain identifier (letters, digits, underscores)",
            database=database,
            engine=store.engine,
            sql=None,
        )
    available = load_migrations() if migrations is None else migrations
    for statement in _schema_statements(database):
        store.command(statement)
    recorded = _recorded(store, database)
    for migration in available:
        seen = recorded.get(migration.version)
        if seen is not None and seen[1] != migration.checksum:
            raise StoreError(
                f"migration {migration.filename} was changed after it was applied to {database} "
                f"(recorded checksum {seen[1][:12]}..., file now {migration.checksum[:12]}...). "
                "Restore the applied text and put the change in a new migration file",
                file=migration.filename,
                version=migration.version,
                database=database,
                engine=store.engine,
                sql=None,
            )
    applied: list[int] = []
    for migration in available:
        if migration.version in recorded:
            continue
        for number, statement in enumerate(migration.statements(database), start=1):
            try:
                store.command(statement)
            except StoreError as error:
                raise StoreError(
                    f"migration {migration.filename}, statement {number}, failed on {database}: "
                    f"{error.message}. Fix the cause and run migrate again (applied statements "
                    "are idempotent and will be re-run)",
                    **{**error.fields, "file": migration.filename, "statement": number},
                ) from error
        store.insert_rows(
            f"{database}.schema_migrations",
            [
                {
                    "version": migration.version,
                    "name": migration.name,
                    "checksum": migration.checksum,
                    "applied_at": datetime.now(UTC),
                }
            ],
        )
        applied.append(migration.version)
    shipped = {migration.version for migration in available}
    return MigrationReport(
        database=database,
        applied=tuple(applied),
        already_present=tuple(sorted(set(recorded) & shipped)),
        unknown=tuple(sorted(set(recorded) - shipped)),
    )
