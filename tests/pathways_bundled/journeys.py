"""Scripted synthetic patient journeys through the bundled pathways.

Every patient here is invented (references SYN-0001...), and together the journeys take every
branch of every bundled diagram (checked by test_coverage.py). The clock starts on 2026-01-15;
diagnoses are dated 2026-01-12, so the primary care reviews are due on 2026-04-12 (3 months) and
2027-01-12 (12 months), the second review is invited on 2026-11-12 and the quality of life survey
is due on 2027-07-12 (18 months).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import InstanceEvent
from engine.instances.progress import instance_progress

from .journey import PATIENT, Journey, contact

DIAGNOSED = "2026-01-12"

# Answers that reach the rules' referrals: severe worry, moderate fatigue, money worries.
HIGH_CONCERNS = {"worry_fear_anxiety": 9, "fatigue": 6, "money_housing": 7}
LOW_CONCERNS = {"fatigue": 3}
# What the MDT form asks of every patient besides the plan (NICE NG209: ask everyone about smoking).
NOT_ON_SACT = {"smoking_status": "never", "systemic_therapy_planned": False, "immunotherapy_planned": False}
ABOUT_WORKING_PARENT = {
    "work_status": "employed",
    "wants_to_return_to_work": True,
    "caring_duties": True,
    "lives_alone": False,
    "travel_minutes": 50,
    "travel_km": 40,
}


@dataclass(frozen=True)
class Site:
    """What differs between the diagnosis pathways, for the journeys."""

    pathway: str
    diagnosis: str
    age: int = 58
    mdt: dict[str, Any] = field(default_factory=dict)  # extra MDT answers
    first_treatment: str = "surgery"
    treatments: list[str] = field(default_factory=lambda: ["surgery"])
    treatment_extra: dict[str, Any] = field(default_factory=dict)
    # The site's own branch: MDT / treatment answers that take it, and its task with answers.
    special_mdt: dict[str, Any] = field(default_factory=dict)
    special_treatment: dict[str, Any] = field(default_factory=dict)
    special_task: tuple[str, dict[str, Any]] | None = None
    after_treatment_task: tuple[str, dict[str, Any]] | None = None  # always there (children: transition)
    adt: bool = False  # androgen deprivation therapy starts during the treatment (prostate)
    # MDT answers that take the site's branch before treatment, and its task (colorectal: a stoma possible).
    special_plan: dict[str, Any] = field(default_factory=dict)
    before_treatment_task: tuple[str, dict[str, Any]] | None = None


FOLLOW_UP = {"arranged_on": "2026-01-15"}
SITES = {
    "breast": Site(
        "breast_cancer",
        "breast",
        52,
        treatments=["breast_conserving_surgery", "radiotherapy"],
        first_treatment="surgery",
        special_treatment={"treatments_received": ["breast_conserving_surgery", "radiotherapy", "endocrine_therapy"]},
        special_task=("endocrine_plan", FOLLOW_UP),
    ),
    "prostate": Site(
        "prostate_cancer",
        "prostate",
        67,
        first_treatment="radical_radiotherapy",
        treatments=["radical_radiotherapy"],
        adt=True,
    ),
    "colorectal": Site(
        "colorectal_cancer",
        "colorectal",
        63,
        treatments=["anterior_resection"],
        treatment_extra={"stoma_formed": False},
        special_treatment={"treatments_received": ["anterior_resection"], "stoma_formed": True},
        special_task=("stoma_care", FOLLOW_UP),
        special_plan={"stoma_possible": True},
        before_treatment_task=("preop_stoma", {"seen_on": "2026-01-15", "site_marked": True}),
    ),
    "lung": Site(
        "lung_cancer",
        "lung",
        71,
        treatments=["lobectomy"],
        mdt={"smoking_status": "former"},
        special_mdt={"smoking_status": "current"},
        special_task=("stop_smoking", {"referred_on": "2026-01-15", "accepted": True}),
    ),
    "general": Site("general_cancer", "kidney", 60, first_treatment="surgery", treatments=["surgery"]),
    "children_young_people": Site(
        "children_young_people_cancer",
        "hodgkin_lymphoma",
        14,
        first_treatment="chemotherapy",
        treatments=["chemotherapy"],
        mdt={"fertility_preservation_discussed": True},
        after_treatment_task=("transition", FOLLOW_UP),
    ),
}


def _start(
    app: CarePath, clock: ManualClock, site: Site, patient: str, *, age: int | None = None, intent: str = "curative"
) -> Journey:
    journey = Journey(
        app,
        clock,
        site.pathway,
        patient,
        {
            "diagnosis": site.diagnosis,
            "diagnosis_date": DIAGNOSED,
            "age": site.age if age is None else age,
            "treatment_intent": intent,
        },
    )
    assert journey.ready == ["assign_contact"]
    journey.do("assign_contact", contact())
    if site.pathway == "children_young_people_cancer":
        if (site.age if age is None else age) < 16:
            journey.do(
                "parents_take_part",
                {"participants": ["mother", "father"], "person_with_parental_responsibility_consents": True},
            )
        else:
            journey.do("young_person_chooses", {"participants": ["partner"]}, actor=PATIENT)
    assert "offer_support" in journey.ready and "tell_practice" in journey.ready
    assert "first_review" not in journey.ready  # the practice reviews once it has been told
    tell_practice(journey)
    assert "first_review" in journey.ready
    return journey


def tell_practice(journey: Journey) -> None:
    """The key worker tells the GP practice of the diagnosis and asks for its cancer care reviews."""
    journey.do("tell_practice", {"told_on": journey.today(), "told_via": "electronic_message", "reviews_asked": True})


def _support(journey: Journey, wanted: str) -> None:
    journey.do(
        "offer_support",
        {
            "support_wanted": wanted,
            "support_types": ["emotional", "financial"],
            "consent_to_share_contact": wanted == "yes_now",
        },
    )
    if wanted == "yes_now":
        journey.do(
            "connect",
            {"connected_to": ["EXAMPLE-SUPPORT-ORG"], "connected_on": journey.today(), "connected_via": "nhs_app"},
        )
    elif wanted == "later":
        journey.do("give_information", {"information_given_on": journey.today(), "information_format": "leaflet"})


def _mdt(journey: Journey, site: Site, *, intent: str = "curative", prehab: bool, special: bool) -> None:
    answers = {
        "treatment_intent": intent,
        "first_treatment": site.first_treatment,
        "prehabilitation": prehab,
        "clinical_trial_discussed": True,
        **NOT_ON_SACT,
        **site.mdt,
    }
    if special:
        answers.update(site.special_mdt)
        answers.update(site.special_plan)
    journey.do("mdt", answers)
    if site.special_mdt and special:
        journey.do(*site.special_task)  # type: ignore[misc]
    if site.pathway == "children_young_people_cancer":
        journey.do("family_support", {"social_worker_assigned": True, "sibling_support": True})
        journey.do("education", {"setting": "school", "hospital_school": True, "education_contact_made": True})
        journey.do("costs", {"travel_minutes": 95, "help_given": ["nhs_travel_costs_scheme", "charity_grant"]})
        journey.do("shared_care_talk", {"shared_care_wanted": special, "local_hospital": "SYN-LOCAL-1"})
        if special:
            journey.do(
                "setup_shared_care", {"agreed_on": journey.today(), "local_care": ["blood_tests", "fever_assessment"]}
            )


def _prehabilitation(journey: Journey, every_need: bool) -> None:
    journey.do(
        "screen",
        {
            "weeks_until_treatment": 4,
            "physically_inactive": every_need,
            "nutrition_risk": "medium" if every_need else "low",
            "smokes": every_need,
            "alcohol_above_guidelines": False,
            "distress": 6 if every_need else 2,
        },
    )
    given = {"referred_on": journey.today(), "accepted": True}
    for task in ["exercise", "nutrition", "stop_smoking", "wellbeing"] if every_need else ["general_advice"]:
        journey.do(task, given)
    assert "review" in journey.ready
    journey.do("review", {"ready_for_treatment": True})


def _treatment(journey: Journey, site: Site, special: bool) -> None:
    answers = {"treatments_received": site.treatments, "completed_on": journey.today(), **site.treatment_extra}
    if special and site.before_treatment_task:
        assert "treatment" not in journey.ready
        journey.do(*site.before_treatment_task)
    if special:
        answers.update(site.special_treatment)
    journey.do("treatment", answers)
    if site.special_treatment and special:
        journey.do(*site.special_task)  # type: ignore[misc]
    if site.after_treatment_task:
        journey.do(*site.after_treatment_task)


def _end_of_treatment(journey: Journey, follow_up: str, copy_given: bool = True) -> None:
    """The summary written, discussed and sent; ``copy_given`` False: discussed without the patient's copy,
    so the patient is given it (warning signs, who to call) before it goes to the GP."""
    journey.do(
        "write_summary",
        {
            "summary_treatments": ["surgery"],
            "effects_to_watch_for": ["fatigue"],
            "warning_signs_given": True,
            "ongoing_support": ["local support group"],
            "gp_actions": ["review fatigue at the cancer care review"],
            "follow_up_model": follow_up,
        },
    )
    journey.do("discuss", {"discussed_on": journey.today(), "copy_given": copy_given})
    if not copy_given:
        assert "give_summary" in journey.ready and "send_to_gp" not in journey.ready
        journey.do(
            "give_summary",
            {"summary_given_on": journey.today(), "summary_given_via": ["in_person"], "warning_signs_explained": True},
        )
    assert "give_summary" not in journey.ready
    journey.do("send_to_gp", {"sent_on": journey.today()})
    task = {"scheduled": "book_follow_up", "patient_initiated": "explain_pifu", "primary_care": "hand_over"}[follow_up]
    journey.do(task, {"arranged_on": journey.today()})
    if "offer_support" in journey.ready:  # declined at diagnosis: offered once more; declined again, final
        journey.do("offer_support", {"support_wanted": "no"})


def course_ended(app: CarePath, clock: ManualClock, site_key: str, patient: str, support: str = "no") -> Journey:
    """Diagnosed and treated with curative intent (no site-specific branch, HNAs declined, ``support``
    the answer about support), to the end of first-line treatment (today): its summary is awaited."""
    site = SITES[site_key]
    j = _start(app, clock, site, patient)
    _support(j, support)
    j.hna_declined()
    _mdt(j, site, prehab=False, special=False)
    _treatment(j, site, special=False)
    j.hna_declined()  # at the end of treatment
    assert j.ready.count("write_summary") == 1
    return j


def recurrence_treated(j: Journey, weeks_later: int, concerns: dict[str, int] | None = None) -> Journey:
    """A recurrence confirmed two weeks on, assessed (``concerns``: an HNA, else declined), then its own
    course of treatment ends ``weeks_later`` weeks after that: its summary is awaited too."""
    j.wait(14)
    j.message("recurrence_confirmed")
    if concerns:
        j.hna(concerns, about_you=ABOUT_WORKING_PARENT)
    else:
        j.hna_declined()
    j.wait(7 * weeks_later)
    j.message("recurrence_treatment_completed")
    j.do("rec_treatment", {"treatments_received": ["chemotherapy", "radiotherapy"], "completed_on": j.today()})
    assert "offer_hna" in j.ready  # the needs are assessed first, at the end of this course too
    j.hna_declined()
    return j


def treated(app: CarePath, clock: ManualClock, site_key: str, patient: str, follow_up: str) -> Journey:
    """Diagnosed and treated with curative intent (no site-specific branch, support and HNAs declined), the
    end of treatment summary done with ``follow_up`` arranged."""
    j = course_ended(app, clock, site_key, patient)
    _end_of_treatment(j, follow_up)
    return j


def _triage(journey: Journey, rating: str) -> None:
    sign = "fever_on_treatment" if rating == "red" else "diarrhoea_or_vomiting_on_treatment"
    journey.message("warning_sign_reported", {"warning_sign": sign, "description": "Unwell since this morning"})
    journey.do(
        "triage",
        {
            "warning_sign": sign,
            "on_systemic_treatment": rating == "red",
            "triage_rating": rating,
            "advice_given": "As the triage tool advises",
        },
    )
    if rating == "red":
        journey.do("urgent_assessment", {"assessed_at": "acute_oncology_unit", "outcome": "admitted"})
    elif rating == "amber":
        journey.do("call_back", {"called_back_on": journey.today(), "escalated": False})
    else:
        journey.do("self_care", {"advice_given": "Fluids, loperamide, call again if worse"})
    journey.do("inform_team", {"informed_on": journey.today()})


def record_tests_due(journey: Journey) -> Journey:
    """Record every surveillance test now due, and follow up every missed one (shared/surveillance_schedule)."""
    while True:
        if "follow_up_missed" in journey.ready:  # rebooked for today: its result is recorded next
            journey.do(
                "follow_up_missed",
                {"contacted_on": journey.today(), "outcome": "rebooked", "rebooked_on": journey.today()},
            )
        elif "record_rebooked_result" in journey.ready:
            journey.do("record_rebooked_result", {"done_on": journey.today(), "result": "as_expected"})
        elif "record_result" in journey.ready:
            journey.do("record_result", {"done_on": journey.today(), "result": "as_expected"})
        else:
            return journey


def next_due(journey: Journey) -> Journey:
    """Move the clock just past the instance's next timer and let it fire."""
    assert journey.view.next_due_at, journey.ready
    return journey.wait_for(
        datetime.fromisoformat(journey.view.next_due_at) - journey.clock.now() + timedelta(seconds=1)
    )


