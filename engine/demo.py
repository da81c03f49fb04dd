"""Synthetic demonstration patients, so a new installation shows a populated system straight away.

:func:`load_demo` deploys the bundled pathways and drives a set of clearly synthetic patients
(references ``SYN-DEMO-0001``..., no names; ages and diagnoses varied) to different points of different
pathways: just diagnosed, care plan proposed, plan agreed with referrals sent, in treatment, end of
treatment summary written, waiting for the 3-month cancer care review, the 18-month quality of life
survey due, a warning sign reported, a young person helped with travel costs, and a patient whose EHR started
the breast pathway for a lung cancer diagnosis (the pathway check).

Each patient's story runs on a :class:`~engine.clock.ManualClock` that starts on their (past) diagnosis
date and moves forward as their care did, firing due timers as the worker would; at the end every due
timer up to today is fired. So review and survey due dates are real dates relative to today.

Idempotent: a patient whose reference already has an instance is skipped, so running it twice adds
nothing. For demonstrations and training only: it refuses a database holding any instance whose patient
reference does not start with ``SYN-`` (a real patient, as far as it can tell) unless forced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from engine.app import CarePath
from engine.clock import ManualClock, SystemClock
from engine.db.models import PathwayInstance
from engine.errors import ConflictError
from engine.instances.timers import fire_due_timers
from engine.instances.view import SYNTHETIC_PREFIX
from engine.settings import Settings

__all__ = ["DEMO_PATIENTS", "DemoPatient", "DemoRow", "load_demo"]

NURSE, PATIENT, SYSTEM = "clinician:demo-cns", "patient:demo", "system:demo"
# Named contacts and GP practices of the bundled example service directory (directory/service_directory.yaml):
# their names, direct lines and hours are what the documents print.
CONTACT = {
    "named_contact": {
        "role": "clinical_nurse_specialist",
        "staff_ref": "STAFF-DEMO-1",
        "team": "Demo cancer nursing team",
        "contact_line": "team_phone_line",
    }
}
YOUNG_PEOPLE_CONTACT = {
    "named_contact": {
        "role": "key_worker",
        "staff_ref": "STAFF-DEMO-2",
        "team": "Demo children and young people's team",
        "contact_line": "team_phone_line",
    }
}
GP_PRACTICES = ("EXAMPLE-GP-1", "EXAMPLE-GP-2")
HIGH = {"worry_fear_anxiety": 8, "fatigue": 6, "money_housing": 7}
LOW = {"fatigue": 3, "sleep_problems": 4}
WORKING = {
    "work_status": "employed",
    "wants_to_return_to_work": True,
    "caring_duties": True,
    "lives_alone": False,
    "travel_minutes": 40,
    "travel_km": 30,
}
_FIRST_TREATMENT = {"prostate_cancer": "radical_radiotherapy", "children_young_people_cancer": "chemotherapy"}
# Every MDT form records smoking status and whether systemic anticancer therapy is planned (issue 13).
_MDT_STATUS = {"smoking_status": "never", "systemic_therapy_planned": False, "immunotherapy_planned": False}
_MDT_EXTRA: dict[str, dict[str, Any]] = {
    "lung_cancer": {"smoking_status": "former"},
    "children_young_people_cancer": {"fertility_preservation_discussed": True},
}
_TREATMENTS = {
    "breast_cancer": ["breast_conserving_surgery", "radiotherapy"],
    "prostate_cancer": ["radical_radiotherapy"],
    "colorectal_cancer": ["anterior_resection"],
    "lung_cancer": ["lobectomy"],
    "general_cancer": ["surgery"],
    "children_young_people_cancer": ["chemotherapy"],
}


class _Story:
    """One synthetic patient's care, told on a clock that starts at their diagnosis."""

    def __init__(
        self, app: CarePath, clock: ManualClock, patient: DemoPatient, diagnosed: datetime, loaded_at: datetime
    ) -> None:
        self.app, self.clock, self.patient, self.diagnosed = app, clock, patient, diagnosed
        self.loaded_at = loaded_at  # "now" for the demo: stories end on or before it
        clock.set(diagnosed + timedelta(days=2))
        self.view = app.instances.start(
            patient.pathway,
            patient.ref,
            SYSTEM,
            {
                "diagnosis": patient.diagnosis,
                "diagnosis_date": diagnosed.date().isoformat(),
                "age": patient.age,
                "treatment_intent": patient.intent,
                "gp_practice": GP_PRACTICES[int(patient.ref[-1]) % 2],
            },
        )

    def do(self, element: str, data: dict[str, Any], actor: str = NURSE) -> _Story:
        task = next(t for t in self.view.ready_tasks if t["element"] == element)
        self.view = self.app.instances.complete_task(self.view.id, task["id"], data, actor, self.view.version)
        return self

    def at(self, day: int) -> _Story:
        """Move to ``day`` days after diagnosis and fire what is due by then."""
        self.clock.set(max(self.clock.now(), self.diagnosed + timedelta(days=day)))
        fire_due_timers(self.app.instances, now=self.clock.now())
        self.view = self.app.instances.get(self.view.id)
        return self

    def today(self) -> str:
        return self.clock.now().date().isoformat()

    # --- the shared steps, as a clinic completes them ---

    def diagnosed_and_contact(self) -> _Story:
        young = self.patient.pathway == "children_young_people_cancer"
        self.do("assign_contact", YOUNG_PEOPLE_CONTACT if young else CONTACT)
        if young:
            if self.patient.age < 16:
                self.do(
                    "parents_take_part",
                    {"participants": ["mother"], "person_with_parental_responsibility_consents": True},
                )
            else:
                self.do("young_person_chooses", {"participants": ["mother", "partner"]}, actor=PATIENT)
        return self

    def support(self, wanted: str = "yes_now") -> _Story:
        self.do(
            "offer_support",
            {
                "support_wanted": wanted,
                "support_types": ["emotional", "financial"],
                "consent_to_share_contact": wanted == "yes_now",
            },
        )
        if wanted == "yes_now":
            self.do(
                "connect",
                {"connected_to": ["EXAMPLE-SUPPORT-ORG"], "connected_on": self.today(), "connected_via": "nhs_app"},
            )
        elif wanted == "later":
            self.do("give_information", {"information_given_on": self.today(), "information_format": "leaflet"})
        return self

    def checklist(self, concerns: dict[str, int], about_you: dict[str, Any]) -> _Story:
        self.do("offer_hna", {"hna_accepted": True})
        self.do("complete_checklist", {"concerns": concerns, "about_you": about_you}, actor=PATIENT)
        if max(concerns.values()) >= 8:
            self.do("priority_review", {"discussed_on": self.today(), "urgent_action": "same_day_referral"})
        return self

    def agree_plan(self, what_matters: str) -> _Story:
        items = [i for i in self.app.care_plans.get(self.view.id).items if i["status"] == "proposed"]
        decisions = {
            i["id"]: "declined" if i["kind"] == "information" and i["code"].endswith("work") else "agreed"
            for i in items
        }
        self.do("agree", {"decisions": decisions, "what_matters": what_matters})
        referrals = [i["id"] for i in items if i["kind"] == "referral"]
        if referrals:
            self.do("send_referrals", {"referrals_sent_on": self.today()})  # marks them referred
        return self.do("share_plan", {"shared_with_patient": ["nhs_app"], "shared_with_gp": True})

    def mdt(self, intent: str = "curative") -> _Story:
        pathway = self.patient.pathway
        return self.do(
            "mdt",
            {
                "treatment_intent": intent,
                "first_treatment": _FIRST_TREATMENT.get(pathway, "surgery"),
                "prehabilitation": False,
                "clinical_trial_discussed": True,
                **_MDT_STATUS,
                **_MDT_EXTRA.get(pathway, {}),
            },
        )

    def treatment(self) -> _Story:
        extra = {"stoma_formed": False} if self.patient.pathway == "colorectal_cancer" else {}
        return self.do(
            "treatment",
            {"treatments_received": _TREATMENTS[self.patient.pathway], "completed_on": self.today(), **extra},
        )

    def summary(self) -> _Story:
        self.do("offer_hna", {"hna_accepted": False}).do("record_declined", {"reason": "Not now"})
        return self.do(
            "write_summary",
            {
                "summary_treatments": list(_TREATMENTS[self.patient.pathway]),  # the course, as the team names it
                "effects_to_watch_for": ["tiredness for some months"],
                "warning_signs_given": True,
                "ongoing_support": ["local support group", "physiotherapy"],
                "gp_actions": ["review tiredness and mood at the cancer care review"],
                "follow_up_model": "patient_initiated",
            },
        )

    def tell_practice(self) -> _Story:
        """The key worker tells the GP practice of the diagnosis (once; the practice's reviews wait for it)."""
        if any(t["element"] == "tell_practice" for t in self.view.ready_tasks):
            self.do("tell_practice", {"told_on": self.today(), "told_via": "electronic_message", "reviews_asked": True})
        return self

    def review(self, element: str) -> _Story:
        self.tell_practice()
        return self.do(
            element,
            {"reviewed_on": self.today(), "reviewed_by": "gp", "topics": ["support_available"], "new_needs": False},
        )


