"""/fhir/R4: CarePath's FHIR R4 API (docs/fhir.md), a thin layer over :class:`engine.fhir.FhirService`.

Responses are ``application/fhir+json``. Authentication and roles are /v1's (the same bearer tokens,
:func:`api.auth.requires` and :data:`engine.access.PERMISSIONS`); only ``/metadata`` is public. Errors
are classified once, by the app's handler (api/errors.py), and this blueprint answers them as FHIR
OperationOutcomes instead of problem details: same status, same headers, an IssueType for the
problem type. Paths under /fhir/R4 that are not routes get an OperationOutcome too.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import MethodNotAllowed, NotFound

from engine.care_teams import CareScope
from engine.errors import InvalidInputError, Problem
from engine.fhir import RESOURCES, FhirService, capability_statement, operation_outcome, searchset
from engine.fhir.identifiers import patient_ref_from_search

from . import __version__, carepath
from .auth import current_principal, requires
from .errors import ApiError
from .openapi import FHIR_BASE, PROBLEM_BASE
from .parsing import strict_json, unstorable_values
from .scope import list_scope

__all__ = ["FHIR_JSON", "bp", "init_app"]

FHIR_JSON = "application/fhir+json"
bp = Blueprint("fhir", __name__, url_prefix=FHIR_BASE)

_ID = "<string(maxlength=64):resource_id>"  # FHIR ids are at most 64 characters
# Problem type (api/errors.py) -> FHIR IssueType.
_ISSUE = {
    "unauthenticated": "login",
    "forbidden": "forbidden",
    "not-found": "not-found",
    "method-not-allowed": "not-supported",
    "unsupported-media-type": "not-supported",
    "body-too-large": "too-costly",
    "task-data-invalid": "invalid",
    "input-invalid": "invalid",
    "request-invalid": "invalid",
    "malformed-json": "structure",
    "instance-state-conflict": "business-rule",
    "instance-changed": "conflict",
    "task-not-ready": "conflict",
    "database-unavailable": "transient",
    "internal-error": "exception",
    "rule-file-invalid": "exception",
}
_FORMATS = ("json", "application/json", "application/fhir+json")
_PERMISSION = {r.type: r.permission for r in RESOURCES}


def init_app(extensions: dict[str, Any], engine: Any) -> None:
    """The FHIR service over the app's engine."""
    extensions["carepath.fhir"] = FhirService(engine, f"CarePath {__version__}")


def _fhir() -> FhirService:
    service: FhirService = current_app.extensions["carepath.fhir"]
    return service


def _base() -> str:
    return request.url_root.rstrip("/") + FHIR_BASE


def _answer(resource: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(resource, ensure_ascii=False), status=status, mimetype=FHIR_JSON)
    response.headers.update(headers or {})
    return response


@bp.before_request
def _negotiate() -> None:
    """JSON only: ``_format`` and ``Accept`` may ask for it (or for anything); XML is refused (406)."""
    wanted = request.args.getlist("_format")
    accept = request.accept_mimetypes
    acceptable = not accept or accept.best_match([FHIR_JSON, "application/json"]) is not None
    if any(f not in _FORMATS for f in wanted) or not acceptable:
        status, slug = (400, "request-invalid") if acceptable else (406, "unsupported-media-type")
        raise ApiError(
            status,
            slug,
            "this server speaks FHIR JSON only (application/fhir+json)",
            [Problem("must be json or application/fhir+json", field="_format")] if wanted else [],
        )


@bp.after_request
def _as_operation_outcome(response: Response) -> Response:
    """An error the app answered as problem details, answered as a FHIR OperationOutcome."""
    if response.mimetype != "application/problem+json":
        return response
    problem = json.loads(response.get_data())
    slug = str(problem.get("type", "")).removeprefix(PROBLEM_BASE)
    problems = [
        Problem(e.get("message", ""), field=e.get("field") or e.get("element")) for e in problem.get("errors", [])
    ]
    outcome = operation_outcome(
        _ISSUE.get(slug, "processing"),
        problem.get("detail") or problem.get("title", ""),
        problems,
        request_id=str(problem.get("request_id", "")),
    )
    response.set_data(json.dumps(outcome))
    response.mimetype = FHIR_JSON
    return response


