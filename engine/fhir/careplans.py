"""The care plan, its referrals and the ready tasks as FHIR R4 CarePlan, ServiceRequest and Task (plain dicts).

How CarePath's states map onto FHIR's (docs/fhir.md has the same tables):

=====================  =================================  ================================
instance status        CarePlan.status                    why
=====================  =================================  ================================
running                active
error                  active                             an incident stops the workflow, not the plan
suspended              on-hold
cancelled              revoked
completed              completed
=====================  =================================  ================================

A referral is one care plan item whose status moves proposed -> agreed -> referred -> accepted ->
first_contact -> completed (or declined, service_declined, did_not_attend, withdrawn;
engine.careplan.moves). FHIR would make each stage a new request based on the last; CarePath keeps one
item, so its ServiceRequest shows the stage reached, and the exact stage in the extension
:data:`REFERRAL_STAGE` (R4's ServiceRequest has no businessStatus; its item history is in the trail):

================  ==============  ===========  ===========================================================
item              status          intent       meaning
================  ==============  ===========  ===========================================================
proposed          draft           proposal     the rules proposed it; the patient has not decided
agreed            active          plan         the patient agreed; the referral is not sent yet
referred          active          order        the referral was sent to the service
accepted          active          order        the service accepted it
first_contact     active          order        the service has seen the patient for the first time
did_not_attend    active          order        the patient missed the appointment (it may be rebooked)
completed         completed       order        the service's work is done
service_declined  revoked         order        the service did not take the referral
withdrawn         revoked         order        withdrawn after it was sent
declined          revoked         proposal     the patient declined it
================  ==============  ===========  ===========================================================

Urgency -> ServiceRequest.priority: routine -> routine, soon -> urgent, urgent -> asap, emergency -> stat.
Interventions and information are CarePlan activities with inline details (FHIR's
CarePlan.activity.detail.status: proposed and agreed -> not-started, referred -> in-progress,
completed -> completed, declined -> cancelled, with the reason in words).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.rules import Catalogue

__all__ = ["CAREPATH_CODES", "HNA_CHECKLIST", "REFERRAL_STAGE", "care_plan", "instant", "service_request", "task"]

CAREPATH_CODES = "https://carepath.dev/fhir/CodeSystem"  # CarePath's own code systems, by catalogue
INSTANCE_SYSTEM = "https://carepath.dev/fhir/sid/instance"
# The holistic needs assessment's checklist task: (process, element) of pathways/shared/holistic_needs_assessment.bpmn.
HNA_CHECKLIST = ("holistic_needs_assessment", "complete_checklist")

_PLAN_STATUS = {
    "running": "active",
    "error": "active",
    "suspended": "on-hold",
    "cancelled": "revoked",
    "completed": "completed",
}
_REQUEST = {
    "proposed": ("draft", "proposal"),
    "agreed": ("active", "plan"),
    "referred": ("active", "order"),
    "accepted": ("active", "order"),
    "first_contact": ("active", "order"),
    "did_not_attend": ("active", "order"),
    "completed": ("completed", "order"),
    "service_declined": ("revoked", "order"),
    "withdrawn": ("revoked", "order"),
    "declined": ("revoked", "proposal"),
}
# The referral's exact stage (a CarePath status code): R4's ServiceRequest.status has fewer.
REFERRAL_STAGE = "https://carepath.dev/fhir/StructureDefinition/referral-stage"
_PRIORITY = {"routine": "routine", "soon": "urgent", "urgent": "asap", "emergency": "stat"}
_ACTIVITY = {
    "proposed": ("not-started", "Proposed from the needs assessment; the patient has not decided yet"),
    "agreed": ("not-started", "Agreed with the patient"),
    "referred": ("in-progress", "Referred"),
    "accepted": ("in-progress", "Accepted by the service"),
    "first_contact": ("in-progress", "Seen by the service"),
    "did_not_attend": ("on-hold", "Did not attend"),
    "completed": ("completed", None),
    "service_declined": ("cancelled", "Declined by the service"),
    "withdrawn": ("stopped", "Withdrawn"),
    "declined": ("cancelled", "Declined by the patient"),
}


def _intervention(code: str, catalogue: Catalogue) -> dict[str, Any]:
    entry = catalogue.interventions.get(code)
    coding: dict[str, Any] = {"system": f"{CAREPATH_CODES}/intervention", "code": code}
    if entry is not None:
        coding["display"] = entry.name_en
    return {"coding": [coding], "text": entry.name_en if entry is not None else code}


def _service_type(code: str, catalogue: Catalogue) -> dict[str, Any]:
    entry = catalogue.service_types.get(code)
    coding: dict[str, Any] = {"system": f"{CAREPATH_CODES}/service-type", "code": code}
    if entry is not None:
        coding["display"] = entry.name_en
    return {"coding": [coding]}


def _reference(kind: str, resource_id: str) -> dict[str, str]:
    return {"reference": f"{kind}/{resource_id}"}


def instant(value: datetime | str) -> str:
    """A date-time as FHIR wants it, with its zone (CarePath keeps UTC; SQLite returns it without a zone)."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).isoformat()