# --- the stories -----------------------------------------------------------------------------------------


def _just_diagnosed(s: _Story) -> None:
    s.diagnosed_and_contact()


def _plan_proposed(s: _Story) -> None:
    s.diagnosed_and_contact().support().at(7).checklist(HIGH, WORKING)


def _plan_agreed(s: _Story) -> None:
    s.diagnosed_and_contact().support("later").at(7).checklist(HIGH, WORKING).agree_plan(
        "Keeping working part-time and walking the dog"
    )


def _in_treatment(s: _Story) -> None:
    s.diagnosed_and_contact().support().at(5).checklist(LOW, {"work_status": "retired"})
    s.agree_plan("Being at home for my grandchildren's visits").at(20).mdt()


def _summary_written(s: _Story) -> None:
    s.diagnosed_and_contact().support().at(6).checklist(HIGH, WORKING).agree_plan("Getting back to my job")
    s.at(21).mdt().at(45).review("first_review").at(120).treatment().at(130).summary()


def _palliative_route(s: _Story) -> None:
    s.diagnosed_and_contact().support("no").at(4)
    s.do("offer_hna", {"hna_accepted": False}).do("record_declined", {"reason": "Not now"})
    # The palliative route (shared/palliative_care.bpmn): its needs assessment proposes specialist palliative
    # care, sent with the plan; the advance care plan and the carer's needs are recorded.
    s.at(14).mdt("palliative").checklist({"pain": 6, "fatigue": 7, "worry_fear_anxiety": 5}, {"lives_alone": False})
    s.agree_plan("Staying at home with my wife and our dog").at(20)
    s.support("yes_now")  # declined at diagnosis: offered once more as the route begins, and connected now
    s.do(
        "pal_acp",
        {
            "advance_care_plan": {
                "conversation": "held",
                "recorded_on": s.today(),
                "preferred_place_of_care": "home",
                "preferred_place_of_death": "hospice",
                "took_part": ["patient", "partner_or_family", "key_worker"],
                "what_matters_most": "Being at home, and not being in pain",
                "shared_with_gp": True,
            }
        },
    )
    s.do(
        "pal_carers",
        {
            "carers": {
                "has_carer": True,
                "recorded_on": s.today(),
                "relationship": "partner",
                "carers_assessment": "offered",
                "needs": ["information", "short_breaks"],
            }
        },
    )
    s.do("pal_review", {"reviewed_on": s.today(), "on_palliative_care_register": True, "palliative_route": "continue"})
    s.tell_practice()  # the practice's first review is then what it waits for


