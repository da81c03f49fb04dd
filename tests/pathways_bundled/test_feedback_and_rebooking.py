"""Two gaps in the bundled pathways' clinical content, closed.

Feedback on the palliative route (shared/palliative_care.bpmn, palliative_care_children.bpmn): asked once,
after the first 3-monthly review, by the shared patient_feedback; never again on later rounds, nor when care
is transferred (National Cancer Plan for England, DHSC 2026; Young Lives vs Cancer for the young and family).

Surveillance (shared/surveillance_schedule.bpmn): a missed test marked rebooked is waited for, with its
own timer and a second missed-test task, and a missed test that is not rebooked reaches a clinician
(NICE NG101, NG151, NG131, NG122 follow-up).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import InstanceEvent
from engine.errors import TaskDataError

from .correction_journeys import lung_follow_up, missed_first_appointment
from .journey import Journey
from .journeys import FEEDBACK_TASKS, SITES, _mdt, _start, _support, feedback_task, feedback_tasks, waiting_timers
from .palliative_journeys import QUARTER, review


def test_a_rebooked_test_is_waited_for_before_the_schedule_moves_on(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = missed_first_appointment(bundled, journey_clock, "SYN-FR-0001")
    j.do("follow_up_missed", {"contacted_on": j.today(), "outcome": "rebooked", "rebooked_on": "2026-03-10"})
    assert waiting_timers(j)["wait_rebooked"] == "2026-03-10"  # the rebooked appointment, not the next one
    assert "wait_due" not in waiting_timers(j)
    j.wait_until("2026-03-09")
    assert not {"record_result", "record_rebooked_result"} & set(j.ready)
    j.wait_until("2026-03-10")
    form = j.task("record_rebooked_result", "surveillance_schedule")["form"]["properties"]
    assert (form["test_code"]["default"], form["test_due_on"]["default"], form["test_rebooked_on"]["default"]) == (
        "lung_cancer_review",
        "2026-02-15",
        "2026-03-10",
    )
    j.do("record_rebooked_result", {"done_on": j.today(), "result": "as_expected"})
    assert "review_rebooked_missed" not in j.ready
    assert waiting_timers(j)["wait_due"] == "2026-05-15"  # recorded: now the schedule goes on
    j.wait_until("2026-05-15")
    assert j.task("record_result")["form"]["properties"]["test_due_on"]["default"] == "2026-05-15"


def test_a_rebooked_test_missed_too_reaches_a_clinician_and_is_not_rebooked_again(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = missed_first_appointment(bundled, journey_clock, "SYN-FR-0002")
    j.do("follow_up_missed", {"contacted_on": j.today(), "outcome": "rebooked", "rebooked_on": "2026-03-10"})
    j.wait_until("2026-03-23")
    assert "record_rebooked_result" in j.ready  # 14 days of grace from the rebooked date
    j.wait_until("2026-03-24")
    assert "review_rebooked_missed" in j.ready
    assert not {"record_rebooked_result", "follow_up_missed", "record_result"} & set(j.ready)
    assert j.task("review_rebooked_missed")["form"]["properties"]["outcome"]["default"] == "rebooked"
    j.wait_until("2026-05-16")
    assert "record_result" not in j.ready  # the schedule waits for the clinician
    j.do("review_rebooked_missed", {"reviewed_on": j.today(), "clinician_decision": "referred_to_mdt"})
    assert "record_result" in j.ready  # then goes on (the 15 May appointment is already due)


@pytest.mark.parametrize("outcome", ["done_elsewhere", "declined_by_patient", "could_not_contact"])
def test_a_missed_test_that_is_not_rebooked_reaches_a_clinician(
    bundled: CarePath, journey_clock: ManualClock, outcome: str
) -> None:
    j = missed_first_appointment(bundled, journey_clock, f"SYN-FR-01{len(outcome):02d}")
    j.do("follow_up_missed", {"contacted_on": j.today(), "outcome": outcome})
    review = j.task("review_missed", "surveillance_schedule")["form"]["properties"]
    assert (review["test_due_on"]["default"], review["outcome"]["default"]) == ("2026-02-15", outcome)
    assert "wait_due" not in waiting_timers(j)  # nothing moves on before the review
    j.do(
        "review_missed", {"reviewed_on": j.today(), "clinician_decision": "patient_informed_of_risk_schedule_continues"}
    )
    assert waiting_timers(j)["wait_due"] == "2026-05-15"


def test_rebooked_without_a_date_is_refused_naming_the_field(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = missed_first_appointment(bundled, journey_clock, "SYN-FR-0003")
    with pytest.raises(TaskDataError) as refused:
        j.do("follow_up_missed", {"contacted_on": j.today(), "outcome": "rebooked"})
    assert [p.field for p in refused.value.problems] == ["/rebooked_on"]
    assert "follow_up_missed" in j.ready


def test_a_rebooked_date_already_past_counts_the_grace_from_today(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = missed_first_appointment(bundled, journey_clock, "SYN-FR-0004")
    j.do("follow_up_missed", {"contacted_on": j.today(), "outcome": "rebooked", "rebooked_on": "2026-02-20"})
    assert "record_rebooked_result" in j.ready  # its date has passed: recorded now, not missed at once
    assert "review_rebooked_missed" not in j.ready
    assert waiting_timers(j)["rebooked_missed"] == "2026-03-15"  # 14 days from today (1 March)


# --- feedback on the palliative route ---------------------------------------------------------------------


def _palliative(bundled: CarePath, clock: ManualClock, site_key: str, patient: str, age: int | None = None) -> Journey:
    """Palliative intent confirmed by the MDT; the route's first assessment declined and its first review done."""
    site = SITES[site_key]
    j = _start(bundled, clock, site, patient, age=age, intent="palliative")
    _support(j, "no")
    j.hna_declined()
    _mdt(j, site, intent="palliative", prehab=False, special=False)
    assert "give_feedback" not in j.ready  # not in the first days after the news
    j.hna_declined()
    review(j, "cpal_review" if site_key == "children_young_people" else "pal_review")
    return j


