"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from engine.db.session import current_revision, head_revision

from . import __version__, carepath
from .auth import requires
from .errors import ApiError
from .openapi import DOCUMENT

bp = Blueprint("health", __name__, url_prefix="/v1")


@bp.get("/health")
def health() -> dict[str, Any]:
    """Liveness: the process answers, and which CarePath version it runs (no authentication, no database)."""
    return {"status": "ok", "version": __version__}


@bp.get("/ready")
def ready() -> dict[str, Any]:
    """Readiness: the database answers and its schema is at the head migration (no authentication)."""
    head = current_app.extensions["carepath.schema_head"]
    try:
        revision = current_revision(carepath().db)
    except SQLAlchemyError as exc:
        raise ApiError(503, "not-ready", "the database is not reachable") from exc
    if revision != head:
        raise ApiError(503, "not-ready", "the database schema is not at the current migration")
    return {"status": "ready", "schema_revision": str(revision)}


@bp.get("/openapi.json")
@requires("api.describe")
def openapi() -> dict[str, Any]:
    return DOCUMENT


def init_app(app: Flask) -> None:
    app.extensions["carepath.schema_head"] = head_revision(app.config["DATABASE_URL"])
