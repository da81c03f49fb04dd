"""The holistic needs assessment in FHIR: the concerns checklist as a Questionnaire, each assessment as a
QuestionnaireResponse, and a patient app's response back into the checklist task's data.

The Questionnaire is generated from the concern catalogue (``rules/catalogues/concerns.yaml``): a group
per domain, an integer item 0-10 per concern (linkId = the concern's code), then "about you" (the
situation questions the rules read: linkId = the context field) and "what matters to me". It opens with
the checklist form's safety notice as a ``display`` item (if you have a temperature or feel unwell during
treatment, call the 24-hour line now), filled from the deployment's service directory
(engine.documents.notices): English text with England's line, and a FHIR ``translation`` extension with
the Swedish text and Sweden's line. Its version is the catalogue's version, so a response names the
exact checklist it answered (the notice asks nothing).

An assessment is what the rules evaluated: each stored rule evaluation of an instance holds the scores
and the situation answers of one completed checklist (engine.rules.store), so each is one
QuestionnaireResponse (id = the evaluation's id), also after later assessments replaced those answers
in the instance's data. What matters to the patient is kept with the care plan (CarePlan.note).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.directory import ServiceDirectory
from engine.documents.notices import safety_notice
from engine.errors import InvalidInputError, Problem
from engine.fhir.careplans import CAREPATH_CODES, instant
from engine.rules import Catalogue
from engine.rules.model import WORK_STATUSES

__all__ = [
    "ABOUT_YOU",
    "QUESTIONNAIRE_ID",
    "QUESTIONNAIRE_URL",
    "answers_to_task_data",
    "canonical",
    "questionnaire",
    "questionnaire_response",
]

QUESTIONNAIRE_ID = "hna-concerns-checklist"
QUESTIONNAIRE_URL = f"https://carepath.dev/fhir/Questionnaire/{QUESTIONNAIRE_ID}"
_MIN = "http://hl7.org/fhir/StructureDefinition/minValue"
_MAX = "http://hl7.org/fhir/StructureDefinition/maxValue"
_CONCERNS, _ABOUT_YOU, _WHAT_MATTERS = "concerns", "about_you", "what_matters"
_OWN_WORDS = "other_concern_text"  # "something else", described (the checklist form's field)
_TEXTS = {_WHAT_MATTERS: 1000, _OWN_WORDS: 500}  # free-text items and their longest answer
_SAFETY_NOTICE = "safety-notice"
_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"


@dataclass(frozen=True)
class Question:
    """One "about you" question: the rules' context field it fills, its FHIR type and wording (the
    checklist form's, pathways/shared/forms/hna_checklist.json; a test holds the two together)."""

    link_id: str
    type: str  # FHIR Questionnaire item type: choice, boolean, integer, decimal
    text: str
    minimum: float | None = None
    maximum: float | None = None


ABOUT_YOU = (
    Question("work_status", "choice", "Work or study"),
    Question("wants_to_return_to_work", "boolean", "I want to return to work or study"),
    Question("caring_duties", "boolean", "I care for children or another adult"),
    Question("lives_alone", "boolean", "I live alone"),
    Question("travel_minutes", "integer", "Travel time to the treatment centre (minutes, one way)", 0, 2880),
    Question("travel_km", "decimal", "Distance to the treatment centre (km, one way)", 0, 5000),
)
_QUESTIONS = {q.link_id: q for q in ABOUT_YOU}
_VALUE_KEY = {"choice": "valueCoding", "boolean": "valueBoolean", "integer": "valueInteger", "decimal": "valueDecimal"}


def canonical(catalogue_version: str) -> str:
    """The checklist's canonical reference with its version: ``url|version``."""
    return f"{QUESTIONNAIRE_URL}|{catalogue_version}"


def _work_status(code: str) -> dict[str, str]:
    return {"system": f"{CAREPATH_CODES}/work-status", "code": code, "display": code.replace("_", " ").capitalize()}


def _bounds(minimum: float | None, maximum: float | None, kind: str) -> list[dict[str, Any]]:
    key = "valueInteger" if kind == "integer" else "valueDecimal"
    return [
        {"url": url, key: int(v) if kind == "integer" else v}
        for url, v in ((_MIN, minimum), (_MAX, maximum))
        if v is not None
    ]


