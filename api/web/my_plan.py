"""The patient's own pages (Min vårdplan's heart, issue 16 point 6): their plan in plain language, their
contacts, what happens next and when, their documents, and their own forms -- the needs checklist,
feedback, the quality of life survey and reporting a warning sign (the 24-hour line first).

Only a patient signs in here (the ``patient.*`` actions of :data:`engine.access.PERMISSIONS`), and every
page is scoped to their own instances by :func:`engine.patients.require_own`: another patient's instance
id is "page not found", exactly as an id nobody has. Staff task names never appear: what happens now is
the care plan document's plain words (``next_steps.now``), and the only tasks shown are the patient's own
forms (:data:`engine.patients.PATIENT_FORMS`). Mobile first: one column, large targets.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as Redirect

from engine.directory import service_directory
from engine.documents.build import (
    active_surveillance_plan,
    care_plan_document,
    end_of_treatment_summary,
    fill_instance_forms,
    instance_safety_notice,
    on_active_surveillance,
    reported_sign_advice,
    warning_sign_choices,
)
from engine.documents.notices import TEXT_KEY, safety_notice
from engine.documents.render import (
    DocumentTooLargeError,
    DocumentUnprintableError,
    PdfLimits,
    PdfUnavailableError,
    render_html,
    render_pdf,
)
from engine.errors import (
    ConflictError,
    InvalidInputError,
    MessageNotDeliverableError,
    Problem,
    StaleVersionError,
    TaskDataError,
    TaskNotReadyError,
)
from engine.instances.queries import InstanceFilter
from engine.instances.view import InstanceView
from engine.patients import complete_own_form, own_forms, report_warning_sign, request_assessment, require_own

from .. import carepath, queries
from ..headers import DOCUMENT_POLICY
from .auth import page, principal
from .flashes import tell
from .forms import fields_of, other_problems, parse_fields, problem_messages, revision_of
from .i18n import LANGUAGES, current_language, translate

bp = Blueprint("my_plan", __name__, url_prefix="/my")

_PHASE = re.compile(r"^[1-9][0-9]{0,2}$")
_DOCUMENTS = {
    "care-plan": care_plan_document,
    "end-of-treatment-summary": end_of_treatment_summary,
    "active-surveillance-plan": active_surveillance_plan,
}
_DOCUMENT_NAMES = ", ".join(f"'{name}'" for name in _DOCUMENTS)  # the route's choice: exactly these
MAX_INSTANCES = 20  # a patient has a handful of pathways
# Pathways that have ended stay readable (their documents), after the running ones.
_ORDER = {"running": 0, "error": 0, "suspended": 1, "completed": 2, "cancelled": 3}


def _own(instance_id: str) -> InstanceView:
    """The signed-in patient's own instance. Raises: NotFoundError (a 404 page) for anyone else's."""
    user = principal()
    assert user is not None  # page() signed them in
    return require_own(user, carepath().instances.get(instance_id))


def _own_ids() -> list[str]:
    """The patient's instances, the running ones first."""
    user = principal()
    assert user is not None
    found = queries().find(InstanceFilter(patient_ref=user.patient_ref), None, MAX_INSTANCES).items
    return [i["id"] for i in sorted(found, key=lambda i: (_ORDER.get(i["status"], 9), i["created_at"]))]


def _summary_written(instance_id: str) -> bool:
    try:
        end_of_treatment_summary(carepath(), instance_id, current_language())
    except ConflictError:  # not written yet
        return False
    return True


def _phases_written(instance_id: str) -> list[dict[str, Any]]:
    """The phases of care whose summary is written, when there is more than one (each gets its link)."""
    written = [p for p in carepath().treatment_summaries.list_phases(instance_id) if p["status"] == "written"]
    return written if len(written) > 1 else []


@bp.get("")
@page("patient.read")
def plan() -> str:
    """The patient's page: their first running pathway (others are linked)."""
    ids = _own_ids()
    return _plan_page(ids[0] if ids else None, ids)


@bp.get("/plans/<uuid:instance_id>")
@page("patient.read")
def plan_of(instance_id: Any) -> str:
    view = _own(str(instance_id))
    return _plan_page(view.id, _own_ids())


