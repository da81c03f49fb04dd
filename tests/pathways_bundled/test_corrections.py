"""The pathway corrections a nurse specialist asked for (issue 14 point 4), each shown on a bundled
pathway where a journey's coverage alone would not show it."""

from __future__ import annotations

import json

import pytest

from engine import CarePath, ManualClock
from engine.documents.build import care_plan_document
from engine.errors import TaskDataError
from engine.instances.progress import instance_progress

from .correction_journeys import reviews_independent, survey_not_received
from .journey import Journey
from .journeys import (
    NOT_ON_SACT,
    SITES,
    SURVEILLANCE_PLAN,
    _end_of_treatment,
    _mdt,
    _review,
    _start,
    _support,
    _treatment,
    discharge_if_due,
    events,
    feedback_tasks,
    next_due,
    prostate_surveillance,
    record_tests_due,
    treated,
    waiting_timers,
)


def test_the_12_month_review_is_invited_while_the_3_month_one_is_still_open(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _start(bundled, journey_clock, SITES["breast"], "SYN-C-0001")
    j.wait_until("2026-11-12")
    assert {"first_review", "remind_first", "second_review"} <= set(j.ready)


def test_an_open_reminder_to_the_practice_closes_when_its_review_is_done(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _start(bundled, journey_clock, SITES["lung"], "SYN-C-0002")
    j.wait_until("2026-04-13")
    reminder = j.task("remind_first")["id"]
    _review(j, "first_review")
    assert reminder not in {t["id"] for t in j.view.ready_tasks}
    assert "remind_first" not in j.ready


def test_both_reviews_done_end_the_reviews_without_any_reminder_left(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = reviews_independent(bundled, journey_clock, patient="SYN-C-0003")
    assert j.status == "completed"


def test_the_mdt_and_treatment_go_ahead_while_the_needs_assessment_at_diagnosis_is_open(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    site = SITES["colorectal"]
    j = _start(bundled, journey_clock, site, "SYN-C-0004")
    _support(j, "no")
    assert {"offer_hna", "mdt"} <= set(j.ready)  # offered, never answered yet
    _mdt(j, site, prehab=False, special=False)
    assert {"offer_hna", "treatment"} <= set(j.ready)
    _treatment(j, site, special=False)
    assert [t["process"] for t in j.view.ready_tasks if t["element"] == "offer_hna"] == [
        "holistic_needs_assessment",
        "holistic_needs_assessment",
    ]  # at diagnosis, and at the end of treatment


def test_feedback_is_asked_when_the_end_of_treatment_summary_is_done_not_at_discharge(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
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


def _after_treatment(bundled: CarePath, clock: ManualClock, site_key: str, patient: str) -> Journey:
    """Diagnosed, treated (curative, no site-specific branch), the end of treatment summary done."""
    return treated(bundled, clock, site_key, patient, "patient_initiated")


def test_a_mammogram_not_recorded_in_time_opens_a_task_to_rebook_it(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _after_treatment(bundled, journey_clock, "breast", "SYN-C-0007")
    assert "follow_up" not in j.ready  # no discharge before 5 years of mammography
    j.wait_until("2027-01-15")  # a year after the end of treatment
    result = j.task("record_result")
    assert (result["process"], result["lane"]) == ("surveillance_schedule", "Treating team")
    assert result["form"]["properties"]["test_code"]["default"] == "mammography"
    assert result["form"]["properties"]["test_due_on"]["default"] == "2027-01-15"
    j.wait_until("2027-02-25")
    assert "follow_up_missed" not in j.ready  # 6 weeks of grace
    j.wait_until("2027-02-26")
    assert "follow_up_missed" in j.ready and "record_result" not in j.ready
    j.do("follow_up_missed", {"contacted_on": j.today(), "outcome": "rebooked", "rebooked_on": "2027-03-12"})
    j.wait_until("2027-03-12")
    j.do("record_rebooked_result", {"done_on": j.today(), "result": "as_expected"})
    j.wait_until("2028-01-15")  # the schedule goes on
    assert j.task("record_result")["form"]["properties"]["test_due_on"]["default"] == "2028-01-15"


def test_colorectal_surveillance_is_cea_every_6_months_and_ct_at_12_and_24_months(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _after_treatment(bundled, journey_clock, "colorectal", "SYN-C-0008")
    due: list[tuple[str, str]] = []
    while not discharge_if_due(j, "colorectal_cancer"):
        next_due(j)
        for task in j.view.ready_tasks:
            if task["element"] == "record_result":
                form = task["form"]["properties"]
                due.append((form["test_due_on"]["default"], form["test_code"]["default"]))
        record_tests_due(j)
    assert sorted(due) == [
        ("2026-07-15", "cea"),
        ("2027-01-15", "cea"),
        ("2027-01-15", "ct_chest_abdomen_pelvis"),
        ("2027-07-15", "cea"),
        ("2028-01-15", "cea"),
        ("2028-01-15", "ct_chest_abdomen_pelvis"),
        ("2028-07-15", "cea"),
        ("2029-01-15", "cea"),
    ]


def test_lung_follow_up_offers_regular_appointments_the_first_within_6_weeks(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _after_treatment(bundled, journey_clock, "lung", "SYN-C-0009")
    assert "follow_up" not in j.ready
    assert j.view.next_due_at and j.view.next_due_at.startswith("2026-02-15")  # within 6 weeks of the end
    days = []
    while not discharge_if_due(j, "lung_cancer"):
        if "record_result" in next_due(j).ready:
            days.append(j.today())
        record_tests_due(j)
    assert days == ["2026-02-15", "2026-05-15", "2026-08-15", "2026-11-15", "2027-02-15"]


def test_active_surveillance_is_a_year_of_psa_tests_before_the_review(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = prostate_surveillance(bundled, journey_clock, "SYN-C-0010", "continue")
    assert j.today() == "2027-01-15"  # the review came after the fourth PSA, 12 months on


def test_active_surveillance_gets_its_plan_at_the_start_and_feedback_after_the_first_years_review(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    """Active surveillance has no end of treatment, so neither an end of treatment summary nor the feedback
    asked then ever came. The plan (tests, warning signs, who to call, support) is given as it starts, the
    tests not waiting for it; feedback is asked after the 12-month review that continues surveillance."""
    site = SITES["prostate"]
    j = _start(bundled, journey_clock, site, "SYN-C-0012")
    _support(j, "no")
    j.hna_declined()
    j.do(
        "mdt",
        {
            "treatment_intent": "curative",
            "first_treatment": "active_surveillance",
            "prehabilitation": False,
            "clinical_trial_discussed": False,
            **NOT_ON_SACT,
        },
    )
    plan = j.task("as_plan")
    assert plan["lane"] == "Key worker (clinical nurse specialist)"
    assert {"schedule_explained", "warning_signs_explained"} <= set(plan["form"]["required"])
    record_tests_due(next_due(j))  # the first PSA test does not wait for the plan
    j.do("as_plan", {**SURVEILLANCE_PLAN, "plan_given_on": j.today()})
    while "surveillance" not in j.ready:
        record_tests_due(next_due(j))
    assert not {"give_feedback", "offer_support"} & set(j.ready)  # not during the first year
    j.do("surveillance", {"reviewed_on": j.today(), "surveillance_outcome": "continue"})
    [feedback] = feedback_tasks(j)
    assert feedback["lane"] == "Patient"
    assert j.task("offer_support")["lane"] == "Key worker (clinical nurse specialist)"  # declined at diagnosis
    j.do("offer_support", {"support_wanted": "no"})  # a second no is final
    j.do("surveillance_discharge", {"discharged_on": j.today(), "outcome": "transferred"})
    assert "offer_support" not in j.ready and "give_feedback" in j.ready


def test_the_start_of_androgen_deprivation_starts_the_exercise_referral(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    site = SITES["prostate"]
    j = _start(bundled, journey_clock, site, "SYN-C-0011")
    _support(j, "no")
    j.hna_declined()
    _mdt(j, site, prehab=False, special=False)
    j.do(
        "treatment",
        {"treatments_received": ["radical_radiotherapy", "androgen_deprivation_therapy"], "completed_on": j.today()},
    )
    assert "adt_support" not in j.ready  # the end of a course is too late: it waits for ADT to start
    j.message("androgen_deprivation_started")
    task = j.task("adt_support")
    assert task["lane"] == "Treating team"
    j.do("adt_support", {"arranged_on": j.today()})
    j.message("androgen_deprivation_started")  # intermittent ADT starts again: referred again
    assert "adt_support" in j.ready


def test_stoma_care_starts_before_surgery_when_the_mdt_says_a_stoma_is_possible(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    site = SITES["colorectal"]
    j = _start(bundled, journey_clock, site, "SYN-C-0012")
    _support(j, "no")
    j.hna_declined()
    j.do(
        "mdt",
        {
            "treatment_intent": "curative",
            "first_treatment": "surgery",
            "prehabilitation": False,
            "stoma_possible": True,
            "smoking_status": "never",
            "systemic_therapy_planned": False,
            "immunotherapy_planned": False,
        },
    )
    assert "preop_stoma" in j.ready and "treatment" not in j.ready
    j.do("preop_stoma", {"seen_on": j.today(), "site_marked": True})
    assert "treatment" in j.ready
    other = _start(bundled, journey_clock, site, "SYN-C-0013")
    _support(other, "no")
    _mdt(other, site, prehab=False, special=False)  # no stoma possible: straight to treatment
    assert "treatment" in other.ready and "preop_stoma" not in other.ready


def test_a_young_persons_family_education_costs_and_shared_care_steps_run_in_parallel(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    site = SITES["children_young_people"]
    j = _start(bundled, journey_clock, site, "SYN-C-0014")
    _support(j, "no")
    j.hna_declined()
    j.do(
        "mdt",
        {
            "treatment_intent": "curative",
            "first_treatment": "chemotherapy",
            "prehabilitation": False,
            "clinical_trial_discussed": True,
            "smoking_status": "never",
            "systemic_therapy_planned": True,
            "immunotherapy_planned": False,
            "fertility_preservation_discussed": True,
        },
    )
    assert {"family_support", "education", "costs", "shared_care_talk", "treatment"} <= set(j.ready)
    lanes = {t["element"]: t["lane"] for t in j.view.ready_tasks}
    j.do("costs", {"travel_minutes": 95, "help_given": ["nhs_travel_costs_scheme"]})  # in any order
    j.do("treatment", {"treatments_received": ["chemotherapy"], "completed_on": j.today()})
    assert {"family_support", "education", "shared_care_talk"} <= set(j.ready)  # treatment did not wait
    assert len(set(lanes.values())) > 1, lanes


def test_the_18_month_survey_is_the_national_invitation_recorded_and_never_a_local_questionnaire(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _start(bundled, journey_clock, SITES["general"], "SYN-C-0015")
    j.wait_until("2027-07-12")
    task = j.task("survey_invitation")
    assert task["lane"] == "Key worker (clinical nurse specialist)"  # the team records it, not the patient
    assert set(task["form"]["properties"]) == {"invitation", "recorded_on"}  # no questions of the survey's own
    assert task["form"]["properties"]["invitation"]["enum"] == ["sent", "declined", "not_received"]
    j.do("survey_invitation", {"invitation": "declined", "recorded_on": j.today()})
    assert not {"survey", "survey_invitation", "send_reminder", "survey_not_received"} & set(j.ready)


def test_an_invitation_not_received_opens_a_task_to_contact_the_patient(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    """The key worker could record only sent or declined: an invitation that never reached the patient had
    nowhere to go. Not received, the key worker now contacts the patient; the form takes no more than it says."""
    j = survey_not_received(bundled, journey_clock, patient="SYN-C-0020")
    done = [e.element for e in events(bundled, j.view.id) if e.type == "task_completed"]
    assert done[-2:] == ["survey_invitation", "survey_not_received"]
    again = _start(bundled, journey_clock, SITES["general"], "SYN-C-0021")
    again.wait_until("2027-07-12")
    again.do("survey_invitation", {"invitation": "not_received", "recorded_on": again.today()})
    form = again.task("survey_not_received")["form"]
    assert form["additionalProperties"] is False and set(form["required"]) == {"contacted_on", "outcome"}
    with pytest.raises(TaskDataError):  # an answer the form does not declare is refused
        again.do("survey_not_received", {"contacted_on": again.today(), "outcome": "sent_again"})


def test_the_survey_invitation_goes_by_the_age_when_the_survey_is_sent(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    """The national survey invites people aged 16 and over when it is sent, 18 months after diagnosis.
    15 at diagnosis: at least 16 and a half by then, invited like an adult. 13: at most 15 and a half,
    nothing. 14: 16 by then only when the 15th birthday fell within 6 months of the diagnosis, which the
    age in whole years cannot say: the key worker checks, and a young person who is 16 is not missed."""
    turned_16 = _start(bundled, journey_clock, SITES["children_young_people"], "SYN-C-0016", age=14)
    turned_16.wait_until("2027-07-12")
    check = turned_16.task("check_age_now")
    assert check["lane"] == "Key worker (principal treatment centre)"
    assert "survey_invitation" not in turned_16.ready
    turned_16.do("check_age_now", {"sixteen_or_over_now": True, "checked_on": turned_16.today()})
    assert "survey_invitation" in turned_16.ready
    still_15 = _start(bundled, journey_clock, SITES["children_young_people"], "SYN-C-0018", age=14)
    still_15.wait_until("2027-07-12")
    still_15.do("check_age_now", {"sixteen_or_over_now": False, "checked_on": still_15.today()})
    assert not {"check_age_now", "survey_invitation"} & set(still_15.ready)
    younger = _start(bundled, journey_clock, SITES["children_young_people"], "SYN-C-0019", age=13)
    younger.wait_until("2027-07-12")
    assert not {"check_age_now", "survey_invitation"} & set(younger.ready)
    older = _start(bundled, journey_clock, SITES["children_young_people"], "SYN-C-0017", age=15)
    older.wait_until("2027-07-12")
    assert "survey_invitation" in older.ready and "check_age_now" not in older.ready


def test_the_surveillance_plan_closes_when_progression_ends_surveillance(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    """A plan still not given at the 12-month review that finds progression stayed on the key worker's
    work list for a man no longer on surveillance; the end of surveillance now closes it (as_ended ->
    as_plan_closed), and the treatment's own end of treatment summary gives what the plan would have."""
    j = prostate_surveillance(bundled, journey_clock, "SYN-C-0013", "radical_treatment", plan_given=False)
    assert "as_plan" not in j.ready
    assert ("task_completed", "as_plan") not in [(e.type, e.element) for e in events(bundled, j.view.id)]
    done = {e.element for e in instance_progress(bundled.instances, j.view.id).elements if e.state == "done"}
    assert "as_plan_not_needed" in done and "as_plan" not in done  # closed, not given


def test_a_corrected_date_of_diagnosis_moves_the_reviews_and_the_survey_with_it(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    """The date of diagnosis was typed as 2026-01-12 and was 2025-11-12: the GP's 3-month review falls due
    on 2026-02-12 (not 2026-04-12), the 12-month review's invitation at 10 months, the survey at 18 months;
    the care plan shows the same dates the timers keep."""
    j = _start(bundled, journey_clock, SITES["breast"], "SYN-C-0031")
    before = waiting_timers(j)
    assert (before["first_overdue"], before["invite_second"], before["survey_due"]) == (
        "2026-04-12",
        "2026-11-12",
        "2027-07-12",
    )
    j.view = bundled.instances.correct_data(
        j.view.id, {"diagnosis_date": "2025-11-12"}, "transcription_error", "clinician:test"
    )
    after = waiting_timers(j)
    assert (after["first_overdue"], after["invite_second"], after["survey_due"]) == (
        "2026-02-12",
        "2026-09-12",
        "2027-05-12",
    )
    assert {k: v for k, v in after.items() if k not in ("first_overdue", "invite_second", "survey_due")} == {
        k: v for k, v in before.items() if k not in ("first_overdue", "invite_second", "survey_due")
    }  # nothing else moved
    [corrected] = [e for e in events(bundled, j.view.id) if e.type == "data_corrected"]
    assert json.loads(corrected.payload)["timers_moved"] == ["first_overdue", "invite_second", "survey_due"]
    upcoming = {u["code"]: u["due_on"] for u in care_plan_document(bundled, j.view.id, "en")["next_steps"]["upcoming"]}
    assert (upcoming["cancer_care_review_3_months"], upcoming["cancer_care_review_12_months"]) == (
        "2026-02-12",
        "2026-11-12",
    )
    assert upcoming["quality_of_life_survey"] == "2027-05-12"
    # Already overdue by the corrected date: the practice is reminded at the worker's next round.
    j.wait_until("2026-02-13")
    assert "remind_first" in j.ready
