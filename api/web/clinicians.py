"""Clinicians' work: the work list (ready tasks across patients, and referrals not accepted in time)
and the task page (its form)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from engine.careplan.patient_status import treatment_status
from engine.careplan.summaries import WRITE_ELEMENT
from engine.documents.build import (
    SURVEILLANCE_PLAN_TASK,
    fill_instance_forms,
    on_active_surveillance,
    warning_sign_choices,
)
from engine.documents.notices import TEXT_KEY
from engine.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    Problem,
    StaleVersionError,
    TaskDataError,
    TaskNotReadyError,
)
from engine.instances.queries import InstanceFilter
from engine.instances.view import PATIENT_REF_PATTERN
from engine.pathway_checks import pending_check

from .. import carepath, queries
from .auth import actor, can, page, scope
from .care_items import care_item_name
from .flashes import tell
from .forms import (
    FormField,
    choice_lists,
    expand_maps,
    fields_of,
    offer_choices,
    other_problems,
    parse_fields,
    problem_messages,
    revision_of,
)
from .i18n import current_language, translate

bp = Blueprint("clinicians", __name__)

_PATIENT_REF = re.compile(PATIENT_REF_PATTERN)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")
_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,400}$")
PAGE = 50  # patients per page of the work list


def _filters() -> tuple[dict[str, str], list[Problem]]:
    """The work list's filters from the query string; a malformed one is named, not used."""
    found: dict[str, str] = {}
    problems = []
    for name, pattern in (("patient", _PATIENT_REF), ("pathway", _NAME), ("lane", _NAME), ("cursor", _CURSOR)):
        value = request.args.get(name, "").strip()
        if not value:
            continue
        if pattern.match(value):
            found[name] = value
        else:
            problems.append(Problem("not valid", field=name, code=name))
    return found, problems


ESCALATION_OUTCOMES = ("chased_service", "re_referred", "referred_elsewhere", "patient_contacted")


@bp.get("/work-list")
@page("tasks.read")
def work_list() -> str:
    """Ready tasks, those of the patients whose next deadline is soonest first: a deadline already
    passed (overdue), then an escalation an hour away (an emergency), then the rest; a patient with no
    timer waiting comes last. The deadline is the patient's earliest waiting timer (the engine's
    ``next_due_at``), shown beside each task. Above them, on the first page, the referrals not
    accepted in time (engine.careplan.referrals), each completed here with an outcome."""
    return _work_list()


@bp.post("/work-list/escalations/<uuid:escalation_id>")
@page("tasks.complete", named="referral_escalation")
def complete_escalation(escalation_id: Any) -> Response | tuple[str, int]:
    """Complete a referral escalation with the outcome chosen; the work list again, or it with the problem."""
    try:
        done = carepath().referral_escalations.complete(str(escalation_id), request.form.get("outcome", ""), actor())
    except (ConflictError, InvalidInputError, NotFoundError) as exc:
        return _work_list(refused=True), 404 if isinstance(exc, NotFoundError) else (
            409 if isinstance(exc, ConflictError) else 422
        )
    tell("worklist.escalation_completed", instance_id=done["instance_id"])
    return redirect(url_for("web.clinicians.work_list"), code=303)


def _work_list(refused: bool = False) -> str:
    filters, problems = _filters()
    where = InstanceFilter(
        patient_ref=filters.get("patient"), pathway_id=filters.get("pathway"), status="running", scope=scope()
    )
    found = queries().ready_tasks(where, None, filters.get("cursor"), PAGE)
    # The same page of instances (same filter, order and cursor) with their next deadlines.
    deadlines = {i["id"]: i["next_due_at"] for i in queries().find(where, filters.get("cursor"), PAGE).items}
    lanes = sorted({t["lane"] for t in found.items if t.get("lane")})
    now = carepath().clock.now()
    tasks = []
    for task in found.items:
        if "lane" in filters and task.get("lane") != filters["lane"]:
            continue
        due = deadlines.get(task["instance_id"])
        deadline = datetime.fromisoformat(due) if due else None
        tasks.append(
            {
                **task,
                "deadline": due,
                "overdue": deadline is not None and deadline <= now,
                "order": (deadline is None, deadline or now),
            }
        )
    tasks.sort(key=lambda t: t["order"])
    # Each waiting "Write the end of treatment summary" task's phase and deadline (an instance can wait
    # for two, alike but for these), from the rows of the whole page in one query, never by restoring
    # workflows: a task whose row the worker's scan has not noted yet (it notes them on every turn)
    # shows no phase until then.
    awaited = carepath().treatment_summaries.awaited_by_task(
        (t["instance_id"], t["id"]) for t in tasks if t.get("element") == WRITE_ELEMENT
    )
    for task in tasks:
        task["summary"] = awaited.get((task["instance_id"], task["id"]))
    escalations = (
        []
        if "cursor" in filters
        else carepath().referral_escalations.list_open(
            filters.get("patient"), filters.get("pathway"), where.scope.condition()
        )
    )
    summaries = (
        []
        if "cursor" in filters
        else carepath().treatment_summaries.list_overdue(
            filters.get("patient"), filters.get("pathway"), where.scope.condition()
        )
    )
    template = "web/_work_list_table.html" if request.headers.get("HX-Request") else "web/work_list.html"
    return render_template(
        template,
        tasks=tasks,
        pathway_checks=found.pathway_checks,
        lanes=lanes,
        filters=filters,
        problems=problems,
        next_cursor=found.next_cursor,
        pathways=carepath().catalog.pathways(),
        escalations=escalations,
        outcomes=ESCALATION_OUTCOMES,
        refused=refused,
        summaries_overdue=summaries,
    )


