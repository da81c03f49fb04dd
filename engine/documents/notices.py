"""Safety notices: the 24-hour line's message, filled with the patient's number, wherever it is shown.

A form declares the notice it must carry (``"x-carepath-safety-notice": "twenty_four_hour_line"`` at
its top, as the needs checklist does), and this module fills it from the service directory
(:mod:`engine.directory`) in the reader's language, with the numbers of the health system
its caller names -- the patient's wherever a form is shown for one instance's task (the API's task
representations, the web pages: :func:`engine.documents.build.fill_instance_forms`), the deployment's
only where there is no patient (the FHIR Questionnaire) -- never the language's: the line's name,
number and hours, the message in English or Swedish (``locales/``), and whether the number is example
data. The documents' own safety box (:mod:`engine.documents.build`) is made by the same function, so
the patient reads one message everywhere (issue 13: if you have a temperature or feel unwell during
treatment, call the 24-hour line now). A child's form (the children's checklist) gives the child's
24-hour line, as their documents do: the caller passes ``child`` and ``childrens_line``, decided as
the documents decide them (:func:`engine.documents.build.fill_instance_forms`). There is no
placeholder to fall back on: the directory always has a 24-hour line with a checked number, or it
does not load.

A filled form keeps its declaration and gains ``x-carepath-safety-notice-text`` (the notice as an
object) and a ``description`` that starts with the notice's words, so a client that knows nothing of
CarePath's extensions still shows the message. The instance layer cannot fill it (``instances`` must not
import ``documents``): the API, the web pages and the FHIR Questionnaire do, through this module.
"""

from __future__ import annotations

from typing import Any

from engine.directory import DirectoryEntry, HealthSystem, ServiceDirectory
from engine.documents.contacts import hours_label
from engine.documents.render import LANGUAGES, strings
from engine.instances.forms import NOTICE_KEY  # what a form declares (one of NOTICE_KINDS)

__all__ = ["NOTICE_KEY", "NOTICE_KINDS", "TEXT_KEY", "fill_form", "fill_tasks", "safety_notice"]

TEXT_KEY = "x-carepath-safety-notice-text"  # what a filled form carries
# The notices there are, each a key of the locales' ``safety`` section.
NOTICE_KINDS = ("twenty_four_hour_line", "during_treatment", "after_treatment")


def safety_notice(
    directory: ServiceDirectory,
    language: str,
    kind: str = "twenty_four_hour_line",
    *,
    system: HealthSystem | None = None,
    child: bool = False,
    childrens_line: DirectoryEntry | None = None,
) -> dict[str, Any]:
    """The notice ``kind`` in ``language`` (``en`` or ``sv``; anything else gets English), with the
    24-hour line of ``system`` (the patient's health system; None: the deployment's, for a form or
    page read without a patient; never the reader's language's): ``kind``, ``language``, ``title``,
    ``text``, ``phone``, ``line`` (its name), ``hours_label``, ``emergency`` (the national emergency
    number's sentence) and ``example`` (the number is example data).

    A ``child``'s notice (the children and young people's pathway) gives ``childrens_line`` (their
    principal treatment centre or shared care unit, answered at all hours), never the adult 24-hour
    line; without one, the emergency number, saying that the directory has no children's line.

    Raises:
        ValueError: ``kind`` is not one of :data:`NOTICE_KINDS` (a form file's mistake, caught by its test).
    """
    if kind not in NOTICE_KINDS:
        raise ValueError(f"unknown safety notice {kind!r}: one of {', '.join(NOTICE_KINDS)}")
    language = language if language in LANGUAGES else LANGUAGES[0]
    words = strings(language)
    system = system or directory.for_deployment()
    emergency = words["text"]["emergency_call"].format(number=system.emergency_number)
    line = childrens_line if child else system.twenty_four_hour_line
    if line is None:  # a child, and no children's 24-hour line in the directory
        always = words["hours"]["always"]
        return {
            "kind": kind,
            "language": language,
            "title": words["safety"]["title"],
            "text": words["safety"]["child_no_line"].format(number=system.emergency_number),
            "phone": system.emergency_number,
            "line": words["text"]["no_childrens_line"].format(number=system.emergency_number),
            "hours_label": always,
            "example": False,
            "emergency": emergency,
        }
    hours = hours_label(line.hours, words)
    text = words["safety"][kind].format(phone=line.phone, line=line.name(language), hours=hours)
    return {
        "kind": kind,
        "language": language,
        "title": words["safety"]["title"],
        "text": text,
        "phone": line.phone,
        "line": line.name(language),
        "hours_label": hours,
        "example": line.example,
        "emergency": emergency,
    }


def fill_form(
    form: dict[str, Any] | None,
    directory: ServiceDirectory,
    language: str,
    system: HealthSystem | None = None,
    *,
    child: bool = False,
    childrens_line: DirectoryEntry | None = None,
) -> dict[str, Any] | None:
    """A copy of ``form`` with its declared safety notice filled in (the form itself when it declares
    none), with ``system``'s numbers (None: the deployment's); a ``child``'s gives ``childrens_line``
    (:func:`safety_notice`). Raises: ValueError (a notice kind that does not exist)."""
    if not isinstance(form, dict) or NOTICE_KEY not in form:
        return form
    notice = safety_notice(
        directory, language, str(form[NOTICE_KEY]), system=system, child=child, childrens_line=childrens_line
    )
    filled = dict(form)  # only top-level keys change: the form's fields are shared, never written
    filled[TEXT_KEY] = notice
    rest = filled.get("description")
    filled["description"] = f"{notice['text']} {rest}" if isinstance(rest, str) and rest else notice["text"]
    return filled


def fill_tasks(
    tasks: list[dict[str, Any]],
    directory: ServiceDirectory,
    language: str,
    system: HealthSystem | None = None,
    *,
    child: bool = False,
    childrens_line: DirectoryEntry | None = None,
) -> list[dict[str, Any]]:
    """Tasks (as the API and pages show them, each with a ``form``) with their forms' notices filled
    with ``system``'s numbers (None: the deployment's); a ``child``'s give ``childrens_line``."""
    return [
        {
            **task,
            "form": fill_form(
                task.get("form"), directory, language, system, child=child, childrens_line=childrens_line
            ),
        }
        if isinstance(task.get("form"), dict) and NOTICE_KEY in task["form"]
        else task
        for task in tasks
    ]
