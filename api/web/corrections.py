"""Correcting a patient's start data from their page (a date of diagnosis mistyped, an age, the treatment
intent, the GP practice), as ``PATCH /v1/instances/{id}/data`` does (the same call and permission,
``instances.correct``): the pathway's start schema drawn as a form with the instance's values, and a reason
code from a list. Only the fields changed are sent; the engine checks the corrected values against the schema
and records the fields' names, a digest and the reason, never the values. Nothing runs: an instance held by
an incident is retried afterwards (the patient page's Retry) and its failed step reads the corrected values.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as WerkzeugResponse

from engine.errors import ConflictError, InvalidInputError, Problem, StaleVersionError, StartDataError
from engine.instances.view import CORRECTION_REASONS, NOT_ENDED, InstanceView, Status
from engine.pathway_checks import confirm

from .. import carepath, queries
from ..access_log import shows_patients
from .auth import actor, page
from .flashes import tell
from .forms import FormField, other_problems, parse_fields, problem_messages, revision_of
from .i18n import translate
from .starting import start_fields, within_data

bp = Blueprint("corrections", __name__, url_prefix="/patients")


@bp.get("/<uuid:instance_id>/data")
@shows_patients  # the patient's start data: a look, recorded
@page("instances.correct")
def form(instance_id: Any) -> tuple[str, int]:
    view = carepath().instances.get(str(instance_id))
    schema, fields, current = _form(view)
    shown = MultiDict([(f.name, _shown(current[f.name])) for f in fields if f.name in current])
    return _page(view, fields, shown, [], 200 if view.status in NOT_ENDED else 409)


@bp.post("/<uuid:instance_id>/data")
@page("instances.correct")
def correct(instance_id: Any) -> WerkzeugResponse | tuple[str, int]:
    view = carepath().instances.get(str(instance_id))
    if view.status not in NOT_ENDED:
        return _page(view, [], request.form, [], 409)
    schema, fields, current = _form(view)
    data, problems = parse_fields(fields, request.form)
    problems += other_problems(schema, data, problems) if schema is not None else []
    changed = {name: value for name, value in data.items() if current.get(name) != value}
    emptied = [f.name for f in fields if f.name in current and f.name not in data and not f.required]
    problems += [Problem("cannot be emptied", field=f"/{name}", code="emptied") for name in emptied]
    reason = request.form.get("reason", "")
    if reason not in CORRECTION_REASONS:
        problems.append(Problem("choose a reason", field="/reason", code="reason"))
    if not problems and not changed:
        problems.append(Problem("nothing changed", field="/", code="unchanged"))
    if problems:
        return _page(view, fields, request.form, problems, 422)
    try:
        corrected = carepath().instances.correct_data(
            view.id, changed, reason, actor(), revision_of(request.form.get("version", ""))
        )
    except StartDataError as exc:
        problems = [Problem(p.message, field=within_data(p.field), code=p.code) for p in exc.problems]
        return _page(view, fields, request.form, problems, 422)
    except (StaleVersionError, ConflictError):
        return _page(carepath().instances.get(view.id), fields, request.form, [], 409, stale=True)
    tell("correct.done_retry" if corrected.status == Status.ERROR else "correct.done", instance_id=view.id)
    if moved := _timers_moved(view.id):  # the clinician sees that the reviews' dates followed the correction
        tell("correct.moved", count=str(len(moved)))
    return redirect(url_for("web.patients.patient", instance_id=view.id), code=303)


@bp.post("/<uuid:instance_id>/pathway-check")
@page("instances.correct")
def check_pathway(instance_id: Any) -> WerkzeugResponse:
    """The clinician confirms the pathway of a patient whose diagnosis names another site (the patient page's
    warning, engine.pathway_checks). Sent with the site the page showed and the version it was drawn at: a
    diagnosis corrected since, or a pathway moved on, is not confirmed unseen; the page is drawn again."""
    try:
        confirm(
            carepath(),
            str(instance_id),
            request.form.get("site", ""),
            actor(),
            revision_of(request.form.get("version", "")),
        )
    except (InvalidInputError, StaleVersionError, ConflictError):
        tell("pathway_check.changed")
    else:
        tell("pathway_check.done", instance_id=str(instance_id))
    return redirect(url_for("web.patients.patient", instance_id=instance_id), code=303)


def _timers_moved(instance_id: str) -> list[str]:
    """The timers the instance's latest correction moved (its trail's ``data_corrected`` event)."""
    for event in reversed(queries().events(instance_id)):
        if event["type"] == "data_corrected":
            return list(event["payload"].get("timers_moved") or [])
    return []


def _form(view: InstanceView) -> tuple[dict[str, Any] | None, list[FormField], dict[str, Any]]:
    """The start schema, its fields, and the instance's values of them."""
    schema = carepath().catalog.start_schema(view.pathway_id, view.pathway_version)
    fields = start_fields(schema)
    data = carepath().instances.instance_data(view.id)
    return schema, fields, {f.name: data[f.name] for f in fields if f.name in data}


def _shown(value: Any) -> str:
    """A value as its form field holds it (booleans as the yes/no radios send them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_OWN_CODES = ("emptied", "reason", "unchanged")


def _page(
    view: InstanceView,
    fields: list[FormField],
    values: Any,
    problems: list[Problem],
    status: int,
    *,
    stale: bool = False,
) -> tuple[str, int]:
    ours = [p for p in problems if p.code in _OWN_CODES]
    errors, summary = problem_messages(fields, [p for p in problems if p not in ours], translate)
    for problem in ours:
        name = (problem.field or "/").lstrip("/") or "correct-form"
        words = translate(f"correct.errors.{problem.code}")
        if problem.code == "emptied":
            words = translate("correct.errors.emptied", label=next(f.label for f in fields if f.name == name))
        errors.setdefault(name, words)
        summary.append((f"f-{name}" if name != "correct-form" else name, words))
    return render_template(
        "web/correct.html",
        view=view,
        fields=fields,
        values=values,
        errors=errors,
        summary=summary,
        reasons=CORRECTION_REASONS,
        stale=stale or view.status not in NOT_ENDED,
        glass=g.get("break_glass"),
    ), status
