"""What every branch of a pathway must agree on now: the patient's status, and a reported warning sign.

A pathway runs its parts in parallel branches (the care, the listeners for messages), and
SpiffWorkflow gives each branch its own copy of the data: a treatment status recorded by a message in
one branch is never seen by the holistic needs assessment running in another. So the facts the safety
rules and the triage depend on live in one record per instance, reached through two operators:

``carepath.patient_status``
    Parameter ``update`` (dict, optional): fields to record; ``fields`` (list, optional): the only fields
    this update may set (a message from the SACT system may set treatment, never the named contact).
    Returns the whole record as it is now.
    Fields (every one optional; ``None`` means "not known from this source: keep what is recorded"):

    ============================ ========================================================================
    ``on_sact``                  on chemotherapy, targeted therapy or immunotherapy now (true / false)
    ``on_immunotherapy``         on immunotherapy (a checkpoint inhibitor) now
    ``last_sact_date``           date of the last dose of systemic anticancer therapy, ``YYYY-MM-DD``
    ``last_immunotherapy_date``  date of the last dose of immunotherapy
    ``smoking_status``           ``current``, ``former`` or ``never``
    ``named_contact``            the named contact (the named contact form's object)
    ``distress_at_last_hna``     worry, low mood or hopelessness scored 5 or more at the last HNA
    ``date_of_death``            from the ``patient_died`` message (optional in it), ``YYYY-MM-DD``, not
                                 after today
    ``advance_care_plan``        the palliative route's advance care plan (its form's object), kept here
                                 because the route's branch and its data end with the route
    ``carers``                   the carers and their own needs (the palliative route's form's object)
    ``palliative_family_support`` support for a child's family (the children's palliative route)
    ============================ ========================================================================

    The forms that set these are checked by their schemas; a message (``treatment_status_changed``,
    ``patient_died``) is checked here, and a wrong field refuses the whole message (nothing is recorded).

``carepath.warning_sign``
    Parameter ``report`` (dict): the payload of ``warning_sign_reported``, ``{"warning_sign": code,
    "description": the patient's own words}``, both optional. Returns the report as the triage nurse
    sees it: the code and words, the sign's name, urgency and whom the patient was told to contact
    (from ``rules/catalogues/warning_signs.yaml``), ``escalate_after``, how long it may wait
    untriaged, and ``named_contact_assigned`` (from the patient status). A report is never refused
    for what it does not say: an unknown or missing sign is shown as such and gets the shortest
    bound. Only a payload of the wrong shape is refused.

Patient data: the record is instance data like any form's answers; nothing of it goes into events.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

from engine.calendar import latest_today
from engine.errors import Problem, RuleFileError, TaskDataError, WorkflowError
from engine.instances.step import ServiceOperator, StepContext
from engine.rules.activation import warning_signs_in_use
from engine.rules.assessment import is_iso_date
from engine.rules.model import SMOKING_STATUSES

__all__ = [
    "PATIENT_STATUS_FIELDS",
    "TREATMENT_STATUS_FIELDS",
    "WARNING_SIGN_TEXT_LIMIT",
    "patient_status_operators",
    "treatment_status",
]

# Where the record is kept: the top workflow's own data, which every branch and sub-pathway reaches
# and which is saved with the instance's state. No task uses this name, so documents reading the
# accumulated data see it as it is.
_RECORD_KEY = "patient_status_record"
WARNING_SIGN_TEXT_LIMIT = 2000
_CODE_LIMIT = 64


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "expected true or false"


def _date(value: Any) -> str | None:
    return None if isinstance(value, str) and is_iso_date(value) else "expected a date YYYY-MM-DD"


def _smoking(value: Any) -> str | None:
    return None if value in SMOKING_STATUSES else f"expected one of {', '.join(SMOKING_STATUSES)}"


def _contact(value: Any) -> str | None:
    if (
        isinstance(value, dict)
        and len(value) <= 10
        and all(isinstance(k, str) and isinstance(v, str | bool | int) and len(str(v)) <= 200 for k, v in value.items())
    ):
        return None
    return "expected the named contact form's object"


_FORM_KEYS, _FORM_TEXT, _FORM_LIST = 20, 1000, 12


def _form_answers(value: Any) -> str | None:
    """A palliative route form's object, already checked by its schema: bounded here all the same."""

    def fits(entry: Any) -> bool:
        if isinstance(entry, list):
            return len(entry) <= _FORM_LIST and all(isinstance(e, str) and len(e) <= _CODE_LIMIT for e in entry)
        return isinstance(entry, bool | int) or (isinstance(entry, str) and len(entry) <= _FORM_TEXT)

    if (
        isinstance(value, dict)
        and len(value) <= _FORM_KEYS
        and all(isinstance(k, str) and len(k) <= _CODE_LIMIT and fits(v) for k, v in value.items())
    ):
        return None
    return "expected the form's object (codes, dates, yes/no, short text)"


# field -> check (an error text, or None when the value is right)
PATIENT_STATUS_FIELDS: dict[str, Callable[[Any], str | None]] = {
    "on_sact": _boolean,
    "on_immunotherapy": _boolean,
    "last_sact_date": _date,
    "last_immunotherapy_date": _date,
    "smoking_status": _smoking,
    "named_contact": _contact,
    "distress_at_last_hna": _boolean,
    "date_of_death": _date,
    "advance_care_plan": _form_answers,
    "carers": _form_answers,
    "palliative_family_support": _form_answers,
}