def discharge_if_due(journey: Journey, pathway: str) -> bool:
    """Complete the pathway's own follow-up (discharge) task if it is ready (not the survey's follow-up)."""
    if not any(t["element"] == "follow_up" and t["process"] == pathway for t in journey.view.ready_tasks):
        return False
    journey.do(
        "follow_up", {"discharged_on": journey.today(), "outcome": "discharged_with_open_access"}, process=pathway
    )
    return True


def surveillance_to_discharge(journey: Journey, pathway: str) -> Journey:
    """Every test of the site's surveillance schedule as it falls due, then the discharge."""
    for _ in range(20):
        record_tests_due(journey)
        if journey.status == "completed":
            return journey
        if discharge_if_due(journey, pathway):
            return journey
        next_due(journey)
    raise AssertionError(f"no discharge after 20 timers: {journey.ready}")


def _review(journey: Journey, element: str) -> None:
    journey.do(
        element,
        {"reviewed_on": journey.today(), "reviewed_by": "gp", "topics": ["support_available"], "new_needs": False},
    )


def to_the_end(journey: Journey, *, survey: bool = True) -> Journey:
    """The branches that outlast care: the 12-month cancer care review (invited on 2026-11-12) and the
    quality of life survey's invitation (2027-07-12; ``survey`` False: under 16 by then, never invited;
    14 at diagnosis, the key worker's check of the age says whether they are 16 now, as ``survey``)."""
    journey.wait_until("2026-11-12")
    _review(journey, "second_review")
    journey.wait_until("2027-07-12")
    if "check_age_now" in journey.ready:  # 14 at diagnosis: the key worker checks the date of birth
        journey.do("check_age_now", {"sixteen_or_over_now": survey, "checked_on": journey.today()})
    if survey:
        return journey.do("survey_invitation", {"invitation": "sent", "recorded_on": journey.today()})
    assert "survey_invitation" not in journey.ready
    return journey


