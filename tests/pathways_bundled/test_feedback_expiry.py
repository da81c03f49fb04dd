"""A feedback invitation that closes unanswered, and palliative patients asked once on the way out.

shared/patient_feedback.bpmn: the patient's task has an interrupting 12-week timer (``feedback_unanswered``),
and so has the family's for a child under 16 (``feedback_family_unanswered``), so an invitation nobody answers
no longer holds the pathway open after its other branches have ended.
The palliative routes note when they ask (``palliative_feedback_asked``); when care is transferred before
they did, the diagnosis pathway asks on the way out (``exit_feedback_gw`` -> ``exit_feedback``, or for a child
under 16 ``exit_feedback_family``), never twice.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import CarePath, ManualClock
from engine.db.models import PathwayInstance

from .journey import PATIENT
from .journeys import (
    FEEDBACK_ANSWER,
    SITES,
    _review,
    discharge_if_due,
    events,
    feedback_answered,
    feedback_closed,
    feedback_tasks,
    to_the_end,
    treated,
    waiting_timers,
)
from .palliative_journeys import QUARTER, on_the_route, review, review_task, upcoming

EXPIRY = timedelta(days=84)  # the boundary timer's "P84D"


def test_an_unanswered_invitation_closes_after_12_weeks_and_the_pathway_ends_with_its_other_branches(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = treated(bundled, journey_clock, "general", "SYN-1801", "patient_initiated")
    assert discharge_if_due(j, "general_cancer")  # follow-up over: only the invitation is left in care
    _review(j, "first_review")
    [task] = feedback_tasks(j)
    assert task["process"] == "patient_feedback"
    j.wait_for(EXPIRY - timedelta(hours=1))
    assert feedback_tasks(j) and feedback_closed(bundled, j.view.id) == []  # still open the day before

    j.wait_for(timedelta(hours=2))

    assert feedback_tasks(j) == [] and "respond" not in j.ready
    [closed] = feedback_closed(bundled, j.view.id)
    assert (closed["overdue_task"], closed["overdue_element"]) == (task["id"], "give_feedback")
    assert closed["due_at"].startswith("2026-04-09")  # 12 weeks after the invitation of 2026-01-15
    assert j.status == "running"  # the second review and the survey are still to come
    to_the_end(j)
    assert j.status == "completed"
    assert feedback_answered(bundled, j.view.id) == 0


def test_an_answer_given_in_time_still_reaches_the_patient_experience_team(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = treated(bundled, journey_clock, "general", "SYN-1802", "patient_initiated")
    assert waiting_timers(j)["feedback_unanswered"] == "2026-04-09"
    j.wait_for(EXPIRY - timedelta(days=1))
    j.do("give_feedback", {**FEEDBACK_ANSWER, "feedback_wants_contact": True}, actor=PATIENT)
    assert [t["process"] for t in j.view.ready_tasks if t["element"] == "respond"] == ["patient_feedback"]

    j.wait_for(timedelta(days=30))  # past the invitation's 12 weeks: the team's task is not closed

    assert "respond" in j.ready and feedback_closed(bundled, j.view.id) == []
    assert "feedback_unanswered" not in waiting_timers(j)  # the answer cancelled the invitation's timer
    j.do("respond", {"contacted_on": j.today(), "outcome": "Thanked"})
    assert not {"give_feedback", "respond"} & set(j.ready)


@pytest.mark.parametrize("site", sorted(SITES))
def test_care_transferred_at_the_first_review_is_asked_once_after_the_return(
    bundled: CarePath, journey_clock: ManualClock, site: str
) -> None:
    j = on_the_route(bundled, journey_clock, site, "SYN-1803")
    assert feedback_tasks(j) == []

    review(j, review_task(site), route="care_transferred")  # before any 3-monthly review

    [task] = feedback_tasks(j)
    child = site == "children_young_people"  # 14 here: the parents or carers, with the child (exit_feedback_family)
    assert task["process"] == "patient_feedback"
    assert (task["lane"], task["element"]) == (
        ("Parents or carers", "give_feedback_family") if child else ("Patient", "give_feedback")
    )
    assert not {"pal_acp", "cpal_acp", "offer_hna", "pal_review", "cpal_review"} & set(j.ready)  # the route ended
    j.do(task["element"], {**FEEDBACK_ANSWER, "feedback_wants_contact": False}, actor=PATIENT)
    assert feedback_tasks(j) == []
    j.wait_for(timedelta(days=400))
    assert feedback_tasks(j) == [] and feedback_answered(bundled, j.view.id) == 1


def test_care_transferred_at_the_first_3_monthly_review_is_asked_after_the_return(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    """The route asks after its first 3-monthly review only when care continues: a transfer at that very
    review is asked on the way out instead."""
    j = on_the_route(bundled, journey_clock, "colorectal", "SYN-1804")
    review(j, "pal_review")
    j.wait_for(QUARTER).hna_declined()
    review(j, "pal_review", route="care_transferred")
    assert len(feedback_tasks(j)) == 1
    j.do("give_feedback", {**FEEDBACK_ANSWER, "feedback_wants_contact": True}, actor=PATIENT)
    assert "respond" in j.ready and feedback_tasks(j) == []


@pytest.mark.parametrize("site", ["general", "children_young_people"])
def test_after_care_is_transferred_the_care_plan_shows_no_next_palliative_assessment(
    bundled: CarePath, journey_clock: ManualClock, site: str
) -> None:
    """The route's data comes back to the pathway with it: the review that transfers care sets no next date."""
    j = on_the_route(bundled, journey_clock, site, "SYN-1808")
    review(j, review_task(site))
    assert "palliative_assessment" in upcoming(j)
    j.wait_for(QUARTER).hna_declined()
    review(j, review_task(site), route="care_transferred")
    assert "palliative_assessment" not in upcoming(j) and j.status == "running"


