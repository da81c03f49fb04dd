"""The web app served at ``/``: pages for clinicians, authors, auditors and patients on the same engine and access
rules as the HTTP API (issue 16).

Server-rendered Jinja pages, htmx for partial updates, bpmn-js for diagrams and the NHS.UK frontend
for look, forms and error summaries; the three are vendored under ``static/vendor/`` (pinned versions,
licences, SHA-256 sums), so no build step and no CDN is needed. One blueprint per area, nested under
the ``web`` blueprint, which owns the templates, the static files, CSRF checking and the error pages:

* ``session``   -- signing in with an API token, signing out, the language switch
* ``clinicians``-- the work list and the task page (the task's form)
* ``patients``  -- a patient's pathway (diagram, timeline, care plan, documents, incidents)
* ``starting``  -- starting a pathway for a patient (their reference, care team and the pathway's start data)
* ``lifecycle`` -- pausing, resuming, ending a patient's pathway and handing it to another care team
* ``corrections`` -- correcting a patient's start data (a mistyped date of diagnosis), with a reason code
* ``recording`` -- recording what happened to a patient (a recurrence, a death): the messages their pathway waits for
* ``authors``   -- the pathway library, versions, diagrams with their validation problems
* ``auditors``  -- rule evaluations (why / why not) and event trail verification
* ``my_plan``   -- a patient's own pages: their plan, contacts, what happens next, documents, their forms
* ``managers``  -- service insight: the personalised care measures and demand, charts with their tables

Each view parses the request, makes one call into the engine and renders. What a role may see is
decided by :mod:`api.web.auth` from :data:`engine.access.PERMISSIONS`, the API's own table.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, render_template, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from api import carepath
from api.errors import to_problem
from engine.access import BREAK_GLASS_ROLES
from engine.care_teams import BREAK_GLASS_REASONS
from engine.errors import (
    CarePathError,
    ConflictError,
    InvalidInputError,
    InvalidTokenError,
    NotFoundError,
    PermissionDeniedError,
)

from . import auditors, authors, clinicians, corrections, lifecycle, managers, my_plan, patients, recording, starting
from . import session as session_pages
from .assets import vendor_url
from .auth import TlsAwareSessions, can, check_csrf, csrf_token, principal
from .care_items import care_item_name, concern_name
from .flashes import flashed
from .i18n import LANGUAGES, current_language, format_duration, format_time, translate, translate_or

__all__ = ["bp", "init_app"]

# /static is the app's own (Flask adds it whether or not api/static exists): the pages' files are under /assets.
bp = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/assets")
for child in (
    session_pages,
    clinicians,
    starting,
    patients,
    lifecycle,
    corrections,
    recording,
    authors,
    auditors,
    my_plan,
    managers,
):
    bp.register_blueprint(child.bp)

bp.before_request(check_csrf)

_STATUS = (
    (InvalidTokenError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (InvalidInputError, 400),
    (ConflictError, 409),
)


@bp.app_template_global("nav")
def nav() -> list[tuple[str, str, str]]:
    """The header's links the signed-in role may follow: (endpoint, words key, permission)."""
    links = [
        ("web.my_plan.plan", "nav.my_plan", "patient.read"),
        ("web.clinicians.work_list", "nav.work_list", "tasks.read"),
        ("web.patients.find", "nav.patients", "instances.read"),
        ("web.authors.library", "nav.pathways", "pathways.read"),
        ("web.auditors.trail", "nav.audit", "audit.verify"),
        ("web.managers.service", "service.nav", "reports.read"),
    ]
    return [link for link in links if can(link[2])]


@bp.context_processor
def page_globals() -> dict[str, Any]:
    return {
        "t": translate,
        "t_or": translate_or,
        "can": can,
        "user": principal(),
        "csrf_token": csrf_token,
        "vendor": vendor_url,
        "language": current_language(),
        "languages": LANGUAGES,
        "format_time": format_time,
        "format_duration": format_duration,
        "flashed": flashed,
        "record_title": recording.title_of,
        "recordable": recording.recordable,
        "manage_actions": lifecycle.offered,
        "pathway_title": pathway_title,
        "pathway_titles": pathway_titles,
        "care_item_name": care_item_name,
        "concern_name": concern_name,
    }


