"""Helpers shared by the web app's tests (imported as a top-level module from tests/web, like tests/api's
helpers: a module named ``conftest`` would be tests/api's when the whole suite runs)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from api import create_app
from engine import ManualClock
from engine.access import create_token
from engine.db.session import unit_of_work

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# A patient token's patient: the one the pages' tests start a pathway for by default.
TEST_PATIENT = "MRN-1001"


def make_token(app: Flask, role: str, patient_ref: str = TEST_PATIENT) -> str:
    """A secret for ``role``; a patient's token is for ``patient_ref``."""
    engine = app.extensions["carepath"]
    with unit_of_work(engine.sessions) as session:
        _, secret = create_token(
            session, role, f"test {role}", engine.clock, patient_ref=patient_ref if role == "patient" else None
        )
    return secret


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in_with(client: FlaskClient, secret: str, **kwargs: Any) -> TestResponse:
    """Sign ``client`` in as the link ``carepath serve`` prints does: open ``/sign-in?token=`` (a page
    asking to sign in, never a sign-in on a GET) and press its button (a POST with the CSRF token)."""
    page = client.get("/sign-in", query_string={"token": secret}, **kwargs)
    assert page.status_code == 200 and f'name="token" value="{secret}"' in page.get_data(as_text=True)
    return client.post("/sign-in", data={"token": secret, "csrf_token": csrf_of(page.get_data(as_text=True))}, **kwargs)


def copy_of(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of ``client``'s session cookie (as a thief would)."""
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie.value)
    return thief


def bundled_app(folder: Path, database_templates: Any, clock: ManualClock) -> Flask:
    """The app on its own copy (in ``folder``) of the test database template with the bundled pathways and rules
    deployed, four eyes off (each version active at once), on ``clock``. Close its engine after use."""
    from pathways_bundled.journey import PATHWAYS, REPO  # the bundled journeys' own folders

    shutil.copyfile(database_templates.sqlite_file(PATHWAYS), folder / "web.sqlite3")
    return create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{folder / 'web.sqlite3'}",
            "PATHWAYS_DIR": PATHWAYS,
            "RULES_DIR": REPO / "rules",
            "CLOCK": clock,
            "SECRET_KEY": "test-secret-key",
            "FOUR_EYES": "off",
        }
    )
