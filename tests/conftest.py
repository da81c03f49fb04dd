"""Shared fixtures: a database of its own per test, on SQLite and (when available) PostgreSQL.

Two fixtures, two kinds of database:

- ``database_url``: an empty database, for tests of the migrations, the schema and the commands
  that build a database or refuse a non-empty one.
- ``deployed_database_url``: the schema at Alembic head with the test pathways (tests/pathways)
  deployed, as ``carepath`` and the API's ``app`` start. Migrating and deploying per test took a
  large part of the suite's time, so it is done once per session into a template that each test
  copies (:class:`DatabaseTemplates`).

PostgreSQL runs when ``CAREPATH_TEST_POSTGRES_URL`` names a server (``.ci/run`` starts one); each
test's database is a schema of its own there, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, text

import engine.app
from engine import CarePath, ManualClock, Settings
from engine.rules import RuleSetRegistry
from engine.settings import bundled_rules_dir

TESTS = Path(__file__).resolve().parent
POSTGRES_URL = os.environ.get("CAREPATH_TEST_POSTGRES_URL", "")
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)  # the clock fixture's start: templates are deployed then


def _postgres_schema_url(base: str, schema: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


def _deploy(url: str, pathways_dir: Path) -> None:
    """Migrate the database at ``url`` to head and deploy the pathways folder, as the fixtures did per test."""
    app = CarePath(Settings(database_url=url, pathways_dir=pathways_dir), ManualClock(START), upgrade=True)
    try:
        app.catalog.sync_library()
    finally:
        app.close()


class DatabaseTemplates:
    """Per database kind and pathways folder, a database migrated and deployed once per session and
    copied per test: on SQLite the file; on PostgreSQL the schema, by a script read from the catalog
    (:func:`_clone_script`; ``CREATE DATABASE ... TEMPLATE`` cost the server three times as much).

    Syncing the same folder onto a copy deploys nothing (versions are content hashes), so an app
    started on a copy syncs as a real one would.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._tag = uuid.uuid4().hex[:8]  # other sessions may be using the same PostgreSQL database
        self._sqlite: dict[Path, Path] = {}
        self._postgres: dict[Path, tuple[str, str]] = {}  # pathways folder -> (template schema, clone script)
        self._admin: Engine | None = None

    def sqlite_file(self, pathways_dir: Path) -> Path:
        """The template's file: copy it, never open it (an open file may have changes in its WAL)."""
        key = pathways_dir.resolve()
        if key not in self._sqlite:
            path = self._folder / f"template{len(self._sqlite)}.sqlite3"
            _deploy(f"sqlite:///{path}", key)
            # Copies take the main file alone: everything must be out of the write-ahead log.
            with contextlib.closing(sqlite3.connect(path)) as connection:
                busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0, f"{path} is still in use"
            self._sqlite[key] = path
        return self._sqlite[key]

    @contextlib.contextmanager
    def copy(self, kind: str, pathways_dir: Path, folder: Path) -> Iterator[str]:
        """The URL of a new copy of the template (an SQLite file in ``folder``), dropped afterwards."""
        if kind == "sqlite":
            path = folder / "deployed.sqlite3"
            shutil.copyfile(self.sqlite_file(pathways_dir), path)
            yield f"sqlite:///{path}"
            return
        schema = f"t_{uuid.uuid4().hex[:12]}"
        self._clone(pathways_dir, schema)
        try:
            yield _postgres_schema_url(POSTGRES_URL, schema)
        finally:
            self._execute(f"DROP SCHEMA {schema} CASCADE")

    def drop(self) -> None:
        """Drop the PostgreSQL templates (SQLite's go with the session's temporary folder)."""
        for schema, _ in self._postgres.values():
            self._execute(f"DROP SCHEMA {schema} CASCADE")
        self._postgres.clear()
        if self._admin is not None:
            self._admin.dispose()

    def _clone(self, pathways_dir: Path, schema: str) -> None:
        key = pathways_dir.resolve()
        if key in self._postgres:
            self._execute(_clone_header(schema) + self._postgres[key][1])
            return
        template = f"carepath_template_{self._tag}_{len(self._postgres)}"
        self._execute(f"CREATE SCHEMA {template}")
        try:
            _deploy(_postgres_schema_url(POSTGRES_URL, template), key)
            with self._connect() as connection:
                script = _clone_script(connection, template)
                connection.exec_driver_sql(_clone_header(schema) + script)
                # A missed kind of object (a trigger, a view...) fails here, not in some later test.
                assert _catalog(connection, schema) == _catalog(connection, template), "the clone differs"
        except BaseException:
            self._execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            self._execute(f"DROP SCHEMA {template} CASCADE")
            raise
        self._postgres[key] = (template, script)

    def _connect(self) -> contextlib.AbstractContextManager[Connection]:
        if self._admin is None:
            self._admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        return self._admin.connect()

    def _execute(self, statements: str) -> None:
        with self._connect() as connection:
            connection.exec_driver_sql(statements)


