"""Starting a pathway for a patient from the web app: the clinician who meets a newly diagnosed patient enrols
them, as the patient's record system does with ``POST /v1/instances`` (the same call and permission,
``instances.start``).

``/patients/start`` lists the pathways new instances can start on; ``/patients/start/<pathway>`` asks for the
patient's reference, the care team (one of the clinician's own, when they have several) and the pathway's
start data, drawn from its start schema (``<name>.start.schema.json``) as the task pages draw a task's form.
The engine checks the start data against that schema; every problem is shown on its field in the page's
language, and nothing is started. A patient who already runs the pathway is told so, with a link when the
running instance is the clinician's to see; one whose death is recorded is refused.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as WerkzeugResponse

from engine.errors import (
    InstanceExistsError,
    InvalidInputError,
    NotFoundError,
    PatientDeceasedError,
    PermissionDeniedError,
    Problem,
    StartDataError,
)
from engine.instances.view import PATIENT_REF_PATTERN
from engine.pathway_checks import CONFIRM_FIELD, pathway_check
from engine.rules.diagnoses import DiagnosisSite
from engine.rules.warning_signs import DIAGNOSES

from .. import carepath
from ..scope import start_placement, visible_instance
from .auth import actor, page, principal
from .flashes import tell
from .forms import FormField, fields_of, other_problems, parse_fields, problem_messages
from .i18n import current_language, translate, translate_or

bp = Blueprint("starting", __name__, url_prefix="/patients/start")

_PATHWAY_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")
_PATIENT_REF = re.compile(PATIENT_REF_PATTERN)
# The fields the page asks for besides the start data; a start schema's own field of the same name is not
# offered twice (the engine keeps the patient in the instance's reference, never in its data).
PATIENT_FIELD, TEAM_FIELD = "patient_ref", "care_team"
SITE_DIAGNOSES = frozenset(DIAGNOSES) - {"general", "children_young_people"}  # a site's own pathway


@bp.get("")
@page("instances.start")
def choose() -> str:
    startable = [info for info in carepath().catalog.pathways() if info.active]
    return render_template("web/start_choose.html", pathways=startable)


@bp.get("/<pathway_id>")
@page("instances.start")
def form(pathway_id: str) -> tuple[str, int]:
    info, schema = _pathway(pathway_id)
    # A site's own pathway (breast_cancer: breast) starts with its diagnosis filled in, as the rules name it.
    # The rules read what is typed instead as the site it names ("Invasive ductal carcinoma" on this pathway
    # is breast: engine.rules.diagnoses), so the clinician may write the diagnosis as the record has it.
    site = info.pathway_id.removesuffix("_cancer")
    filled = {"diagnosis": site} if site in SITE_DIAGNOSES and "diagnosis" in _declared(schema) else {}
    return _page(info, schema, MultiDict(filled), [], 200)


@bp.post("/<pathway_id>")
@page("instances.start")
def start(pathway_id: str) -> WerkzeugResponse | tuple[str, int]:
    info, schema = _pathway(pathway_id)
    fields = start_fields(schema)
    data, problems = parse_fields(fields, request.form)
    problems += other_problems(schema, data, problems) if schema is not None else []
    patient_ref = request.form.get(PATIENT_FIELD, "").strip()
    if not _PATIENT_REF.match(patient_ref):
        problems.append(Problem("not an identifier", field=f"/{PATIENT_FIELD}", code="patient_ref"))
    teams = _teams()
    team = request.form.get(TEAM_FIELD, "") if len(teams) > 1 else None
    if team is not None and team not in teams:
        problems.append(Problem("not one of your teams", field=f"/{TEAM_FIELD}", code="care_team"))
    check = pathway_check(carepath().rules.catalogue().diagnoses, info.pathway_id, data)
    checked = check is not None and request.form.get(CONFIRM_FIELD) == check.site.code
    other = check.site if check is not None and not checked else None  # else: the clinician has checked
    if problems or other is not None:
        return _page(info, schema, request.form, problems, 422, other_site=other)
    user = principal()
    assert user is not None
    running = ""
    try:
        organisation, care_team = start_placement(user, None, team)
        view = carepath().instances.start(
            info.pathway_id,
            patient_ref,
            actor(),
            data,
            organisation=organisation,
            care_team=care_team,
            pathway_checked=checked,
        )
    except StartDataError as exc:  # the start schema's own check: its problems name /data/<field>
        problems = [Problem(p.message, field=within_data(p.field), code=p.code) for p in exc.problems]
        return _page(info, schema, request.form, problems, 422)
    except InstanceExistsError as exc:
        running = visible_instance(user, exc.instance_id)
        problems = [Problem("runs already", field=f"/{PATIENT_FIELD}", code="instance_exists")]
        return _page(info, schema, request.form, problems, 409, running=running)
    except PatientDeceasedError:
        return _page(info, schema, request.form, [Problem("deceased", field=f"/{PATIENT_FIELD}", code="deceased")], 409)
    except (InvalidInputError, PermissionDeniedError) as exc:  # the reference, the team, a sandbox's patients
        problems = [Problem(p.message, field=p.field or f"/{PATIENT_FIELD}", code="refused") for p in exc.problems]
        return _page(info, schema, request.form, problems or [Problem(exc.message, code="refused")], 422)
    tell("start.started", instance_id=view.id, pathway=info.title or info.pathway_id)
    return redirect(url_for("web.patients.patient", instance_id=view.id), code=303)


def _pathway(pathway_id: str) -> tuple[Any, dict[str, Any] | None]:
    """The pathway's version new instances start on, and its start schema.

    Raises: NotFoundError (no such pathway, or none of its versions active yet: four eyes)."""
    if not _PATHWAY_ID.match(pathway_id):
        raise NotFoundError("no such pathway")
    catalog = carepath().catalog
    info = catalog.current(pathway_id)
    if not info.active:
        raise NotFoundError("no version of this pathway is active yet")
    return info, catalog.start_schema(pathway_id, info.version)


def _in_sentence(name: str) -> str:
    return name[:1].lower() + name[1:]


def _declared(schema: dict[str, Any] | None) -> dict[str, Any]:
    properties = (schema or {}).get("properties")
    return properties if isinstance(properties, dict) else {}


def _teams() -> list[str]:
    """The care teams the signed-in person may start in (none named: their one team or the deployment's)."""
    user = principal()
    teams = user.scope.teams if user is not None else None
    return sorted(teams) if teams else []


def start_fields(schema: dict[str, Any] | None) -> list[FormField]:
    """The start schema's fields, each labelled and explained in the page's language where the locale knows
    its name (the bundled pathways' fields), else as the schema has it."""
    fields = [f for f in fields_of(schema) if f.name not in (PATIENT_FIELD, TEAM_FIELD)]
    for item in fields:
        item.label = translate_or(f"start.fields.{item.name}", item.label)
        item.hint = translate_or(f"start.hints.{item.name}", item.hint or "") or None
    return fields


def within_data(pointer: str | None) -> str:
    """A start data problem's field as the form names it: ``/data/age`` is the form's ``/age``."""
    value = pointer or "/"
    return value.removeprefix("/data") or "/"


def _page(
    info: Any,
    schema: dict[str, Any] | None,
    values: Any,
    problems: list[Problem],
    status: int,
    *,
    running: str = "",
    other_site: DiagnosisSite | None = None,
) -> tuple[str, int]:
    fields = start_fields(schema)
    own = [
        FormField(PATIENT_FIELD, f"/{PATIENT_FIELD}", translate("start.patient_ref"), "text", True),
        *(
            [FormField(TEAM_FIELD, f"/{TEAM_FIELD}", translate("start.care_team"), "select", True)]
            if len(_teams()) > 1
            else []
        ),
    ]
    if len(own) > 1:
        own[1].options = [(team, team) for team in _teams()]
    own[0].hint = translate("start.patient_ref_hint")
    ours = [p for p in problems if p.code in ("patient_ref", "care_team", "instance_exists", "deceased", "refused")]
    errors, summary = problem_messages(own + fields, [p for p in problems if p not in ours], translate)
    for problem in ours:
        name = (problem.field or f"/{PATIENT_FIELD}").lstrip("/") or PATIENT_FIELD
        name = name if name in (PATIENT_FIELD, TEAM_FIELD) else PATIENT_FIELD
        words = translate(f"start.errors.{problem.code}")
        errors.setdefault(name, words)
        summary.append((f"f-{name}", words))
    site_name = pathway_name = ""
    if other_site is not None:  # within a sentence: "names lung cancer, and this is the breast cancer pathway"
        site_name = _in_sentence(other_site.name_sv if current_language() == "sv" else other_site.name_en)
        pathway_name = _in_sentence(info.title or info.pathway_id)
        words = translate("start.errors.other_site", site=site_name, pathway=pathway_name)
        errors.setdefault("diagnosis", words)
        summary.append(("f-diagnosis", words))
    return render_template(
        "web/start.html",
        info=info,
        own=own,
        fields=fields,
        values=values,
        errors=errors,
        summary=summary,
        running=running,
        other_site=other_site,
        other_site_name=site_name,
        pathway_name=pathway_name,
        confirm_field=CONFIRM_FIELD,
    ), status
