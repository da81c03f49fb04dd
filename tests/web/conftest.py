"""Web app fixtures: the app on a SQLite database of its own (a copy of a template with the test pathways
deployed), an API token per role, a test client signed in as a role, and a screenshot of the page a
failing browser test was on."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import make_token, sign_in_with  # tests/web is on sys.path (pytest's rootdir-relative imports)

from api import create_app
from engine import CarePath, ManualClock, Settings
from engine.access import ROLES

TESTS = Path(__file__).resolve().parent.parent
START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def web_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database with the schema and the test pathways deployed, made once and copied per test.

    The pages are a layer over the engine, not database code: SQLite is enough here (the engine's own
    tests run on PostgreSQL too).
    """
    path = tmp_path_factory.mktemp("web_template") / "template.sqlite3"
    engine = CarePath(
        Settings(database_url=f"sqlite:///{path}", pathways_dir=TESTS / "pathways"), ManualClock(START), upgrade=True
    )
    try:
        engine.catalog.sync_library()
    finally:
        engine.close()
    with contextlib.closing(sqlite3.connect(path)) as connection:  # copies take the main file alone
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def app(web_template: Path, tmp_path: Path) -> Iterator[Flask]:
    shutil.copyfile(web_template, tmp_path / "web.sqlite3")
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
            "PATHWAYS_DIR": TESTS / "pathways",
            "RULES_DIR": TESTS.parent / "rules",
            "CLOCK": ManualClock(START),
            "SECRET_KEY": "test-secret-key",
        }
    )
    try:
        yield app
    finally:
        app.extensions["carepath"].close()


@pytest.fixture
def tokens(app: Flask) -> dict[str, str]:
    return {role: make_token(app, role) for role in ROLES}


@pytest.fixture
def signed_in(app: Flask, tokens: dict[str, str]) -> Callable[[str], FlaskClient]:
    """signed_in("clinician") -> a test client with a session for that role."""

    def sign_in(role: str) -> FlaskClient:
        client = app.test_client()
        response = sign_in_with(client, tokens[role])
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
        return client

    return sign_in


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing browser test saves a screenshot of the page it was on (and says where)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    browser = getattr(item, "funcargs", {}).get("browser")
    if report.when == "call" and report.failed and browser is not None:
        folder = Path(os.environ.get("CAREPATH_FAILURE_SCREENSHOTS", Path(tempfile.gettempdir()) / "carepath-web"))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{item.name.replace('/', '_')}.png"
        try:
            browser.driver.save_screenshot(str(path))
            report.sections.append(("screenshot", f"saved {path} ({browser.driver.current_url})"))
        except Exception as exc:  # the browser itself may be what failed
            report.sections.append(("screenshot", f"none: {type(exc).__name__}"))


@pytest.fixture
def clock_of() -> Callable[[Flask], ManualClock]:
    """clock_of(app) -> the app's ManualClock, to move time on."""
    return lambda app: app.extensions["carepath"].clock