def _clone_header(schema: str) -> str:
    # One simple query is one transaction: SET LOCAL holds for the rest of the script.
    return f"CREATE SCHEMA {schema};\nSET LOCAL search_path TO {schema};\n"


def _clone_script(connection: Connection, template: str) -> str:
    """SQL that copies the schema ``template`` into the current search path: tables with their rows,
    sequences with their values, and constraints and indexes under their own names (the engine reads
    a unique constraint's name from the error)."""
    connection.exec_driver_sql(f"SET search_path TO {template}")  # definitions then name tables unqualified
    try:
        tables = (
            connection.execute(
                text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = :s AND c.relkind = 'r' ORDER BY c.relname"
                ),
                {"s": template},
            )
            .scalars()
            .all()
        )
        sequences = connection.execute(
            text(
                "SELECT s.sequencename, s.data_type, s.increment_by, s.min_value, s.max_value, s.start_value,"
                " s.cache_size, s.cycle, s.last_value, t.relname, a.attname"
                " FROM pg_sequences s JOIN pg_namespace n ON n.nspname = s.schemaname"
                " JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename"
                " LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'a'"
                " LEFT JOIN pg_class t ON t.oid = d.refobjid"
                " LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
                " WHERE s.schemaname = :s ORDER BY s.sequencename"
            ),
            {"s": template},
        ).all()
        constraints = connection.execute(
            text(
                "SELECT t.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k"
                " JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = k.connamespace"
                " WHERE n.nspname = :s AND k.contype IN ('p', 'u', 'f')"
                " ORDER BY k.contype = 'f', t.relname, k.conname"
            ),
            {"s": template},
        ).all()
        indexes = (
            connection.execute(
                text(
                    "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s"
                    " AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
                    " ORDER BY c.relname"
                ),
                {"s": template},
            )
            .scalars()
            .all()
        )
    finally:
        connection.exec_driver_sql("RESET search_path")
    like = "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS"
    lines = [f"CREATE TABLE {table} (LIKE {template}.{table} {like})" for table in tables]
    for name, data_type, step, low, high, start, cache, cycle, last, table, column in sequences:
        lines.append(
            f"CREATE SEQUENCE {name} AS {data_type} INCREMENT {step} MINVALUE {low} MAXVALUE {high}"
            f" START {start} CACHE {cache} {'CYCLE' if cycle else 'NO CYCLE'}"
        )
        if last is not None:
            lines.append(f"SELECT setval('{name}', {last})")
        if table is not None:  # a serial column: LIKE copied a default that draws from the template's sequence
            lines.append(f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT nextval('{name}'::regclass)")
            lines.append(f"ALTER SEQUENCE {name} OWNED BY {table}.{column}")
    lines += [f"INSERT INTO {table} SELECT * FROM {template}.{table}" for table in tables]
    lines += [f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}" for table, name, definition in constraints]
    lines += [index.replace(f" ON {template}.", " ON ", 1) for index in indexes]
    return "".join(f"{line};\n" for line in lines)


def _catalog(connection: Connection, schema: str) -> list[Any]:
    """What a schema holds, named as seen from inside it: to check a clone against its template."""
    connection.exec_driver_sql(f"SET search_path TO {schema}")
    try:
        return [
            connection.execute(text(query), {"s": schema}).all()
            for query in (
                "SELECT c.relkind, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = :s ORDER BY 2",
                "SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
                " a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
                " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                " WHERE n.nspname = :s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2",
                "SELECT t.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k"
                " JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = k.connamespace"
                " WHERE n.nspname = :s ORDER BY 1, 2",
                "SELECT c.relname, replace(pg_get_indexdef(i.indexrelid), :s || '.', '') FROM pg_index i"
                " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = :s ORDER BY 1",
                "SELECT sequencename, data_type, last_value FROM pg_sequences WHERE schemaname = :s ORDER BY 1",
                "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s",
                "SELECT (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = n.oid),"
                " (SELECT count(*) FROM pg_type y WHERE y.typnamespace = n.oid AND y.typrelid = 0)"
                " FROM pg_namespace n WHERE n.nspname = :s",
            )
        ] + [
            connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY 1"), {"s": schema}
            ).scalars()
        ]
    finally:
        connection.exec_driver_sql("RESET search_path")


