"""Documents generated from a pathway instance: the Personalised Care Plan, the End of Treatment Summary
and, for a man on active surveillance for prostate cancer, his active surveillance plan.

Each document is built as JSON (a plain ``dict``, format described in ``docs/documents.md``,
versioned by ``schema_version``) and rendered from that JSON to a printable HTML page or a PDF
(:mod:`engine.documents.render`), in English or Swedish. Codes travel with their labels in the
document's language, so a consumer of the JSON needs no catalogue.

Every care plan item says why in the reader's words (``reasons``: "you scored worry, fear or anxiety 8
out of 10", :mod:`engine.documents.reasons`) and, for clinicians and auditors, which stored rule
evaluation, rules and rule-set version proposed it (``why``). Every person and service to contact
comes with its number from the deployment's service directory (:mod:`engine.documents.contacts`);
a staff identifier is never shown, and a document made with the example directory says so.

Where the content comes from: the instance's accumulated data (start data and forms, see
:meth:`engine.instances.service.PathwayService.instance_data`), its task-completed events (who and
when), the care plan items and what matters to the patient (:mod:`engine.careplan.service`), the
stored rule evaluations (:mod:`engine.rules.store`), the catalogues, the warning-signs catalogue
(:mod:`engine.rules.warning_signs`) and the service directory (:mod:`engine.directory`).
Patient data: documents are for the patient and their care team, never for logs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from engine.audit import split_actor
from engine.calendar import add_months
from engine.db.models import InstanceEvent, TreatmentSummary
from engine.db.session import read_only
from engine.directory import HealthSystem, ServiceDirectory, service_directory
from engine.documents.contacts import Contacts
from engine.documents.notices import NOTICE_KEY, fill_tasks, safety_notice
from engine.documents.reasons import plain_reasons
from engine.documents.render import (
    CARE_PLAN,
    END_OF_TREATMENT,
    LANGUAGES,
    SURVEILLANCE_PLAN,
    render_html,
    render_pdf,
    strings,
)
from engine.documents.wishes import palliative_wishes
from engine.errors import ConflictError, NotFoundError, RuleFileError
from engine.instances.view import Status
from engine.rules.activation import warning_signs_in_use
from engine.rules.catalogue import Catalogue
from engine.rules.diagnoses import pathway_site
from engine.rules.model import RuleFile
from engine.rules.store import list_evaluations
from engine.rules.warning_signs import DIAGNOSES, URGENCIES

if TYPE_CHECKING:
    from engine.app import CarePath

__all__ = [
    "CARE_PLAN",
    "END_OF_TREATMENT",
    "LANGUAGES",
    "SCHEMA_VERSION",
    "SURVEILLANCE_PLAN",
    "SURVEILLANCE_PLAN_TASK",
    "active_surveillance_plan",
    "care_plan_document",
    "end_of_treatment_summaries",
    "end_of_treatment_summary",
    "fill_instance_forms",
    "fill_listed_forms",
    "instance_safety_notice",
    "on_active_surveillance",
    "render_html",
    "render_pdf",
    "reported_sign_advice",
    "resolve_language",
    "warning_sign_choices",
]

SCHEMA_VERSION = "2.0"
# Everything the patient agreed to, wherever its service has taken it (engine.careplan.moves).
_AGREED = (
    "agreed",
    "referred",
    "accepted",
    "first_contact",
    "did_not_attend",
    "completed",
    "service_declined",
    "withdrawn",
)
_REFERRALS_MADE = ("referred", "accepted", "first_contact", "did_not_attend", "completed")
_DONE = ("completed", "service_declined", "withdrawn")
# "Something else" on the checklist, and where the patient describes it (pathways/shared/forms/hna_checklist*.json).
OTHER_CONCERN, OTHER_CONCERN_TEXT = "other_concern", "other_concern_text"
# The concerns checklist's scale (rules/catalogues/concerns.yaml): discussed from 5, a priority from 8.
_DISCUSS_AT, _PRIORITY_AT = 5, 8
# The GP cancer care reviews (pathways/shared/cancer_care_reviews.bpmn): code, element, the months after the
# diagnosis their timers fall due (worked out from diagnosis_date, as the timers do, so a corrected date shows
# as the timers keep it), and the data its due_dates script sets once the reviews are asked for (England).
_UPCOMING = (
    ("cancer_care_review_3_months", "first_review", 3, "first_review_due"),
    ("cancer_care_review_12_months", "second_review", 12, "second_review_due"),
)
# The survey about 18 months after diagnosis (pathways/shared/quality_of_life_survey.bpmn): in England the
# national survey's invitation (or a pathway's own survey task), for people aged 16 and over; in Sweden the
# 1177 evaluation survey of Min vårdplan cancer (mvp_survey), with no age limit. Either task done: no longer due.
_SURVEY_ELEMENTS = {"survey", "survey_invitation", "mvp_survey"}
_SURVEY_MIN_AGE = 16
# The palliative route's dates (pathways/shared/palliative_care*.bpmn), while it runs: data -> upcoming code.
_PALLIATIVE_DUE = (
    ("palliative_assessment_due", "palliative_assessment"),
    ("palliative_plan_revisit_due", "palliative_plan_revisit"),
)
# What only the NHS in England does (the GP cancer care review): never in a document of another system.
_ENGLAND_ONLY = {
    "cancer_care_review_3_months",
    "cancer_care_review_12_months",
    "tell_practice",
    "first_review",
    "second_review",
    "remind_first",
    "remind_second",
}
# Min vårdplan's "praktiska frågor": the HNA checklist's practical domain and the services for it.
_PRACTICAL_DOMAIN = "practical"
# A rule context field -> the locale's label group for its values.
_FIELD_LABELS = {"treatment_phase": "phase"}
_PRACTICAL_SERVICES = {"financial_advice", "work_support", "social_work", "young_people_support"}
# Systemic anticancer therapy among the treatment forms' codes. UKONS: the signs for people on
# treatment apply on SACT and for 6 weeks after it; immune-related effects can start up to a year after
# immunotherapy (ESMO 2022), so 12 months for it (issue 13's on_sact / on_immunotherapy).
_SACT = {
    "chemotherapy",
    "immunotherapy",
    "targeted_therapy",
    "her2_targeted_therapy",
    "chemoradiotherapy",
    "systemic_therapy",
    "stem_cell_transplant",
}
_SACT_WEEKS, _IMMUNOTHERAPY_MONTHS = 6, 12
# The warning-signs catalogue's diagnosis of the children and young people's pathway.
_CHILDREN = "children_young_people"
# Treatments that continue after the course the summary is about (NICE NG101 endocrine therapy,
# NICE NG131 androgen deprivation).
_CONTINUING = ("endocrine_therapy", "hormone_therapy", "androgen_deprivation_therapy")
# NHS England: the end of treatment summary is written within 6 weeks of the end of the course.
_SUMMARY_DUE_WEEKS = 6
# What a phase's summary keeps of the data it was written from (engine.careplan.summaries): its course,
# what its summary says, and what the MDT planned for it. The rest (contacts, the care plan) is current.
_PHASE_KEYS = (
    "treatments_received",
    "completed_on",
    "summary_treatments",
    "effects_to_watch_for",
    "warning_signs_given",
    "ongoing_support",
    "gp_actions",
    "follow_up_model",
    "last_sact_date",
    "ongoing_treatments",
    "surveillance_plan",
    "summary_author",
    "prognosis_discussed",
    "benefits_form_status",
    "cancer_stage",
    "treatment_intent",
    "on_immunotherapy",
    "immunotherapy_planned",
    "systemic_therapy_planned",
    "stoma_formed",
    "eot_phase",
)


def resolve_language(requested: str | None) -> str:
    """The document language for a requested one: ``sv``, ``sv-SE``, ``SV`` give ``sv``; anything
    else (none, ``de``, ``en-GB``) gives English."""
    primary = (requested or "").strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in LANGUAGES else LANGUAGES[0]


class _Labels:
    """Labels in one language: UI strings, then catalogue names, then a readable form of the code."""

    def __init__(self, language: str, catalogue: Catalogue) -> None:
        self.language, self.catalogue = language, catalogue
        self.labels: dict[str, dict[str, str]] = strings(language)["labels"]

    def of(self, group: str, code: Any) -> str:
        if code is None:
            return ""
        return self.labels.get(group, {}).get(str(code)) or str(code).replace("_", " ").replace("-", " ").capitalize()

    def named(self, entry: Any, code: str) -> str:
        if entry is None:
            return code
        return str((entry.name_sv if self.language == "sv" else None) or entry.name_en)

    def concern(self, code: str) -> str:
        return self.named(self.catalogue.concerns.get(code), code)


# --- gathering ---------------------------------------------------------------------------------------


class _Sources:
    """Everything a document is built from, read once."""

    def __init__(self, carepath: CarePath, instance_id: str, language: str | None) -> None:
        """Raises: NotFoundError (no such instance), RuleFileError (the directory is invalid)."""
        self.catalogue = carepath.rules.catalogue()
        self.language = resolve_language(language)
        self.strings = strings(self.language)
        self.labels = _Labels(self.language, self.catalogue)
        self.now = carepath.clock.now()
        # One snapshot: a step committed meanwhile shows in all of the document or in none of it.
        with read_only(carepath.sessions) as session:
            self.view, self.data = carepath.instances.read(session, instance_id)
            # Under four eyes, the warning signs a second author activated (engine.rules.activation).
            self.warning_signs = warning_signs_in_use(session, carepath.rules, active_only=carepath.settings.four_eyes)
            self.plan = carepath.care_plans.read(session, instance_id)
            records = list_evaluations(session, instance_id=instance_id)
            completed = session.execute(
                select(InstanceEvent.element, InstanceEvent.at, InstanceEvent.actor)
                .where(InstanceEvent.instance_id == instance_id, InstanceEvent.type == "task_completed")
                .order_by(InstanceEvent.seq)
            ).all()
            self.phases: list[TreatmentSummary] = carepath.treatment_summaries.phases(session, instance_id)
        self.completions = [(element, at, actor) for element, at, actor in completed]
        self.made = {i["id"]: datetime.fromisoformat(i["created_at"]) for i in self.plan.items}  # care plan items
        self.completed = {element: (at, actor) for element, at, actor in completed}  # the latest of each
        self.phase: TreatmentSummary | None = None
        self.directory = service_directory(carepath.settings)
        # A child (the children and young people's pathway) calls their treatment centre, never the adult line.
        self.child = _is_child(self.view.pathway_id, self.data, self.catalogue)
        # The patient's health system's numbers (the instance's, the deployment's), never the language's.
        self.contacts = Contacts(
            self.directory,
            self.language,
            self.strings,
            self.labels.of,
            self.data,
            child=self.child,
            health_system=carepath.settings.health_system,
        )
        rule_files = _rule_files(carepath, {(r.ruleset_name, r.ruleset_version) for r in records})
        self.evaluations = {r.id: _evaluation(r, rule_files, self.labels) for r in records}

    def header(self, document_type: str, title_key: str) -> dict[str, Any]:
        return {
            "document_type": document_type,
            "schema_version": SCHEMA_VERSION,
            "generated_at": self.now.isoformat(),
            "language": self.language,
            "title": self.strings[title_key]["title"],
            "instance_id": self.view.id,
            "pathway_id": self.view.pathway_id,
            "pathway_name": self.labels.of("pathway", self.view.pathway_id),
            "pathway_version": self.view.pathway_version,
            "patient_ref": self.view.patient_ref,
            "instance_status": {"code": self.view.status, "label": self.labels.of("instance_status", self.view.status)},
            "directory": {
                "example": self.directory.example,
                "health_system": self.contacts.system.key,
                "version": self.directory.version,
            },
        }

    def items(self, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
        return [self._item(i) for i in self.plan.items if i["status"] in statuses]

    def _item(self, item: dict[str, Any]) -> dict[str, Any]:
        labels, catalogue = self.labels, self.catalogue
        evaluation = self.evaluations.get(item["evaluation_id"], {})
        titles = evaluation.get("rule_titles", {})
        service = item["service"]
        entry = catalogue.interventions.get(item["code"])
        reasons = plain_reasons(
            item["rules"],
            evaluation.get("fired", []),
            evaluation.get("facts", []),
            evaluation.get("rule_file"),
            self.strings["reasons"],
            labels.concern,
            lambda name, value: labels.of(_FIELD_LABELS.get(name, name), value),
        )
        return {
            "id": item["id"],
            "kind": item["kind"],
            "kind_label": labels.of("kind", item["kind"]),
            "code": item["code"],
            "name": labels.named(entry, item["code"]),
            "description": entry.description if entry is not None and self.language == "en" else None,
            "service": {"code": service, "name": labels.named(catalogue.service_types.get(service), service)}
            if service
            else None,
            # Who gives it: the referral's service, else the service the catalogue says provides it.
            "provider": self.contacts.provider(service or (entry.service if entry is not None else None)),
            "urgency": item["urgency"],
            "urgency_label": labels.of("urgency", item["urgency"]) if item["urgency"] else None,
            "status": item["status"],
            "status_label": labels.of("status", item["status"]),
            "section": _section(item, entry, reasons, self.catalogue),
            "updated_at": item["updated_at"],
            "accept_by": item.get("accept_by"),
            "history": item.get("history", []),
            "reasons": reasons,
            "why": {
                "evaluation_id": item["evaluation_id"],
                "assessed_at": evaluation.get("assessed_at"),
                "ruleset": evaluation.get("ruleset"),
                "ruleset_version": evaluation.get("ruleset_version"),
                "catalogue_version": evaluation.get("catalogue_version"),
                "rules": [{"id": rule, "title": titles.get(rule)} for rule in item["rules"]],
            },
        }

    def diagnosis(self) -> dict[str, Any]:
        code, intent = self.data.get("diagnosis"), self.data.get("treatment_intent")
        stage = self.data.get("cancer_stage")
        return {
            "code": code,
            "label": self.labels.of("diagnosis", code),
            "diagnosis_date": self.data.get("diagnosis_date"),
            "age": self.data.get("age"),
            "stage": stage if isinstance(stage, str) and stage.strip() else None,
            "treatment_intent": {"code": intent, "label": self.labels.of("treatment_intent", intent)}
            if intent
            else None,
        }

    def safety(self, during_treatment: bool) -> dict[str, Any]:
        """The message every document starts with: feeling unwell, call the 24-hour line now (issue 13);
        a child's gives their treatment centre's 24-hour line (:meth:`Contacts.childrens_hospital`)."""
        notice = safety_notice(
            self.directory,
            self.language,
            "during_treatment" if during_treatment else "after_treatment",
            system=self.contacts.system,
            child=self.child,
            childrens_line=self.contacts.childrens_hospital() if self.child else None,
        )
        return {k: notice[k] for k in ("kind", "title", "phone", "line", "example", "text", "emergency")}

    def england(self) -> bool:
        return self.contacts.system.key == "england"

    def select_phase(self, number: int | None) -> None:
        """Build the summary of phase ``number`` (None: the latest written) from the data it was written
        from. Raises: NotFoundError (no such phase), ConflictError (its summary is not written yet)."""
        written = [p for p in self.phases if p.status == "written"]
        if number is None:
            if not written:
                return  # none kept (written before phases were): the current data, as before
            self.phase = written[-1]
        else:
            found = [p for p in self.phases if p.number == number]
            if not found and number == 1 and not self.phases:
                if "summary_treatments" in self.data:
                    return  # the one summary written before phases were kept
                raise ConflictError("no end of treatment summary yet: the treating team has not written it")
            if not found:
                raise NotFoundError(f"no phase {number} of care with an end of treatment summary")
            if found[0].status != "written":
                raise ConflictError(
                    f"no end of treatment summary of phase {number} yet: the treating team has not written it"
                )
            self.phase = found[0]
        if self.phase.content is None:
            return  # written on a diagram version that did not keep it: the current data
        kept = json.loads(self.phase.content)
        for key in _PHASE_KEYS:
            if key in kept:
                self.data[key] = kept[key]
            else:
                self.data.pop(key, None)

    def phase_bounds(self) -> tuple[datetime | None, datetime | None]:
        """The span of this phase (None: no bound): from where the previous phase (by the end of its
        course) gave way to it, to this one's summary or, sooner, to where it gave way to the next.

        A phase gives way to the next when its summary is written, if that was before the next one's;
        two summaries can be awaited at once and written in either order, so when an earlier phase's
        summary is written after a later one's, the earlier phase ends with the day its course ended
        (what was made after that belongs to the later phase).
        """
        if self.phase is None:
            return None, None
        ordered = sorted(self.phases, key=lambda p: (p.ended_on, p.number))
        at = next(n for n, p in enumerate(ordered) if p.id == self.phase.id)
        after = _gave_way(ordered[at - 1], self.phase) if at > 0 else None
        until = self.phase.written_at
        if at + 1 < len(ordered):
            handed_over = _gave_way(self.phase, ordered[at + 1])
            until = min(until, handed_over) if until else handed_over
        return after, until


def _gave_way(earlier: TreatmentSummary, later: TreatmentSummary) -> datetime:
    """When phase ``earlier`` gave way to ``later`` (see :meth:`_Sources.phase_bounds`)."""
    if earlier.written_at is not None and (later.written_at is None or earlier.written_at <= later.written_at):
        return earlier.written_at
    return datetime.combine(earlier.ended_on + timedelta(days=1), datetime.min.time(), UTC)


def _rule_files(carepath: CarePath, versions: set[tuple[str, str]]) -> dict[tuple[str, str], RuleFile]:
    found: dict[tuple[str, str], RuleFile] = {}
    for name, version in versions:
        try:
            found[(name, version)] = carepath.rules.by_version(name, version).compiled.rule_file
        except (NotFoundError, RuleFileError):  # an old version this process never loaded: ids only
            continue
    return found


def _evaluation(record: Any, rule_files: dict[tuple[str, str], RuleFile], labels: _Labels) -> dict[str, Any]:
    context: dict[str, Any] = next((f for f in record.facts if f.get("t") == "context"), {})
    concerns = []
    for fact in record.facts:
        if fact.get("t") != "concern" or not fact.get("score"):
            continue
        score = int(fact["score"])
        level = "priority" if score >= _PRIORITY_AT else "discuss" if score >= _DISCUSS_AT else "noted"
        concern, domain = labels.catalogue.concerns.get(fact["code"]), labels.catalogue.domains.get(fact["domain"])
        concerns.append(
            {
                "code": fact["code"],
                "name": labels.named(concern, fact["code"]),
                "domain": fact["domain"],
                "domain_name": labels.named(domain, fact["domain"]),
                "score": score,
                "level": level,
                "level_label": labels.of("level", level),
            }
        )
    concerns.sort(key=lambda c: (-c["score"], c["domain"], c["code"]))
    phase = context.get("treatment_phase")
    rule_file = rule_files.get((record.ruleset_name, record.ruleset_version))
    return {
        "evaluation_id": record.id,
        "assessed_at": record.created_at.isoformat(),
        "phase": {"code": phase, "label": labels.of("phase", phase)} if phase else None,
        "ruleset": record.ruleset_name,
        "ruleset_version": record.ruleset_version,
        "catalogue_version": record.catalogue_version,
        "concerns": concerns,
        "rules_fired": [f["rule"] for f in record.fired],
        # Not in the document, for building it: titles, the rule file, the facts and firings.
        "rule_titles": {rule.id: rule.title for rule in rule_file.rules} if rule_file else {},
        "rule_file": rule_file,
        "facts": list(record.facts),
        "fired": list(record.fired),
    }


_PRIVATE = ("rule_titles", "rule_file", "facts", "fired")


def _section(item: dict[str, Any], entry: Any, reasons: list[dict[str, Any]], catalogue: Catalogue) -> str:
    """Where an agreed item goes in the plan, as Min vårdplan cancer groups them: ``practical``
    (praktiska frågor: the practical services, or proposed for practical concerns alone),
    ``self_care`` (egenvård: information to act on yourself) or ``rehabilitation`` (the rest)."""
    domains = {
        catalogue.concerns[r["code"]].domain
        for r in reasons
        if r["kind"] == "concern" and r["code"] in catalogue.concerns
    }
    if item["service"] in _PRACTICAL_SERVICES or (domains and domains == {_PRACTICAL_DOMAIN}):
        return "practical"
    return "self_care" if item["kind"] == "information" else "rehabilitation"


# --- the care plan --------------------------------------------------------------------------------------


def care_plan_document(carepath: CarePath, instance_id: str, language: str | None = "en") -> dict[str, Any]:
    """The Personalised Care Plan (Min vårdplan) of an instance, as of now.

    Raises:
        NotFoundError: no such instance.
        RuleFileError: the service directory cannot be loaded or is invalid.
    """
    src = _Sources(carepath, instance_id, language)
    assessments = sorted(src.evaluations.values(), key=lambda e: (e["assessed_at"], e["evaluation_id"]), reverse=True)
    agreed, proposed = src.items(_AGREED), src.items(("proposed",))
    return {
        **src.header(CARE_PLAN, "care_plan"),
        "safety": src.safety(during_treatment=True),
        # The charities and organisations the patient was put in touch with at diagnosis (and since).
        "contacts": {**src.contacts.all(), "organisations": src.contacts.connected()},
        "diagnosis": src.diagnosis(),
        "what_matters": src.plan.what_matters,
        # The palliative route's advance care plan, carers and family support (None: none recorded).
        "wishes": palliative_wishes(src.data, src.language),
        "needs": _needs(src, assessments[0]["concerns"] if assessments else []),
        "assessments": [{k: v for k, v in a.items() if k not in _PRIVATE} for a in assessments],
        "act_now": [i for i in [*agreed, *proposed] if i["urgency"] == "emergency" and i["status"] not in _DONE],
        "agreed": agreed,
        "declined": src.items(("declined",)),
        "awaiting_decision": proposed,
        "rights": list(src.strings["rights"][src.contacts.system.key]),
        "next_steps": _next_steps(src),
    }


def _needs(src: _Sources, concerns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest assessment's concerns; "something else" with the patient's own words beside it (they
    are in the checklist's answers, never in the evaluation: rules and the trail see a score only)."""
    words = src.data.get(OTHER_CONCERN_TEXT)
    own = words.strip() if isinstance(words, str) and words.strip() else None
    return [{**c, "own_words": own if c["code"] == OTHER_CONCERN else None} for c in concerns]


