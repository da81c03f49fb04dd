"""Documents generated from a pathway instance: the Personalised Care Plan and the End of Treatment Summary.

Each document is built as JSON (a plain ``dict``, format described in ``docs/documents.md``,
versioned by ``schema_version``) and rendered from that JSON to a self-contained, printable HTML page
(:func:`render_html`), in English or Swedish. Codes travel with their labels in the document's
language, so a consumer of the JSON needs no catalogue. Every care plan item carries ``why``: the
rule evaluation that proposed it (its id in ``rule_evaluations``), the rules that fired and the
rule-set version, so any referral can be traced back to the need, the rule and its text.

Where the content comes from: the instance's accumulated data (start data and forms, see
:meth:`engine.instances.service.PathwayService.instance_data`), the care plan items and what matters to the
patient (:mod:`engine.careplan.service`), the stored rule evaluations (:mod:`engine.rules.store`), the
catalogues (names in English and Swedish) and the warning-signs catalogue (:mod:`engine.documents.warning_signs`).
Patient data: documents are for the patient and their care team, never for logs.
"""

from __future__ import annotations

import functools
import importlib.resources
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import jinja2
import yaml
from sqlalchemy import select

from engine.calendar import add_months
from engine.db.models import InstanceEvent
from engine.db.session import read_only
from engine.documents.warning_signs import DIAGNOSES, URGENCIES, load_warning_signs
from engine.errors import ConflictError, NotFoundError, RuleFileError
from engine.instances.view import Status
from engine.rules.catalogue import Catalogue
from engine.rules.store import list_evaluations

if TYPE_CHECKING:
    from engine.app import CarePath

__all__ = [
    "CARE_PLAN",
    "END_OF_TREATMENT",
    "LANGUAGES",
    "SCHEMA_VERSION",
    "care_plan_document",
    "end_of_treatment_summary",
    "render_html",
    "resolve_language",
]

SCHEMA_VERSION = "1.0"
CARE_PLAN = "personalised_care_plan"
END_OF_TREATMENT = "end_of_treatment_summary"
LANGUAGES = ("en", "sv")  # the first is the fallback
# Templates and their strings ship inside this package (pyproject.toml's package-data).
_PACKAGE = "engine.documents"
_AGREED = ("agreed", "referred", "completed")
# The concerns checklist's scale (rules/catalogues/concerns.yaml): discussed from 5, a priority from 8.
_DISCUSS_AT, _PRIORITY_AT = 5, 8
# Review and survey elements of the shared sub-pathways, and the data holding their due dates.
_UPCOMING = (("cancer_care_review_3_months", "first_review", "first_review_due"),
             ("cancer_care_review_12_months", "second_review", "second_review_due"))


def resolve_language(requested: str | None) -> str:
    """The document language for a requested one: ``sv``, ``sv-SE``, ``SV`` give ``sv``; anything
    else (none, ``de``, ``en-GB``) gives English."""
    primary = (requested or "").strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in LANGUAGES else LANGUAGES[0]


