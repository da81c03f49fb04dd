"""CarePath's HTTP API: a thin Flask layer over :class:`engine.CarePath`.

``create_app`` follows the Flask tutorial: defaults, then ``CAREPATH_*`` environment variables
(``from_prefixed_env``), then test overrides. It builds one engine per app, upgrades the database
schema (an empty SQLite file is created), deploys the bundled pathways, refuses to start with an empty
library (:func:`engine.library.require_library`) or, in production, with the example service directory
(:func:`engine.directory.require_service_directory`), logs what it loaded and registers one
blueprint per resource. Nothing happens at import time but reading the installed version.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, current_app, request

from engine import CarePath, Settings
from engine.db.session import bounded_statements
from engine.directory import require_service_directory
from engine.identity import Provider
from engine.instances.queries import InstanceQueries
from engine.library import read_library, require_library
from engine.patients import linked_patient

from .headers import protect_response
from .jobs import BackgroundJobs

__all__ = ["__version__", "carepath", "create_app", "queries"]

# pyproject.toml's version, the only place it is written; shown by `carepath --version`, /v1/health
# and the OpenAPI document.
__version__ = importlib.metadata.version("carepath")

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,  # None: SQLite in the data folder (engine.settings.default_database_url)
    "PATHWAYS_DIR": None,  # None: the bundled pathways
    "RULES_DIR": None,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,  # larger bodies get a 413 problem
    "AUTH_CACHE_SECONDS": 5,
    "SYNC_PATHWAYS": True,  # deploy the pathways folder's current versions at start
    "ALLOW_EMPTY_LIBRARY": False,  # start even with no pathways or no rule sets (a fresh deployment)
    "ENV": None,  # None: development; production refuses the example service directory
    "SERVICE_DIRECTORY": None,  # None: the bundled EXAMPLE directory (the numbers documents print)
    "ALLOW_EXAMPLE_DIRECTORY": False,  # production on the example directory anyway (a demonstration server)
    "FHIR_PATIENT_IDENTIFIER": None,  # None: nhs-number; or personnummer (docs/fhir.md)
    "READ_DATABASE_URL": None,  # a PostgreSQL streaming replica for GET requests (api/replica.py)
    "ALLOW_CONCURRENT_INSTANCES": False,  # a patient may run a pathway more than once at a time
    "SANDBOX": False,  # the deployment's own clock, moved by POST /v1/sandbox/clock (engine/sandbox.py)
    # None: on. A second author activates each new pathway or rule-set version and approves each
    # migration; "off" (refused in production) lets a single developer work (engine/four_eyes.py).
    "FOUR_EYES": None,
    "REPORT_MIN_COUNT": None,  # None: 5; reports suppress counts below it (docs/measures.md)
    "CLOCK": None,  # tests pass a ManualClock
    # Where an instance started without an organisation or care team is placed (engine.care_teams); None:
    # in development organisation "local", team "general"; in production a start must name them.
    "DEFAULT_ORGANISATION": None,
    "DEFAULT_CARE_TEAM": None,
    # People sign in through an OpenID Connect provider when OIDC_ISSUER is set (CAREPATH_OIDC_*, every
    # name in engine.settings.OidcSettings; docs/identity.md).
    # The web app's session cookie (api/web/auth.py): signed with SECRET_KEY (CAREPATH_SECRET_KEY; without
    # one a random key per start, so sign-ins end with a restart), HttpOnly, SameSite=Lax, Secure over TLS.
    "SECRET_KEY": None,
    "SESSION_COOKIE_NAME": "carepath_session",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,  # also Secure whenever the request came over TLS
    "PERMANENT_SESSION_LIFETIME": 8 * 60 * 60,  # a working shift
}


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app.

    Raises:
        DiagramError: a bundled pathway is invalid (nothing is served then).
        EmptyLibraryError: the pathways or rules folder is missing or empty and ALLOW_EMPTY_LIBRARY is not set.
        RuleFileError: the service directory is missing or invalid (every problem located).
        ExampleDirectoryError: ENV is production and the service directory is example data (and
            ALLOW_EXAMPLE_DIRECTORY is not set), or it gives no number for a service type.
        ValueError: a setting is invalid, e.g. an OIDC role map naming a role CarePath does not have.
    """
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("CAREPATH")
    if test_config is not None:
        app.config.from_mapping(test_config)
    # The engine's settings (engine.settings.Settings.from_env) from every CAREPATH_* variable, as Flask
    # read them, with the test configuration laid over: all of them, not a list kept by hand (one such
    # list once left the trail key, the webhook, referral timeframe, time zone and verification
    # settings out of the server while the command line and the worker read them).
    given = {
        f"CAREPATH_{name}": _setting_text(value)
        for name, value in app.config.items()
        if name not in Flask.default_config and value is not None
    }
    settings = Settings.from_env(given)
    app.config["DATABASE_URL"] = settings.database_url
    engine = CarePath(settings, app.config["CLOCK"], upgrade=True)
    try:
        deployed = engine.catalog.sync_library(actor="system") if app.config["SYNC_PATHWAYS"] else None
        library = read_library(settings, deployed)
        require_library(settings, library)
        if app.config["SYNC_PATHWAYS"] and library.rule_sets:
            engine.rule_sets.sync(actor="system")  # four eyes: a changed rule file is a pending version
        production = settings.environment == "production" and library.rule_sets
        require_service_directory(settings, set(engine.rules.catalogue().service_types) if production else None)
        identity = (
            None
            if settings.oidc is None
            else Provider(settings.oidc, engine.clock, patients=functools.partial(linked_patient, engine.sessions))
        )
    except Exception:
        engine.close()
        raise
    _log_start(app, settings, library.describe())
    app.extensions["carepath"] = engine
    app.extensions["carepath.queries"] = InstanceQueries(engine.sessions, engine.instances)
    app.extensions["carepath.jobs"] = BackgroundJobs()  # e.g. verifying every trail (api/events.py)

    from . import (
        access_log,
        auth,
        documents,
        errors,
        evaluations,
        events,
        fhir,
        health,
        instances,
        me,
        messages,
        parsing,
        pathways,
        patient_identities,
        replica,
        reports,
        rule_sets,
        sandbox,
        tasks,
        web,
        webhooks,
    )

    app.wsgi_app = _bounded_requests(app.wsgi_app, settings.statement_timeout)  # type: ignore[method-assign]
    errors.init_app(app)
    replica.init_app(app)
    access_log.init_app(app)
    app.after_request(protect_response)
    app.after_request(sandbox.mark_response)
    app.before_request(_api_only(parsing.reject_unknown_query))
    auth.init_app(app.extensions, identity)
    health.init_app(app)
    for module in (
        pathways,
        instances,
        tasks,
        messages,
        events,
        documents,
        evaluations,
        health,
        access_log,
        webhooks,
        sandbox,
        me,
        patient_identities,
        rule_sets,
        reports,
    ):
        app.register_blueprint(module.bp)
    fhir.init_app(app.extensions, engine)
    app.register_blueprint(fhir.bp)  # /fhir/R4 (docs/fhir.md)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = secrets.token_urlsafe(32)
        app.logger.warning("no CAREPATH_SECRET_KEY: web sign-ins end when the server restarts")
    web.init_app(app)
    return app