def _palliative_due(src: _Sources) -> list[dict[str, Any]]:
    """The palliative route's next needs assessment and plan revisit, while the route runs."""
    today = src.now.date().isoformat()
    return [
        {"code": code, "due_on": due}
        for key, code in _PALLIATIVE_DUE
        if isinstance(due := src.data.get(key), str) and _date(due) is not None and due >= today
    ]


def _months_after(day: Any, months: int) -> str | None:
    """``months`` after an ISO date, as the pathways' ``add_months`` works it out (clamped); None when
    ``day`` is not a date."""
    if not isinstance(day, str):
        return None
    try:
        return add_months(datetime.fromisoformat(day), months).date().isoformat()
    except ValueError:
        return None


def _next_steps(src: _Sources) -> dict[str, Any]:
    running = src.view.status in (Status.RUNNING, Status.SUSPENDED, Status.ERROR)
    upcoming = []
    if running:
        diagnosed = src.data.get("diagnosis_date")
        # The reviews' timers are set once the practice is asked for them (tell_practice, in England).
        for code, element, months, key in _UPCOMING:
            due = _months_after(diagnosed, months)
            if element not in src.completed and due and key in src.data:
                upcoming.append({"code": code, "due_on": due})
        age = src.data.get("age")
        invited = not src.england() or not isinstance(age, int) or age >= _SURVEY_MIN_AGE
        survey_due = _months_after(diagnosed, 18)
        if invited and not any(e in src.completed for e in _SURVEY_ELEMENTS) and survey_due:
            survey = "quality_of_life_survey" if src.england() else "min_vardplan_survey"
            upcoming.append({"code": survey, "due_on": survey_due})
        upcoming.extend(_palliative_due(src))
        upcoming.extend(_surveillance_due(src))
        review_on = src.data.get("review_on")
        if isinstance(review_on, str) and review_on >= src.now.date().isoformat():
            upcoming.append({"code": "care_plan_review", "due_on": review_on})
    if not src.england():
        upcoming = [u for u in upcoming if u["code"] not in _ENGLAND_ONLY]
    upcoming.sort(key=lambda u: u["due_on"])
    ready = [t for t in src.view.ready_tasks if src.england() or t["element"] not in _ENGLAND_ONLY]
    now: list[dict[str, Any]] = []
    for task in ready:  # what happens now, in the patient's words; a step they have no words for yet, once
        text = src.strings["now"].get(task["element"]) or src.strings["text"]["unknown_step"]
        if all(text != n["text"] for n in now):
            now.append({"element": task["element"], "text": text})
    return {
        "now": now,
        "ready_tasks": [{"element": t["element"], "name": t["name"], "lane": t["lane"]} for t in ready],
        "next_due_at": src.view.next_due_at,
        "upcoming": [{**u, "label": src.labels.of("upcoming", u["code"])} for u in upcoming],
    }


