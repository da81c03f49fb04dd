"""Rules in pathways: an HNA proposes care plan items linked to the evaluation; the patient decides."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import CarePath, ConflictError, InvalidInputError, TaskDataError
from engine.db.models import InstanceEvent
from engine.rules import get_evaluation

NURSE = "clinician:cns-4"


def _proposed(
    carepath: CarePath,
    concerns: dict[str, int],
    age: int = 54,  # type: ignore[no-untyped-def]
    patient: str = "SYN-0101",
):
    view = carepath.instances.start("test_careplan", patient, "system:ehr", {"age": age})
    view = carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"concerns": concerns}, NURSE)
    assert view.status == "running", view.incident
    return view


def test_assessment_proposes_items_linked_to_the_stored_evaluation(carepath: CarePath) -> None:
    view = _proposed(carepath, {"worry_fear_anxiety": 9, "fatigue": 2, "money_housing": 6})
    plan = carepath.care_plans.get(view.id)
    by_code = {item["code"]: item for item in plan.items}
    urgent = by_code["psychological-support-referral"]
    assert urgent["kind"] == "referral" and urgent["urgency"] == "urgent" and urgent["status"] == "proposed"
    assert urgent["rules"] == ["psych-support-urgent"]
    assert "fatigue-management" not in by_code  # fatigue scored 2: below the threshold
    # Traceability: item -> evaluation -> rule set version, facts and the rules that fired.
    with carepath.sessions() as session:
        stored = get_evaluation(session, urgent["evaluation_id"])
        events = list(
            session.scalars(
                select(InstanceEvent).where(InstanceEvent.instance_id == view.id).order_by(InstanceEvent.seq)
            )
        )
    assert stored.instance_id == view.id
    assert stored.ruleset_name == "supportive_care"
    assert "psych-support-urgent" in [f.rule_id for f in stored.firings]
    assert "psych-support-urgent" in stored.rule_source  # the exact rule text used is kept
    assert [e.type for e in events] == ["started", "task_completed", "rules_evaluated"]
    assert events[-1].element == "propose"
    assert urgent["evaluation_id"] in events[-1].payload
    assert events[-1].pathway_version == plan.pathway_version


def test_patient_agrees_and_declines_and_what_matters_is_kept(carepath: CarePath) -> None:
    view = _proposed(carepath, {"worry_fear_anxiety": 6, "money_housing": 8})
    items = carepath.care_plans.get(view.id).items
    referral = next(i for i in items if i["kind"] == "referral")
    others = [i for i in items if i["id"] != referral["id"]]
    decisions = {referral["id"]: "agreed", **{i["id"]: "declined" for i in others}}
    done = carepath.instances.complete_task(
        view.id,
        view.ready_tasks[0]["id"],
        {"decisions": decisions, "what_matters": "Getting back to my allotment"},
        "patient:SYN-0101",
    )
    assert done.status == "completed"
    plan = carepath.care_plans.get(view.id)
    assert plan.what_matters == "Getting back to my allotment"
    statuses = {i["id"]: i["status"] for i in plan.items}
    assert statuses[referral["id"]] == "agreed"
    assert all(statuses[i["id"]] == "declined" for i in others)
    # Clinicians move agreed items on, through the service's own steps; statuses only move forward.
    for status in ("referred", "accepted", "first_contact", "completed"):
        assert carepath.care_plans.set_status(view.id, referral["id"], status, NURSE)["status"] == status
    with pytest.raises(ConflictError):
        carepath.care_plans.set_status(view.id, referral["id"], "proposed", NURSE)
    if others:
        with pytest.raises(ConflictError):
            carepath.care_plans.set_status(view.id, others[0]["id"], "referred", NURSE)
    with pytest.raises(InvalidInputError):
        carepath.care_plans.set_status(view.id, referral["id"], "lost", NURSE)


def test_deciding_on_an_item_of_another_patient_is_refused_and_changes_nothing(carepath: CarePath) -> None:
    first = _proposed(carepath, {"worry_fear_anxiety": 9})
    foreign = carepath.care_plans.get(first.id).items[0]["id"]
    second = _proposed(carepath, {"worry_fear_anxiety": 9}, patient="SYN-0102")  # another patient's instance
    own = carepath.care_plans.get(second.id).items[0]["id"]
    with pytest.raises(TaskDataError) as raised:
        carepath.instances.complete_task(
            second.id,
            second.ready_tasks[0]["id"],
            {"decisions": {own: "agreed", foreign: "agreed"}, "what_matters": ""},
            NURSE,
        )
    assert [p.field for p in raised.value.problems] == [f"/decisions/{foreign}"]
    assert carepath.care_plans.get(first.id).items[0]["status"] == "proposed"
    assert carepath.care_plans.get(second.id).items[0]["status"] == "proposed"
    assert carepath.instances.get(second.id).version == second.version


def test_an_assessment_with_unknown_concerns_is_refused(carepath: CarePath) -> None:
    view = carepath.instances.start("test_careplan", "SYN-0102", "system:ehr", {"age": 30})
    with pytest.raises(TaskDataError):
        carepath.instances.complete_task(view.id, view.ready_tasks[0]["id"], {"concerns": {"worry": 5}}, NURSE)
    assert carepath.care_plans.get(view.id).items == []