def _notice_item(directory: ServiceDirectory, health_system: str | None) -> dict[str, Any]:
    """The 24-hour line's notice as a display item, in English with a Swedish translation, both with
    the deployment's numbers (``health_system``), whatever the language."""
    system = directory.for_deployment(health_system)
    english, swedish = (safety_notice(directory, language, system=system)["text"] for language in ("en", "sv"))
    return {
        "linkId": _SAFETY_NOTICE,
        "type": "display",
        "text": english,
        "_text": {
            "extension": [
                {
                    "url": _TRANSLATION,
                    "extension": [{"url": "lang", "valueCode": "sv"}, {"url": "content", "valueString": swedish}],
                }
            ]
        },
    }


def questionnaire(
    catalogue: Catalogue, directory: ServiceDirectory, health_system: str | None = None
) -> dict[str, Any]:
    """The concerns checklist as a Questionnaire, opening with the 24-hour line's notice from
    ``directory`` (the deployment's ``health_system`` section); version = the catalogue's version."""
    domains = []
    for domain in catalogue.domains.values():
        concerns = [
            {"linkId": c.code, "text": c.name_en, "type": "integer", "extension": _bounds(0, 10, "integer")}
            for c in catalogue.concerns.values()
            if c.domain == domain.code
        ]
        if concerns:
            domains.append({"linkId": domain.code, "text": domain.name_en, "type": "group", "item": concerns})
    about = []
    for q in ABOUT_YOU:
        item: dict[str, Any] = {"linkId": q.link_id, "text": q.text, "type": q.type}
        if q.type == "choice":
            item["answerOption"] = [{"valueCoding": _work_status(code)} for code in WORK_STATUSES]
        bounds = _bounds(q.minimum, q.maximum, q.type)
        if bounds:
            item["extension"] = bounds
        about.append(item)
    return {
        "resourceType": "Questionnaire",
        "id": QUESTIONNAIRE_ID,
        "url": QUESTIONNAIRE_URL,
        "version": catalogue.version,
        "name": "HolisticNeedsAssessmentConcernsChecklist",
        "title": "Holistic needs assessment: concerns checklist",
        "status": "active",
        "subjectType": ["Patient"],
        "publisher": "CarePath",
        "language": "en",
        "description": "The patient scores each concern that applies from 0 (no concern) to 10 (worst); concerns "
        "not scored count as no concern. Concerns scored 5 or more are discussed, 8 or more are a "
        "priority. Domains and concerns follow the Macmillan Cancer Support / NCRI Holistic Needs "
        "Assessment Concerns Checklist (wording paraphrased; the codes are CarePath's own).",
        "item": [
            _notice_item(directory, health_system),
            {"linkId": _CONCERNS, "text": "Concerns", "type": "group", "item": domains},
            {
                "linkId": _OWN_WORDS,
                "text": "Something else that concerns me (in my own words)",
                "type": "text",
                "maxLength": _TEXTS[_OWN_WORDS],
            },
            {"linkId": _ABOUT_YOU, "text": "About you", "type": "group", "item": about},
            {"linkId": _WHAT_MATTERS, "text": "What matters to me", "type": "text", "maxLength": _TEXTS[_WHAT_MATTERS]},
        ],
    }


def questionnaire_response(
    evaluation: Any, instance_id: str, patient: dict[str, Any], catalogue: Catalogue
) -> dict[str, Any]:
    """One assessment (a stored rule evaluation, :class:`engine.rules.RuleEvaluationRecord`) as a
    QuestionnaireResponse: the scores and situation answers the rules read."""
    concerns: dict[str, list[dict[str, Any]]] = {}
    about: list[dict[str, Any]] = []
    for fact in evaluation.facts:
        if fact.get("t") == "concern":
            entry = catalogue.concerns.get(fact["code"])
            concerns.setdefault(fact["domain"], []).append(
                {
                    "linkId": fact["code"],
                    "text": entry.name_en if entry else fact["code"],
                    "answer": [{"valueInteger": int(fact["score"])}],
                }
            )
        elif fact.get("t") == "context":
            about = [_answered(q, fact[q.link_id]) for q in ABOUT_YOU if fact.get(q.link_id) is not None]
    items: list[dict[str, Any]] = []
    if concerns:
        groups = [
            {
                "linkId": domain,
                "text": catalogue.domains[domain].name_en if domain in catalogue.domains else domain,
                "item": answers,
            }
            for domain, answers in concerns.items()
        ]
        items.append({"linkId": _CONCERNS, "text": "Concerns", "item": groups})
    if about:
        items.append({"linkId": _ABOUT_YOU, "text": "About you", "item": about})
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": evaluation.id,
        "questionnaire": canonical(evaluation.catalogue_version),
        "status": "completed",
        "subject": patient,
        "authored": instant(evaluation.created_at),
        "basedOn": [{"reference": f"CarePlan/{instance_id}"}],
    }
    if items:
        resource["item"] = items
    return resource