def _ready_task(instance_id: str, task_id: str) -> tuple[Any, dict[str, Any] | None]:
    """The instance and its ready task (None when it is not ready), its form's safety notice filled in
    the page's language. Raises: NotFoundError (no instance), RuleFileError (an invalid directory)."""
    view = carepath().instances.get(instance_id)
    found = [task for task in view.ready_tasks if task["id"] == task_id]
    # The patient's numbers (not the language's), and a child's treatment centre's line, as their documents.
    filled = fill_instance_forms(carepath(), view.id, found, current_language())
    return view, filled[0] if filled else None


def _notice(task: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The task form's safety notice (None without one) and the rest of its description, shown apart."""
    form = task.get("form")
    if not isinstance(form, dict):
        return None, None
    notice, description = form.get(TEXT_KEY), form.get("description")
    if notice and isinstance(description, str):
        description = description.removeprefix(notice["text"]).strip()
    return notice, description or None


@bp.get("/patients/<uuid:instance_id>/tasks/<uuid:task_id>")
@page("tasks.read")
def task(instance_id: Any, task_id: Any) -> str:
    view, found = _ready_task(str(instance_id), str(task_id))
    if found is None:
        abort(404)
    notice, description = _notice(found)
    return render_template(
        "web/task.html",
        view=view,
        task=found,
        fields=_fields(view.id, found["form"]),
        values={},
        errors={},
        summary=[],
        stale=False,
        version=view.version,
        notice=notice,
        description=description,
        document=_task_document(view, found),
        treatment=_recorded_treatment(view, found),
        pathway_check=pending_check(carepath(), view),
    )


# A task whose form asks whether the patient is on systemic anticancer treatment (the triage of a reported
# problem): its page shows what is recorded, so the answer starts from the record, not from memory.
_ASKS_TREATMENT = "on_systemic_treatment"


def _recorded_treatment(view: Any, task: dict[str, Any]) -> dict[str, Any] | None:
    form = task.get("form") or {}
    if _ASKS_TREATMENT not in (form.get("properties") or {}) or not can("documents.read"):
        return None
    return treatment_status(carepath().instances.instance_data(view.id))


def _task_document(view: Any, task: dict[str, Any]) -> str | None:
    """The document a task gives the patient, for its page to offer (to print, or to read through with
    him): his active surveillance plan on the task that gives it."""
    if task["element"] != SURVEILLANCE_PLAN_TASK or not can("documents.read"):
        return None
    data = carepath().instances.instance_data(view.id)
    return "active-surveillance-plan" if on_active_surveillance(view.pathway_id, data) else None


@bp.post("/patients/<uuid:instance_id>/tasks/<uuid:task_id>")
@page("tasks.complete")
def complete(instance_id: Any, task_id: Any) -> Response | tuple[str, int]:
    view, found = _ready_task(str(instance_id), str(task_id))
    if found is None:  # completed (or moved past) since the page was opened
        return render_template("web/task_gone.html", view=view), 409
    fields = _fields(view.id, found["form"])
    version = request.form.get("version", "")
    data, problems = parse_fields(fields, request.form)
    status, stale = 422, False
    if problems:
        problems += other_problems(found["form"], data, problems)
    else:
        try:
            carepath().instances.complete_task(
                view.id, found["id"], data, actor(), expected_version=revision_of(version)
            )
        except TaskDataError as exc:
            problems = exc.problems or [Problem(exc.message, field="/")]
        except (StaleVersionError, TaskNotReadyError):
            status, stale = 409, True
        else:
            tell("task.completed", instance_id=view.id, task=found["name"])
            return redirect(url_for("web.patients.patient", instance_id=view.id), code=303)
    errors, summary = problem_messages(fields, problems, translate)
    notice, description = _notice(found)
    return render_template(
        "web/task.html",
        view=view,
        task=found,
        fields=fields,
        values=request.form,
        errors=errors,
        summary=summary,
        stale=stale,
        version=version,
        notice=notice,
        description=description,
        document=_task_document(view, found),
        treatment=_recorded_treatment(view, found),
        pathway_check=pending_check(carepath(), view),
    ), status


def _fields(instance_id: str, form: dict[str, Any] | None) -> list[FormField]:
    """The form's fields; a choice per care plan item awaiting a decision where the form asks for one, and
    the patient's warning signs by name where a field asks for a sign's code (the problem as triaged)."""
    fields = fields_of(form)
    if "warning_signs" in choice_lists(fields):
        signs = warning_sign_choices(carepath(), instance_id, current_language())
        offer_choices(fields, {"warning_signs": [(s["code"], f"{s['name']} ({s['urgency_label']})") for s in signs]})
    if any(f.kind == "map" for f in fields):
        items = carepath().care_plans.get(instance_id).items
        expand_maps(fields, [(i["id"], _item_label(i)) for i in items if i["status"] == "proposed"])
    return fields


def _item_label(item: dict[str, Any]) -> str:
    return care_item_name(str(item["code"]), item.get("service"))
