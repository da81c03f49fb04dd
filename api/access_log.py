"""Who looked: every read of a patient's records through the API, FHIR or the web app is recorded
(:mod:`engine.access_log`), and auditors query it at ``GET /v1/access-log``.

Each ``GET`` is watched while it runs (and each web form's POST: one answered with a page, not a redirect, shows
the patient as a ``GET`` would, and is recorded under its own permission when it read an instance); when its
response is ready and its route needs a patient-data
permission (:data:`engine.access_log.PATIENT_DATA_READS`, read from the ``permission`` that
:func:`api.auth.requires` and the web app's ``page`` put on each view) -- or shows patients' records under
another permission and says so (:func:`shows_patients`: the auditors' trail page lists patients under
``audit.verify``, whose API routes show none) -- the instances it loaded, and the instance its URL names,
are recorded with the caller, the route's template and the status. A
request without a valid token never reaches a view and names no one: it is not a look. If the record
cannot be written the read still answers, and the log says a record was lost (its type, no data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, g, request

from engine.access_log import PATIENT_DATA_READS, Access, ReadFilter, list_reads, record_reads, watching
from engine.db.session import read_only
from engine.instances.view import PATIENT_REF_PATTERN

from . import carepath
from .auth import current_principal, requires
from .parsing import query_choice, query_errors, query_int, query_str, query_time

__all__ = ["bp", "init_app", "shows_patients"]

log = logging.getLogger(__name__)
bp = Blueprint("access_log", __name__, url_prefix="/v1")

_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_READS = ("GET", "HEAD")
_WEB = "web."  # the web app's endpoints (api/web): their form POSTs may answer with a page
View = TypeVar("View", bound=Callable[..., Any])


def shows_patients(view: View) -> View:
    """Mark a view that shows patients' records although its permission is not one of
    :data:`engine.access_log.PATIENT_DATA_READS` (a page whose permission other, patient-free routes share):
    its reads are recorded like any patient-data read, with its own permission as the action."""
    view.shows_patients = True  # type: ignore[attr-defined]
    return view


@bp.get("/access-log")
@requires("access_log.read")
def access_log() -> dict[str, Any]:
    glass = query_choice("break_glass", ("true", "false"))
    # An auditor of an organisation sees its records only (engine.care_teams); a token of every organisation, all.
    where = ReadFilter(
        patient_ref=query_str("patient_ref", PATIENT_REF_PATTERN),
        instance_id=query_str("instance_id", _UUID),
        actor=query_str("actor", max_length=200),
        since=query_time("from"),
        until=query_time("to"),
        organisation=current_principal().scope.organisation,
        break_glass=None if glass is None else glass == "true",
    )
    cursor, limit = query_str("cursor"), query_int("limit", 100, 1, 200)
    with query_errors(), read_only(carepath().sessions) as session:
        items, next_cursor = list_reads(session, where, cursor, limit)
    return {"items": items, "next_cursor": next_cursor}


def _permission() -> str | None:
    """The permission of the request's view when its reads are recorded (a patient-data permission, or a
    view marked with :func:`shows_patients`), else None."""
    view = current_app.view_functions.get(request.endpoint or "")
    permission = getattr(view, "permission", None)
    if permission in PATIENT_DATA_READS or (permission is not None and getattr(view, "shows_patients", False)):
        return str(permission)
    return None


def _page_shown(response: Response) -> str | None:
    """The permission of a web form's POST answered with a page rather than a redirect (its problems shown
    on the form, a care plan section swapped in, "the pathway changed"): that page shows the patient too, so
    it is a look like a GET's. None for any other POST (the API's answers hold what the caller sent)."""
    if response.mimetype != "text/html" or 300 <= response.status_code < 400:
        return None
    permission = getattr(current_app.view_functions.get(request.endpoint or ""), "permission", None)
    return str(permission) if permission is not None else None


def init_app(app: Flask) -> None:
    """Watch every read request; record the patient-data ones."""

    @app.before_request
    def watch() -> None:
        if request.method in _READS or (request.endpoint or "").startswith(_WEB):
            g.access_watch = watching()
            g.access_seen = g.access_watch.__enter__()

    @app.after_request
    def record(response: Response) -> Response:
        watch = g.pop("access_watch", None)
        if watch is None:
            return response
        seen: set[str] = set(g.pop("access_seen", set()))
        watch.__exit__(None, None, None)
        principal = g.get("principal")
        permission = _permission() if request.method in _READS else _page_shown(response)
        if permission is None or principal is None:
            return response
        named = (request.view_args or {}).get("instance_id")
        if named is not None:
            seen.add(str(named))
        if request.method not in _READS and not seen:
            return response  # a form of no patient's (an author's diagram, a sign-in): nothing was looked at
        engine = carepath()
        glass = g.get("break_glass")
        access = Access(
            at=engine.clock.now(),
            actor=principal.actor,
            action=permission,
            route=f"{request.method} {request.url_rule.rule if request.url_rule else request.path}",
            status=response.status_code,
            request_id=str(g.get("request_id", "")),
            on_behalf_of=principal.on_behalf_of,
            break_glass_reason=None if glass is None else glass.reason,
            break_glass_note=None if glass is None else glass.note,
        )
        try:
            record_reads(engine.sessions, access, seen)
        except Exception as exc:  # the read has been answered; an auditor's gap is logged, not the patient
            log.error(
                "access record lost: %s writing %d row(s) for %s", type(exc).__name__, max(len(seen), 1), access.route
            )
        return response

    @app.teardown_request
    def stop_watching(_exc: BaseException | None) -> None:
        watch = g.pop("access_watch", None)
        if watch is not None:
            watch.__exit__(None, None, None)