@pytest.fixture(scope="session")
def database_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseTemplates]:
    templates = DatabaseTemplates(tmp_path_factory.mktemp("database_templates"))
    try:
        yield templates
    finally:
        templates.drop()


@pytest.fixture(scope="session", autouse=True)
def rule_sets_read_once() -> Iterator[None]:
    """Engines on the bundled rules folder share one rule-set registry, as one server's requests do:
    reading and compiling the rule files again for each test's engine took a second. Any other
    folder (a test's own rule files) gets a registry per engine, as without this fixture."""
    shared_folders = {bundled_rules_dir().resolve(), (TESTS.parent / "rules").resolve()}
    registries: dict[tuple[Path, Path | None, float], RuleSetRegistry] = {}

    def registry(rules_dir: Path, catalogue_dir: Path | None = None, recheck_seconds: float = 0.0) -> RuleSetRegistry:
        if Path(rules_dir).resolve() not in shared_folders:
            return RuleSetRegistry(rules_dir, catalogue_dir, recheck_seconds)
        key = (Path(rules_dir).resolve(), catalogue_dir, recheck_seconds)
        if key not in registries:
            registries[key] = RuleSetRegistry(rules_dir, catalogue_dir, recheck_seconds)
        return registries[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.app, "RuleSetRegistry", registry)
        yield


@pytest.fixture(params=DATABASES)
def database_kind(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``: a test using a database runs on each."""
    if request.param == "postgresql" and not POSTGRES_URL:
        pytest.skip("PostgreSQL not available: set CAREPATH_TEST_POSTGRES_URL (.ci/run does)")
    kind: str = request.param
    return kind


@pytest.fixture
def database_url(database_kind: str, tmp_path: Path) -> Iterator[str]:
    """A database URL for a fresh, empty database."""
    if database_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'carepath.sqlite3'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield _postgres_schema_url(POSTGRES_URL, schema)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def deployed_database_url(database_kind: str, tmp_path: Path, database_templates: DatabaseTemplates) -> Iterator[str]:
    """A database URL for a database of the test's own, migrated to head with tests/pathways deployed."""
    with database_templates.copy(database_kind, TESTS / "pathways", tmp_path) as url:
        yield url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def test_settings(deployed_database_url: str) -> Settings:
    # Four eyes off: tests of other features deploy a version and start it at once. Four eyes itself
    # is tested on (tests/test_four_eyes.py, tests/api/test_api_four_eyes.py).
    return Settings(database_url=deployed_database_url, pathways_dir=TESTS / "pathways", four_eyes=False)


@pytest.fixture
def carepath(test_settings: Settings, clock: ManualClock) -> Iterator[CarePath]:
    """An engine on a database of its own with the test pathways deployed."""
    app = CarePath(test_settings, clock)
    try:
        yield app
    finally:
        app.close()
