"""The webhook event catalogue, and how a step's events become webhook events (:class:`Notice`).

Nothing here reads the database: a step's facts -- the trail events it appended, the ready tasks
before and after it, the referrals it created or moved (:class:`StepFacts`) -- go in, the webhook
events come out. Each names the trail event it came from (``trail_seq``), so a receiver can read
more through the API (``GET /v1/instances/{id}/events``) with its own token.

==========================  ================================================================
``task.ready``              a task a person must complete became ready (ready tasks compared
                            before and after the step)
``task.overdue``            a timer on the boundary of a task a person must complete fired
                            (``timer_fired`` whose payload names ``overdue_task``)
``emergency.opened``        an assessment's rules referred an emergency at once
                            (``rules_evaluated`` with ``emergency_referred``)
``referral.created``        a referral was added to the care plan
``referral.changed``        a referral's status moved (agreed, referred, accepted, ... completed)
``referral.overdue``        a referral was not accepted in its urgency's timeframe: an escalation
                            task was opened for the named contact (``referral_overdue``)
``summary.overdue``         an end of treatment summary was not written within 6 weeks of its phase
                            of care's end: a task was opened for the named contact (``summary_overdue``)
``summary.written``         an end of treatment summary was written: a document to read or send on
                            (``summary_written``)
``assessment.completed``    a needs assessment was evaluated against its rules (``rules_evaluated``)
``pathway_check.needed``    the instance's diagnosis names another cancer site than its pathway's, and a
                            clinician should check the pathway (``started``, or ``data_corrected`` of the
                            diagnosis, leaving a check pending: engine.pathway_checks); the sites are not
                            in the event: ``GET /v1/instances/{id}`` gives them as its ``warnings``
``incident.opened``         the instance stopped in an incident (``error``)
``instance.completed``      the instance finished (``completed``)
==========================  ================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["WEBHOOK_EVENT_TYPES", "Notice", "ReferralChange", "StepFacts", "derive_notices"]

WEBHOOK_EVENT_TYPES = (
    "task.ready",
    "task.overdue",
    "emergency.opened",
    "referral.created",
    "referral.changed",
    "referral.overdue",
    "summary.overdue",
    "summary.written",
    "assessment.completed",
    "pathway_check.needed",
    "incident.opened",
    "instance.completed",
)


@dataclass(frozen=True)
class ReferralChange:
    item_id: str
    status: str
    created: bool


@dataclass
class StepFacts:
    """What one step did to one instance, as the store is about to write it."""

    instance_id: str
    pathway_id: str
    pathway_version: str
    at: datetime
    events: list[dict[str, Any]]  # the trail events of this instance, sealed (seq, type, element, payload...)
    ready_before: str | None  # the ready-task summaries (JSON) before and after the step
    ready_after: str | None
    referrals: list[ReferralChange] = field(default_factory=list)
    trail_seq: int = 0  # the newest event of the instance after the step
    # The instance's organisation: its events go to that organisation's subscriptions and the
    # deployment's. None (no organisation) reaches the deployment's only (engine.webhooks.outbox).
    organisation: str | None = None
    # A pathway check is pending after the step (engine.pathway_checks: the row's ``pathway_check``).
    pathway_check: bool = False


@dataclass(frozen=True)
class Notice:
    """One webhook event: its type and its ``data`` (ids and types only)."""

    type: str
    instance_id: str
    at: datetime
    data: dict[str, Any]

    def body(self) -> str:
        """The JSON a receiver gets (the Standard Webhooks payload shape: type, timestamp, data)."""
        return json.dumps(
            {"type": self.type, "timestamp": self.at.isoformat(), "data": self.data},
            sort_keys=True,
            separators=(",", ":"),
        )


# Trail events carried over field by field -> (webhook event, {webhook field: trail payload key}): the
# worker's scans' overdue tasks, and a summary written.
_MAPPED: dict[str, tuple[str, dict[str, str]]] = {
    "referral_overdue": (
        "referral.overdue",
        {"care_plan_item_id": "item", "escalation_id": "escalation", "urgency": "urgency"},
    ),
    "summary_overdue": (
        "summary.overdue",
        {"summary_id": "summary", "phase": "phase", "phase_number": "number", "due_by": "due_by"},
    ),
    "summary_written": (
        "summary.written",
        {"summary_id": "summary", "phase": "phase", "phase_number": "number"},
    ),
}


def derive_notices(facts: StepFacts) -> list[Notice]:
    """The webhook events of one step, in trail order; ready tasks and referrals last."""
    base = {"instance_id": facts.instance_id, "pathway_id": facts.pathway_id, "pathway_version": facts.pathway_version}
    notices: list[Notice] = []

    def add(event_type: str, seq: int, **data: Any) -> None:
        notices.append(
            Notice(
                event_type, facts.instance_id, facts.at, {**base, "event_type": event_type, "trail_seq": seq, **data}
            )
        )

    for event in facts.events:
        for event_type, data in _from_trail_event(event, facts.pathway_check):
            add(event_type, int(event["seq"]), **data)
    for change in facts.referrals:
        add(
            "referral.created" if change.created else "referral.changed",
            facts.trail_seq,
            care_plan_item_id=change.item_id,
            status=change.status,
        )
    before = {task["id"] for task in _tasks(facts.ready_before)}
    for task in _tasks(facts.ready_after):
        if task["id"] not in before:
            add(
                "task.ready",
                facts.trail_seq,
                task_id=task["id"],
                element=task.get("element"),
                task_kind=task.get("kind"),
            )
    return notices


def _from_trail_event(event: dict[str, Any], check_pending: bool) -> list[tuple[str, dict[str, Any]]]:
    """The webhook events (type, data) one trail event gives; ``check_pending``: a pathway check is pending
    after the step."""
    element, payload, kind = event.get("element"), _payload(event), event["type"]
    if kind == "error":
        return [("incident.opened", {"element": element, "error_type": payload.get("kind")})]
    if kind == "completed":
        return [("instance.completed", {})]
    if kind == "rules_evaluated":
        evaluated = {"element": element, "evaluation_id": payload.get("evaluation_id")}
        emergency = [("emergency.opened", evaluated)] if payload.get("emergency_referred") else []
        return [("assessment.completed", evaluated), *emergency]
    if kind in _MAPPED:  # a task the worker opened for the named contact; a summary written
        event_type, fields = _MAPPED[kind]
        return [(event_type, {name: payload.get(key) for name, key in fields.items()})]
    if check_pending and _gives_diagnosis(kind, payload):
        return [("pathway_check.needed", {})]
    if kind == "timer_fired" and payload.get("overdue_task"):
        overdue = {"task_id": payload["overdue_task"], "element": payload.get("overdue_element")}
        return [("task.overdue", {**overdue, "timer_element": element})]
    return []


def _gives_diagnosis(kind: str, payload: dict[str, Any]) -> bool:
    """Whether a trail event gave the instance its diagnosis (its start, or a correction of it), or read it
    again (an instance started before the pathway check existed, engine.pathway_checks.read_diagnoses)."""
    if kind == "data_corrected":
        return "diagnosis" in payload.get("fields", ())
    return kind in ("started", "pathway_check_asked")


def _payload(event: dict[str, Any]) -> dict[str, Any]:
    payload = event.get("payload")
    found = json.loads(payload) if isinstance(payload, str) else payload
    return found if isinstance(found, dict) else {}


def _tasks(summary: str | None) -> list[dict[str, Any]]:
    tasks = json.loads(summary) if summary else []
    return [task for task in tasks if isinstance(task, dict) and "id" in task]