# --- the active surveillance plan ----------------------------------------------------------------------

# The prostate pathway's active surveillance (pathways/prostate.bpmn): the MDT's first_treatment, the first
# year's PSA tests (the preScript of its surveillance_tests call, months after the MDT that chose
# surveillance; tests/test_documents_surveillance.py holds the two together) and the 12-month review.
_PROSTATE, _SURVEILLANCE = "prostate_cancer", "active_surveillance"
# The task that gives him the plan: its page offers the document to print or send.
SURVEILLANCE_PLAN_TASK = "as_plan"
_AS_PSA_MONTHS = (3, 6, 9, 12)
_AS_REVIEW_MONTHS = 12


def on_active_surveillance(pathway_id: str, data: Mapping[str, Any]) -> bool:
    """Whether an instance has an active surveillance plan: the prostate pathway, whose MDT chose active
    surveillance (its form's ``first_treatment``), and no 12-month review has ended it. For pages that
    offer the plan only where there is one."""
    return (
        pathway_id == _PROSTATE
        and data.get("first_treatment") == _SURVEILLANCE
        and data.get("surveillance_outcome") != "radical_treatment"
    )


def active_surveillance_plan(carepath: CarePath, instance_id: str, language: str | None = "en") -> dict[str, Any]:
    """The active surveillance plan of a man with prostate cancer, as of now: what the task ``as_plan``
    gives him in place of an end of treatment summary (there is no treatment to summarise). His first
    year's PSA tests and the 12-month review with their dates, that he may choose radical treatment at
    any time, the warning signs for prostate cancer with who to call for each, his contacts, and
    where to find support (NICE NG131; Prostate Cancer UK's consensus on active surveillance, 2019: a
    personalised plan, shared with the GP; National Cancer Plan for England: warning signs, who to
    call, where to find ongoing support).

    Raises:
        NotFoundError: no such instance.
        ConflictError: the instance is not on active surveillance: another pathway or treatment, the
            MDT has not decided yet, or the 12-month review ended surveillance (his treatment's end of
            treatment summary takes over).
        RuleFileError: the warning-signs catalogue or the service directory is invalid.
    """
    src = _Sources(carepath, instance_id, language)
    data = src.data
    decided = src.completed.get("mdt")
    if src.view.pathway_id != _PROSTATE or data.get("first_treatment") != _SURVEILLANCE or decided is None:
        raise ConflictError("no active surveillance plan: the MDT has not chosen active surveillance for him")
    if not on_active_surveillance(src.view.pathway_id, data):
        raise ConflictError(
            "no active surveillance plan: the 12-month review ended active surveillance; "
            "his end of treatment summary follows his treatment"
        )
    started = decided[0].date()
    given = src.completed.get("as_plan")
    reviewed = src.completed.get("surveillance") is not None and data.get("surveillance_outcome") == "continue"
    return {
        **src.header(SURVEILLANCE_PLAN, "surveillance_plan"),
        "safety": src.safety(during_treatment=False),
        "diagnosis": src.diagnosis(),
        "plan": {
            "started_on": started.isoformat(),
            "given_on": _iso(data.get("plan_given_on")) if given else None,
            "given_via": [
                {"code": str(v), "label": src.labels.of("plan_given_via", v)}
                for v in _listed(data.get("plan_given_via"))
            ]
            if given
            else [],
            "shared_with_gp": data.get("shared_with_gp") is True if given else None,
        },
        "schedule": [
            {"code": code, "what": src.labels.of("surveillance_test", code), "due_on": due}
            for code, due in _surveillance_schedule(started)
        ],
        "first_year_reviewed_on": _iso(data.get("reviewed_on")) if reviewed else None,
        "warning_signs": _warning_signs(carepath, src, None, None),
        "who_to_call": src.contacts.all(),
        "support": {
            "organisations": src.contacts.connected(),
            "care_plan": src.items(_AGREED),
            "other": [str(s) for s in _listed(data.get("ongoing_support"))] if given else [],
        },
        "gp_practice": src.contacts.gp_practice(),
    }


