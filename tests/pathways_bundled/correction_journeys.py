"""Journeys through the pathway corrections a nurse specialist asked for (issue 14 point 4), mirroring
the YAML scenarios in pathways/tests/: each checks on the way what the correction promises.

``missed_appointments_reach_a_clinician``: lung cancer follow-up (shared/surveillance_schedule.bpmn, NICE NG122):
an appointment missed and not rebooked goes to a clinician at once; a later one rebooked and missed again goes to
a clinician too, never rebooked in a loop; the schedule waits for each review, then goes on to the discharge.
``survey_not_received``: the national quality of life survey's invitation (shared/quality_of_life_survey.bpmn) did
not reach the patient: recorded as such, it opens the key worker's task to contact them, rather than closing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from engine import CarePath, ManualClock

from .journey import Journey
from .journeys import SITES, _review, _start, events, surveillance_to_discharge, treated, waiting_timers

JourneyFn = Callable[[CarePath, ManualClock], Journey]


def reviews_independent(app: CarePath, clock: ManualClock, *, patient: str) -> Journey:
    """The 12-month cancer care review is invited at 10 months although the 3-month one is still open;
    a reminder to the practice still open when its review is done closes."""
    j = _start(app, clock, SITES["general"], patient)
    j.wait_until("2026-04-13")
    assert {"first_review", "remind_first"} <= set(j.ready)
    j.wait_until("2026-11-12")
    assert {"first_review", "remind_first", "second_review"} <= set(j.ready)
    _review(j, "first_review")
    assert "remind_first" not in j.ready and "second_review" in j.ready
    j.wait_until("2027-01-13")
    assert "remind_second" in j.ready
    _review(j, "second_review")
    assert not {"second_review", "remind_second"} & set(j.ready)
    return j.message("patient_died")


def lung_follow_up(app: CarePath, clock: ManualClock, patient: str) -> Journey:
    """Lung cancer treated with curative intent; follow-up appointments from 2026-01-15 (months 1, 4, 7, 10
    and 13: the first due 2026-02-15, each missed 14 days after its date), the end of treatment summary done."""
    return treated(app, clock, "lung", patient, "scheduled")


def missed_first_appointment(app: CarePath, clock: ManualClock, patient: str) -> Journey:
    j = lung_follow_up(app, clock, patient)
    j.wait_until("2026-03-01")
    assert "follow_up_missed" in j.ready and "record_result" not in j.ready
    return j


def missed_appointments_reach_a_clinician(app: CarePath, clock: ManualClock, *, patient: str) -> Journey:
    j = missed_first_appointment(app, clock, patient)
    j.do("follow_up_missed", {"contacted_on": j.today(), "outcome": "declined_by_patient"})
    # Not rebooked: a clinician reviews it at once, and the schedule waits for that review.
    review = j.task("review_missed", "surveillance_schedule")["form"]["properties"]
    assert (review["test_due_on"]["default"], review["outcome"]["default"]) == ("2026-02-15", "declined_by_patient")
    assert "wait_due" not in waiting_timers(j) and "review_rebooked_missed" not in j.ready
    j.do(
        "review_missed", {"reviewed_on": j.today(), "clinician_decision": "patient_informed_of_risk_schedule_continues"}
    )
    assert waiting_timers(j)["wait_due"] == "2026-05-15"  # then the second appointment

    j.wait_until("2026-05-15")
    assert j.task("record_result")["form"]["properties"]["test_due_on"]["default"] == "2026-05-15"
    j.wait_until("2026-05-29")  # not recorded within 14 days: missed; rebooked this time
    assert "follow_up_missed" in j.ready and "record_result" not in j.ready
    j.do("follow_up_missed", {"contacted_on": j.today(), "outcome": "rebooked", "rebooked_on": "2026-06-05"})
    assert "review_missed" not in j.ready and waiting_timers(j)["wait_rebooked"] == "2026-06-05"
    j.wait_until("2026-06-18")
    assert "record_rebooked_result" in j.ready  # 14 days of grace from the rebooked date
    j.wait_until("2026-06-19")  # missed again: to a clinician, not rebooked a second time
    assert "review_rebooked_missed" in j.ready
    assert not {"record_rebooked_result", "follow_up_missed", "record_result"} & set(j.ready)
    assert j.task("review_rebooked_missed")["form"]["properties"]["outcome"]["default"] == "rebooked"
    j.do("review_rebooked_missed", {"reviewed_on": j.today(), "clinician_decision": "referred_to_mdt"})
    assert waiting_timers(j)["wait_due"] == "2026-08-15"  # the third appointment: the schedule goes on

    surveillance_to_discharge(j, "lung_cancer")  # the remaining appointments as they fall due, then discharge
    assert not {"record_result", "follow_up_missed", "review_missed", "review_rebooked_missed"} & set(j.ready)
    completed = [e.element for e in events(app, j.view.id) if e.type == "task_completed"]
    # Each missed appointment seen by a clinician once; the three after them recorded on their days.
    assert [completed.count(task) for task in ("review_missed", "review_rebooked_missed", "record_result")] == [1, 1, 3]
    return j


def survey_not_received(app: CarePath, clock: ManualClock, *, patient: str) -> Journey:
    """At 18 months the invitation is recorded as not received: the key worker contacts the patient."""
    j = _start(app, clock, SITES["general"], patient)
    j.wait_until("2027-07-12")
    j.do("survey_invitation", {"invitation": "not_received", "recorded_on": j.today()})
    task = j.task("survey_not_received")
    assert (task["process"], task["lane"]) == ("quality_of_life_survey", "Key worker (clinical nurse specialist)")
    j.do("survey_not_received", {"contacted_on": j.today(), "outcome": "told_how_to_take_part"})
    assert not {"survey_invitation", "survey_not_received"} & set(j.ready)
    return j


CORRECTION_JOURNEYS: dict[str, JourneyFn] = {
    "reviews-independent": partial(reviews_independent, patient="SYN-1501"),
    "surveillance-missed-reaches-a-clinician": partial(missed_appointments_reach_a_clinician, patient="SYN-1502"),
    "survey-not-received": partial(survey_not_received, patient="SYN-1503"),
}
