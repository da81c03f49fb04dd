"""Tasks: ready tasks across instances, open referral escalations and overdue end of treatment
summaries, one task with its form, completing a task or an escalation."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from engine.errors import NotFoundError
from engine.instances.queries import MAX_LIMIT

from . import carepath, queries
from .auth import current_principal, requires
from .idempotency import idempotent
from .instances import instance_filter
from .parsing import etag, if_match, json_body, query_errors, query_int, query_str
from .safety import VARY, instance_body, with_notices, with_notices_across

bp = Blueprint("tasks", __name__, url_prefix="/v1")

Reply = tuple[dict[str, Any], int, dict[str, str]]


@bp.get("/tasks")
@requires("tasks.read")
def list_ready() -> tuple[dict[str, Any], int, dict[str, str]]:
    where, element = instance_filter(), query_str("element", r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")
    cursor, limit = query_str("cursor"), query_int("limit", 20, 1, MAX_LIMIT)
    with query_errors():  # a cursor this API did not issue, a status other than running
        page = queries().ready_tasks(where, element, cursor, limit)
    # Referrals not accepted in time, for their named contacts: on the first page, not counted in pages.
    escalations = (
        []
        if cursor or element
        else carepath().referral_escalations.list_open(where.patient_ref, where.pathway_id, where.scope.condition())
    )
    # End of treatment summaries not written within 6 weeks of their phase's end, likewise.
    overdue = (
        []
        if cursor or element
        else carepath().treatment_summaries.list_overdue(where.patient_ref, where.pathway_id, where.scope.condition())
    )
    return (
        {
            **page.as_dict(),
            "items": with_notices_across(page),
            "escalations": escalations,
            "summaries_overdue": overdue,
        },
        200,
        VARY,
    )


def _escalation_completed(resources: list[str], escalation_id: Any) -> Reply:
    return carepath().referral_escalations.get(resources[0]), 200, {}


@bp.post("/referral-escalations/<uuid:escalation_id>/complete")
@requires("tasks.complete", named="referral_escalation")
@idempotent(replay=_escalation_completed)
def complete_escalation(escalation_id: Any) -> Reply:
    outcome = json_body("EscalationCompletion")["outcome"]
    return carepath().referral_escalations.complete(str(escalation_id), outcome, current_principal().actor), 200, {}


@bp.get("/instances/<uuid:instance_id>/tasks/<uuid:task_id>")
@requires("tasks.read")
def get(instance_id: Any, task_id: Any) -> Reply:
    view = carepath().instances.get(str(instance_id))
    for task in view.ready_tasks:
        if task["id"] == str(task_id):
            item = {
                **task,
                "instance_id": view.id,
                "instance_version": view.version,
                "pathway_id": view.pathway_id,
                "patient_ref": view.patient_ref,
            }
            return with_notices([item], view.id)[0], 200, {**etag(view.version), **VARY}
    raise NotFoundError("no ready task with this id in the instance")


def _task_completed(resources: list[str], instance_id: Any, task_id: Any) -> Reply:
    view = carepath().instances.get(str(instance_id))
    return instance_body(view), 200, {**etag(view.version), **VARY}


@bp.post("/instances/<uuid:instance_id>/tasks/<uuid:task_id>/complete")
@requires("tasks.complete")
@idempotent(replay=_task_completed)
def complete(instance_id: Any, task_id: Any) -> Reply:
    data = json_body("CompleteRequest")["data"]
    view = carepath().instances.complete_task(
        str(instance_id), str(task_id), data, current_principal().actor, expected_version=if_match()
    )
    return instance_body(view), 200, {**etag(view.version), **VARY}