def _test_done(s: _Story) -> dict[str, Any]:
    return {"done_on": s.today(), "result": "as_expected"}


def _survey_due(s: _Story) -> None:
    s.diagnosed_and_contact().support("later").at(7).checklist(LOW, {"work_status": "retired"})
    s.agree_plan("Staying independent").at(21).mdt().at(40).review("first_review").at(100).treatment()
    s.at(110).summary().do("discuss", {"discussed_on": s.today(), "copy_given": True})
    s.do("send_to_gp", {"sent_on": s.today()}).do("explain_pifu", {"arranged_on": s.today()})
    # Feedback is asked at the end of treatment, alongside follow-up.
    s.at(112).do("give_feedback", {"overall_experience": "very_good", "feedback_wants_contact": False}, actor=PATIENT)
    # Surveillance (NICE NG151): the CEA test 6 months after the end of treatment, CEA and CT at 12 months.
    s.at(300).do("record_result", _test_done(s))
    s.at(310).review("second_review")
    s.at(480).do("record_result", _test_done(s)).do("record_result", _test_done(s))


def _warning_sign(s: _Story) -> None:
    s.diagnosed_and_contact().support().at(6).checklist(LOW, {"work_status": "retired", "lives_alone": True})
    s.agree_plan("Managing at home on my own").at(20).mdt().at(40).review("first_review").at(100)
    # Reported just now, so it waits for triage (untriaged reports are escalated after a few hours at most).
    s.clock.set(max(s.clock.now(), s.loaded_at))
    s.app.instances.send_message(
        "warning_sign_reported",
        "system:patient-app",
        patient_ref=s.patient.ref,
        payload={
            "warning_sign": "lung_worsening_breathlessness",
            "description": "More breathless on the stairs this week",
        },
    )
    s.view = s.app.instances.get(s.view.id)


