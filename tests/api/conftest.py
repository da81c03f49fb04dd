"""API fixtures: a fresh app and database per test (SQLite, and PostgreSQL when available), a test
client that checks EVERY response against the OpenAPI document, and a token per role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api_contract import make_token, running_app  # tests/api is on sys.path (rootdir-relative imports)
from flask import Flask
from flask.testing import FlaskClient

from engine import ManualClock
from engine.access import ROLES


@pytest.fixture
def app(deployed_database_url: str, clock: ManualClock) -> Iterator[Flask]:
    """The app as the server starts it (it migrates and syncs the pathways: nothing to do on the copy)."""
    with running_app(deployed_database_url, clock) as made:
        yield made


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def tokens(app: Flask) -> dict[str, str]:
    """A secret per role."""
    return {role: make_token(app, role) for role in ROLES}


@pytest.fixture
def auth(tokens: dict[str, str]) -> Any:
    """auth("system") -> the Authorization header for that role."""

    def headers(role: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[role]}", **extra}

    return headers
