"""Shared fixtures: a fresh database per test on SQLite and (when available) PostgreSQL.

PostgreSQL runs when ``CAREPATH_TEST_POSTGRES_URL`` names a server (``.ci/run`` starts one);
each test gets its own schema there, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from engine import CarePath, ManualClock, Settings

TESTS = Path(__file__).resolve().parent
POSTGRES_URL = os.environ.get("CAREPATH_TEST_POSTGRES_URL", "")
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _postgres_schema_url(base: str, schema: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for a fresh, empty database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'carepath.sqlite3'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not available: set CAREPATH_TEST_POSTGRES_URL (.ci/run does)")
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
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC))


@pytest.fixture
def test_settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, pathways_dir=TESTS / "pathways")


@pytest.fixture
def carepath(test_settings: Settings, clock: ManualClock) -> Iterator[CarePath]:
    """An engine on a fresh database with the test pathways deployed."""
    app = CarePath(test_settings, clock, upgrade=True)
    app.catalog.sync_library()
    try:
        yield app
    finally:
        app.close()