def _surveillance_schedule(started: date) -> list[tuple[str, str]]:
    """The first year of active surveillance from the day it started: (``psa`` | ``review``, ISO date)."""

    def on(months: int) -> str:
        return add_months(datetime.combine(started, datetime.min.time()), months).date().isoformat()

    return [*(("psa", on(months)) for months in _AS_PSA_MONTHS), ("review", on(_AS_REVIEW_MONTHS))]


def _surveillance_due(src: _Sources) -> list[dict[str, Any]]:
    """The care plan's "Coming up" on active surveillance: the first year's PSA tests and review still to
    come, until the review is done (the plan itself lists them all: :func:`active_surveillance_plan`)."""
    decided = src.completed.get("mdt")
    if decided is None or "surveillance" in src.completed or not on_active_surveillance(src.view.pathway_id, src.data):
        return []
    today = src.now.date().isoformat()
    codes = {"psa": "surveillance_psa", "review": "surveillance_review"}
    return [
        {"code": codes[code], "due_on": due} for code, due in _surveillance_schedule(decided[0].date()) if due >= today
    ]


# --- the end of treatment summary -----------------------------------------------------------------------


def end_of_treatment_summary(
    carepath: CarePath, instance_id: str, language: str | None = "en", phase: int | None = None
) -> dict[str, Any]:
    """The End of Treatment Summary of phase ``phase`` of an instance (1, 2, ...: each course of
    treatment that ended; None: the latest written), with the content of NHS England's template and
    the phase's own treatments and dates (docs/documents.md).

    Raises:
        NotFoundError: no such instance, or no such phase.
        ConflictError: the end of treatment summary (of that phase) has not been written yet.
        RuleFileError: the warning-signs catalogue or the service directory is invalid.
    """
    src = _Sources(carepath, instance_id, language)
    src.select_phase(phase)
    data, labels = src.data, src.labels
    if "summary_treatments" not in data:
        raise ConflictError("no end of treatment summary yet: the treating team has not written it")
    sact_ended, signs_until = _recent_sact(data, src.now.date())
    after, until = src.phase_bounds()
    referred = [i for i in src.items(_REFERRALS_MADE) if i["kind"] == "referral" and _within(src, i, after, until)]
    organisations = src.contacts.connected()
    return {
        **src.header(END_OF_TREATMENT, "end_of_treatment"),
        "safety": src.safety(during_treatment=signs_until is not None),
        "phase": _phase_entry(src, src.phase) if src.phase else None,
        "phases": _phase_list(src),
        "summary": _about_summary(src),
        "diagnosis": src.diagnosis(),
        "treatments_received": _treatments(src),
        "completed_on": data.get("completed_on"),
        "ongoing_treatment": _continuing(data, labels),
        "effects_to_watch_for": list(data.get("effects_to_watch_for") or []),
        "warning_signs": _warning_signs(carepath, src, sact_ended, signs_until),
        "who_to_call": src.contacts.all(),
        "surveillance": _surveillance(src),
        "referrals_made": {"care_plan": referred, "organisations": organisations},
        "prognosis": {
            "discussed": data.get("prognosis_discussed") if isinstance(data.get("prognosis_discussed"), str) else None
        },
        "benefits_form": _benefits_form(src),
        "ongoing_support": {
            "care_plan": [i for i in src.items(_AGREED) if i not in referred and _within(src, i, None, until)],
            "other": list(data.get("ongoing_support") or []),
        },
        "gp_actions": list(data.get("gp_actions") or []),
        "gp_practice": src.contacts.gp_practice(),
        "follow_up": {"model": data["follow_up_model"], "label": labels.of("follow_up_model", data["follow_up_model"])}
        if data.get("follow_up_model")
        else None,
    }


