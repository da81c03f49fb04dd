"""Web app fixtures: the app on a database of its own (tests/conftest.py's deployed template with the test
pathways), an API token per role, and a test client signed in as a role."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from engine import ManualClock
from engine.access import ROLES, create_token
from engine.db.session import unit_of_work

TESTS = Path(__file__).resolve().parent.parent
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def app(deployed_database_url: str, clock: ManualClock) -> Iterator[Flask]:
    app = create_app({"TESTING": True, "DATABASE_URL": deployed_database_url, "PATHWAYS_DIR": TESTS / "pathways",
                      "CLOCK": clock, "SECRET_KEY": "test-secret-key"})
    try:
        yield app
    finally:
        app.extensions["carepath"].close()


def make_token(app: Flask, role: str) -> str:
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        _, secret = create_token(session, role, f"test {role}", engine.clock)
    return secret


@pytest.fixture
def tokens(app: Flask) -> dict[str, str]:
    return {role: make_token(app, role) for role in ROLES}


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


@pytest.fixture
def signed_in(app: Flask, tokens: dict[str, str]) -> Callable[[str], FlaskClient]:
    """signed_in("clinician") -> a test client with a session for that role."""

    def sign_in(role: str) -> FlaskClient:
        client = app.test_client()
        response = client.get(f"/sign-in?token={tokens[role]}")
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
