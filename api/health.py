"""Liveness, readiness, the OpenAPI document and the index of ``/v1/`` (none needs a token)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from engine.db.session import current_revision, head_revision

from . import __version__, carepath
from .errors import ApiError
from .openapi import INDEX, document_with_start_schemas

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
def openapi() -> dict[str, Any]:
    """The OpenAPI document: public, so a new user can read the contract before holding a token; with
    the start data schema of each deployed pathway."""
    return document_with_start_schemas(carepath().catalog.start_schemas())


@bp.get("/")
def index() -> dict[str, Any]:
    """Where to go from here: the collections and the documents that describe the API."""
    return INDEX


def init_app(app: Flask) -> None:
    app.extensions["carepath.schema_head"] = head_revision(app.config["DATABASE_URL"])