def _answered(question: Question, value: Any) -> dict[str, Any]:
    answer: Any = _work_status(str(value)) if question.type == "choice" else value
    return {"linkId": question.link_id, "text": question.text, "answer": [{_VALUE_KEY[question.type]: answer}]}


# --- a patient app's response, back into the checklist's data ------------------------------------


def _items(items: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every item with its FHIRPath-like location, depth first."""
    if not isinstance(items, list):
        raise InvalidInputError("the response's items are not a list", [Problem("must be a list", field=path)])
    for index, item in enumerate(items):
        where = f"{path}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("linkId"), str):
            raise InvalidInputError("an item has no linkId", [Problem("needs a linkId", field=where)])
        yield where, item
        if "item" in item:
            yield from _items(item["item"], f"{where}.item")


def answers_to_task_data(response: dict[str, Any], catalogue: Catalogue) -> dict[str, Any]:
    """The checklist task's data (``{"concerns": {...}, "about_you": {...}, "what_matters"?,
    "other_concern_text"?}``) from a
    QuestionnaireResponse's answers. The task's form then checks the data as for any other client.

    Raises:
        InvalidInputError: an item that is not on the checklist, an answer of the wrong type, an item
            answered twice or with several answers -- each named by its location, values never quoted.
    """
    data: dict[str, Any] = {"concerns": {}, "about_you": {}}
    problems: list[Problem] = []
    seen: set[str] = set()
    groups = {_CONCERNS, _ABOUT_YOU, *catalogue.domains}
    for where, item in _items(response.get("item", []), "QuestionnaireResponse.item"):
        link = item["linkId"]
        answers = item.get("answer")
        if link in groups and answers is None:
            continue
        if not _known(link, catalogue):  # an unknown linkId is not quoted: it is the client's text
            problems.append(Problem("is not an item of the checklist", field=f"{where}.linkId"))
            continue
        if link in seen:
            problems.append(Problem(f"item {link} is answered more than once", field=where))
            continue
        seen.add(link)
        if not isinstance(answers, list) or len(answers) != 1 or not isinstance(answers[0], dict):
            problems.append(Problem(f"item {link} needs exactly one answer", field=f"{where}.answer"))
            continue
        problem = _take(link, answers[0], data, catalogue)
        if problem:
            problems.append(Problem(problem, field=f"{where}.answer[0]"))
    if problems:
        raise InvalidInputError("the response does not fit the checklist", problems)
    return data


def _known(link: str, catalogue: Catalogue) -> bool:
    return link in catalogue.concerns or link in _QUESTIONS or link in _TEXTS


def _take(link: str, answer: dict[str, Any], data: dict[str, Any], catalogue: Catalogue) -> str | None:
    """Put one answer into the data; the problem with it, if any."""
    if link in catalogue.concerns:
        value = answer.get("valueInteger")
        if isinstance(value, bool) or not isinstance(value, int):
            return f"item {link} takes valueInteger (0-10)"
        data["concerns"][link] = value
        return None
    question = _QUESTIONS.get(link)
    if question is not None:
        key = _VALUE_KEY[question.type]
        value = answer.get(key)
        if question.type == "choice":
            value = value.get("code") if isinstance(value, dict) else None
            if value not in WORK_STATUSES:
                return f"item {link} takes valueCoding with one of the checklist's codes"
        elif value is None or (question.type != "boolean" and isinstance(value, bool)):
            return f"item {link} takes {key}"
        elif isinstance(value, float) and not math.isfinite(value):
            return f"item {link} takes a finite {key}"  # NaN passes every minimum and maximum
        data["about_you"][link] = value
        return None
    if link in _TEXTS:
        value = answer.get("valueString")
        if not isinstance(value, str):
            return f"item {link} takes valueString"
        data[link] = value  # its length is the task form's to check, as for any client
        return None
    return "is not an item of the checklist"