def _next_quarter(j: Journey, element: str = "pal_review", route: str = "continue") -> Journey:
    j.wait_for(QUARTER)
    j.hna_declined()
    return review(j, element, route)


def _feedback_events(app: CarePath, instance_id: str) -> list[str]:
    with app.sessions() as session:
        return list(
            session.scalars(
                select(InstanceEvent.element).where(
                    InstanceEvent.instance_id == instance_id,
                    InstanceEvent.type == "task_completed",
                    InstanceEvent.element.in_(FEEDBACK_TASKS),
                )
            )
        )


def test_the_palliative_route_asks_for_feedback_once_after_the_first_3_monthly_review(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _palliative(bundled, journey_clock, "colorectal", "SYN-FR-0101")
    assert "give_feedback" not in j.ready  # the first review: too soon
    j.wait_for(QUARTER)
    j.hna_declined()
    assert "give_feedback" not in j.ready  # asked after the review, not before it
    review(j, "pal_review")
    task = j.task("give_feedback")
    assert (task["process"], task["lane"]) == ("patient_feedback", "Patient")
    j.do("give_feedback", {"overall_experience": "good", "feedback_wants_contact": False})
    for _ in range(4):  # a year more on the route
        _next_quarter(j)
        assert "give_feedback" not in j.ready
    assert _feedback_events(bundled, j.view.id) == ["give_feedback"]


def test_care_transferred_after_feedback_was_asked_does_not_ask_again(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _palliative(bundled, journey_clock, "lung", "SYN-FR-0102")
    _next_quarter(j)
    j.do("give_feedback", {"overall_experience": "very_good", "feedback_wants_contact": False})
    _next_quarter(j, route="care_transferred")
    assert not {"give_feedback", "pal_acp", "pal_review", "offer_hna"} & set(j.ready)
    j.wait(400)  # past the reviews, the survey and every timer the route had
    assert "give_feedback" not in j.ready
    assert _feedback_events(bundled, j.view.id) == ["give_feedback"]


def test_care_transferred_at_the_first_3_monthly_review_is_asked_on_the_way_out(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _palliative(bundled, journey_clock, "breast", "SYN-FR-0103")
    _next_quarter(j, route="care_transferred")  # the signal is thrown only when care continues
    assert j.task("give_feedback")["process"] == "patient_feedback"  # so the pathway asks, once
    j.wait(400)
    assert "give_feedback" not in j.ready  # unanswered, the invitation closed after 12 weeks
    assert _feedback_events(bundled, j.view.id) == []


@pytest.mark.parametrize("age", [9, 17])
def test_the_childrens_route_asks_the_young_person_and_the_family_once(
    bundled: CarePath, journey_clock: ManualClock, age: int
) -> None:
    j = _palliative(bundled, journey_clock, "children_young_people", f"SYN-FR-02{age:02d}", age=age)
    asked = feedback_task(age)  # 9: the parents or carers answer, with the child, in a task named for them
    assert not {"give_feedback", asked} & set(j.ready)
    _next_quarter(j, "cpal_review")
    task = j.task(asked)
    assert (task["process"], task["lane"]) == ("patient_feedback", "Child or young person, and parents or carers")
    assert task["name"].startswith("Parents or carers" if age < 16 else "Patient")
    j.do(asked, {"overall_experience": "good", "feedback_wants_contact": True})
    j.do("respond", {"contacted_on": j.today(), "outcome": "Thanked"})
    _next_quarter(j, "cpal_review")
    assert feedback_tasks(j) == []
    _next_quarter(j, "cpal_review", route="care_transferred")
    assert feedback_tasks(j) == [] and not {"cpal_review", "offer_hna"} & set(j.ready)
    assert _feedback_events(bundled, j.view.id) == [asked]


def test_patient_died_while_the_question_waits_ends_it_with_everything_else(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _palliative(bundled, journey_clock, "lung", "SYN-FR-0104")
    j.wait(30)
    j.message("patient_died", {"date_of_death": j.today()})
    assert (j.status, j.ready) == ("completed", [])
    j.wait(120)  # past the 3-monthly review that would have asked
    assert (j.status, j.ready) == ("completed", [])


# --- hostile input: the counters these steps keep cannot be set through a form ------------------------------


def test_a_review_cannot_set_the_count_that_decides_when_feedback_is_asked(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _palliative(bundled, journey_clock, "lung", "SYN-FR-0301")
    j.wait_for(QUARTER)
    j.hna_declined()
    with pytest.raises(TaskDataError) as refused:
        j.do("pal_review", {"reviewed_on": j.today(), "palliative_route": "continue", "palliative_reviews": 5})
    assert [p.code for p in refused.value.problems] == ["additionalProperties"]
    review(j, "pal_review")
    assert "give_feedback" in j.ready  # the count was kept: asked at this review


@pytest.mark.parametrize(
    ("element", "answers"),
    [
        ("record_result", {"done_on": "2026-02-15", "result": "as_expected", "test_round": 99}),
        (
            "follow_up_missed",
            {
                "contacted_on": "2026-03-01",
                "outcome": "rebooked",
                "rebooked_on": "2026-03-10",
                "test_rebooked_missed_on": "2030-01-01",
            },
        ),
    ],
)
def test_a_surveillance_form_cannot_move_the_schedule(
    bundled: CarePath, journey_clock: ManualClock, element: str, answers: dict[str, object]
) -> None:
    j = lung_follow_up(bundled, journey_clock, f"SYN-FR-03{len(element):02d}")
    j.wait_until("2026-02-15" if element == "record_result" else "2026-03-01")
    with pytest.raises(TaskDataError) as refused:
        j.do(element, answers)
    assert [p.code for p in refused.value.problems] == ["additionalProperties"]
    assert element in [t["element"] for t in j.app.instances.get(j.view.id).ready_tasks]  # still to do


def test_a_form_without_a_rule_for_extra_fields_refuses_the_flags_that_steer_the_route(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    """The needs assessment's offer declares one field; its data flows back into the route, so an extra
    field would set the route's own flags (when feedback was asked, how many reviews were held)."""
    j = _palliative(bundled, journey_clock, "lung", "SYN-FR-0302")
    j.wait_for(QUARTER)
    with pytest.raises(TaskDataError) as refused:
        j.do("offer_hna", {"hna_accepted": False, "palliative_feedback_asked": True, "palliative_reviews": 5})
    assert [(p.code, p.field) for p in refused.value.problems] == [
        ("undeclared", "/palliative_feedback_asked"),
        ("undeclared", "/palliative_reviews"),
    ]
    assert "patient" not in str(refused.value)  # fields are named, values never
    j.hna_declined()  # the same task with its own field alone goes on
    review(j, "pal_review")
    assert "give_feedback" in j.ready  # the route's count was kept: asked at its first 3-monthly review