# --- what a clinician reads: the trail, the feedback invitations, the timers waited for ---

FEEDBACK_ANSWER = {"overall_experience": "good", "what_went_well": "Named contact always called back"}
SURVEILLANCE_PLAN = {
    "plan_given_via": ["nhs_app"],
    "schedule_explained": True,
    "warning_signs_explained": True,
    "radical_treatment_option_explained": True,
    "shared_with_gp": True,
}


def events(app: CarePath, instance_id: str) -> list[InstanceEvent]:
    with app.sessions() as session:
        return list(
            session.scalars(
                select(InstanceEvent).where(InstanceEvent.instance_id == instance_id).order_by(InstanceEvent.seq)
            )
        )


# The feedback task (shared/patient_feedback.bpmn) and its 12-week timer: the patient's own, or for a child under
# 16 the parents' or carers' (with the child).
FEEDBACK_TASKS = ("give_feedback", "give_feedback_family")
FEEDBACK_TIMERS = ("feedback_unanswered", "feedback_family_unanswered")


def feedback_task(age: int) -> str:
    """Who is asked for feedback: the parents or carers, with the child, under 16 at diagnosis."""
    return "give_feedback_family" if age < 16 else "give_feedback"


def feedback_tasks(journey: Journey) -> list[dict[str, Any]]:
    """The feedback invitations waiting for the patient, or the family (shared/patient_feedback.bpmn)."""
    return [t for t in journey.view.ready_tasks if t["element"] in FEEDBACK_TASKS]


