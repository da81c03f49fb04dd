"""/v1/instances: start, read, list (cursor pagination), suspend, resume, cancel, retry, correct data."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, url_for

from engine.errors import InstanceExistsError, InvalidInputError
from engine.instances.queries import MAX_LIMIT, STATUSES, InstanceFilter
from engine.instances.view import PATIENT_REF_PATTERN, InstanceView
from engine.pathway_checks import CONFIRM_FIELD, confirm, confirmation_problem, pathway_check, pending_check

from . import carepath, queries
from .auth import current_principal, requires
from .idempotency import idempotent
from .openapi import SCHEMAS
from .parsing import etag, if_match, json_body, query_choice, query_errors, query_int, query_str, query_time
from .safety import VARY, instance_body
from .scope import list_scope, start_placement, visible_instance

bp = Blueprint("instances", __name__, url_prefix="/v1/instances")

_PATIENT_REF = PATIENT_REF_PATTERN
_PATHWAY_ID = SCHEMAS["StartRequest"]["properties"]["pathway_id"]["pattern"]
Reply = tuple[dict[str, Any], int, dict[str, str]]


def instance_filter() -> InstanceFilter:
    """The patient / pathway / status / due-date filters of a list request (also used by /v1/tasks), within
    the caller's care teams (:func:`api.scope.list_scope`).

    Raises: InvalidInputError (a bad filter; break-glass without a patient).
    """
    patient_ref = query_str("patient_ref", _PATIENT_REF)
    return InstanceFilter(
        patient_ref=patient_ref,
        pathway_id=query_str("pathway_id", _PATHWAY_ID),
        status=query_choice("status", STATUSES),
        due_before=query_time("due_before"),
        scope=list_scope(current_principal(), patient_ref),
        pathway_check=query_choice("pathway_check", ("pending",)) == "pending",
    )


def _started(resources: list[str]) -> Reply:
    """A start's answer once more, from the instance it started (read as it is now)."""
    view = carepath().instances.get(resources[0])
    return (
        _checked_body(view),
        201,
        {**etag(view.version), **VARY, "Location": url_for(".get", instance_id=view.id)},
    )


def _checked_body(view: InstanceView) -> dict[str, Any]:
    """An instance with the warnings it carries: the pathway check it waits for (engine.pathway_checks)."""
    check = pending_check(carepath(), view)
    return {**instance_body(view), "warnings": [check.as_warning()] if check is not None else []}


@bp.post("")
@requires("instances.start")
@idempotent(replay=_started)
def start() -> Reply:
    body = json_body("StartRequest")
    principal = current_principal()
    organisation, care_team = start_placement(principal, body.get("organisation"), body.get("care_team"))
    data = body.get("data")
    # A diagnosis naming another site than the pathway's starts with a warning (the engine keeps it on the
    # instance), unless the request confirms that site.
    confirmed = CONFIRM_FIELD in body
    if confirmed:
        vocabulary = carepath().rules.catalogue().diagnoses
        check = pathway_check(vocabulary, body["pathway_id"], data if isinstance(data, dict) else None)
        if (problem := confirmation_problem(check, body[CONFIRM_FIELD], f"/{CONFIRM_FIELD}")) is not None:
            raise InvalidInputError("the pathway cannot be confirmed", [problem])
    try:
        view = carepath().instances.start(
            body["pathway_id"],
            body["patient_ref"],
            principal.actor,
            data,
            organisation=organisation,
            care_team=care_team,
            pathway_checked=confirmed,
        )
    except InstanceExistsError as exc:
        # The 409 names the running instance (Location) only to a caller who may see it: another team's or
        # organisation's instance is not found for this caller, and must not be located through a start.
        exc.instance_id = visible_instance(principal, exc.instance_id)
        raise
    return (
        _checked_body(view),
        201,
        {**etag(view.version), **VARY, "Location": url_for(".get", instance_id=view.id)},
    )


@bp.get("")
@requires("instances.read")
def find() -> dict[str, Any]:
    where, cursor, limit = instance_filter(), query_str("cursor"), query_int("limit", 50, 1, MAX_LIMIT)
    with query_errors():  # a cursor this API did not issue
        return queries().find(where, cursor, limit).as_dict()


@bp.get("/<uuid:instance_id>")
@requires("instances.read")
def get(instance_id: Any) -> Reply:
    view = carepath().instances.get(str(instance_id))
    return _checked_body(view), 200, {**etag(view.version), **VARY}


@bp.post("/<uuid:instance_id>/pathway-check")
@requires("instances.correct")
def check_pathway(instance_id: Any) -> Reply:
    """A clinician's confirmation that the pathway is the one meant for a diagnosis naming another site."""
    body = json_body("PathwayCheck")
    view = confirm(carepath(), str(instance_id), body["site"], current_principal().actor, if_match())
    return _checked_body(view), 200, {**etag(view.version), **VARY}


@bp.post("/<uuid:instance_id>/suspend")
@requires("instances.manage")
def suspend(instance_id: Any) -> Reply:
    reason = json_body("LifecycleRequest", required=False).get("reason")
    view = carepath().instances.suspend(str(instance_id), current_principal().actor, reason, if_match())
    return instance_body(view), 200, {**etag(view.version), **VARY}


@bp.post("/<uuid:instance_id>/resume")
@requires("instances.manage")
def resume(instance_id: Any) -> Reply:
    json_body("LifecycleRequest", required=False)
    view = carepath().instances.resume(str(instance_id), current_principal().actor, if_match())
    return instance_body(view), 200, {**etag(view.version), **VARY}


@bp.post("/<uuid:instance_id>/cancel")
@requires("instances.manage")
def cancel(instance_id: Any) -> Reply:
    reason = json_body("LifecycleRequest", required=False).get("reason")
    view = carepath().instances.cancel(str(instance_id), current_principal().actor, reason, if_match())
    return instance_body(view), 200, {**etag(view.version), **VARY}


@bp.patch("/<uuid:instance_id>/data")
@requires("instances.correct")
def correct_data(instance_id: Any) -> Reply:
    body = json_body("DataCorrection")
    view = carepath().instances.correct_data(
        str(instance_id), body["data"], body["reason"], current_principal().actor, if_match()
    )
    return _checked_body(view), 200, {**etag(view.version), **VARY}  # a corrected diagnosis may ask a check


@bp.put("/<uuid:instance_id>/care-team")
@requires("instances.transfer")
def change_care_team(instance_id: Any) -> Reply:
    body = json_body("CareTeamChange")
    view = carepath().instances.change_care_team(
        str(instance_id), body["care_team"], body["reason"], current_principal().actor, if_match()
    )
    return instance_body(view), 200, {**etag(view.version), **VARY}


@bp.post("/<uuid:instance_id>/retry")
@requires("instances.manage")
def retry(instance_id: Any) -> Reply:
    view = carepath().instances.retry(str(instance_id), current_principal().actor, if_match())
    return instance_body(view), 200, {**etag(view.version), **VARY}