def _travel_costs(s: _Story) -> None:
    s.diagnosed_and_contact().support().at(5).checklist(
        {"insurance_travel": 7, "money_housing": 6, "work_education": 6},
        {
            "work_status": "student",
            "wants_to_return_to_work": True,
            "lives_alone": False,
            "travel_minutes": 95,
            "travel_km": 110,
        },
    )
    s.agree_plan("Finishing my college course and seeing my friends").at(12).mdt()
    s.do("family_support", {"social_worker_assigned": True, "sibling_support": True})
    s.do("education", {"setting": "college", "hospital_school": False, "education_contact_made": True})
    s.do("costs", {"travel_minutes": 95, "help_given": ["nhs_travel_costs_scheme", "charity_grant"]})


@dataclass(frozen=True)
class DemoPatient:
    ref: str
    pathway: str
    diagnosis: str
    age: int
    days_since_diagnosis: int
    stage: str  # where they are, for people reading the table
    story: Callable[[_Story], None]
    intent: str = "curative"


DEMO_PATIENTS = (
    DemoPatient(
        "SYN-DEMO-0001",
        "breast_cancer",
        "breast",
        54,
        3,
        "just diagnosed: support organisations offered",
        _just_diagnosed,
    ),
    DemoPatient("SYN-DEMO-0002", "lung_cancer", "lung", 67, 10, "HNA done: care plan proposed", _plan_proposed),
    DemoPatient(
        "SYN-DEMO-0003", "colorectal_cancer", "colorectal", 61, 16, "care plan agreed, referrals sent", _plan_agreed
    ),
    DemoPatient("SYN-DEMO-0004", "prostate_cancer", "prostate", 71, 30, "in treatment", _in_treatment),
    DemoPatient(
        "SYN-DEMO-0005", "breast_cancer", "breast", 46, 140, "end of treatment summary written", _summary_written
    ),
    DemoPatient(
        "SYN-DEMO-0006",
        "general_cancer",
        "kidney",
        78,
        40,
        "palliative care: specialist palliative care referred, advance care plan recorded",
        _palliative_route,
        "palliative",
    ),
    # 558 days is always past 18 months (at most 553 days): the survey's timer has fired.
    DemoPatient(
        "SYN-DEMO-0007",
        "colorectal_cancer",
        "colorectal",
        64,
        18 * 31,
        "18-month quality of life survey: national invitation due",
        _survey_due,
    ),
    DemoPatient("SYN-DEMO-0008", "lung_cancer", "lung", 58, 110, "warning sign reported: triage", _warning_sign),
    DemoPatient(
        "SYN-DEMO-0009",
        "children_young_people_cancer",
        "hodgkin_lymphoma",
        19,
        21,
        "young person: travel costs help given",
        _travel_costs,
    ),
    # An EHR's mapping error: the breast pathway started for a diagnosis naming lung cancer. The work list tags
    # the patient's tasks and the patient page asks a clinician to check the pathway (engine.pathway_checks).
    DemoPatient(
        "SYN-DEMO-0010",
        "breast_cancer",
        "Non-small cell lung cancer",
        69,
        4,
        "just diagnosed, on the breast pathway for a lung cancer diagnosis: the pathway to check",
        _just_diagnosed,
    ),
)