def _about_summary(src: _Sources) -> dict[str, Any]:
    """Who wrote it and when, and whether within 6 weeks of the course's end (NHS England)."""
    written = src.completed.get("write_summary")
    if src.phase is not None and src.phase.written_at and src.phase.written_by:
        written = (src.phase.written_at, src.phase.written_by)
    author = src.data.get("summary_author")
    completed_on = _date(src.data.get("completed_on"))
    due_by = completed_on + timedelta(weeks=_SUMMARY_DUE_WEEKS) if completed_on else None
    written_on = written[0].date() if written else None
    return {
        "written_on": written_on.isoformat() if written_on else None,
        "written_by": {"name": author.get("name"), "role": author.get("role")} if isinstance(author, dict) else None,
        "recorded_by": split_actor(written[1])[0] if written else None,
        "recorded_for": split_actor(written[1])[1] if written else None,
        "course_completed_on": completed_on.isoformat() if completed_on else None,
        "due_by": due_by.isoformat() if due_by else None,
        "on_time": bool(written_on and due_by and written_on <= due_by) if due_by else None,
    }


def _within(src: _Sources, item: dict[str, Any], after: datetime | None, until: datetime | None) -> bool:
    """Whether a care plan item was made in a phase: after the previous summary, by this one."""
    made = src.made.get(item["id"])
    if made is None:
        return True
    return (after is None or made > after) and (until is None or made <= until)


