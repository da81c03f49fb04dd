"""Recording what happened to a patient, on their page: a clinician of their care team who learns of it first
(a recurrence confirmed at clinic, a death told by the family, a warning sign phoned in, chemotherapy
started) records it, and the pathway waiting for it moves on as it does when the EHR sends the message.

One page per message the instance waits for now (:attr:`engine.instances.progress.InstanceProgress.messages`).
The bundled pathways' messages have their fields, labelled in the page's language; a message of another
pathway is recorded with no details. Each field is checked here first, so that the person reads every
problem in their own words; the engine checks again (``POST /v1/messages`` is the same call) and refuses a
payload the pathway cannot take, with nothing recorded. A death ends every pathway of the patient, in every
team (engine.instances.deaths): the page says so, and asks the person to confirm it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Blueprint, g, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as WerkzeugResponse

from engine.calendar import latest_today
from engine.careplan.patient_status import WARNING_SIGN_TEXT_LIMIT
from engine.careplan.reassessment import ASKED_BY
from engine.documents.build import warning_sign_choices
from engine.errors import InvalidInputError, MessageNotDeliverableError, Problem
from engine.instances.deaths import DEATH_MESSAGE
from engine.instances.progress import instance_progress
from engine.instances.view import NOT_ENDED, InstanceView
from engine.patients import WARNING_SIGN_MESSAGE
from engine.rules.assessment import is_iso_date
from engine.rules.model import SMOKING_STATUSES

from .. import carepath
from ..access_log import shows_patients
from .auth import actor, page, scope
from .flashes import tell
from .i18n import current_language, translate, translate_or

bp = Blueprint("recording", __name__, url_prefix="/patients")

_MESSAGE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")  # a BPMN message name, as the API takes it
_OTHER_SIGN = "other"  # a sign not in the list: triaged as the most urgent (engine.careplan.patient_status)


@dataclass(frozen=True)
class Field:
    """One field of a message's form: ``kind`` is ``sign`` (the patient's warning signs), ``choice`` (one of
    ``options``), ``yes_no``, ``date``, ``text`` (at most ``limit`` characters) or ``confirm`` (a box that
    must be ticked, never sent)."""

    name: str
    kind: str
    options: tuple[str, ...] = ()
    required: bool = False
    limit: int = 0
    past: bool = False  # a date that cannot be after today


# The bundled pathways' messages with a payload (docs/api.md, "Messages"); every other message has none.
FORMS: dict[str, tuple[Field, ...]] = {
    WARNING_SIGN_MESSAGE: (
        Field("warning_sign", "sign", required=True),
        Field("description", "text", limit=WARNING_SIGN_TEXT_LIMIT),
    ),
    "treatment_status_changed": (
        Field("on_sact", "yes_no"),
        Field("last_sact_date", "date", past=True),
        Field("on_immunotherapy", "yes_no"),
        Field("last_immunotherapy_date", "date", past=True),
        Field("smoking_status", "choice", SMOKING_STATUSES),
    ),
    "reassessment_requested": (Field("asked_by", "choice", ASKED_BY, required=True),),
    DEATH_MESSAGE: (Field("date_of_death", "date", past=True), Field("confirmed", "confirm", required=True)),
}


def title_of(message: str) -> str:
    """The message's name as the page shows it: its words in the locale, or its name made readable."""
    return translate_or(f"record.messages.{message}", message.replace("_", " ").capitalize())


@bp.get("/<uuid:instance_id>/record/<message>")
@shows_patients  # the patient's reference and their warning signs: a look, recorded
@page("messages.send")
def form(instance_id: Any, message: str) -> tuple[str, int]:
    view, waiting = _waiting(str(instance_id), message)
    return _page(view, message, {}, {}, 200 if waiting else 409, waiting=waiting)


