"""Referrals that close (issue 14, point 2): every move with who and when, timeframes per urgency,
escalation of a referral not accepted in time by the worker, reconsidering a declined item."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from engine import CarePath, ConflictError, InvalidInputError, ManualClock, NotFoundError
from engine.calendar import add_working_days
from engine.careplan.referrals import raise_urgency
from engine.db.models import CarePlanItem, InstanceEvent, ReferralEscalation, WebhookDelivery
from engine.db.session import unit_of_work
from engine.instances.worker import run_worker
from engine.settings import ReferralTimeframes

NURSE = "clinician:cns-4"
SERVICE = "clinician:psychology-admin"


def _agreed(carepath: CarePath, patient: str = "SYN-0201") -> tuple[str, dict[str, Any], dict[str, Any]]:
    """An instance whose plan is agreed: (instance id, the urgent psychology referral, an intervention)."""
    view = carepath.instances.start("test_careplan", patient, "system:ehr", {"age": 54})
    view = carepath.instances.complete_task(
        view.id, view.ready_tasks[0]["id"], {"concerns": {"worry_fear_anxiety": 9, "fatigue": 7}}, NURSE
    )
    items = carepath.care_plans.get(view.id).items
    carepath.instances.complete_task(
        view.id,
        view.ready_tasks[0]["id"],
        {"decisions": {i["id"]: "agreed" for i in items}, "what_matters": ""},
        "patient:" + patient,
    )
    referral = next(i for i in items if i["kind"] == "referral")
    other = next(i for i in items if i["kind"] != "referral")
    assert referral["urgency"] == "urgent"
    return view.id, referral, other


def _events(carepath: CarePath, instance_id: str, kind: str) -> list[InstanceEvent]:
    with carepath.sessions() as session:
        return list(
            session.scalars(
                select(InstanceEvent)
                .where(InstanceEvent.instance_id == instance_id, InstanceEvent.type == kind)
                .order_by(InstanceEvent.seq)
            )
        )


def test_a_referral_moves_through_the_service_and_each_move_is_recorded(carepath: CarePath, clock: ManualClock) -> None:
    instance_id, referral, _ = _agreed(carepath)
    moves = [
        ("referred", NURSE),
        ("accepted", SERVICE),
        ("did_not_attend", SERVICE),
        ("first_contact", SERVICE),
        ("completed", SERVICE),
    ]
    for status, actor in moves:
        clock.advance(timedelta(hours=1))
        moved = carepath.care_plans.set_status(instance_id, referral["id"], status, actor)
        assert (moved["status"], moved["updated_by"]) == (status, actor)
    history = next(i for i in carepath.care_plans.get(instance_id).items if i["id"] == referral["id"])["history"]
    status_moves = [h for h in history if h["change"] == "status"][1:]  # after the patient's agreement
    assert [(h["to_status"], h["actor"]) for h in status_moves] == moves
    assert [h["at"] for h in status_moves] == sorted({h["at"] for h in status_moves})  # each its own time
    events = [
        json.loads(e.payload)
        for e in _events(carepath, instance_id, "care_plan_updated")
        if json.loads(e.payload).get("item") == referral["id"]
    ]
    assert [e["status"] for e in events] == ["agreed", *[s for s, _ in moves]]
    assert events[-1] == {
        "item": referral["id"],
        "code": "psychological-support-referral",
        "status": "completed",
        "service": referral["service"],
        "urgency": "urgent",
    }


@pytest.mark.parametrize("ending", ["service_declined", "withdrawn"])
def test_a_referral_can_end_without_being_seen_and_then_stays_ended(carepath: CarePath, ending: str) -> None:
    instance_id, referral, _ = _agreed(carepath)
    carepath.care_plans.set_status(instance_id, referral["id"], "referred", NURSE)
    moved = carepath.care_plans.set_status(instance_id, referral["id"], ending, SERVICE, "not_eligible")
    assert moved["next_statuses"] == []
    assert moved["history"][-1]["reason"] == "not_eligible"
    assert json.loads(_events(carepath, instance_id, "care_plan_updated")[-1].payload)["reason"] == "not_eligible"
    for status in ("accepted", "first_contact", "completed", "referred"):
        with pytest.raises(ConflictError):
            carepath.care_plans.set_status(instance_id, referral["id"], status, SERVICE)


def test_moves_the_service_cannot_make_are_refused_and_change_nothing(carepath: CarePath) -> None:
    instance_id, referral, other = _agreed(carepath)
    refused = [
        ("accepted", referral),
        ("first_contact", referral),
        ("completed", referral),
        ("did_not_attend", referral),
        ("referred", other),
        ("accepted", other),
    ]
    for status, item in refused:
        with pytest.raises(ConflictError):
            carepath.care_plans.set_status(instance_id, item["id"], status, SERVICE)
    carepath.care_plans.set_status(instance_id, referral["id"], "referred", NURSE)
    with pytest.raises(ConflictError):  # seen before it was accepted
        carepath.care_plans.set_status(instance_id, referral["id"], "first_contact", SERVICE)
    with pytest.raises(InvalidInputError):
        carepath.care_plans.set_status(instance_id, referral["id"], "lost", SERVICE)
    with pytest.raises(InvalidInputError):  # a reason is a code: free text would reach the trail
        carepath.care_plans.set_status(instance_id, referral["id"], "withdrawn", SERVICE, "Mrs Smith moved away")
    with pytest.raises(NotFoundError):
        carepath.care_plans.set_status(instance_id, "00000000-0000-0000-0000-000000000000", "accepted", SERVICE)
    plan = {i["id"]: i["status"] for i in carepath.care_plans.get(instance_id).items}
    assert (plan[referral["id"]], plan[other["id"]]) == ("referred", "agreed")


def test_a_declined_item_is_reconsidered_with_a_reason(carepath: CarePath) -> None:
    instance_id, referral, _ = _agreed(carepath)
    carepath.care_plans.set_status(instance_id, referral["id"], "declined", "patient:SYN-0201")
    with pytest.raises(ConflictError, match="needs a reason"):
        carepath.care_plans.set_status(instance_id, referral["id"], "agreed", NURSE)
    again = carepath.care_plans.set_status(instance_id, referral["id"], "agreed", NURSE, "patient_changed_mind")
    assert again["status"] == "agreed" and "referred" in again["next_statuses"]
    assert (again["history"][-1]["from_status"], again["history"][-1]["reason"]) == ("declined", "patient_changed_mind")
    event = json.loads(_events(carepath, instance_id, "care_plan_updated")[-1].payload)
    assert (event["status"], event["reason"]) == ("agreed", "patient_changed_mind")
    assert carepath.care_plans.set_status(instance_id, referral["id"], "referred", NURSE)["accept_by"] is not None


def test_timeframes_count_working_days_and_end_with_the_local_day() -> None:
    defaults = ReferralTimeframes()
    thursday = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    assert defaults.due(thursday, "emergency") == datetime(2026, 1, 16, tzinfo=UTC)  # the same day
    assert defaults.due(thursday, "urgent") == datetime(2026, 1, 20, tzinfo=UTC)  # Fri, Mon
    assert defaults.due(thursday, "soon") == datetime(2026, 1, 30, tzinfo=UTC)
    assert defaults.due(thursday, "routine") == datetime(2026, 2, 27, tzinfo=UTC)
    assert defaults.due(thursday, None) == defaults.due(thursday, "routine")
    saturday = datetime(2026, 1, 17, 22, 0, tzinfo=UTC)
    assert defaults.due(saturday, "urgent") == datetime(2026, 1, 21, tzinfo=UTC)  # Mon, Tue
    christmas = ReferralTimeframes(holidays=frozenset({date(2026, 12, 25), date(2026, 12, 28)}))
    assert add_working_days(date(2026, 12, 24), 2, christmas.holidays) == date(2026, 12, 30)  # Thu: Tue, Wed
    # Stockholm's day ends an hour before UTC's: 23:30 UTC is already tomorrow there.
    stockholm = ReferralTimeframes(time_zone="Europe/Stockholm", urgent="1wd")
    late = datetime(2026, 1, 15, 23, 30, tzinfo=UTC)
    assert stockholm.due(late, "emergency") == datetime(2026, 1, 16, 23, 0, tzinfo=UTC)
    assert stockholm.due(late, "urgent") == datetime(2026, 1, 19, 23, 0, tzinfo=UTC)  # Fri -> Mon


def test_timeframes_are_a_validated_deployment_setting() -> None:
    found = ReferralTimeframes.from_env(
        {
            "CAREPATH_REFERRAL_TIMEFRAMES": "urgent=3wd, routine=18w",
            "CAREPATH_HOLIDAYS": "2026-12-25",
            "CAREPATH_TIME_ZONE": "Europe/London",
        }
    )
    assert (found.of("urgent"), found.of("routine"), found.of("soon")) == ((3, "wd"), (18, "w"), (2, "w"))
    assert found.holidays == {date(2026, 12, 25)}
    for env in (
        {"CAREPATH_REFERRAL_TIMEFRAMES": "urgent=2 days"},
        {"CAREPATH_REFERRAL_TIMEFRAMES": "asap=1d"},
        {"CAREPATH_REFERRAL_TIMEFRAMES": "routine=999w"},
        {"CAREPATH_TIME_ZONE": "Mars/Olympus"},
        {"CAREPATH_HOLIDAYS": "25/12/2026"},
    ):
        with pytest.raises(ValueError):
            ReferralTimeframes.from_env(env)


def test_a_referral_not_accepted_in_time_is_escalated_by_the_worker(carepath: CarePath, clock: ManualClock) -> None:
    instance_id, referral, _ = _agreed(carepath)
    carepath.webhook_admin.add("https://receiver.example/hooks", ["referral.overdue"])
    sent = carepath.care_plans.set_status(instance_id, referral["id"], "referred", NURSE)  # Thursday 15 January
    assert sent["accept_by"] == "2026-01-20T00:00:00+00:00"  # urgent: 2 working days

    def work() -> int:
        return run_worker(
            carepath.instances, worker_id="w1", once=True, escalate=carepath.referral_escalations.open_due
        )

    clock.set(datetime(2026, 1, 19, 23, 59, tzinfo=UTC))
    work()
    assert carepath.referral_escalations.list_open() == []
    clock.set(datetime(2026, 1, 20, 0, 0, tzinfo=UTC))
    work()
    work()  # a second pass opens nothing more
    [task] = carepath.referral_escalations.list_open()
    assert (task["kind"], task["care_plan_item_id"], task["instance_id"], task["urgency"]) == (
        "referral_escalation",
        referral["id"],
        instance_id,
        "urgent",
    )
    assert task["status"] == "open" and task["opened_at"] == "2026-01-20T00:00:00+00:00"
    [event] = _events(carepath, instance_id, "referral_overdue")
    assert event.actor == "engine"
    assert json.loads(event.payload)["escalation"] == task["id"]
    assert "SYN-0201" not in event.payload
    with carepath.sessions() as session:
        webhook = session.scalars(select(WebhookDelivery)).one()
    assert webhook.event_type == "referral.overdue"
    plan = {i["id"]: i for i in carepath.care_plans.get(instance_id).items}
    assert plan[referral["id"]]["escalated_at"] == "2026-01-20T00:00:00+00:00"

    with pytest.raises(InvalidInputError):
        carepath.referral_escalations.complete(task["id"], "Rang them, no answer", NURSE)
    done = carepath.referral_escalations.complete(task["id"], "chased_service", NURSE)
    assert (done["status"], done["completed_by"], done["outcome"]) == ("completed", NURSE, "chased_service")
    assert carepath.referral_escalations.list_open() == []
    with pytest.raises(ConflictError):
        carepath.referral_escalations.complete(task["id"], "chased_service", NURSE)
    assert (
        json.loads(_events(carepath, instance_id, "referral_escalation_completed")[0].payload)["outcome"]
        == "chased_service"
    )


def test_an_accepted_referral_is_never_escalated(carepath: CarePath, clock: ManualClock) -> None:
    instance_id, referral, _ = _agreed(carepath)
    carepath.care_plans.set_status(instance_id, referral["id"], "referred", NURSE)
    carepath.care_plans.set_status(instance_id, referral["id"], "accepted", SERVICE)
    clock.advance(timedelta(days=30))
    assert carepath.referral_escalations.open_due() == 0
    with carepath.sessions() as session:
        assert session.scalars(select(ReferralEscalation)).all() == []


def test_a_higher_urgency_proposed_again_raises_the_open_referral_and_its_deadline(
    carepath: CarePath, clock: ManualClock
) -> None:
    instance_id, referral, _ = _agreed(carepath)
    carepath.care_plans.set_status(instance_id, referral["id"], "referred", NURSE)  # urgent: by 20 January
    clock.set(datetime(2026, 1, 16, 10, 0, tzinfo=UTC))
    timeframes = ReferralTimeframes()
    with unit_of_work(carepath.sessions) as session:
        item = session.get(CarePlanItem, referral["id"])
        assert item is not None
        assert raise_urgency(session, item, "routine", "evaluation-2", ["rule-a"], clock.now(), timeframes) is None
        assert (item.urgency, item.accept_by) == ("urgent", datetime(2026, 1, 20, tzinfo=UTC))
        assert (
            raise_urgency(session, item, "emergency", "evaluation-3", ["rule-b"], clock.now(), timeframes) == "urgent"
        )
        assert (item.urgency, item.accept_by) == ("emergency", datetime(2026, 1, 17, tzinfo=UTC))  # today
    history = next(i for i in carepath.care_plans.get(instance_id).items if i["id"] == referral["id"])["history"]
    again = [
        (h["evaluation_id"], h["rules"], h["from_urgency"], h["to_urgency"])
        for h in history
        if h["change"] == "proposed_again"
    ]
    assert again == [
        ("evaluation-2", ["rule-a"], "urgent", "urgent"),
        ("evaluation-3", ["rule-b"], "urgent", "emergency"),
    ]