def feedback_answered(app: CarePath, instance_id: str) -> int:
    """How many times the patient (or the family) answered a feedback invitation."""
    return sum(1 for e in events(app, instance_id) if e.type == "task_completed" and e.element in FEEDBACK_TASKS)


def feedback_closed(app: CarePath, instance_id: str) -> list[dict[str, str]]:
    """The payloads of the expiry timer's firings (an invitation closed unanswered after 12 weeks)."""
    return [
        json.loads(e.payload)
        for e in events(app, instance_id)
        if e.type == "timer_fired" and e.element in FEEDBACK_TIMERS
    ]


def waiting_timers(journey: Journey) -> dict[str, str]:
    """The waiting timers, element -> the day each is due (YYYY-MM-DD)."""
    return {
        e.element: e.due_at[:10]
        for e in instance_progress(journey.app.instances, journey.view.id).elements
        if e.state == "waiting" and e.due_at
    }


@dataclass(frozen=True)
class Options:
    """Which way each shared sub-pathway goes in a full journey."""

    support: str = "yes_now"
    triage: str = "red"
    follow_up: str = "patient_initiated"
    first_review_late: bool = False
    second_review_late: bool = True
    feedback_contact: bool = True
    survey_declined: bool = False
    prehab_every_need: bool = True


def full_journey(app: CarePath, clock: ManualClock, site: Site, patient: str, opts: Options) -> Journey:
    """Diagnosis to the end of the pathway, 18 months later, with every parallel part and message."""
    j = _start(app, clock, site, patient)
    _support(j, opts.support)
    j.hna(HIGH_CONCERNS, about_you=ABOUT_WORKING_PARENT)
    assert j.ready[0] == "first_review" or "first_review" in j.ready
    if not opts.first_review_late:
        _review(j, "first_review")
    j.message("named_contact_changed").do(
        "nc_record", {**contact("Synthetic community team"), "reason": "moved nearer home"}
    )
    _triage(j, opts.triage)
    _mdt(j, site, prehab=True, special=True)
    # The SACT prescribing system reports a first cycle: the treatment status listener runs from the start.
    j.message("treatment_status_changed", {"on_sact": True, "last_sact_date": j.today()})
    _prehabilitation(j, opts.prehab_every_need)
    if site.adt:  # neoadjuvant ADT starts before radiotherapy: the exercise referral with it (NICE NG131)
        assert "adt_support" not in j.ready
        j.message("androgen_deprivation_started").do("adt_support", FOLLOW_UP)
    if opts.first_review_late:
        j.wait_until("2026-04-13")
        assert "remind_first" in j.ready
        j.do("remind_first", {"reminded_on": j.today()})
        _review(j, "first_review")
    _treatment(j, site, special=True)
    j.hna_declined()  # at the end of treatment
    _end_of_treatment(j, opts.follow_up)
    asked = feedback_task(site.age)  # a child under 16: the parents or carers, with the child
    assert asked in j.ready  # feedback at the end of treatment, alongside follow-up
    j.do(
        asked,
        {
            "overall_experience": "good",
            "what_went_well": "Named contact always called back",
            "feedback_wants_contact": opts.feedback_contact,
        },
        actor=PATIENT,
    )
    if opts.feedback_contact:
        j.do("respond", {"contacted_on": j.today(), "outcome": "Thanked"})
    discharge_if_due(j, site.pathway)  # no surveillance schedule on this pathway: follow-up ends now
    j.message("recurrence_confirmed")
    j.hna(LOW_CONCERNS, agree=lambda item: False)  # on recurrence
    record_tests_due(j.wait_until("2026-11-12"))
    assert "second_review" in j.ready
    if opts.second_review_late:
        record_tests_due(j.wait_until("2027-01-13"))
        j.do("remind_second", {"reminded_on": j.today()})
    _review(j, "second_review")
    discharge_if_due(record_tests_due(j.wait_until("2027-07-12")), site.pathway)
    if site.age == 14:  # perhaps 16 by now: the key worker checks the date of birth (still 15 here)
        j.do("check_age_now", {"sixteen_or_over_now": False, "checked_on": j.today()})
    if site.age >= 16:  # the national survey's invitation, recorded; no local questionnaire
        assert j.ready == ["survey_invitation"] and j.status == "running"
        j.do(
            "survey_invitation",
            {"invitation": "declined" if opts.survey_declined else "sent", "recorded_on": j.today()},
        )
    else:
        assert "survey_invitation" not in j.ready  # under 16: not invited
    surveillance_to_discharge(j, site.pathway)
    assert j.status == "completed", j.ready
    return j


