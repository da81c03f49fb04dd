"""Journeys of issue 13 (clinical safety): emergencies that do not wait, and warning signs from the start.

Synthetic patients SYN-04xx. Each journey checks what a nurse would look for on the way (the task, its lane,
what it shows, the care plan item) and, with the other journeys, takes every flow of the bundled diagrams.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import CarePlanItem

from .journey import PATIENT, Journey, contact
from .journeys import DIAGNOSED, NOT_ON_SACT, SITES, Site, _start, _support

ACUTE_LANE = "Acute oncology (24-hour line)"
ESCALATION_LANE = "Named contact and on-call oncology team"
TRIAGE_ESCALATION_LANE = "On-call oncology team (and the named contact)"


def care_plan(j: Journey) -> list[CarePlanItem]:
    with j.app.sessions() as session:
        return list(session.scalars(select(CarePlanItem).where(CarePlanItem.instance_id == j.view.id)))


def _emergency_item(j: Journey) -> CarePlanItem:
    [item] = [i for i in care_plan(j) if i.urgency == "emergency"]
    return item


def _assess(j: Journey, element: str, extra: dict[str, Any] | None = None) -> None:
    j.do(
        element,
        {
            "contacted_at": j.clock.now().isoformat(),
            "triage_rating": "red",
            "action": "assessed_in_acute_oncology_unit",
            "outcome": "Antibiotics within the hour",
            **(extra or {}),
        },
    )


def emergency_before_agreement(app: CarePath, clock: ManualClock, patient: str) -> Journey:
    """Already on chemotherapy (the SACT system says so) and a fever at the first HNA, at diagnosis: the acute
    oncology task opens at once, the referral is made before the plan is agreed, the patient declines it later."""
    j = _start(app, clock, SITES["lung"], patient)
    j.message("treatment_status_changed", {"on_sact": True, "last_sact_date": "2026-01-08", "smoking_status": "former"})
    _support(j, "no")
    j.do("offer_hna", {"hna_accepted": True})
    j.do("complete_checklist", {"concerns": {"fever": 5, "fatigue": 6}, "about_you": {}}, actor=PATIENT)
    # At once, in the acute oncology lane, alongside (not after) the care plan conversation.
    task = j.task("emergency_triage")
    assert task["lane"] == ACUTE_LANE and "agree" in j.ready
    assert task["form"]["properties"]["emergency_reasons"]["default"] == ["fever-on-sact"]
    assert task["form"]["properties"]["concerns"]["default"] == {"fever": 5, "fatigue": 6}
    item = _emergency_item(j)
    assert (item.code, item.status, item.updated_by) == ("acute-oncology-assessment", "referred", "engine")
    assert {i.status for i in care_plan(j) if i.id != item.id} == {"proposed"}
    _assess(j, "emergency_triage")
    assert "emergency_triage" not in j.ready
    # Agreeing the plan later: the patient declines the emergency referral; the rest is agreed.
    proposed = j.proposals()
    j.do(
        "agree",
        {"decisions": {**{i.id: "agreed" for i in proposed}, item.id: "declined"}, "what_matters": "Getting home"},
    )
    assert _emergency_item(j).status == "declined"
    assert "send_referrals" not in j.ready  # nothing left to send: the emergency was referred at once
    j.do("share_plan", {"shared_with_patient": ["nhs_app"], "shared_with_gp": True})
    assert "mdt" in j.ready
    return j


def emergency_escalated(app: CarePath, clock: ManualClock, patient: str) -> Journey:
    """Chemotherapy finished this week (the treatment record), fever at the end-of-treatment HNA: an emergency
    in another phase. Nobody picks it up within an hour: the named contact and the on-call team are asked."""
    site = SITES["general"]
    j = _start(app, clock, site, patient)
    _support(j, "later")
    j.hna_declined()
    j.do(
        "mdt",
        {
            "treatment_intent": "curative",
            "first_treatment": "systemic_therapy",
            "prehabilitation": False,
            "clinical_trial_discussed": True,
            **NOT_ON_SACT,
            "systemic_therapy_planned": True,
        },
    )
    j.do("treatment", {"treatments_received": ["chemotherapy"], "completed_on": j.today()})
    j.wait(5)
    j.do("offer_hna", {"hna_accepted": True})
    j.do(
        "complete_checklist",
        {"concerns": {"fever": 5, "worry_fear_anxiety": 6}, "about_you": {"work_status": "retired"}},
        actor=PATIENT,
    )
    item = _emergency_item(j)
    assert item.status == "referred" and "emergency_triage" in j.ready
    j.wait_for(timedelta(minutes=59))
    assert "emergency_triage" in j.ready and "emergency_escalated" not in j.ready
    j.wait_for(timedelta(minutes=2))
    assert "emergency_triage" not in j.ready
    assert j.task("emergency_escalated")["lane"] == ESCALATION_LANE
    _assess(j, "emergency_escalated", {"escalated_to": "both"})
    j.do("agree", {"decisions": {i.id: "agreed" for i in j.proposals()}, "what_matters": "Staying at home"})
    assert _emergency_item(j).status == "referred"  # agreeing afterwards changes nothing
    j.do("share_plan", {"shared_with_patient": ["nhs_app"], "shared_with_gp": True})
    return j


def warning_sign_before_contact(app: CarePath, clock: ManualClock, site: Site, patient: str) -> Journey:
    """A fever reported before the named contact is assigned: accepted, shown with its code and the patient's
    words, escalated after 30 minutes untriaged, and the on-call team (there is no named contact yet) is told."""
    j = Journey(
        app,
        clock,
        site.pathway,
        patient,
        {"diagnosis": site.diagnosis, "diagnosis_date": DIAGNOSED, "age": site.age, "treatment_intent": "curative"},
    )
    words = "Temperature 38.4 and shivery since lunch"
    j.message("warning_sign_reported", {"warning_sign": "fever_on_treatment", "description": words})
    triage = j.task("triage")
    shown = triage["form"]["properties"]["report"]["default"]
    assert (shown["code"], shown["description"], shown["urgency"], shown["known"]) == (
        "fever_on_treatment",
        words,
        "emergency",
        True,
    )
    assert shown["escalate_after"] == "PT30M" and shown["named_contact_assigned"] is False
    assert triage["lane"] == ACUTE_LANE
    j.wait_for(timedelta(minutes=29))
    assert "triage" in j.ready and "escalated_triage" not in j.ready
    j.wait_for(timedelta(minutes=2))
    escalated = j.task("escalated_triage")
    assert escalated["lane"] == TRIAGE_ESCALATION_LANE
    assert escalated["form"]["properties"]["report"]["default"]["description"] == words
    j.do(
        "escalated_triage",
        {
            "escalated_to": "on_call_team",
            "triage_rating": "red",
            "on_systemic_treatment": True,
            "advice_given": "Come in now",
        },
    )
    j.do("urgent_assessment", {"assessed_at": "acute_oncology_unit", "outcome": "admitted"})
    j.do("inform_on_call", {"informed_on": j.today(), "on_call_role": "acute_oncology_consultant"})
    assert sorted(j.ready) == ["assign_contact"]
    j.do("assign_contact", contact())  # the pathway goes on as usual
    return j


JourneyFn = Callable[[CarePath, ManualClock], Journey]
SAFETY_JOURNEYS: dict[str, JourneyFn] = {
    "safety-emergency-before-agreement": partial(emergency_before_agreement, patient="SYN-0401"),
    "safety-emergency-escalated": partial(emergency_escalated, patient="SYN-0402"),
    "safety-warning-sign-before-contact": partial(
        warning_sign_before_contact, site=SITES["colorectal"], patient="SYN-0403"
    ),
}