def _patient(resource_type: str) -> str:
    """The patient a search names (``patient`` or ``patient:identifier``); refuses any other parameter.

    Raises: ApiError 400 (a parameter not supported, none or two patients, a bad patient).
    """
    allowed = {"patient", "patient:identifier", "_format"}
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise ApiError(
            400,
            "request-invalid",
            f"search parameters not supported for {resource_type}",
            [
                Problem("is not a search parameter here (supported: patient, patient:identifier)", field=name[:50])
                for name in unknown[:10]
            ],
        )
    given = [(name, value) for name in ("patient", "patient:identifier") for value in request.args.getlist(name)]
    if len(given) != 1:
        raise ApiError(
            400,
            "request-invalid",
            f"a {resource_type} search names exactly one patient",
            [Problem("give one patient (or patient:identifier=<system>|<value>)", field="patient")],
        )
    name, value = given[0]
    try:
        return patient_ref_from_search(name, value, _fhir().kind)
    except InvalidInputError as exc:
        raise ApiError(400, "request-invalid", exc.message, list(exc.problems)) from exc


def _scope(patient_ref: str) -> CareScope:
    """The caller's care teams to search a patient's records in (with break-glass, their organisation's:
    :func:`api.scope.list_scope`)."""
    return list_scope(current_principal(), patient_ref)


def _resource_body() -> dict[str, Any]:
    """The request's FHIR resource (JSON).

    Read as /v1 reads its bodies (:func:`api.parsing.strict_json`): ``NaN`` and ``Infinity`` are not
    JSON, and what parses but could not be kept (``1e400``, a lone surrogate, deep nesting) is
    refused where it is, so no such value reaches a task's data.

    Raises: ApiError 415 (not JSON), 400 (malformed, not an object, or holding such values).
    """
    if request.mimetype not in (FHIR_JSON, "application/json"):
        raise ApiError(415, "unsupported-media-type", "send the resource as application/fhir+json")
    try:
        body = strict_json(request.get_data())
    except (ValueError, RecursionError) as exc:
        constant = not isinstance(exc, json.JSONDecodeError | UnicodeDecodeError)  # NaN, Infinity, -Infinity
        raise ApiError(
            400,
            "malformed-json",
            "the body is not valid UTF-8 JSON",
            [Problem("NaN, Infinity and -Infinity are not JSON numbers", field="/")] if constant else [],
        ) from exc
    unstorable = unstorable_values(body)
    if unstorable:
        raise ApiError(
            400,
            "request-invalid",
            "the resource holds values CarePath cannot store",
            [Problem(p.message, field=_fhir_path(body, p.field), code=p.code) for p in unstorable],
        )
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "request-invalid",
            "the body is not a FHIR resource",
            [Problem("must be a JSON object with a resourceType", field="/")],
        )
    return body


def _fhir_path(body: Any, pointer: str | None) -> str:
    """A JSON pointer into a resource, as FHIRPath: ``/item/1/answer/0`` is
    ``QuestionnaireResponse.item[1].answer[0]``."""
    kind = body.get("resourceType") if isinstance(body, dict) else None
    path = kind if isinstance(kind, str) and kind.isalpha() and len(kind) <= 64 else "Resource"
    for part in (pointer or "").split("/")[1:]:
        if part.isdigit():
            path += f"[{part}]"
        else:  # a FHIR element's name; anything else is the client's text, not quoted
            path += f".{part}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", part) else ".(a property)"
    return path


def _bundle(resources: list[dict[str, Any]]) -> Response:
    return _answer(searchset(resources, _base(), request.url))


def _language() -> str | None:
    return request.accept_languages.best


# --- the server ----------------------------------------------------------------------------------


@bp.get("/metadata")
def metadata() -> Response:
    """The CapabilityStatement (no authentication)."""
    fhir = _fhir()
    return _answer(
        capability_statement(fhir.software, __version__, _base(), fhir.patient_system, carepath().clock.now())
    )


# --- care plans, referrals, tasks ----------------------------------------------------------------


@bp.get("/CarePlan")
@requires(_PERMISSION["CarePlan"])
def search_care_plans() -> Response:
    patient = _patient("CarePlan")
    return _bundle(_fhir().care_plans(patient, _scope(patient)))


@bp.get(f"/CarePlan/{_ID}")
@requires(_PERMISSION["CarePlan"], named="care_plan")
def read_care_plan(resource_id: str) -> Response:
    return _answer(_fhir().care_plan(resource_id))