# What the message treatment_status_changed sets, and the safety rules read (on SACT with a warning sign: an emergency).
# Dates of what has happened: a later one is a slip of the keyboard (a last dose "next week" would read as
# on treatment for weeks; a death in the future would end the pathway early).
_PAST_DATES = {
    "date_of_death": "a date of death cannot be in the future",
    "last_sact_date": "cannot be after today",
    "last_immunotherapy_date": "cannot be after today",
}
TREATMENT_STATUS_FIELDS = ("on_sact", "last_sact_date", "on_immunotherapy", "last_immunotherapy_date", "smoking_status")


def treatment_status(data: dict[str, Any]) -> dict[str, Any]:
    """The treatment status an instance's data records now (``data``: its accumulated data), each of
    :data:`TREATMENT_STATUS_FIELDS` with its value, None when nothing is recorded or the value is not one the
    record's checks allow (a value edited by hand is shown as not recorded, never as what it says)."""
    record = data.get(_RECORD_KEY)
    record = record if isinstance(record, dict) else {}
    return {
        name: value if value is not None and PATIENT_STATUS_FIELDS[name](value) is None else None
        for name in TREATMENT_STATUS_FIELDS
        for value in (record.get(name),)
    }


def patient_status_operators(registry: Any, *, active_only: bool = False) -> dict[str, ServiceOperator]:
    """``carepath.patient_status`` and ``carepath.warning_sign`` (the warning signs are the folder's, read
    through ``registry``; with ``active_only`` (four eyes), those a second author activated:
    :func:`engine.rules.activation.warning_signs_in_use`)."""
    return {
        "carepath.patient_status": _patient_status,
        "carepath.warning_sign": functools.partial(_warning_sign, registry, active_only),
    }


def _patient_status(context: StepContext, task: Any, params: dict[str, Any]) -> dict[str, Any]:
    """carepath.patient_status: record the fields given (checked) and return the whole record."""
    update = params.get("update")
    if update is None:
        update = {}
    if not isinstance(update, dict):
        raise TaskDataError(
            "the patient status update must be an object",
            [Problem("expected an object", field="/", element=task.task_spec.bpmn_id)],
        )
    allowed = params.get("fields")
    if allowed is None:
        allowed = list(PATIENT_STATUS_FIELDS)
    if not isinstance(allowed, list) or not set(allowed) <= set(PATIENT_STATUS_FIELDS):
        raise WorkflowError(
            "carepath.patient_status: 'fields' must list patient status fields",
            [Problem(f"expected a list of {', '.join(PATIENT_STATUS_FIELDS)}", element=task.task_spec.bpmn_id)],
        )
    problems = []
    today = latest_today(context.clock.now()).isoformat()  # where it is latest: a same-day date passes
    for name, value in sorted(update.items()):
        check = PATIENT_STATUS_FIELDS.get(name) if name in allowed else None
        if check is None:
            problems.append(Problem(f"not a field this can set; expected {', '.join(allowed)}", field=f"/{name}"))
        elif value is not None and (error := check(value)) is not None:
            problems.append(Problem(error, field=f"/{name}"))
        elif name in _PAST_DATES and value is not None and value > today:
            problems.append(Problem(_PAST_DATES[name], field=f"/{name}"))
    if problems:  # a message or a form gave a wrong field: refuse it whole, record nothing
        raise TaskDataError("the patient status update is not valid", problems)
    data = task.workflow.top_workflow.data
    record = dict(data.get(_RECORD_KEY) or {})
    record.update({name: copy.deepcopy(value) for name, value in update.items() if value is not None})
    data[_RECORD_KEY] = record
    return copy.deepcopy(record)


def _warning_sign(
    registry: Any, active_only: bool, context: StepContext, task: Any, params: dict[str, Any]
) -> dict[str, Any]:
    """carepath.warning_sign: the reported sign, looked up in the catalogue, for the triage nurse."""
    report = params.get("report")
    if report is None:
        report = {}
    problems = []
    if not isinstance(report, dict):
        raise TaskDataError(
            "a warning sign report must be an object",
            [Problem("expected an object", field="/", element=task.task_spec.bpmn_id)],
        )
    code = report.get("warning_sign")
    text = report.get("description")
    if code is not None and (not isinstance(code, str) or not 0 < len(code) <= _CODE_LIMIT):
        problems.append(
            Problem(f"expected the sign's code as text of at most {_CODE_LIMIT} characters", field="/warning_sign")
        )
    if text is not None and (not isinstance(text, str) or len(text) > WARNING_SIGN_TEXT_LIMIT):
        problems.append(
            Problem(
                f"expected the patient's words as text of at most {WARNING_SIGN_TEXT_LIMIT} characters",
                field="/description",
            )
        )
    if problems:
        raise TaskDataError("the warning sign report is not valid", problems)
    try:
        catalogue = warning_signs_in_use(context.session, registry, active_only=active_only)
    except RuleFileError as exc:  # the deployment's catalogue is broken: an incident, fixed and retried
        raise WorkflowError(
            f"the warning signs catalogue cannot be used: {exc.message}",
            [Problem(exc.message, element=task.task_spec.bpmn_id)],
        ) from exc
    sign = catalogue.sign(code) if code else None
    record = task.workflow.top_workflow.data.get(_RECORD_KEY) or {}
    return {
        "code": code,
        "description": text,
        "known": sign is not None,
        "name": sign.name_en if sign else ("not in the warning signs catalogue" if code else "no sign named"),
        "urgency": sign.urgency if sign else None,
        "contact": sign.contact.name_en if sign else None,
        "escalate_after": catalogue.escalation_bound(code),
        "catalogue_version": catalogue.version,
        # Warning signs are accepted from the moment the pathway starts: before a named contact is
        # assigned, the triage tells the on-call team instead.
        "named_contact_assigned": record.get("named_contact") is not None,
    }