def short_journey(
    app: CarePath,
    clock: ManualClock,
    site: Site,
    patient: str,
    *,
    support: str,
    age: int | None = None,
    triage: str = "green",
) -> Journey:
    """Curative without prehabilitation or the site's own branch, up to the end-of-treatment HNA."""
    j = _start(app, clock, site, patient, age=age)
    _support(j, support)
    j.hna(LOW_CONCERNS)
    _triage(j, triage)
    _mdt(j, site, prehab=False, special=False)
    _treatment(j, site, special=False)
    assert "offer_hna" in j.ready
    return j


def palliative_journey(app: CarePath, clock: ManualClock, site: Site, patient: str) -> Journey:
    j = _start(app, clock, site, patient, intent="palliative")
    _support(j, "no")
    j.hna_declined()
    _mdt(j, site, intent="palliative", prehab=False, special=False)
    # The palliative route's own assessment declined; at its review, care passes to another service.
    j.hna_declined()
    j.do(
        "cpal_review" if "cpal_review" in j.ready else "pal_review",
        {"reviewed_on": j.today(), "palliative_route": "care_transferred"},
    )
    # The route had not asked: asked on the way out (a child under 16: the parents or carers, with the child).
    assert j.ready == ["first_review", feedback_task(site.age)]
    # The patient dies two weeks later: the pathway ends, and no review or survey ever follows.
    j.wait(14).message("patient_died", {"date_of_death": j.today()})
    assert (j.status, j.ready) == ("completed", [])
    j.wait(3 * 366)
    assert (j.status, j.ready) == ("completed", [])
    return j