@bp.get("/ServiceRequest")
@requires(_PERMISSION["ServiceRequest"])
def search_service_requests() -> Response:
    patient = _patient("ServiceRequest")
    return _bundle(_fhir().service_requests(patient, _scope(patient)))


@bp.get(f"/ServiceRequest/{_ID}")
@requires(_PERMISSION["ServiceRequest"], named="care_plan_item")
def read_service_request(resource_id: str) -> Response:
    return _answer(_fhir().service_request(resource_id))


@bp.get("/Task")
@requires(_PERMISSION["Task"])
def search_tasks() -> Response:
    patient = _patient("Task")
    return _bundle(_fhir().tasks(patient, _scope(patient)))


# --- needs assessments ---------------------------------------------------------------------------


@bp.get("/Questionnaire")
@requires(_PERMISSION["Questionnaire"])
def search_questionnaires() -> Response:
    unknown = sorted(set(request.args) - {"url", "_format"})
    if unknown:
        raise ApiError(
            400,
            "request-invalid",
            "search parameters not supported for Questionnaire",
            [Problem("is not a search parameter here (supported: url)", field=n[:50]) for n in unknown[:10]],
        )
    checklist = _fhir().questionnaire()
    urls = request.args.getlist("url")
    return _bundle([checklist] if all(u.split("|")[0] == checklist["url"] for u in urls) else [])


@bp.get(f"/Questionnaire/{_ID}")
@requires(_PERMISSION["Questionnaire"])
def read_questionnaire(resource_id: str) -> Response:
    checklist = _fhir().questionnaire()
    if resource_id != checklist["id"]:
        raise NotFound("no such questionnaire")
    return _answer(checklist)


@bp.get("/QuestionnaireResponse")
@requires(_PERMISSION["QuestionnaireResponse"])
def search_questionnaire_responses() -> Response:
    patient = _patient("QuestionnaireResponse")
    return _bundle(_fhir().questionnaire_responses(patient, _scope(patient)))


@bp.get(f"/QuestionnaireResponse/{_ID}")
@requires(_PERMISSION["QuestionnaireResponse"], named="questionnaire_response")
def read_questionnaire_response(resource_id: str) -> Response:
    return _answer(_fhir().questionnaire_response(resource_id))


@bp.post("/QuestionnaireResponse")
@requires("tasks.complete")
def create_questionnaire_response() -> Response:
    """A patient app's completed checklist completes the patient's waiting needs assessment."""
    if request.args and set(request.args) != {"_format"}:
        raise ApiError(
            400,
            "request-invalid",
            "create takes no parameters",
            [Problem("is not a parameter here", field=n[:50]) for n in sorted(request.args)[:10]],
        )
    resource = _resource_body()
    stored = _fhir().complete_assessment(resource, current_principal().actor, current_principal().scope)
    if stored is None:
        return _answer(
            operation_outcome(
                "informational",
                "the needs assessment was completed; the pathway stored "
                "no assessment for it (see the instance's status)",
                severity="information",
            )
        )
    return _answer(stored, 201, {"Location": f"{_base()}/QuestionnaireResponse/{stored['id']}"})


# --- the End of Treatment Summary, and the active surveillance plan ----------------------------------


@bp.get("/Composition")
@requires(_PERMISSION["Composition"])
def search_compositions() -> Response:
    patient = _patient("Composition")
    return _bundle(_fhir().compositions(patient, _language(), _scope(patient)))


@bp.get(f"/Composition/{_ID}")
@requires(_PERMISSION["Composition"], named="composition")
def read_composition(resource_id: str) -> Response:
    return _answer(_fhir().composition(resource_id, _language()))


@bp.get(f"/Composition/{_ID}/$document")
@requires(_PERMISSION["Composition"], named="composition")
def composition_document(resource_id: str) -> Response:
    return _answer(_fhir().document(resource_id, _base(), _language()))


# --- everything else under the base -------------------------------------------------------------------


@bp.route("/", defaults={"rest": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_served(rest: str) -> Response:
    """A path or method this server does not support, answered as FHIR (an OperationOutcome)."""
    known = rest.split("/", 1)[0] in _PERMISSION or rest == "metadata"
    if known:
        raise MethodNotAllowed(description="this interaction is not supported (see the CapabilityStatement)")
    raise NotFound("this server does not serve that (see the CapabilityStatement at /fhir/R4/metadata)")
