"""/v1/me: a patient's own records (issue 18 point 2), for a patient app or the patient's web page.

A patient's bearer token (an API token made with ``--role patient --patient-ref X``, or an OpenID Connect
token whose subject is linked to X) reads X's pathways, their own ready forms and their documents, submits
those forms and reports warning signs. Everything is scoped by :func:`engine.patients.require_own`: another
patient's instance id answers 404 exactly as an id nobody has. Staff tasks are never shown: the care plan
document a patient reads has no ``next_steps.ready_tasks`` (their names are the staff's words).
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Blueprint, Response

from engine.documents.build import (
    active_surveillance_plan,
    care_plan_document,
    end_of_treatment_summary,
    reported_sign_advice,
)
from engine.instances.queries import InstanceFilter
from engine.instances.view import InstanceView
from engine.patients import complete_own_form, own_forms, report_warning_sign, request_assessment, require_own

from . import carepath, queries
from .auth import current_principal, requires
from .documents import negotiated
from .idempotency import idempotent
from .parsing import etag, if_match, json_body
from .safety import VARY, reader_language, with_notices

__all__ = ["bp", "patient_instance", "patient_view"]

bp = Blueprint("me", __name__, url_prefix="/v1/me")

Reply = tuple[dict[str, Any], int, dict[str, str]]
MAX_INSTANCES = 50  # a patient has a handful of pathways; more would be a data error, not a page to turn


def patient_view(instance_id: str) -> InstanceView:
    """The signed-in patient's own instance. Raises: NotFoundError (none, or another patient's)."""
    return require_own(current_principal(), carepath().instances.get(instance_id))


def patient_instance(view: InstanceView) -> dict[str, Any]:
    """An instance as its patient sees it: no staff task, their own forms with their safety notices."""
    forms = [
        {key: form[key] for key in ("id", "element", "kind", "name", "form")}
        for form in with_notices(own_forms(view), view.id)
    ]
    return {
        "id": view.id,
        "pathway_id": view.pathway_id,
        "status": view.status,
        "version": view.version,
        "next_due_at": view.next_due_at,
        "forms": forms,
    }


def _for_patient(document: dict[str, Any]) -> dict[str, Any]:
    """The care plan without the staff's names of their own tasks (what happens now stays, in plain words)."""
    steps = document.get("next_steps")
    if isinstance(steps, dict):
        document = {**document, "next_steps": {**steps, "ready_tasks": []}}
    return document


@bp.get("")
@requires("patient.read")
def records() -> tuple[dict[str, Any], int, dict[str, str]]:
    patient_ref = current_principal().patient_ref
    page = queries().find(InstanceFilter(patient_ref=patient_ref), None, MAX_INSTANCES)
    views = [patient_view(item["id"]) for item in page.items]
    return {"patient_ref": patient_ref, "instances": [patient_instance(v) for v in views]}, 200, VARY


@bp.get("/instances/<uuid:instance_id>/care-plan")
@requires("patient.read")
def care_plan(instance_id: Any) -> Response:
    view = patient_view(str(instance_id))
    return negotiated(care_plan_document, view.id, "care-plan", _for_patient)


@bp.get("/instances/<uuid:instance_id>/end-of-treatment-summary")
@requires("patient.read")
def end_of_treatment(instance_id: Any) -> Response:
    view = patient_view(str(instance_id))
    return negotiated(end_of_treatment_summary, view.id, "end-of-treatment-summary")


@bp.get("/instances/<uuid:instance_id>/active-surveillance-plan")
@requires("patient.read")
def surveillance_plan(instance_id: Any) -> Response:
    view = patient_view(str(instance_id))
    return negotiated(active_surveillance_plan, view.id, "active-surveillance-plan")


@bp.get("/instances/<uuid:instance_id>/end-of-treatment-summaries/<int(min=1, max=999):number>")
@requires("patient.read")
def end_of_treatment_phase(instance_id: Any, number: int) -> Response:
    """The summary of one phase of care of the patient's own (each course of treatment that ended)."""
    view = patient_view(str(instance_id))
    return negotiated(
        functools.partial(end_of_treatment_summary, phase=number), view.id, f"end-of-treatment-summary-{number}"
    )


def _form_submitted(resources: list[str], instance_id: Any, task_id: Any) -> Reply:
    view = patient_view(str(instance_id))
    return patient_instance(view), 200, {**etag(view.version), **VARY}


@bp.post("/instances/<uuid:instance_id>/forms/<uuid:task_id>")
@requires("patient.submit")
@idempotent(replay=_form_submitted)
def submit_form(instance_id: Any, task_id: Any) -> Reply:
    data = json_body("CompleteRequest")["data"]
    view = complete_own_form(
        carepath().instances, current_principal(), str(instance_id), str(task_id), data, if_match()
    )
    return patient_instance(view), 200, {**etag(view.version), **VARY}


def _receipt(instances: list[str], warning_sign: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The instances reached and what to tell the patient to do now (the first instance's numbers: a
    patient's pathways share their health system and line, but for a child's)."""
    advice = reported_sign_advice(carepath(), instances[0], warning_sign, reader_language())
    return {"instances": instances, "advice": advice}, 202, VARY


def _warning_sign_reported(resources: list[str]) -> tuple[dict[str, Any], int, dict[str, str]]:
    # A retry whose first attempt committed: the same key and body (its fingerprint), so the same sign.
    return _receipt(resources, json_body("WarningSignReport")["warning_sign"])


def _assessment_requested(resources: list[str], instance_id: Any) -> Reply:
    view = patient_view(str(instance_id))
    return patient_instance(view), 202, {**etag(view.version), **VARY}


@bp.post("/instances/<uuid:instance_id>/assessment-requests")
@requires("patient.ask")
@idempotent(replay=_assessment_requested)
def ask_for_assessment(instance_id: Any) -> Reply:
    """The patient asks for a needs assessment now; the assessment's form follows (202: it is their team's
    to arrange, and it may start by a conversation)."""
    view = patient_view(str(instance_id))  # another patient's: not found, whatever the body says
    json_body("AssessmentRequest", required=False)
    view = request_assessment(carepath().instances, current_principal(), view.id)
    view = carepath().instances.get(view.id)  # the revision after the request's own step
    return patient_instance(view), 202, {**etag(view.version), **VARY}


@bp.post("/warning-signs")
@requires("patient.report")
@idempotent(replay=_warning_sign_reported)
def warning_sign() -> tuple[dict[str, Any], int, dict[str, str]]:
    body = json_body("WarningSignReport")
    views = report_warning_sign(
        carepath().instances, current_principal(), body["warning_sign"], body.get("description")
    )
    return _receipt([view.id for view in views], body["warning_sign"])