def _phase_entry(src: _Sources, row: TreatmentSummary) -> dict[str, Any]:
    return {
        "number": row.number,
        "code": row.phase,
        "label": src.labels.of("phase_of_care", row.phase),
        "ended_on": row.ended_on.isoformat(),
        "due_by": row.due_by.isoformat(),
        "status": row.status,
        "status_label": src.labels.of("summary_status", row.status),
        "written_on": row.written_at.date().isoformat() if row.written_at else None,
        "overdue": row.overdue_at is not None and row.closed_at is None,
    }


def _phase_list(src: _Sources) -> list[dict[str, Any]]:
    """Every phase of the instance, first first; a summary written before phases were kept is phase 1."""
    if src.phases:
        return [_phase_entry(src, row) for row in src.phases]
    if "summary_treatments" not in src.data:
        return []
    written = src.completed.get("write_summary")
    ended = _date(src.data.get("completed_on"))
    return [
        {
            "number": 1,
            "code": "first_line",
            "label": src.labels.of("phase_of_care", "first_line"),
            "ended_on": ended.isoformat() if ended else None,
            "due_by": (ended + timedelta(weeks=_SUMMARY_DUE_WEEKS)).isoformat() if ended else None,
            "status": "written",
            "status_label": src.labels.of("summary_status", "written"),
            "written_on": written[0].date().isoformat() if written else None,
            "overdue": False,
        }
    ]


def end_of_treatment_summaries(carepath: CarePath, instance_id: str, language: str | None = "en") -> dict[str, Any]:
    """The phases of care of an instance and their summaries' state (each summary:
    :func:`end_of_treatment_summary` with its ``number``): ``{instance_id, patient_ref, language, phases}``.

    Raises:
        NotFoundError: no such instance.
        RuleFileError: the service directory is invalid.
    """
    src = _Sources(carepath, instance_id, language)
    return {
        "instance_id": src.view.id,
        "patient_ref": src.view.patient_ref,
        "language": src.language,
        "phases": _phase_list(src),
    }


def _treatments(src: _Sources) -> list[dict[str, Any]]:
    """The treatment form's codes, then the summary's own entries that add something, each labelled,
    with the date the plan was agreed (the MDT) and the date the course ended."""
    data, labels = src.data, src.labels
    after, until = src.phase_bounds()
    # The MDT that planned this phase's course: the latest before its summary, after the previous one's.
    decided = [
        at
        for element, at, _ in src.completions
        if element == "mdt" and (after is None or at > after) and (until is None or at <= until)
    ]
    decided_on = decided[-1].date().isoformat() if decided else None
    found: list[dict[str, Any]] = []
    for entry in [*(data.get("treatments_received") or []), *(data.get("summary_treatments") or [])]:
        code = entry if str(entry) in labels.labels.get("treatment", {}) else None
        label = labels.of("treatment", entry) if code else str(entry)
        if all(label != f["label"] for f in found):
            found.append(
                {
                    "code": code,
                    "label": label,
                    "decided_on": decided_on,
                    "completed_on": data.get("completed_on") if code else None,
                }
            )
    return found


def _continuing(data: dict[str, Any], labels: _Labels) -> list[dict[str, Any]]:
    """Endocrine therapy and androgen deprivation go on after the course: recorded ones, else those received."""
    recorded = data.get("ongoing_treatments")
    if isinstance(recorded, list) and recorded:
        return [
            {
                "code": e.get("code"),
                "label": labels.of("treatment", e.get("code")) if e.get("code") else str(e.get("name", "")),
                "until": e.get("until"),
            }
            for e in recorded
            if isinstance(e, dict)
        ]
    received = [str(t) for t in data.get("treatments_received") or []]
    return [
        {"code": code, "label": labels.of("treatment", code), "until": None} for code in _CONTINUING if code in received
    ]


def _recent_sact(data: dict[str, Any], today: date) -> tuple[date | None, date | None]:
    """When systemic anticancer therapy ended, and until when the signs for people on treatment still
    apply (6 weeks, 12 months after immunotherapy); (None, None) when they no longer apply."""
    received = {str(t) for t in data.get("treatments_received") or []}
    sact = bool(received & _SACT) or data.get("systemic_therapy_planned") is True
    # The later of the two: a last dose recorded at diagnosis must not hide the SACT of a later course
    # (the treatment of a recurrence) that has just ended.
    ended = max(
        [
            d
            for d in (_date(data.get("last_sact_date")), _date(data.get("completed_on")) if sact else None)
            if d is not None
        ],
        default=None,
    )
    if ended is None:
        return None, None
    immunotherapy = "immunotherapy" in received or any(
        data.get(k) is True for k in ("on_immunotherapy", "immunotherapy_planned")
    )
    until = (
        add_months(datetime.combine(ended, datetime.min.time()), _IMMUNOTHERAPY_MONTHS).date()
        if immunotherapy
        else ended + timedelta(weeks=_SACT_WEEKS)
    )
    return (ended, until) if today <= until else (None, None)


