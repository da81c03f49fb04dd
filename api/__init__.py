"""CarePath's HTTP API: a thin Flask layer over :class:`engine.CarePath`.

``create_app`` follows the Flask tutorial: defaults, then ``CAREPATH_*`` environment variables
(``from_prefixed_env``), then test overrides. It builds one engine per app, upgrades the database
schema (an empty SQLite file is created), deploys the bundled pathways and registers one blueprint
per resource. Nothing happens at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, current_app

from engine import CarePath, Settings
from engine.instances.queries import InstanceQueries

__all__ = ["carepath", "create_app", "queries"]

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,  # None: SQLite in ./instance/ (engine.settings.default_database_url)
    "PATHWAYS_DIR": None,  # None: the bundled pathways
    "RULES_DIR": None,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,  # larger bodies get a 413 problem
    "AUTH_CACHE_SECONDS": 5,
    "SYNC_PATHWAYS": True,  # deploy the pathways folder's current versions at start
    "CLOCK": None,  # tests pass a ManualClock
}


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. Raises: DiagramError if a bundled pathway is invalid (nothing is served then)."""
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("CAREPATH")
    if test_config is not None:
        app.config.from_mapping(test_config)
    settings = Settings.from_env({f"CAREPATH_{name}": str(app.config[name])
                                  for name in ("DATABASE_URL", "PATHWAYS_DIR", "RULES_DIR") if app.config[name]})
    app.config["DATABASE_URL"] = settings.database_url
    _ensure_sqlite_folder(settings)
    engine = CarePath(settings, app.config["CLOCK"], upgrade=True)
    if app.config["SYNC_PATHWAYS"]:
        engine.catalog.sync_library(actor="system")
    app.extensions["carepath"] = engine
    app.extensions["carepath.queries"] = InstanceQueries(engine.sessions, engine.instances)

    from . import auth, documents, errors, evaluations, events, health, instances, messages, parsing, pathways, tasks

    errors.init_app(app)
    app.before_request(parsing.reject_unknown_query)
    auth.init_app(app.extensions)
    health.init_app(app)
    for module in (pathways, instances, tasks, messages, events, documents, evaluations, health):
        app.register_blueprint(module.bp)
    return app


def _ensure_sqlite_folder(settings: Settings) -> None:
    """The schema upgrade opens the SQLite file before the engine would create its folder."""
    if settings.is_sqlite and ":///" in settings.database_url:
        path = settings.database_url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def carepath() -> CarePath:
    """The engine of the current app."""
    engine: CarePath = current_app.extensions["carepath"]
    return engine


def queries() -> InstanceQueries:
    """Read-only listings over the current app's engine."""
    found: InstanceQueries = current_app.extensions["carepath.queries"]
    return found