def _bounded_requests(wsgi_app: Any, seconds: float) -> Any:
    """Every request's PostgreSQL work bounded by ``CAREPATH_STATEMENT_TIMEOUT``
    (:func:`engine.db.session.bounded_statements`): a database that stops answering is a 503, never a
    request (a gthread worker's thread, a pooled connection) held for as long as TCP takes to give up."""

    @functools.wraps(wsgi_app)
    def bounded(environ: Any, start_response: Any) -> Any:
        with bounded_statements(seconds):
            return wsgi_app(environ, start_response)

    return bounded


def _setting_text(value: Any) -> str:
    """A configuration value as its environment variable would hold it (``from_prefixed_env`` reads JSON:
    a role map given as a JSON object arrives as a dict)."""
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _api_only(check: Callable[[], None]) -> Callable[[], None]:
    """A request check for the HTTP API's routes; the web pages (blueprint ``web``) read their own queries."""

    def api_check() -> None:
        blueprint = request.blueprint or ""
        # "web" and the blueprints nested in it ("web.patients"); not "webhooks", an API blueprint
        if blueprint != "web" and not blueprint.startswith("web."):
            check()

    return api_check


def _log_start(app: Flask, settings: Settings, library: str) -> None:
    """Which version runs which library: names, versions and folders, no patient data."""
    if app.logger.level == logging.NOTSET:  # shown unless the operator configured the logger
        app.logger.setLevel(logging.INFO)
    app.logger.info(
        "CarePath %s: %s (pathways from %s, rules from %s)",
        __version__,
        library,
        settings.pathways_dir,
        settings.rules_dir,
    )
    if settings.environment == "production" and settings.trail_key_file is None:
        app.logger.warning(
            "no CAREPATH_TRAIL_KEY_FILE: the event trail is not authenticated, and its digests of patients' "
            "data can be found by trying values (docs/operations.md)"
        )
    if settings.environment == "production" and app.config["TRUSTED_HOSTS"] is None:
        app.logger.warning(
            "no CAREPATH_TRUSTED_HOSTS: any Host header is answered, and names this server in FHIR links "
            "(and in the sign-in callback without CAREPATH_OIDC_REDIRECT_URL) (docs/operations.md)"
        )


def carepath() -> CarePath:
    """The engine of the current app."""
    engine: CarePath = current_app.extensions["carepath"]
    return engine


def queries() -> InstanceQueries:
    """Read-only listings over the current app's engine."""
    found: InstanceQueries = current_app.extensions["carepath.queries"]
    return found