def _warning_signs(carepath: CarePath, src: _Sources, sact_ended: date | None, until: date | None) -> dict[str, Any]:
    keys = _warning_signs_keys(src.view.pathway_id, src.data.get("diagnosis"), src.catalogue)
    catalogue = src.warning_signs
    signs = catalogue.for_diagnosis(keys, when="after_treatment")
    if until is not None:  # still within the weeks after treatment: the signs for people on it too
        during = [s for s in catalogue.for_diagnosis(keys, when="during_treatment") if s not in signs]
        signs = sorted([*signs, *during], key=lambda s: URGENCIES.index(s.urgency))
    sv = src.language == "sv"
    note = (
        src.strings["text"]["during_treatment_signs"].format(
            date=sact_ended.isoformat(), until=until.isoformat(), weeks=_SACT_WEEKS
        )
        if sact_ended and until
        else None
    )
    return {
        "explained": bool(src.data.get("warning_signs_given")),
        "diagnosis": keys[0],
        "diagnoses": list(keys),  # the pathway's site, and the site its diagnosis names when another
        "catalogue_version": catalogue.version,
        "during_treatment_apply": until is not None,
        "sact_ended_on": sact_ended.isoformat() if sact_ended else None,
        "during_treatment_until": until.isoformat() if until else None,
        "note": note,
        "signs": [
            {
                "code": s.code,
                "name": s.name_sv if sv else s.name_en,
                "when": s.when,
                "when_label": src.labels.of("sign_when", s.when),
                "urgency": s.urgency,
                "urgency_label": src.labels.of("sign_urgency", s.urgency),
                "action": s.action(src.language, *_numbers(src.contacts.system)),
                "contact": {
                    "code": s.contact.code,
                    "name": s.contact.name_sv if sv else s.contact.name_en,
                    **src.contacts.for_warning_sign(s.contact.code, s.urgency == "emergency"),
                },
                "sources": [{"source": g.source, "title": g.title, "year": g.year, "url": g.url} for g in s.sources],
            }
            for s in signs
        ],
    }


def warning_sign_choices(carepath: CarePath, instance_id: str, language: str | None = "en") -> list[dict[str, Any]]:
    """The warning signs the patient of an instance may report (the catalogue's for their diagnosis, during
    and after treatment), most urgent first: ``code``, ``name``, ``urgency``, ``urgency_label``, ``action``
    (with the patient's health system's numbers).

    Raises: NotFoundError (no such instance), RuleFileError (the catalogue or the directory is invalid).
    """
    language = resolve_language(language)
    rules_catalogue = carepath.rules.catalogue()
    labels = _Labels(language, rules_catalogue)
    with read_only(carepath.sessions) as session:
        view, data = carepath.instances.read(session, instance_id)
        catalogue = warning_signs_in_use(session, carepath.rules, active_only=carepath.settings.four_eyes)
    sv = language == "sv"
    numbers = _numbers(service_directory(carepath.settings).for_patient(data, carepath.settings.health_system))
    return [
        {
            "code": s.code,
            "name": s.name_sv if sv else s.name_en,
            "urgency": s.urgency,
            "urgency_label": labels.of("sign_urgency", s.urgency),
            "action": s.action(language, *numbers),
        }
        for s in catalogue.for_diagnosis(_warning_signs_keys(view.pathway_id, data.get("diagnosis"), rules_catalogue))
    ]


def instance_safety_notice(
    carepath: CarePath, instance_id: str, language: str | None = "en", kind: str = "during_treatment"
) -> dict[str, Any]:
    """The safety notice (:func:`engine.documents.notices.safety_notice`) for the patient of an instance,
    as their documents give it: their health system's 24-hour line, or a child's treatment centre's.

    Raises: NotFoundError (no such instance), RuleFileError (the directory is invalid).
    """
    directory, contacts = _patient_contacts(carepath, instance_id, language)
    return safety_notice(
        directory,
        contacts.language,
        kind,
        system=contacts.system,
        child=contacts.child,
        childrens_line=contacts.childrens_hospital() if contacts.child else None,
    )


def reported_sign_advice(
    carepath: CarePath, instance_id: str, code: str, language: str | None = "en"
) -> dict[str, Any]:
    """What the patient of an instance who has just reported the warning sign ``code`` is told to do now.

    Sending a report is not getting help: nobody may read it for up to the triage's bound (30 minutes for
    an emergency sign). So an emergency or same-day sign gets the sign's own action from the catalogue
    ("Call 999", "Call the 24-hour acute oncology line now") and is told not to wait for the team; a
    "within a few days" sign is told the team will contact them; ``other`` (or a code the catalogue does
    not name for their diagnosis) is told to call now if unwell. ``level`` is the urgency, or ``unknown``;
    ``notice`` is the patient's own 24-hour line (:func:`instance_safety_notice`).

    Raises: NotFoundError (no such instance), RuleFileError (the catalogue or the directory is invalid).
    """
    language = resolve_language(language)
    found = next((s for s in warning_sign_choices(carepath, instance_id, language) if s["code"] == code), None)
    level = found["urgency"] if found is not None else "unknown"
    words = strings(language)["reported_sign"][level]
    return {
        "warning_sign": code,
        "name": found["name"] if found is not None else None,
        "urgency": found["urgency"] if found is not None else None,
        "urgency_label": found["urgency_label"] if found is not None else None,
        "action": found["action"] if found is not None else None,
        "level": level,
        "title": words["title"],
        "told": words["told"],
        "notice": instance_safety_notice(carepath, instance_id, language),
    }


def fill_instance_forms(
    carepath: CarePath, instance_id: str, tasks: list[dict[str, Any]], language: str | None = "en"
) -> list[dict[str, Any]]:
    """The tasks of one instance (each with its ``form``) with their forms' safety notices filled
    (:func:`engine.documents.notices.fill_tasks`) as the patient's documents give the line: their health
    system's numbers (never the reader's language's), and a child's treatment centre's 24-hour line,
    never the adult one. Tasks whose forms declare no notice are returned as they are, unread.

    Raises: NotFoundError (no such instance), RuleFileError (the directory is invalid).
    """
    if not any(isinstance(t.get("form"), dict) and NOTICE_KEY in t["form"] for t in tasks):
        return tasks
    return _filled(tasks, *_patient_contacts(carepath, instance_id, language))