def prostate_mdt(
    app: CarePath,
    clock: ManualClock,
    patient: str,
    first_treatment: str,
    support: str = "later",
    started: Journey | None = None,
) -> Journey:
    """A man on the prostate pathway whose MDT has just chosen ``first_treatment`` (``active_surveillance``,
    ``radical_prostatectomy``...), after the support offer (``support``) and a needs assessment with low
    concerns; ``started``: his journey, started elsewhere (in Sweden), else started here, in England."""
    j = started or _start(app, clock, SITES["prostate"], patient)
    _support(j, support)
    j.hna(LOW_CONCERNS)
    return j.do(
        "mdt",
        {
            "treatment_intent": "curative",
            "first_treatment": first_treatment,
            "prehabilitation": False,
            "clinical_trial_discussed": False,
            **NOT_ON_SACT,
        },
    )


def prostate_surveillance(
    app: CarePath, clock: ManualClock, patient: str, outcome: str, plan_given: bool = True, support: str = "later"
) -> Journey:
    """A year of active surveillance to the 12-month review (``outcome``); ``plan_given`` False: the
    surveillance plan is still not given at the review; ``support`` the answer at diagnosis ('no': offered
    again after a review that continues surveillance)."""
    j = prostate_mdt(app, clock, patient, "active_surveillance", support)
    # His plan (tests, warning signs, who to call, support) in place of an end of treatment summary.
    if plan_given:
        j.do("as_plan", {**SURVEILLANCE_PLAN, "plan_given_on": j.today()})
    while "surveillance" not in j.ready:  # a year of PSA tests, then the review
        record_tests_due(next_due(j))
    assert ("as_plan" in j.ready) != plan_given
    j.do("surveillance", {"reviewed_on": j.today(), "surveillance_outcome": outcome})
    if outcome == "continue":  # no end of treatment: asked after the review that continues surveillance
        assert "give_feedback" in j.ready and ("offer_support" in j.ready) == (support == "no")
        if support == "no":  # declined at diagnosis: offered once more; a second no is final
            j.do("offer_support", {"support_wanted": "no", "support_types": [], "consent_to_share_contact": False})
            assert "offer_support" not in j.ready
        j.do("give_feedback", {**FEEDBACK_ANSWER, "feedback_wants_contact": False}, actor=PATIENT)
        j.do("surveillance_discharge", {"discharged_on": j.today(), "outcome": "transferred"})
        assert "give_feedback" not in j.ready
    else:  # progressed: asked at the end of the radical treatment, not now; surveillance (and its plan) ended
        assert not {"give_feedback", "as_plan"} & set(j.ready)
        j.do("treatment", {"treatments_received": ["radical_prostatectomy"], "completed_on": j.today()})
        assert "offer_hna" in j.ready
    return j