@functools.cache
def _strings(language: str) -> dict[str, Any]:
    text = (importlib.resources.files(_PACKAGE) / "locales" / f"{language}.yaml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


class _Labels:
    """Labels in one language: UI strings, then catalogue names, then a readable form of the code."""

    def __init__(self, language: str, catalogue: Catalogue) -> None:
        self.language, self.catalogue = language, catalogue
        self.labels: dict[str, dict[str, str]] = _strings(language)["labels"]

    def of(self, group: str, code: Any) -> str:
        if code is None:
            return ""
        return self.labels.get(group, {}).get(str(code)) or str(code).replace("_", " ").replace("-", " ").capitalize()

    def named(self, entry: Any, code: str) -> str:
        if entry is None:
            return code
        return str((entry.name_sv if self.language == "sv" else None) or entry.name_en)


# --- gathering ---------------------------------------------------------------------------------------


class _Sources:
    """Everything a document is built from, read once."""

    def __init__(self, carepath: CarePath, instance_id: str, language: str | None) -> None:
        self.catalogue = carepath.rules.catalogue()
        self.language = resolve_language(language)
        self.labels = _Labels(self.language, self.catalogue)
        self.now = carepath.clock.now()
        # One snapshot: a step committed meanwhile shows in all of the document or in none of it.
        with read_only(carepath.sessions) as session:
            self.view, self.data = carepath.instances.read(session, instance_id)
            self.plan = carepath.care_plans.read(session, instance_id)
            records = list_evaluations(session, instance_id=instance_id)
            self.done = set(session.scalars(select(InstanceEvent.element).where(
                InstanceEvent.instance_id == instance_id, InstanceEvent.type == "task_completed")))
        titles = _rule_titles(carepath, {(r.ruleset_name, r.ruleset_version) for r in records})
        self.evaluations = {r.id: _evaluation(r, titles, self.labels) for r in records}

    def header(self, document_type: str, title_key: str) -> dict[str, Any]:
        strings = _strings(self.language)
        return {
            "document_type": document_type, "schema_version": SCHEMA_VERSION, "generated_at": self.now.isoformat(),
            "language": self.language, "title": strings[title_key]["title"],
            "instance_id": self.view.id, "pathway_id": self.view.pathway_id,
            "pathway_name": self.labels.of("pathway", self.view.pathway_id),
            "pathway_version": self.view.pathway_version, "patient_ref": self.view.patient_ref,
            "instance_status": {"code": self.view.status, "label": self.labels.of("instance_status", self.view.status)},
        }

    def items(self, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
        return [self._item(i) for i in self.plan.items if i["status"] in statuses]

    def _item(self, item: dict[str, Any]) -> dict[str, Any]:
        labels, catalogue = self.labels, self.catalogue
        evaluation = self.evaluations.get(item["evaluation_id"], {})
        titles = evaluation.get("rule_titles", {})
        service = item["service"]
        entry = catalogue.interventions.get(item["code"])
        return {
            "id": item["id"], "kind": item["kind"], "kind_label": labels.of("kind", item["kind"]),
            "code": item["code"], "name": labels.named(entry, item["code"]),
            "description": entry.description if entry is not None and self.language == "en" else None,
            "service": {"code": service, "name": labels.named(catalogue.service_types.get(service), service)}
            if service else None,
            "urgency": item["urgency"],
            "urgency_label": labels.of("urgency", item["urgency"]) if item["urgency"] else None,
            "status": item["status"], "status_label": labels.of("status", item["status"]),
            "updated_at": item["updated_at"],
            "why": {
                "evaluation_id": item["evaluation_id"], "assessed_at": evaluation.get("assessed_at"),
                "ruleset": evaluation.get("ruleset"), "ruleset_version": evaluation.get("ruleset_version"),
                "catalogue_version": evaluation.get("catalogue_version"),
                "rules": [{"id": rule, "title": titles.get(rule)} for rule in item["rules"]],
            },
        }

    def named_contact(self) -> dict[str, Any] | None:
        contact = self.data.get("named_contact")
        if not isinstance(contact, dict):
            return None
        return {**contact, "role_label": self.labels.of("role", contact.get("role")),
                "contact_line_label": self.labels.of("contact_line", contact.get("contact_line"))}

    def diagnosis(self) -> dict[str, Any]:
        code, intent = self.data.get("diagnosis"), self.data.get("treatment_intent")
        return {"code": code, "label": self.labels.of("diagnosis", code),
                "diagnosis_date": self.data.get("diagnosis_date"), "age": self.data.get("age"),
                "treatment_intent": {"code": intent, "label": self.labels.of("treatment_intent", intent)}
                if intent else None}


def _rule_titles(carepath: CarePath, versions: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    titles: dict[tuple[str, str], dict[str, str]] = {}
    for name, version in versions:
        try:
            loaded = carepath.rules.by_version(name, version)
        except (NotFoundError, RuleFileError):  # an old version this process never loaded: ids only
            continue
        titles[(name, version)] = {rule.id: rule.title for rule in loaded.compiled.rule_file.rules}
    return titles


def _evaluation(record: Any, titles: dict[tuple[str, str], dict[str, str]], labels: _Labels) -> dict[str, Any]:
    context: dict[str, Any] = next((f for f in record.facts if f.get("t") == "context"), {})
    concerns = []
    for fact in record.facts:
        if fact.get("t") != "concern" or not fact.get("score"):
            continue
        score = int(fact["score"])
        level = "priority" if score >= _PRIORITY_AT else "discuss" if score >= _DISCUSS_AT else "noted"
        concern, domain = labels.catalogue.concerns.get(fact["code"]), labels.catalogue.domains.get(fact["domain"])
        concerns.append({"code": fact["code"], "name": labels.named(concern, fact["code"]), "domain": fact["domain"],
                         "domain_name": labels.named(domain, fact["domain"]), "score": score, "level": level,
                         "level_label": labels.of("level", level)})
    concerns.sort(key=lambda c: (-c["score"], c["domain"], c["code"]))
    phase = context.get("treatment_phase")
    return {
        "evaluation_id": record.id, "assessed_at": record.created_at.isoformat(),
        "phase": {"code": phase, "label": labels.of("phase", phase)} if phase else None,
        "ruleset": record.ruleset_name, "ruleset_version": record.ruleset_version,
        "catalogue_version": record.catalogue_version, "concerns": concerns,
        "rules_fired": [f["rule"] for f in record.fired],
        "rule_titles": titles.get((record.ruleset_name, record.ruleset_version), {}),
    }


# --- the documents -------------------------------------------------------------------------------------


def care_plan_document(carepath: CarePath, instance_id: str, language: str | None = "en") -> dict[str, Any]:
    """The Personalised Care Plan (Min vårdplan) of an instance, as of now.

    Raises:
        NotFoundError: no such instance.
    """
    src = _Sources(carepath, instance_id, language)
    assessments = sorted(src.evaluations.values(), key=lambda e: (e["assessed_at"], e["evaluation_id"]), reverse=True)
    return {
        **src.header(CARE_PLAN, "care_plan"),
        "diagnosis": src.diagnosis(),
        "what_matters": src.plan.what_matters,
        "named_contact": src.named_contact(),
        "needs": assessments[0]["concerns"] if assessments else [],
        "assessments": [{k: v for k, v in a.items() if k != "rule_titles"} for a in assessments],
        "agreed": src.items(_AGREED),
        "declined": src.items(("declined",)),
        "awaiting_decision": src.items(("proposed",)),
        "next_steps": _next_steps(src),
    }


def _next_steps(src: _Sources) -> dict[str, Any]:
    running = src.view.status in (Status.RUNNING, Status.SUSPENDED, Status.ERROR)
    upcoming = []
    if running:
        for code, element, key in _UPCOMING:
            if element not in src.done and isinstance(src.data.get(key), str):
                upcoming.append({"code": code, "due_on": src.data[key]})
        diagnosed = src.data.get("diagnosis_date")
        if "survey" not in src.done and isinstance(diagnosed, str):
            try:
                due = add_months(datetime.fromisoformat(diagnosed), 18).date().isoformat()
            except ValueError:
                due = None
            if due:
                upcoming.append({"code": "quality_of_life_survey", "due_on": due})
        review_on = src.data.get("review_on")
        if isinstance(review_on, str) and review_on >= src.now.date().isoformat():
            upcoming.append({"code": "care_plan_review", "due_on": review_on})
    upcoming.sort(key=lambda u: u["due_on"])
    return {
        "ready_tasks": [{"element": t["element"], "name": t["name"], "lane": t["lane"]} for t in src.view.ready_tasks],
        "next_due_at": src.view.next_due_at,
        "upcoming": [{**u, "label": src.labels.of("upcoming", u["code"])} for u in upcoming],
    }


def end_of_treatment_summary(carepath: CarePath, instance_id: str, language: str | None = "en") -> dict[str, Any]:
    """The End of Treatment Summary of an instance whose summary has been written.

    Raises:
        NotFoundError: no such instance.
        ConflictError: the end of treatment summary has not been written yet.
        RuleFileError: the warning-signs catalogue is invalid.
    """
    src = _Sources(carepath, instance_id, language)
    data, labels = src.data, src.labels
    if "summary_treatments" not in data:
        raise ConflictError("no end of treatment summary yet: the treating team has not written it")
    key = _warning_signs_key(src.view.pathway_id, data.get("diagnosis"))
    catalogue = load_warning_signs(carepath.rules.catalogue_dir / "warning_signs.yaml")
    signs = catalogue.for_diagnosis(key, when="after_treatment")
    sv = src.language == "sv"
    contacts = {s.contact.code: s.contact for s in sorted(signs, key=lambda s: URGENCIES.index(s.urgency))}
    model = data.get("follow_up_model")
    return {
        **src.header(END_OF_TREATMENT, "end_of_treatment"),
        "diagnosis": src.diagnosis(),
        "treatments_received": _treatments(data, labels),
        "completed_on": data.get("completed_on"),
        "effects_to_watch_for": list(data.get("effects_to_watch_for") or []),
        "warning_signs": {
            "explained": bool(data.get("warning_signs_given")), "diagnosis": key,
            "catalogue_version": catalogue.version,
            "signs": [{"code": s.code, "name": s.name_sv if sv else s.name_en, "when": s.when,
                       "when_label": labels.of("sign_when", s.when), "urgency": s.urgency,
                       "urgency_label": labels.of("sign_urgency", s.urgency),
                       "action": s.action_sv if sv else s.action_en,
                       "contact": {"code": s.contact.code, "name": s.contact.name_sv if sv else s.contact.name_en},
                       "sources": [{"source": g.source, "title": g.title, "year": g.year, "url": g.url}
                                   for g in s.sources]} for s in signs],
        },
        "who_to_call": {
            "named_contact": src.named_contact(),
            "services": [{"code": c.code, "name": c.name_sv if sv else c.name_en} for c in contacts.values()],
        },
        "ongoing_support": {"care_plan": src.items(_AGREED), "other": list(data.get("ongoing_support") or [])},
        "gp_actions": list(data.get("gp_actions") or []),
        "follow_up": {"model": model, "label": labels.of("follow_up_model", model)} if model else None,
    }


def _warning_signs_key(pathway_id: str, diagnosis: Any) -> str:
    """The warning-signs catalogue's diagnosis: the pathway's own (``breast_cancer`` -> ``breast``),
    else the recorded diagnosis if the catalogue has it, else ``general``."""
    for key in (pathway_id.removesuffix("_cancer"), diagnosis):
        if isinstance(key, str) and key in DIAGNOSES:
            return key
    return "general"


def _treatments(data: dict[str, Any], labels: _Labels) -> list[dict[str, Any]]:
    """The treatment form's codes, then the summary's own entries that add something, each labelled."""
    found: list[dict[str, Any]] = []
    for entry in [*(data.get("treatments_received") or []), *(data.get("summary_treatments") or [])]:
        code = entry if str(entry) in labels.labels.get("treatment", {}) else None
        label = labels.of("treatment", entry) if code else str(entry)
        if all(label != f["label"] for f in found):
            found.append({"code": code, "label": label})
    return found


# --- HTML ---------------------------------------------------------------------------------------------


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader(_PACKAGE, "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["day"] = _day
    env.filters["short"] = lambda value: str(value or "")[:12]
    return env


def _day(value: Any) -> str:
    """An ISO date or time as ``YYYY-MM-DD`` (the format used in Sweden, and unambiguous in English)."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(str(value)).date().isoformat()
    except ValueError:
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            return str(value)


def render_html(document: dict[str, Any]) -> str:
    """A document (from :func:`care_plan_document` or :func:`end_of_treatment_summary`) as a
    self-contained printable HTML page in the document's language. Everything from the document is
    escaped.

    Raises:
        ValueError: ``document_type`` is not one of these documents.
    """
    templates = {CARE_PLAN: "care_plan.html", END_OF_TREATMENT: "end_of_treatment_summary.html"}
    template = templates.get(document.get("document_type", ""))
    if template is None:
        raise ValueError(f"no HTML template for document type {document.get('document_type')!r}")
    language = resolve_language(document.get("language"))
    return _environment().get_template(template).render(doc=document, t=_strings(language))