@pytest.mark.parametrize("site", sorted(SITES))
def test_care_transferred_after_the_first_3_monthly_review_is_not_asked_again(
    bundled: CarePath, journey_clock: ManualClock, site: str
) -> None:
    j = on_the_route(bundled, journey_clock, site, "SYN-1805")
    review(j, review_task(site))
    j.wait_for(QUARTER).hna_declined()
    review(j, review_task(site))  # the first 3-monthly review: the route asks
    assert len(feedback_tasks(j)) == 1
    answered = site != "children_young_people"
    if answered:
        j.do(feedback_tasks(j)[0]["element"], {**FEEDBACK_ANSWER, "feedback_wants_contact": False}, actor=PATIENT)
    j.wait_for(QUARTER).hna_declined()  # the children's invitation, never answered, closes on the way
    assert feedback_tasks(j) == []

    review(j, review_task(site), route="care_transferred")

    assert feedback_tasks(j) == [] and j.status == "running"
    j.wait_for(timedelta(days=200))
    assert feedback_tasks(j) == []
    answers, closed = feedback_answered(bundled, j.view.id), len(feedback_closed(bundled, j.view.id))
    assert (answers, closed) == ((1, 0) if answered else (0, 1))


def test_an_invitation_on_the_way_out_left_unanswered_closes_and_the_pathway_ends(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = on_the_route(bundled, journey_clock, "general", "SYN-1806")
    _review(j, "first_review")
    review(j, "pal_review", route="care_transferred")
    assert len(feedback_tasks(j)) == 1
    to_the_end(j)
    assert j.status == "completed" and len(feedback_closed(bundled, j.view.id)) == 1


@pytest.mark.parametrize("which", ["end_of_treatment", "on_the_way_out", "on_the_route"])
def test_patient_died_during_an_open_invitation_ends_it(
    bundled: CarePath, journey_clock: ManualClock, which: str
) -> None:
    if which == "end_of_treatment":
        j = treated(bundled, journey_clock, "breast", "SYN-1807", "scheduled")
    else:
        j = on_the_route(bundled, journey_clock, "breast", "SYN-1807")
        review(j, "pal_review", route="care_transferred" if which == "on_the_way_out" else "continue")
        if which == "on_the_route":
            review(j.wait_for(QUARTER).hna_declined(), "pal_review")
    assert len(feedback_tasks(j)) == 1 and "feedback_unanswered" in waiting_timers(j)

    j.message("patient_died", {"date_of_death": j.today()})

    assert (j.status, j.ready) == ("completed", [])
    with bundled.sessions() as session:
        row = session.get(PathwayInstance, j.view.id)
        assert row is not None and row.next_due_at is None  # the 12-week timer went too
    count = len(events(bundled, j.view.id))
    j.wait_for(EXPIRY + timedelta(days=1))
    assert len(events(bundled, j.view.id)) == count and feedback_closed(bundled, j.view.id) == []


def test_a_childs_family_is_asked_at_the_end_of_treatment(bundled: CarePath, journey_clock: ManualClock) -> None:
    """Children and young people: a child under 16 (14 here) does not answer a survey alone: the parents or
    carers are asked, with the child (feedback_family), in a task named for them with a form addressed to them
    (give_feedback_family, not "Patient gives feedback"); a young person of 16 to 24 is asked in their own lane
    (children_young_people.yaml). Young Lives vs Cancer: ask children and young people, and their families."""
    j = treated(bundled, journey_clock, "children_young_people", "SYN-1805", "scheduled")
    [task] = feedback_tasks(j)
    assert (task["process"], task["lane"], task["element"]) == (
        "patient_feedback",
        "Parents or carers",
        "give_feedback_family",
    )
    assert task["name"] == "Parents or carers give feedback on their child's care, with the child"
    assert task["form"]["title"] == "Your family's feedback on your child's care"
    j.do("give_feedback_family", {**FEEDBACK_ANSWER, "feedback_wants_contact": False}, actor=PATIENT)
    assert feedback_tasks(j) == [] and feedback_answered(bundled, j.view.id) == 1


def test_the_familys_invitation_closes_after_the_same_12_weeks(bundled: CarePath, journey_clock: ManualClock) -> None:
    """The family's task has its own timer (feedback_family_unanswered): the same 12 weeks as the patient's."""
    j = treated(bundled, journey_clock, "children_young_people", "SYN-1809", "scheduled")
    [task] = feedback_tasks(j)
    assert task["element"] == "give_feedback_family"
    assert waiting_timers(j)["feedback_family_unanswered"] == "2026-04-09"  # 12 weeks after 2026-01-15
    j.wait_for(EXPIRY + timedelta(hours=1))
    [closed] = feedback_closed(bundled, j.view.id)
    assert (closed["overdue_task"], closed["overdue_element"]) == (task["id"], "give_feedback_family")
    assert feedback_tasks(j) == [] and "respond" not in j.ready
