"""API fixtures: a fresh app and database per test (SQLite, and PostgreSQL when available), a test
client that checks EVERY response against the OpenAPI document, and a token per role."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from api_contract import ContractClient, make_token  # tests/api is on sys.path (rootdir-relative imports)
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from engine import ManualClock
from engine.access import ROLES

TESTS = Path(__file__).resolve().parent.parent


@contextmanager
def running_app(database_url: str, clock: ManualClock, **config: Any) -> Iterator[Flask]:
    """The app as the server starts it on ``database_url`` (it migrates and syncs the test pathways: nothing
    to do on a copy), with the contract-checking client and ``config`` over the tests' defaults; closed after."""
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "PATHWAYS_DIR": TESTS / "pathways",
            "CLOCK": clock,
            "AUTH_CACHE_SECONDS": 0,
            # Deploys are active at once for tests of other features; test_api_four_eyes.py turns it on.
            "FOUR_EYES": "off",
            **config,
        }
    )
    app.test_client_class = ContractClient
    try:
        yield app
    finally:
        app.extensions["carepath.jobs"].wait()  # a verification a test started, before its database goes
        app.extensions["carepath"].close()


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
