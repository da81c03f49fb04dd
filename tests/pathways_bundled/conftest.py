"""Fixtures for driving the bundled pathways (pathways/, rules/) end to end on a fresh database.

Deploying the six bundled pathways takes a few seconds (XSD validation and compiling every shared
sub-pathway), so it is done once per session into a template SQLite file that each test copies
(tests/conftest.py's DatabaseTemplates, shared with tests/test_documents.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask

from api import create_app
from engine import CarePath, ManualClock, Settings

from .journey import PATHWAYS, REPO, FlowCoverage

if TYPE_CHECKING:
    from conftest import DatabaseTemplates  # tests/conftest.py: imported by pytest, not by us

START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
DATABASE = "bundled.sqlite3"


@pytest.fixture(scope="session")
def flow_coverage() -> FlowCoverage:
    """Flows taken by every journey run in this session (test_journeys_coverage.py checks them)."""
    return FlowCoverage()


@pytest.fixture(scope="session")
def bundled_template(database_templates: DatabaseTemplates) -> Path:
    """A database with the schema and the bundled pathways deployed, to copy per test."""
    return database_templates.sqlite_file(PATHWAYS)


@pytest.fixture
def journey_clock() -> ManualClock:
    return ManualClock(START)


def _settings(folder: Path) -> Settings:
    # Four eyes off: journeys evaluate the rules folder's texts as they are (tests/test_four_eyes_rules.py has it on).
    return Settings(
        database_url=f"sqlite:///{folder / DATABASE}", pathways_dir=PATHWAYS, rules_dir=REPO / "rules", four_eyes=False
    )


def bundled_app(template: Path, folder: Path, clock: ManualClock) -> CarePath:
    """An engine on a fresh copy of the template database."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, folder / DATABASE)
    return CarePath(_settings(folder), clock)


@pytest.fixture
def bundled(
    bundled_template: Path, tmp_path: Path, journey_clock: ManualClock, flow_coverage: FlowCoverage
) -> Iterator[CarePath]:
    app = bundled_app(bundled_template, tmp_path, journey_clock)
    flow_coverage.watch(app)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def bundled_http(bundled_template: Path, tmp_path: Path, journey_clock: ManualClock) -> Iterator[Flask]:
    """The HTTP API and web pages on a fresh copy of the template database (the journeys' clock)."""
    shutil.copyfile(bundled_template, tmp_path / DATABASE)
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{tmp_path / DATABASE}",
            "PATHWAYS_DIR": PATHWAYS,
            "RULES_DIR": REPO / "rules",
            "CLOCK": journey_clock,
            "SECRET_KEY": "test-secret-key",
        }
    )
    try:
        yield app
    finally:
        app.extensions["carepath"].close()