def recurrence_journey(app: CarePath, clock: ManualClock, site: Site, patient: str) -> Journey:
    """A recurrence is confirmed and treated: its own course, and its own end of treatment summary."""
    j = _start(app, clock, site, patient, age=19 if site.pathway == "children_young_people_cancer" else None)
    _support(j, "later")
    j.hna_declined()  # at diagnosis
    j.message("recurrence_confirmed")
    j.hna_declined()  # on recurrence
    j.wait(120)
    j.message("recurrence_treatment_completed")
    j.do("rec_treatment", {"treatments_received": site.treatments, "completed_on": j.today(), **site.treatment_extra})
    assert "write_summary" not in j.ready and "offer_hna" in j.ready  # the end-of-treatment HNA for this course
    j.hna_declined()
    _end_of_treatment(j, "scheduled", copy_given=False)  # the recurrence's summary discussed without a copy
    assert "rec_treatment" not in j.ready and "write_summary" not in j.ready
    return j


def end_of_treatment_journey(
    app: CarePath, clock: ManualClock, *, site_key: str, patient: str, support: str, age: int | None = None
) -> Journey:
    """Treated with curative intent to the end of treatment, ``support`` the answer at diagnosis: declined
    ('no'), the connection is offered once more at the end of treatment (support_again); the feedback goes
    to the patient, or in the children and young people's pathway to the family as the age says."""
    site = SITES[site_key]
    j = _start(app, clock, site, patient, age=age)
    _support(j, support)
    j.hna_declined()
    _mdt(j, site, prehab=False, special=False)
    _treatment(j, site, special=False)
    j.hna_declined()  # at the end of treatment
    j.do(
        "write_summary",
        {"summary_treatments": ["surgery"], "warning_signs_given": True, "follow_up_model": "scheduled"},
    )
    j.do("discuss", {"discussed_on": j.today(), "copy_given": True})
    j.do("send_to_gp", {"sent_on": j.today()})
    j.do("book_follow_up", {"arranged_on": j.today()})
    assert ("offer_support" in j.ready) == (support == "no"), j.ready  # offered again only when declined
    if support == "no":
        j.do("offer_support", {"support_wanted": "later", "support_types": ["financial"]})
        j.do("give_information", {"information_given_on": j.today(), "information_format": "leaflet"})
    assert "offer_support" not in j.ready
    [task] = feedback_tasks(j)
    child = site.pathway == "children_young_people_cancer"
    young = site.age if age is None else age
    lane = ("Parents or carers" if young < 16 else "Child or young person") if child else "Patient"
    assert (task["lane"], task["element"]) == (lane, feedback_task(young) if child else "give_feedback")
    j.do(task["element"], {**FEEDBACK_ANSWER, "feedback_wants_contact": False}, actor=PATIENT)
    return j