@dataclass(frozen=True)
class DemoRow:
    patient_ref: str
    pathway_id: str
    stage: str
    instance_id: str
    status: str
    ready: list[str]
    next_due_at: str | None
    loaded: bool  # False: the patient was already there and was skipped


def load_demo(settings: Settings, *, now: datetime | None = None, force: bool = False) -> list[DemoRow]:
    """Upgrade the schema, deploy the bundled pathways and load the demo patients not yet there.

    ``now`` is "today" (default: the real time); stories end on or before it. ``force`` loads them
    even into a database that holds patients whose references do not start with ``SYN-``.

    Raises:
        ConflictError: the database holds such patients and ``force`` is not set (nothing is written
        but the schema upgrade).
        DiagramError: a bundled diagram is invalid. Engine errors from a story mean the bundled
        pathways changed under it (nothing of that patient's current step is kept).
    """
    today = (now or SystemClock().now()).astimezone(UTC)
    clock = ManualClock(today)
    app = CarePath(settings, clock, upgrade=True)
    try:
        real = _real_patients(app)
        if real and not force:
            raise ConflictError(
                f"the database holds {real} instance(s) of patients whose reference does not start "
                f"with {SYNTHETIC_PREFIX} (real patients?); demo data is for demonstration "
                "databases only (force it with --force)"
            )
        app.catalog.sync_library(actor=SYSTEM)
        app.rule_sets.sync(actor=SYSTEM)  # four eyes: the folder's first rule-set versions are active
        existing = _existing(app)
        for patient in DEMO_PATIENTS:
            if patient.ref in existing:
                continue
            day = (today - timedelta(days=patient.days_since_diagnosis)).date()
            diagnosed = datetime.combine(day, time(9), tzinfo=UTC)
            patient.story(_Story(app, clock, patient, diagnosed, today))
        clock.set(today)
        fire_due_timers(app.instances, now=today)
        return _rows(app, existing)
    finally:
        app.close()


def _real_patients(app: CarePath) -> int:
    """Instances whose patient reference is not synthetic (compared exactly, on every database)."""
    with app.sessions() as session:
        prefix = func.substr(PathwayInstance.patient_ref, 1, len(SYNTHETIC_PREFIX))
        return int(
            session.scalar(select(func.count()).select_from(PathwayInstance).where(prefix != SYNTHETIC_PREFIX)) or 0
        )


def _existing(app: CarePath) -> set[str]:
    refs = [p.ref for p in DEMO_PATIENTS]
    with app.sessions() as session:
        return set(session.scalars(select(PathwayInstance.patient_ref).where(PathwayInstance.patient_ref.in_(refs))))


def _rows(app: CarePath, existing: set[str]) -> list[DemoRow]:
    rows = []
    with app.sessions() as session:
        found = {
            i.patient_ref: i.id
            for i in session.scalars(
                select(PathwayInstance)
                .where(PathwayInstance.patient_ref.in_([p.ref for p in DEMO_PATIENTS]))
                .order_by(PathwayInstance.created_at)
            )
        }
    for patient in DEMO_PATIENTS:
        if patient.ref not in found:
            continue
        view = app.instances.get(found[patient.ref])
        rows.append(
            DemoRow(
                patient.ref,
                view.pathway_id,
                patient.stage,
                view.id,
                view.status,
                sorted(t["element"] for t in view.ready_tasks),
                view.next_due_at,
                patient.ref not in existing,
            )
        )
    return rows
