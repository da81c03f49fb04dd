"""/v1/patient-identities: link a person's OpenID Connect identity to the patient reference whose own
records they may read (admin and system tokens: the organisation's identity process, or a patient app's
back end after it has checked who the person is). ``carepath patients link`` does the same.

A token with an organisation links, lists and unlinks only patients with an instance in its organisation
(engine.patients): any other patient is not found, as an unknown one is."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from engine.db.session import read_only, unit_of_work
from engine.instances.view import PATIENT_REF_PATTERN
from engine.patients import link_identity, list_identities, unlink_identity

from . import carepath
from .auth import current_principal, requires
from .parsing import json_body, query_str

__all__ = ["bp"]

bp = Blueprint("patient_identities", __name__, url_prefix="/v1/patient-identities")


@bp.post("")
@requires("patients.link")
def link() -> tuple[dict[str, Any], int]:
    body = json_body("PatientIdentityRequest")
    engine, principal = carepath(), current_principal()
    with unit_of_work(engine.sessions) as session:
        found = link_identity(
            session,
            body["issuer"],
            body["subject"],
            body["patient_ref"],
            principal.actor,
            engine.clock,
            scope=principal.scope,
        )
    return found.as_dict(), 201


@bp.get("")
@requires("patients.link")
def find() -> dict[str, Any]:
    patient_ref = query_str("patient_ref", PATIENT_REF_PATTERN)
    with read_only(carepath().sessions) as session:
        links = list_identities(session, patient_ref, scope=current_principal().scope)
        return {"items": [link.as_dict() for link in links]}


@bp.post("/unlink")
@requires("patients.link")
def unlink() -> dict[str, Any]:
    body = json_body("PatientIdentityRef")
    with unit_of_work(carepath().sessions) as session:
        return unlink_identity(session, body["issuer"], body["subject"], current_principal().scope).as_dict()