def service_request(
    item: dict[str, Any], instance_id: str, patient: dict[str, Any], catalogue: Catalogue
) -> dict[str, Any]:
    """A referral (a care plan item of kind ``referral``, as ``CarePlan.items`` holds it) as a ServiceRequest."""
    status, intent = _REQUEST[item["status"]]
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": item["id"],
        "meta": {"lastUpdated": instant(item["updated_at"])},
        "status": status,
        "intent": intent,
        "code": _intervention(item["code"], catalogue),
        "subject": patient,
        "basedOn": [_reference("CarePlan", instance_id)],
        "authoredOn": instant(item["created_at"]),
        "reasonReference": [_reference("QuestionnaireResponse", item["evaluation_id"])],
        "note": [{"text": _provenance(item)}],
        "extension": [
            {
                "url": REFERRAL_STAGE,
                "valueCoding": {"system": f"{CAREPATH_CODES}/referral-stage", "code": item["status"]},
            }
        ],
    }
    if item.get("urgency") in _PRIORITY:
        resource["priority"] = _PRIORITY[item["urgency"]]
    if item.get("service"):
        resource["performerType"] = _service_type(item["service"], catalogue)
    return resource


def _provenance(item: dict[str, Any]) -> str:
    rules = ", ".join(item.get("rules") or []) or "no rule recorded"
    text = f"Proposed by the care plan rules ({rules}) from the needs assessment it names as its reason"
    if item["status"] == "declined":
        text += "; declined by the patient"
    return text + "."


def _activity(item: dict[str, Any], catalogue: Catalogue) -> dict[str, Any]:
    if item["kind"] == "referral":
        return {"reference": _reference("ServiceRequest", item["id"])}
    status, reason = _ACTIVITY[item["status"]]
    detail: dict[str, Any] = {
        "code": _intervention(item["code"], catalogue),
        "status": status,
        "reasonReference": [_reference("QuestionnaireResponse", item["evaluation_id"])],
        "description": "Information for the patient" if item["kind"] == "information" else "Intervention",
    }
    if item["kind"] == "information":
        detail["kind"] = "CommunicationRequest"
    if reason:
        detail["statusReason"] = {"text": reason}
    return {"detail": detail}


def care_plan(
    plan: Any, summary: dict[str, Any], patient: dict[str, Any], assessments: list[str], catalogue: Catalogue
) -> dict[str, Any]:
    """An instance's personalised care and support plan as a CarePlan.

    ``plan`` is :class:`engine.careplan.service.CarePlan`, ``summary`` the instance as listings show it
    (``engine.instances.queries.summary``), ``assessments`` the ids of its needs assessments (each a
    QuestionnaireResponse); every item becomes an activity: a referral by reference to its
    ServiceRequest, an intervention or information inline.
    """
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": plan.instance_id,
        "meta": {"versionId": str(summary["version"]), "lastUpdated": instant(summary["updated_at"])},
        "identifier": [{"system": INSTANCE_SYSTEM, "value": plan.instance_id}],
        "instantiatesUri": [f"urn:carepath:pathway:{plan.pathway_id}:{plan.pathway_version}"],
        "status": _PLAN_STATUS.get(summary["status"], "unknown"),
        "intent": "plan",
        "category": [{"text": "Personalised care and support plan"}],
        "title": "Personalised care and support plan",
        "description": f"The care plan of pathway {plan.pathway_id} (version {plan.pathway_version[:12]})",
        "subject": patient,
        "period": {"start": instant(summary["created_at"])},
        "created": instant(summary["created_at"]),
    }
    if assessments:
        resource["supportingInfo"] = [_reference("QuestionnaireResponse", a) for a in assessments]
    if plan.items:
        resource["activity"] = [_activity(item, catalogue) for item in plan.items]
    if plan.what_matters:
        resource["note"] = [{"text": f"What matters to me: {plan.what_matters}"}]
    return resource


def task(ready: dict[str, Any], patient: dict[str, Any], questionnaire: str | None) -> dict[str, Any]:
    """A ready task (``InstanceQueries.ready_tasks``' item) as a Task; ``questionnaire`` is the checklist's
    canonical URL (with its version), given as the task's input when the task is the needs assessment."""
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": ready["id"],
        "status": "ready",
        "intent": "order",
        "code": {
            "coding": [
                {"system": f"{CAREPATH_CODES}/pathway-task", "code": ready["element"], "display": ready["name"]}
            ],
            "text": ready["name"],
        },
        "description": ready["name"],
        "basedOn": [_reference("CarePlan", ready["instance_id"])],
        "for": patient,
    }
    if ready.get("lane"):
        resource["performerType"] = [{"text": ready["lane"]}]
    if questionnaire is not None and (ready["process"], ready["element"]) == HNA_CHECKLIST:
        resource["input"] = [{"type": {"text": "questionnaire"}, "valueCanonical": questionnaire}]
    return resource