def _filled(tasks: list[dict[str, Any]], directory: ServiceDirectory, contacts: Contacts) -> list[dict[str, Any]]:
    """``tasks`` with their forms' notices filled with the line of the patient ``contacts`` are for."""
    return fill_tasks(
        tasks,
        directory,
        contacts.language,
        contacts.system,
        child=contacts.child,
        childrens_line=contacts.childrens_hospital() if contacts.child else None,
    )


def fill_listed_forms(
    carepath: CarePath,
    tasks: list[dict[str, Any]],
    notice_contacts: Mapping[str, str | None],
    language: str | None = "en",
) -> list[dict[str, Any]]:
    """Tasks of many instances (a task list: each with its ``instance_id`` and ``pathway_id``) with their
    forms' safety notices filled, each with its own patient's line as :func:`fill_instance_forms` fills
    it, from what each instance's row keeps for it (``notice_contacts``: the page's, read with the
    list, so no instance is restored); an instance whose row keeps nothing (saved before rows kept it)
    is read instead. Tasks whose forms declare no notice are returned as they are.

    Raises: NotFoundError (an instance gone meanwhile), RuleFileError (the directory is invalid).
    """
    by_instance: dict[str, list[int]] = {}
    for index, task in enumerate(tasks):
        if isinstance(task.get("form"), dict) and NOTICE_KEY in task["form"]:
            by_instance.setdefault(str(task["instance_id"]), []).append(index)
    filled = list(tasks)
    for instance_id, indexes in by_instance.items():
        listed = [tasks[i] for i in indexes]
        kept = notice_contacts.get(instance_id)
        if kept is None:
            done = fill_instance_forms(carepath, instance_id, listed, language)
        else:
            done = _filled(listed, *_contacts_of(carepath, str(listed[0]["pathway_id"]), json.loads(kept), language))
        for index, task in zip(indexes, done, strict=True):
            filled[index] = task
    return filled


def _patient_contacts(carepath: CarePath, instance_id: str, language: str | None) -> tuple[ServiceDirectory, Contacts]:
    """The service directory and the contacts of the patient of an instance, decided as their documents
    decide them (:class:`_Sources`): their health system, and whether they are a child.

    Raises: NotFoundError (no such instance), RuleFileError (the directory is invalid).
    """
    with read_only(carepath.sessions) as session:
        view, data = carepath.instances.read(session, instance_id)
    return _contacts_of(carepath, view.pathway_id, data, language)


def _contacts_of(
    carepath: CarePath, pathway_id: str, data: dict[str, Any], language: str | None
) -> tuple[ServiceDirectory, Contacts]:
    """The service directory and the contacts of the patient of an instance of ``pathway_id`` whose data
    is ``data`` (all of it, or the row's :data:`~engine.instances.forms.CONTACT_KEYS` of it)."""
    language = resolve_language(language)
    directory = service_directory(carepath.settings)
    rules_catalogue = carepath.rules.catalogue()
    child = _is_child(pathway_id, data, rules_catalogue)
    labels = _Labels(language, rules_catalogue).of
    contacts = Contacts(
        directory, language, strings(language), labels, data, child=child, health_system=carepath.settings.health_system
    )
    return directory, contacts


def _numbers(system: HealthSystem) -> tuple[str, str]:
    """The numbers a warning sign's action text names (``{emergency}``, ``{urgent_advice}``): the
    patient's health system's; without an urgent advice line in the directory, the emergency number."""
    urgent = system.urgent_advice.phone if system.urgent_advice and system.urgent_advice.phone else None
    return system.emergency_number, urgent or system.emergency_number


def _is_child(pathway_id: str, data: dict[str, Any], catalogue: Catalogue) -> bool:
    """Whether the patient of an instance of ``pathway_id`` with ``data`` is a child (the children and
    young people's pathway, or its diagnosis): their 24-hour line is their treatment centre's, never the
    adult line. The one decision the documents, the notices and the warning signs share."""
    return _CHILDREN in _warning_signs_keys(pathway_id, data.get("diagnosis"), catalogue)


def _warning_signs_keys(pathway_id: str, diagnosis: Any, catalogue: Catalogue) -> tuple[str, ...]:
    """The warning-signs catalogue's diagnoses: the pathway's own (``breast_cancer`` -> ``breast``) and the
    site the recorded diagnosis names, each if the catalogue has it (on the general pathway "Bowel cancer" gets
    colorectal cancer's signs: :mod:`engine.rules.diagnoses`; on the breast pathway "Non-small cell lung
    cancer" gets lung cancer's as well as breast cancer's, whichever is the patient's cancer: a sign of the
    one that is is never left out), else ``general``."""
    site = catalogue.diagnoses.site_of(diagnosis) if isinstance(diagnosis, str) else None
    keys = tuple(dict.fromkeys(k for k in (pathway_site(pathway_id), site) if isinstance(k, str) and k in DIAGNOSES))
    return keys or ("general",)


def _surveillance(src: _Sources) -> list[dict[str, Any]]:
    """Planned tests and reviews with dates: the summary's surveillance plan, then what the pathway
    has scheduled (cancer care reviews in England, the quality of life survey, the care plan review)."""
    planned = [
        {"what": str(p.get("what")), "due_on": p.get("due_on")}
        for p in src.data.get("surveillance_plan") or []
        if isinstance(p, dict) and p.get("what")
    ]
    scheduled = [{"what": u["label"], "due_on": u["due_on"]} for u in _next_steps(src)["upcoming"]]
    return sorted([*planned, *scheduled], key=lambda p: str(p["due_on"] or "9999"))


def _benefits_form(src: _Sources) -> dict[str, Any] | None:
    """England, palliative intent: the SR1 form (special rules for end of life) and its status."""
    if not src.england() or src.data.get("treatment_intent") != "palliative":
        return None
    status = src.data.get("benefits_form_status")
    return {"form": "SR1", "status": status, "label": src.labels.of("benefits_form", status) if status else None}


def _iso(value: Any) -> str | None:
    """A recorded date as ``YYYY-MM-DD``; None when it is not a date."""
    day = _date(value)
    return day.isoformat() if day else None


def _listed(value: Any) -> list[Any]:
    """A form's list as recorded; anything else (a value corrected by hand to another type) as none."""
    return value if isinstance(value, list) else []


def _date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None