def _plan_page(instance_id: str | None, ids: list[str]) -> str:
    # The message the care plan document starts with (feeling unwell during treatment: call the line now).
    language = current_language()
    settings = carepath().settings
    directory = service_directory(settings)
    line = safety_notice(
        directory, language, "during_treatment", system=directory.for_deployment(settings.health_system)
    )
    if instance_id is None:
        return render_template(
            "web/my_plan.html",
            document=None,
            forms=[],
            others=[],
            line=line,
            summary=False,
            surveillance_plan=False,
            phases=[],
            example=line["example"],
        )
    view = _own(instance_id)
    document = care_plan_document(carepath(), view.id, language)
    line = instance_safety_notice(carepath(), view.id, language)  # theirs: a child's treatment centre
    others = [{"id": i, "pathway": carepath().instances.get(i).pathway_id} for i in ids if i != view.id]
    return render_template(
        "web/my_plan.html",
        document=document,
        view=view,
        forms=own_forms(view),
        others=others,
        line=line,
        example=_shows_example(document, line),
        summary=_summary_written(view.id),
        surveillance_plan=on_active_surveillance(view.pathway_id, carepath().instances.instance_data(view.id)),
        phases=_phases_written(view.id),
    )


def _shows_example(document: dict[str, Any], line: dict[str, Any]) -> bool:
    """Whether any contact the page shows is example data (the page then says so at the top)."""
    contacts = document["contacts"]
    shown = [
        line,
        contacts.get("named_contact"),
        *contacts.get("team", []),
        contacts.get("twenty_four_hour_line"),
        contacts.get("gp_practice"),
        contacts.get("urgent_advice"),
        *contacts.get("organisations", []),
        *(item.get("provider") for item in [*document["agreed"], *document["awaiting_decision"]]),
    ]
    return any(isinstance(c, dict) and c.get("example") for c in shown)


@bp.get(f"/plans/<uuid:instance_id>/documents/<any({_DOCUMENT_NAMES}):document>")
@page("patient.read")
def document(instance_id: Any, document: str) -> Response:
    """The patient's document as a printable page, or a PDF (``?format=pdf``), in ``?lang=`` or the page's."""
    view = _own(str(instance_id))
    language = request.args.get("lang") if request.args.get("lang") in LANGUAGES else current_language()
    if document == "end-of-treatment-summary" and "phase" in request.args:  # one phase of care's summary
        if not _PHASE.match(request.args["phase"]):
            abort(404)
        built = end_of_treatment_summary(carepath(), view.id, language, int(request.args["phase"]))
    else:
        built = _DOCUMENTS[document](carepath(), view.id, language)
    if request.args.get("format") == "pdf":
        try:
            response = Response(render_pdf(built, PdfLimits.of(carepath().settings)), mimetype="application/pdf")
        except (DocumentTooLargeError, DocumentUnprintableError):  # too large to print: the page still shows it
            abort(422)
        except PdfUnavailableError:
            abort(503)
        response.headers["Content-Disposition"] = f'inline; filename="{document}-{built["language"]}.pdf"'
    else:
        response = Response(render_html(built), mimetype="text/html")
        response.headers["Content-Security-Policy"] = DOCUMENT_POLICY
    response.headers["Content-Language"] = built["language"]
    return response


# --- the patient's own forms --------------------------------------------------------------------------


def _own_form(view: InstanceView, task_id: str) -> dict[str, Any]:
    """The patient's own ready form ``task_id``, its safety notice filled. Raises: NotFound (404)."""
    found = [task for task in own_forms(view) if task["id"] == task_id]
    if not found:
        abort(404)
    # The patient's numbers (not the language's), and a child's treatment centre's line, as their documents.
    return fill_instance_forms(carepath(), view.id, found, current_language())[0]


def _form_page(
    view: InstanceView,
    task: dict[str, Any],
    values: Any,
    problems: list[Problem],
    status: int = 200,
    stale: bool = False,
) -> tuple[str, int]:
    fields = fields_of(task.get("form"))
    errors, summary = problem_messages(fields, problems, translate)
    form = task.get("form") or {}
    return render_template(
        "web/my_form.html",
        view=view,
        task=task,
        fields=fields,
        values=values,
        errors=errors,
        summary=summary,
        stale=stale,
        notice=form.get(TEXT_KEY),
    ), status