@bp.post("/<uuid:instance_id>/record/<message>")
@page("messages.send")
def record(instance_id: Any, message: str) -> WerkzeugResponse | tuple[str, int]:
    view, waiting = _waiting(str(instance_id), message)
    if not waiting:
        return _page(view, message, request.form, {}, 409, waiting=False)
    fields = FORMS.get(message, ())
    payload, errors = _parse(fields, request.form, _sign_codes(view) if message == WARNING_SIGN_MESSAGE else set())
    if errors:
        return _page(view, message, request.form, errors, 422)
    try:
        carepath().instances.send_message(message, actor(), instance_id=view.id, payload=payload or None, scope=scope())
    except MessageNotDeliverableError:  # it stopped waiting since the page was drawn (a timer, another person)
        return _page(view, message, request.form, {}, 409, waiting=False)
    except InvalidInputError as exc:  # the pathway refused a value: nothing was recorded
        return _page(view, message, request.form, _refused(fields, exc.problems), 422)
    tell("record.recorded", instance_id=view.id, event=title_of(message))
    return redirect(url_for("web.patients.patient", instance_id=view.id), code=303)


def recordable(view: InstanceView, waiting: tuple[str, ...]) -> list[str]:
    """What can be recorded for the instance: the messages it waits for (``waiting``), and a death while it
    has not ended, whether or not it listens for one (paused, held by an incident, or a pathway without the
    message): a death is a fact about the patient, and recording it ends every pathway of theirs
    (engine.instances.deaths)."""
    found = list(waiting)
    if DEATH_MESSAGE not in found and view.status in NOT_ENDED:
        found.append(DEATH_MESSAGE)
    return found


def _waiting(instance_id: str, message: str) -> tuple[InstanceView, bool]:
    """The instance, and whether ``message`` can be recorded for it now (a name no message has never can)."""
    view = carepath().instances.get(instance_id)
    if not _MESSAGE.match(message):
        return view, False
    if message == DEATH_MESSAGE and view.status in NOT_ENDED:
        return view, True
    return view, message in instance_progress(carepath().instances, view.id).messages


def _sign_codes(view: InstanceView) -> set[str]:
    return {s["code"] for s in warning_sign_choices(carepath(), view.id, current_language())} | {_OTHER_SIGN}


def _parse(
    fields: tuple[Field, ...], form: MultiDict[str, str], signs: set[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The payload the form holds, and the words of each field's problem (none sent when any)."""
    payload: dict[str, Any] = {}
    errors: dict[str, str] = {}
    today = latest_today(carepath().clock.now())  # where it is latest: a same-day date typed anywhere passes
    for field in fields:
        raw = form.get(field.name, "").strip()
        if raw == "":
            if field.required:
                errors[field.name] = translate_or(
                    f"record.errors.required_{field.kind}", translate("record.errors.required_choice")
                )
            continue
        if field.kind == "confirm":
            continue  # ticked: a check on the person, not part of the message
        offered = {"sign": signs, "choice": set(field.options), "yes_no": {"true", "false"}}.get(field.kind)
        if offered is not None and raw not in offered:
            errors[field.name] = translate("record.errors.choose")
        elif field.kind == "date" and not is_iso_date(raw):
            errors[field.name] = translate("record.errors.date")
        elif field.kind == "date" and field.past and date.fromisoformat(raw) > today:
            errors[field.name] = translate("record.errors.future")
        elif field.kind == "text" and len(raw) > field.limit:
            errors[field.name] = translate("record.errors.too_long", limit=str(field.limit))
        else:
            payload[field.name] = raw == "true" if field.kind == "yes_no" else raw
    return payload, errors


def _refused(fields: tuple[Field, ...], problems: list[Problem]) -> dict[str, str]:
    """The engine's refusal, on the fields it names (its words are English and for integrators: the page
    says it in its own language); a refusal that names no field of the form goes on the first field."""
    names = {f.name for f in fields}
    errors = {}
    for problem in problems:
        name = (problem.field or "/").lstrip("/").split("/")[0]
        errors[name if name in names else (fields[0].name if fields else "message")] = translate(
            "record.errors.refused"
        )
    return errors or {"message": translate("record.errors.refused")}


def _page(
    view: InstanceView,
    message: str,
    values: Any,
    errors: dict[str, str],
    status: int,
    *,
    waiting: bool = True,
) -> tuple[str, int]:
    language = current_language()
    fields = FORMS.get(message, ()) if waiting else ()
    return render_template(
        "web/record.html",
        view=view,
        message=message,
        title=title_of(message),
        fields=fields,
        values=values,
        errors=errors,
        waiting=waiting,
        signs=warning_sign_choices(carepath(), view.id, language)
        if waiting and message == WARNING_SIGN_MESSAGE
        else [],
        glass=g.get("break_glass"),
    ), status
