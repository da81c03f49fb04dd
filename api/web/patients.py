"""A patient's pathway: the diagram with where they are, the timeline, the care plan and its moves,
the documents, incidents and retrying them; and the list of patients' pathways."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response as WerkzeugResponse

from engine.access import BREAK_GLASS_ROLES
from engine.access_log import Access, record_reads
from engine.care_teams import NOT_FOUND, BreakGlass, placement
from engine.careplan.moves import SUGGESTED_REASONS
from engine.careplan.patient_status import treatment_status
from engine.careplan.summaries import WRITE_ELEMENT
from engine.db.session import read_only
from engine.documents.build import (
    active_surveillance_plan,
    care_plan_document,
    end_of_treatment_summary,
    on_active_surveillance,
    render_html,
)
from engine.documents.wishes import palliative_wishes
from engine.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError, StaleVersionError
from engine.instances.progress import instance_progress
from engine.instances.queries import STATUSES, InstanceFilter
from engine.instances.view import PATIENT_REF_PATTERN
from engine.pathway_checks import diagnoses_unread, pending_check
from engine.reports.charts import line_chart

from .. import carepath, queries
from ..headers import DOCUMENT_POLICY
from .auth import actor, can, grant_break_glass, page, principal, scope
from .downloads import diagram_download
from .forms import revision_of
from .i18n import LANGUAGES, current_language, translate

bp = Blueprint("patients", __name__, url_prefix="/patients")

_PATIENT_REF = re.compile(PATIENT_REF_PATTERN)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")
_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,400}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SCORE_TOP = 10  # a concern's score runs from 0 to 10 (engine.rules.assessment): the chart's axis, always
_PHASE = re.compile(r"^[1-9][0-9]{0,2}$")
_DOCUMENTS = {
    "care-plan": care_plan_document,
    "end-of-treatment-summary": end_of_treatment_summary,
    "active-surveillance-plan": active_surveillance_plan,
}
_DOCUMENT_NAMES = ", ".join(f"'{name}'" for name in _DOCUMENTS)  # the route's choice: exactly these


def _arg(name: str, pattern: re.Pattern[str]) -> str | None:
    value = request.args.get(name, "").strip()
    return value if value and pattern.match(value) else None


@bp.get("")
@page("instances.read")
def find() -> str:
    status = request.args.get("status") if request.args.get("status") in STATUSES else None
    where = InstanceFilter(
        patient_ref=_arg("patient", _PATIENT_REF),
        pathway_id=_arg("pathway", _NAME),
        status=status,
        scope=scope(),
        pathway_check=request.args.get("check") == "pending",  # the pathways to check (engine.pathway_checks)
    )
    found = queries().find(where, _arg("cursor", _CURSOR), 50)
    # The pathways to check may not all be known yet while the diagnoses of older ones are being read.
    reading = where.pathway_check and diagnoses_unread(carepath())
    return render_template("web/patients.html", found=found, where=where, statuses=STATUSES, reading=reading)


@bp.get("/<uuid:instance_id>")
@page("instances.read")
def patient(instance_id: Any) -> str:
    view = carepath().instances.get(str(instance_id))
    concerns = queries().concern_trends(view.id) if can("evaluations.read") else None
    # What the documents section reads of the instance's data (its wishes, whether it has a surveillance plan).
    data = carepath().instances.instance_data(view.id) if can("documents.read") else None
    return render_template(
        "web/patient.html",
        view=view,
        pathway_check=pending_check(carepath(), view),
        progress=instance_progress(carepath().instances, view.id),
        events=queries().events(view.id) if can("events.read") else None,
        care_plan=_care_plan(view.id),
        wishes=palliative_wishes(data, current_language()) if data is not None else None,
        reasons=SUGGESTED_REASONS,
        summaries=[p for p in carepath().treatment_summaries.list_phases(view.id) if p["status"] == "written"]
        if can("documents.read")
        else [],
        awaited=_awaited_summaries(view),
        surveillance_plan=data is not None and on_active_surveillance(view.pathway_id, data),
        treatment=treatment_status(data) if data is not None else None,
        concerns=concerns,
        concerns_chart=_concerns_chart(concerns) if concerns else None,
        glass=g.get("break_glass"),
    )


def _awaited_summaries(view: Any) -> dict[str, dict[str, Any]]:
    """Each waiting "write the end of treatment summary" task's phase and deadline: an instance can wait
    for two (a recurrence's ended before the first-line one was written), alike but for these."""
    if not any(task["element"] == WRITE_ELEMENT for task in view.ready_tasks):
        return {}
    return carepath().treatment_summaries.awaited(view.id)


def _concerns_chart(concerns: dict[str, Any]) -> Markup | None:
    """A line per concern over the assessments' dates, on the checklist's 0-10 scale (as
    GET /v1/instances/{id}/concerns gives them), drawn by engine.reports.charts, which escapes every
    text; None before the first assessment."""
    if not concerns["assessments"]:
        return None
    labels = [assessment["at"][:10] for assessment in concerns["assessments"]]
    series = {
        row["code"].replace("_", " "): [point["score"] for point in row["points"]] for row in concerns["concerns"]
    }
    return Markup(
        line_chart(
            "concerns",
            translate("concerns.chart"),
            translate("concerns.chart_desc"),
            labels,
            series,
            top=_SCORE_TOP,
            unit=translate("concerns.unit"),
        )
    )


def _care_plan(instance_id: str) -> Any:
    return carepath().care_plans.get(instance_id) if can("documents.read") else None


@bp.post("/break-glass")
@page("instances.read")
def break_glass() -> WerkzeugResponse:
    """A clinician opens one patient's pages outside their care teams, for an hour, giving a reason: the
    reason and their note go to the access log now (the note nowhere else), and each page they then read
    is recorded as a break-glass read (:mod:`api.scope`). Never across organisations: the pages of another
    organisation's patient stay not found."""
    user = principal()
    if user is None or user.role not in BREAK_GLASS_ROLES:
        raise PermissionDeniedError("only clinicians may break the glass")
    instance_id = request.form.get("instance_id", "")
    if not _UUID.match(instance_id):
        abort(400)
    glass = BreakGlass(request.form.get("reason", ""), request.form.get("note", "").strip() or None)
    engine = carepath()
    with read_only(engine.sessions) as session:
        found = placement(session, "instance", instance_id)
    if found is None or not user.scope.organisation_wide().covers(found.organisation, found.care_team):
        # No such patient, or another organisation's: not found, and nothing written to anyone's access log.
        raise NotFoundError(NOT_FOUND["instance"].format(key=instance_id))
    record_reads(
        engine.sessions,
        Access(
            at=engine.clock.now(),
            actor=user.actor,
            action="instances.read",
            route="POST /patients/break-glass",
            status=303,
            request_id=str(g.get("request_id", "")),
            break_glass_reason=glass.reason,
            break_glass_note=glass.note,
        ),
        [instance_id],
    )
    grant_break_glass(instance_id, glass)
    return redirect(url_for("web.patients.patient", instance_id=instance_id), 303)


@bp.post("/<uuid:instance_id>/care-plan/<uuid:item_id>")
@page("care_plans.update")
def move_item(instance_id: Any, item_id: Any) -> tuple[str, int]:
    """Move one care plan item on, with a reason code if one is chosen; answers the care plan section
    (htmx swaps it in place)."""
    status, problem = 200, None
    try:
        carepath().care_plans.set_status(
            str(instance_id), str(item_id), request.form.get("status", ""), actor(), request.form.get("reason") or None
        )
    except ConflictError as exc:
        status, problem = 409, "care_plan.needs_reason" if "needs a reason" in exc.message else "care_plan.refused"
    except InvalidInputError:
        status, problem = 422, "care_plan.invalid"
    return render_template(
        "web/_care_plan.html",
        instance_id=str(instance_id),
        care_plan=_care_plan(str(instance_id)),
        reasons=SUGGESTED_REASONS,
        problem=problem,
    ), status


@bp.post("/<uuid:instance_id>/retry")
@page("instances.manage")
def retry(instance_id: Any) -> tuple[str, int]:
    """Retry the incident; answers the incident section (htmx swaps it in place)."""
    version = request.form.get("version", "")
    status, problem = 200, None
    try:
        view = carepath().instances.retry(str(instance_id), actor(), revision_of(version))
    except (StaleVersionError, ConflictError):
        status, problem, view = 409, "incident.changed", carepath().instances.get(str(instance_id))
    return render_template("web/_incident.html", view=view, problem=problem), status


@bp.get(
    "/<uuid:instance_id>/documents/<any('care-plan', 'end-of-treatment-summary', 'active-surveillance-plan'):document>"
)
@page("documents.read")
def document(instance_id: Any, document: str) -> Response:
    """A document as its printable page, in the language asked for (``?lang=sv``) or the page's; the
    summary of one phase of care with ``?phase=2`` (the latest written without it)."""
    language = request.args.get("lang") if request.args.get("lang") in LANGUAGES else current_language()
    if document == "end-of-treatment-summary" and "phase" in request.args:
        phase = request.args["phase"]
        if not _PHASE.match(phase):
            abort(404)  # no such phase, as a number out of range would be
        built = end_of_treatment_summary(carepath(), str(instance_id), language, int(phase))
    else:
        built = _DOCUMENTS[document](carepath(), str(instance_id), language)
    response = Response(render_html(built), mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCUMENT_POLICY
    response.headers["Content-Language"] = built["language"]
    return response


@bp.get("/<uuid:instance_id>/diagram.bpmn")
@page("instances.read")
def diagram(instance_id: Any) -> WerkzeugResponse:
    view = carepath().instances.get(str(instance_id))
    xml = carepath().catalog.diagram(view.pathway_id, view.pathway_version)
    return diagram_download(xml, f"{view.pathway_id}-{view.pathway_version[:12]}.bpmn")