@bp.get("/plans/<uuid:instance_id>/forms/<uuid:task_id>")
@page("patient.submit")  # a blank form to fill in: part of submitting it, not a read of the records
def form(instance_id: Any, task_id: Any) -> tuple[str, int]:
    view = _own(str(instance_id))
    return _form_page(view, _own_form(view, str(task_id)), {}, [])


@bp.post("/plans/<uuid:instance_id>/forms/<uuid:task_id>")
@page("patient.submit")
def submit(instance_id: Any, task_id: Any) -> Redirect | tuple[str, int]:
    view = _own(str(instance_id))
    task = _own_form(view, str(task_id))
    fields = fields_of(task.get("form"))
    data, problems = parse_fields(fields, request.form)
    if problems:
        return _form_page(view, task, request.form, problems + other_problems(task.get("form"), data, problems), 422)
    user = principal()
    assert user is not None
    try:
        complete_own_form(
            carepath().instances, user, view.id, task["id"], data, revision_of(request.form.get("version", ""))
        )
    except TaskDataError as exc:
        return _form_page(view, task, request.form, exc.problems or [Problem(exc.message, field="/")], 422)
    except (StaleVersionError, TaskNotReadyError):
        return _form_page(view, task, request.form, [], 409, stale=True)
    tell("my.form_sent")
    return redirect(url_for(".plan_of", instance_id=view.id), code=303)


# --- reporting a warning sign: the 24-hour line first -------------------------------------------------


def _warning_page(
    view: InstanceView, values: Any, errors: dict[str, str], status: int = 200, undelivered: bool = False
) -> tuple[str, int]:
    language = current_language()
    line = instance_safety_notice(carepath(), view.id, language)
    return render_template(
        "web/my_warning_sign.html",
        view=view,
        line=line,
        values=values,
        errors=errors,
        signs=warning_sign_choices(carepath(), view.id, language),
        undelivered=undelivered,
    ), status


@bp.get("/plans/<uuid:instance_id>/warning-sign")
@page("patient.report")
def warning_sign(instance_id: Any) -> tuple[str, int]:
    return _warning_page(_own(str(instance_id)), {}, {})


@bp.post("/plans/<uuid:instance_id>/warning-sign")
@page("patient.report")
def report(instance_id: Any) -> tuple[str, int]:
    view = _own(str(instance_id))
    sign = request.form.get("warning_sign", "")
    known = {s["code"] for s in warning_sign_choices(carepath(), view.id, current_language())} | {"other"}
    if sign not in known:
        return _warning_page(view, request.form, {"warning_sign": translate("my.warning.choose")}, 422)
    user = principal()
    assert user is not None
    try:
        report_warning_sign(carepath().instances, user, sign, request.form.get("description", "")[:1001])
    except InvalidInputError:
        return _warning_page(view, request.form, {"description": translate("my.warning.too_long")}, 422)
    except MessageNotDeliverableError:  # no pathway of theirs is listening: they must call, and are told so
        return _warning_page(view, request.form, {}, 409, undelivered=True)
    # What to do now is drawn here, not after a redirect: the sign would otherwise travel in an address
    # (kept in access logs) or in the signed, readable session cookie. Sending again on a reload is a
    # second report, which the triage takes as one more.
    advice = reported_sign_advice(carepath(), view.id, sign, current_language())
    return render_template("web/my_warning_sign_sent.html", view=view, advice=advice), 200


# --- asking for a needs assessment -----------------------------------------------------------------------


@bp.get("/plans/<uuid:instance_id>/assessment")
@page("patient.ask")
def assessment(instance_id: Any) -> tuple[str, int]:
    return render_template("web/my_assessment.html", view=_own(str(instance_id)), already=False), 200


@bp.post("/plans/<uuid:instance_id>/assessment")
@page("patient.ask")
def ask_for_assessment(instance_id: Any) -> Redirect | tuple[str, int]:
    view = _own(str(instance_id))
    user = principal()
    assert user is not None
    try:
        request_assessment(carepath().instances, user, view.id)
    except MessageNotDeliverableError:  # one is under way, or the pathway is paused or ended: they are told so
        return render_template("web/my_assessment.html", view=view, already=True), 409
    tell("my.assessment.asked")
    return redirect(url_for(".plan_of", instance_id=view.id), code=303)