def survey_by_age(app: CarePath, clock: ManualClock, patient: str, age: int) -> Journey:
    """A child treated to the end of the pathway. Twelve at diagnosis: still under 16 when the quality of life
    survey would be sent, so never invited (the national survey is for those 16 and over). Fourteen: the key
    worker checks the date of birth and finds them 16 now, so they are invited."""
    j = end_of_treatment_journey(
        app, clock, site_key="children_young_people", patient=patient, support="yes_now", age=age
    )
    return to_the_end(j, survey=age >= 14)


JourneyFn = Callable[[CarePath, ManualClock], Journey]


def _all() -> dict[str, JourneyFn]:
    journeys: dict[str, JourneyFn] = {}
    full_options = {
        "breast": Options(),
        "prostate": Options(
            support="later",
            triage="amber",
            follow_up="scheduled",
            first_review_late=True,
            second_review_late=False,
            feedback_contact=False,
            survey_declined=True,
        ),
        "colorectal": Options(support="no", triage="green", follow_up="primary_care"),
        "lung": Options(prehab_every_need=False, follow_up="scheduled"),
        "general": Options(support="later", triage="amber"),
        "children_young_people": Options(triage="red", follow_up="scheduled"),
    }
    for number, (key, opts) in enumerate(full_options.items(), start=1):
        site = SITES[key]
        journeys[f"{key}-full"] = partial(full_journey, site=site, patient=f"SYN-{number:04d}", opts=opts)
        journeys[f"{key}-short"] = partial(
            short_journey,
            site=site,
            patient=f"SYN-{number + 100:04d}",
            support="later" if number % 2 else "yes_now",
            age=19 if key == "children_young_people" else None,
        )
        journeys[f"{key}-palliative"] = partial(palliative_journey, site=site, patient=f"SYN-{number + 200:04d}")
    journeys["prostate-surveillance-continues"] = partial(prostate_surveillance, patient="SYN-0301", outcome="continue")
    journeys["prostate-surveillance-to-radical"] = partial(
        prostate_surveillance, patient="SYN-0302", outcome="radical_treatment"
    )
    journeys["prostate-surveillance-plan-closed"] = partial(
        prostate_surveillance, patient="SYN-0303", outcome="radical_treatment", plan_given=False
    )
    # The connection to support offered again at the end of treatment only to whoever declined it at diagnosis;
    # a young person of 16 or over asked for feedback in their own lane.
    journeys["prostate-support-declined"] = partial(
        end_of_treatment_journey, site_key="prostate", patient="SYN-0501", support="no"
    )
    journeys["colorectal-support-informed"] = partial(
        end_of_treatment_journey, site_key="colorectal", patient="SYN-0502", support="later"
    )
    journeys["children_young_people-young-person"] = partial(
        end_of_treatment_journey, site_key="children_young_people", patient="SYN-0503", support="yes_now", age=19
    )
    # Declined at diagnosis on the other pathways: offered again at the end of treatment (each is registered
    # here so that the coverage test takes every flow whichever tests ran beside it: tests/pathways_bundled/
    # test_journeys_coverage.py), and after the review that continues active surveillance.
    for number, key in enumerate(("breast", "general", "children_young_people"), start=4):
        journeys[f"{key}-support-declined"] = partial(
            end_of_treatment_journey, site_key=key, patient=f"SYN-05{number:02d}", support="no"
        )
    journeys["prostate-surveillance-support-declined"] = partial(
        prostate_surveillance, patient="SYN-0304", outcome="continue", support="no"
    )
    journeys["children_young_people-survey-under-16"] = partial(survey_by_age, patient="SYN-0507", age=12)
    journeys["children_young_people-survey-turned-16"] = partial(survey_by_age, patient="SYN-0508", age=14)
    for number, key in enumerate(full_options, start=1):  # a recurrence, treated and summarised
        journeys[f"{key}-recurrence"] = partial(recurrence_journey, site=SITES[key], patient=f"SYN-{number + 400:04d}")
    return journeys


JOURNEYS = _all()
