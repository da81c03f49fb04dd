"""Referrals on the bundled pathways (issue 14, point 2): a second assessment while a referral is open
does not add it again (the care plan listed "Referral for psychological support - sent" twice), and a
referral not accepted in time is escalated to the patient's named contact."""

from __future__ import annotations

import json

from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import CarePlanItem, InstanceEvent
from engine.instances.worker import run_worker

from .journey import PATIENT
from .journeys import ABOUT_WORKING_PARENT, HIGH_CONCERNS, SITES, _start, _support
from .safety_journeys import _assess, care_plan

PSYCHOLOGY = "psychological-support-referral"


def _referrals(app: CarePath, instance_id: str, code: str) -> list[CarePlanItem]:
    with app.sessions() as session:
        return list(
            session.scalars(
                select(CarePlanItem).where(CarePlanItem.instance_id == instance_id, CarePlanItem.code == code)
            )
        )


def test_a_second_assessment_proposing_an_open_referral_records_it_instead_of_adding_one(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _start(bundled, journey_clock, SITES["breast"], "SYN-REF-0101")
    _support(j, "later")
    j.hna(HIGH_CONCERNS, about_you=ABOUT_WORKING_PARENT)  # severe worry: an urgent referral, sent
    [first] = _referrals(bundled, j.view.id, PSYCHOLOGY)
    assert (first.status, first.urgency) == ("referred", "urgent")
    bundled.care_plans.set_status(j.view.id, first.id, "accepted", "clinician:psychology-admin")
    j.wait(30).message("recurrence_confirmed")
    j.hna(HIGH_CONCERNS, about_you=ABOUT_WORKING_PARENT)  # still severe: the same referral proposed again

    [only] = _referrals(bundled, j.view.id, PSYCHOLOGY)  # the care plan lists it once
    assert (only.id, only.status, only.urgency) == (first.id, "accepted", "urgent")
    plan = next(i for i in bundled.care_plans.get(j.view.id).items if i["id"] == first.id)
    again = [h for h in plan["history"] if h["change"] == "proposed_again"]
    assert len(again) == 1 and (again[0]["from_urgency"], again[0]["to_urgency"]) == ("urgent", "urgent")
    assert again[0]["evaluation_id"] != first.evaluation_id and again[0]["rules"] == ["psych-support-urgent"]
    with bundled.sessions() as session:
        evaluated = [
            json.loads(e.payload)
            for e in session.scalars(
                select(InstanceEvent)
                .where(InstanceEvent.instance_id == j.view.id, InstanceEvent.type == "rules_evaluated")
                .order_by(InstanceEvent.seq)
            )
        ]
    assert evaluated[-1]["evaluation_id"] == again[0]["evaluation_id"] and evaluated[-1]["proposed_again"] >= 1


def test_a_referral_the_service_has_not_accepted_is_escalated_to_the_named_contact(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _start(bundled, journey_clock, SITES["breast"], "SYN-REF-0102")  # named contact STAFF-SYN-1
    _support(j, "later")
    j.hna(HIGH_CONCERNS, about_you=ABOUT_WORKING_PARENT)  # the urgent psychology referral is sent today
    [referral] = _referrals(bundled, j.view.id, PSYCHOLOGY)
    j.wait(1)
    run_worker(bundled.instances, worker_id="w", once=True, escalate=bundled.referral_escalations.open_due)
    assert bundled.referral_escalations.list_open() == []  # within its 2 working days
    j.wait(6)
    run_worker(bundled.instances, worker_id="w", once=True, escalate=bundled.referral_escalations.open_due)
    [task] = bundled.referral_escalations.list_open(patient_ref="SYN-REF-0102")
    assert (task["care_plan_item_id"], task["assignee"], task["pathway_id"]) == (
        referral.id,
        "STAFF-SYN-1",
        "breast_cancer",
    )
    with bundled.sessions() as session:
        overdue = session.scalars(
            select(InstanceEvent).where(
                InstanceEvent.instance_id == j.view.id, InstanceEvent.type == "referral_overdue"
            )
        ).one()
    assert (overdue.actor, json.loads(overdue.payload)["item"]) == ("engine", referral.id)
    assert "STAFF-SYN-1" not in overdue.payload and "SYN-REF-0102" not in overdue.payload


def test_a_referral_of_a_patient_who_has_died_is_withdrawn_not_escalated(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _start(bundled, journey_clock, SITES["breast"], "SYN-REF-0103")
    _support(j, "later")
    j.hna(HIGH_CONCERNS, about_you=ABOUT_WORKING_PARENT)
    [referral] = _referrals(bundled, j.view.id, PSYCHOLOGY)
    j.message("patient_died")  # no date given: the message itself says it
    j.wait(7)
    run_worker(bundled.instances, worker_id="w", once=True, escalate=bundled.referral_escalations.open_due)
    assert bundled.referral_escalations.list_open() == []
    [after] = _referrals(bundled, j.view.id, PSYCHOLOGY)
    assert (after.id, after.status, after.updated_by) == (referral.id, "withdrawn", "engine")
    plan = next(i for i in bundled.care_plans.get(j.view.id).items if i["id"] == referral.id)
    assert plan["history"][-1]["reason"] == "patient_died"


def test_an_emergency_found_while_the_services_referral_is_open_opens_the_acute_oncology_task(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    """A clinical review's case: suspected spinal cord compression referred as an emergency, taken up by acute
    oncology (first contact); three weeks later, still on chemotherapy, a needs assessment reports a fever. The
    fever's emergency goes to the same service, whose referral is open and already an emergency: it was merged
    into it and no emergency task opened. An emergency found now is acted on now."""
    j = _start(bundled, journey_clock, SITES["lung"], "SYN-REF-0103")
    on_sact = {"on_sact": True, "last_sact_date": j.today(), "smoking_status": "former"}
    j.message("treatment_status_changed", on_sact)
    _support(j, "no")
    j.do("offer_hna", {"hna_accepted": True})
    j.do("complete_checklist", {"concerns": {"back_pain": 6, "limb_weakness": 4}, "about_you": {}}, actor=PATIENT)
    assert "emergency_triage" in j.ready
    [mscc] = [i for i in care_plan(j) if i.urgency == "emergency"]
    _assess(j, "emergency_triage")
    j.do("agree", {"decisions": {i.id: "agreed" for i in j.proposals()}, "what_matters": "Home"})
    j.do("share_plan", {"shared_with_patient": ["nhs_app"], "shared_with_gp": True})
    for status in ("accepted", "first_contact"):
        bundled.care_plans.set_status(j.view.id, mscc.id, status, "clinician:ao-admin")

    j.wait(21)
    j.message("treatment_status_changed", {**on_sact, "last_sact_date": j.today()})
    j.message("recurrence_confirmed")
    j.do("offer_hna", {"hna_accepted": True})
    j.do("complete_checklist", {"concerns": {"fever": 7}, "about_you": {}}, actor=PATIENT)

    assert "emergency_triage" in j.ready  # the fever is triaged now
    [only] = [i for i in care_plan(j) if i.kind == "referral" and i.service == mscc.service]
    assert (only.id, only.status, only.urgency) == (mscc.id, "first_contact", "emergency")  # still one referral
    plan = next(i for i in bundled.care_plans.get(j.view.id).items if i["id"] == mscc.id)
    [again] = [h for h in plan["history"] if h["change"] == "proposed_again"]
    assert "fever-on-sact" in again["rules"]
    with bundled.sessions() as session:
        events = [
            json.loads(e.payload)
            for e in session.scalars(
                select(InstanceEvent)
                .where(
                    InstanceEvent.instance_id == j.view.id,
                    InstanceEvent.type.in_(("rules_evaluated", "care_plan_updated")),
                )
                .order_by(InstanceEvent.seq)
            )
        ]
    evaluated = [e for e in events if "ruleset" in e]
    assert evaluated[-1].get("emergency_referred") == 1  # counted as an emergency, as the webhook reports it
    assert any(e.get("change") == "emergency_proposed_again" and e["item"] == mscc.id for e in events)
