"""What starts a needs assessment again: the triggers every diagnosis pathway's re-assessment listener
(``pathways/shared/needs_reassessment.bpmn``) waits for, kept where every branch reaches them.

The triggers are set in other branches and sub-pathways than the one that waits (the care plan's
review date in the care and support plan, a re-offer date when an assessment is declined, a
deterioration found by an assessment, the GP review's "new needs"), and SpiffWorkflow gives each
branch its own copy of the data; so, like the patient status, they live in the top workflow's data,
reached through one operator, ``carepath.reassessment``, with parameter ``action``:

``note``
    After a task that may set a trigger; reads that task's own answers. ``reason`` (parameter) is
    ``review_date`` (the care plan form's optional ``review_on``: set, or cleared when not given),
    ``reoffer_date`` (the declined form's optional ``reoffer_on``) or ``gp_new_needs`` (the cancer
    care review's ``new_needs``: true sets it for today).
``assessed``
    A checklist was completed: every pending trigger is met. ``deteriorated`` (parameter, the
    concerns that rose by 3 or more or reached 8, ``engine.rules.deteriorated``) non-empty sets
    ``deterioration`` for :data:`RECHECK_DAYS` days later.
``next``
    The earliest pending trigger: ``{"due_on": date or None, "due_now": bool, "reasons": [...]}``.
``begin``
    The listener starts an assessment: every trigger due today or earlier is taken (so a declined
    offer is not offered again at once) and an event ``reassessment_started`` names the reasons.
``request``
    Parameter ``request``: the payload of the message ``reassessment_requested``, ``{"asked_by":
    "patient" | "carer" | "gp"}``. Anything else refuses the message (422, the field named), nothing
    recorded; otherwise ``reassessment_started`` records who asked.

Events carry reasons and roles only, never an answer or a score.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from engine.errors import Problem, TaskDataError, WorkflowError
from engine.instances.step import ServiceOperator, StepContext
from engine.rules.assessment import is_iso_date

__all__ = ["ASKED_BY", "REASONS", "RECHECK_DAYS", "reassessment_operators"]

_KEY = "reassessment_triggers"  # in the top workflow's data: reason -> YYYY-MM-DD
REASONS = ("review_date", "reoffer_date", "deterioration", "gp_new_needs")
ASKED_BY = ("patient", "carer", "gp")
RECHECK_DAYS = 14  # a deterioration is assessed again two weeks later (CarePath's default)
_NOTED = {"review_date": "review_on", "reoffer_date": "reoffer_on", "gp_new_needs": "new_needs"}


def reassessment_operators() -> dict[str, ServiceOperator]:
    return {"carepath.reassessment": _reassessment}


def _reassessment(context: StepContext, task: Any, params: dict[str, Any]) -> dict[str, Any]:
    element = task.task_spec.bpmn_id
    data = task.workflow.top_workflow.data
    triggers: dict[str, str] = dict(data.get(_KEY) or {})
    today = context.clock.now().date()
    action = params.get("action")
    result: dict[str, Any] = {}
    if action == "note":
        reason = params.get("reason")
        if reason not in _NOTED:
            raise WorkflowError(
                "carepath.reassessment: 'reason' must name a trigger",
                [Problem(f"expected one of {', '.join(_NOTED)}", element=element)],
            )
        _note(triggers, reason, task.data.get(_NOTED[reason]), today)
    elif action == "assessed":
        triggers.clear()
        if params.get("deteriorated"):
            triggers["deterioration"] = (today + timedelta(days=RECHECK_DAYS)).isoformat()
    elif action == "begin":
        taken = sorted(r for r, on in triggers.items() if date.fromisoformat(on) <= today)
        for reason in taken:
            del triggers[reason]
        context.record("reassessment_started", element, {"reasons": taken})
        result["reasons"] = taken
    elif action == "request":
        asked_by = _request(params.get("request"))
        context.record("reassessment_started", element, {"reasons": ["request"], "asked_by": asked_by})
        result["asked_by"] = asked_by
    elif action != "next":
        raise WorkflowError(
            "carepath.reassessment: unknown 'action'",
            [Problem("expected note, assessed, next, begin or request", element=element)],
        )
    data[_KEY] = triggers
    due_on = min(triggers.values(), default=None)
    return {
        **result,
        "due_on": due_on,
        "due_now": due_on is not None and due_on <= today.isoformat(),
        "reasons": sorted(r for r, on in triggers.items() if on == due_on),
    }


def _note(triggers: dict[str, str], reason: str, value: Any, today: date) -> None:
    """Set or clear one trigger from the answer of the task that may set it."""
    if reason == "gp_new_needs":
        if value is True:
            triggers[reason] = today.isoformat()
    elif isinstance(value, str) and is_iso_date(value):
        triggers[reason] = value
    elif value is None:
        triggers.pop(reason, None)
    else:
        raise TaskDataError(
            "the date is not valid", [Problem("expected a date YYYY-MM-DD", field=f"/{_NOTED[reason]}")]
        )


def _request(payload: Any) -> str:
    """Who asked for the re-assessment, from the message's payload. Raises: TaskDataError (422)."""
    if not isinstance(payload, dict):
        raise TaskDataError("the re-assessment request is not valid", [Problem("expected an object", field="/")])
    problems = [
        Problem("not a field of this message; expected asked_by", field=f"/{name}")
        for name in sorted(payload)
        if name != "asked_by"
    ]
    asked_by = payload.get("asked_by")
    if asked_by not in ASKED_BY:
        problems.append(Problem(f"expected one of {', '.join(ASKED_BY)}", field="/asked_by"))
    if problems:
        raise TaskDataError("the re-assessment request is not valid", problems)
    return str(asked_by)