def pathway_titles() -> dict[str, str]:
    """Every deployed pathway's title by its id, as its current version gives it ("Breast cancer pathway");
    read once per request, when a page first names a pathway."""
    titles: dict[str, str] | None = g.get("pathway_titles")
    if titles is None:
        titles = g.pathway_titles = carepath().catalog.titles()
    return titles


def pathway_title(pathway_id: str) -> str:
    """The pathway's title, else its id."""
    return pathway_titles().get(pathway_id) or pathway_id


@bp.errorhandler(Exception)
def error_page(exc: Exception) -> tuple[str, int, dict[str, str]]:
    """An HTML page for every error on these pages; the API keeps its problem+json."""
    if isinstance(exc, HTTPException):
        status = exc.code or 500
    else:
        status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)
    if status >= 500:
        # Logged like the API's internal errors (the log filter keeps patient data out).
        current_app.logger.error(
            "unhandled %s on %s %s",
            type(exc).__name__,
            request.method,
            request.url_rule.rule if request.url_rule else "?",
            exc_info=exc,
        )
    elif isinstance(exc, CarePathError):
        logging.getLogger(__name__).debug("refused: %s", type(exc).__name__)
    key = {401: "signed_out", 403: "forbidden", 404: "not_found", 409: "conflict"}.get(
        status, "bad_request" if status < 500 else "internal"
    )
    if isinstance(exc, HTTPException) and exc.description == "csrf":
        key = "csrf"
    return (
        render_template(
            "web/error.html",
            **page_globals(),  # also for an address no page matched, which no blueprint's processor sees
            key=key,
            status=status,
            glass_for=_break_glass_offer(status),
            glass_reasons=BREAK_GLASS_REASONS,
        ),
        status,
        _allow(exc),
    )


def _allow(exc: Exception) -> dict[str, str]:
    """A 405's ``Allow`` header (HTTP requires it), on the page as on the problem."""
    if isinstance(exc, MethodNotAllowed):
        return {name: value for name, value in exc.get_headers() if name == "Allow"}
    return {}


def _break_glass_offer(status: int) -> str | None:
    """The instance a clinician may break the glass for: any patient page they are refused as not found
    (offered whether or not the instance exists, so the offer says nothing about it)."""
    user = principal()
    instance_id = (request.view_args or {}).get("instance_id")
    if (
        status != 404
        or request.endpoint != "web.patients.patient"
        or instance_id is None
        or user is None
        or user.role not in BREAK_GLASS_ROLES
        or user.scope.everywhere
    ):
        return None
    return str(instance_id)


_MACHINE_PATHS = ("/v1", "/fhir")  # the HTTP API's and FHIR's: problem+json, whatever the caller accepts


def page_or_problem(exc: HTTPException) -> tuple[str, int, dict[str, str]] | Response:
    """A 404 or 405 anywhere: the error page for a person's browser, problem+json for a program.

    Flask looks for a handler by status code before it looks at the blueprint's, so this sees the
    pages' own 404s too (they keep their page) and every address no route matches: a mistyped page
    address in a browser gets a page, with the navigation back, instead of JSON.
    """
    path = request.path
    if any(path == prefix or path.startswith(prefix + "/") for prefix in _MACHINE_PATHS):
        return to_problem(exc)
    if request.url_rule is None and _prefers_json():
        return to_problem(exc)  # no page matched, and the caller is not a browser (curl, a client library)
    return error_page(exc)


def _prefers_json() -> bool:
    """A browser asks for text/html by name; ``*/*`` (curl, most clients) and JSON get JSON."""
    accepted = request.accept_mimetypes
    return accepted.best_match(["application/problem+json", "application/json", "text/html"]) != "text/html"


def init_app(app: Flask) -> None:
    """Register the pages, their 404 and 405 answers and the session settings (call from :func:`api.create_app`)."""
    app.session_interface = TlsAwareSessions()
    app.register_blueprint(bp)
    app.register_error_handler(NotFound, page_or_problem)
    app.register_error_handler(MethodNotAllowed, page_or_problem)
