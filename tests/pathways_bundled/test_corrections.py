"""The pathway corrections a nurse specialist asked for (issue 14 point 4), each shown on a bundled
pathway where a journey's coverage alone would not show it."""

from __future__ import annotations

from engine import CarePath, ManualClock

from .correction_journeys import reviews_independent
from .journeys import SITES, _end_of_treatment, _mdt, _review, _start, _support, _treatment


def test_the_12_month_review_is_invited_while_the_3_month_one_is_still_open(bundled: CarePath,
                                                                             journey_clock: ManualClock) -> None:
    j = _start(bundled, journey_clock, SITES["breast"], "SYN-C-0001")
    j.wait_until("2026-11-12")
    assert {"first_review", "remind_first", "second_review"} <= set(j.ready)


def test_an_open_reminder_to_the_practice_closes_when_its_review_is_done(bundled: CarePath,
                                                                         journey_clock: ManualClock) -> None:
    j = _start(bundled, journey_clock, SITES["lung"], "SYN-C-0002")
    j.wait_until("2026-04-13")
    reminder = j.task("remind_first")["id"]
    _review(j, "first_review")
    assert reminder not in {t["id"] for t in j.view.ready_tasks}
    assert "remind_first" not in j.ready


def test_both_reviews_done_end_the_reviews_without_any_reminder_left(bundled: CarePath,
                                                                     journey_clock: ManualClock) -> None:
    j = reviews_independent(bundled, journey_clock, patient="SYN-C-0003")
    assert j.status == "completed"


def test_the_mdt_and_treatment_go_ahead_while_the_needs_assessment_at_diagnosis_is_open(
        bundled: CarePath, journey_clock: ManualClock) -> None:
    site = SITES["colorectal"]
    j = _start(bundled, journey_clock, site, "SYN-C-0004")
    _support(j, "no")
    assert {"offer_hna", "mdt"} <= set(j.ready)  # offered, never answered yet
    _mdt(j, site, prehab=False, special=False)
    assert {"offer_hna", "treatment"} <= set(j.ready)
    _treatment(j, site, special=False)
    assert [t["process"] for t in j.view.ready_tasks if t["element"] == "offer_hna"] == [
        "holistic_needs_assessment", "holistic_needs_assessment"]  # at diagnosis, and at the end of treatment


def test_feedback_is_asked_when_the_end_of_treatment_summary_is_done_not_at_discharge(
        bundled: CarePath, journey_clock: ManualClock) -> None:
    site = SITES["breast"]
    j = _start(bundled, journey_clock, site, "SYN-C-0005")
    _support(j, "no")
    j.hna_declined()
    _mdt(j, site, prehab=False, special=False)
    _treatment(j, site, special=False)
    j.hna_declined()
    assert "give_feedback" not in j.ready
    _end_of_treatment(j, "patient_initiated")
    assert "give_feedback" in j.ready

