"""A date that records what has happened may not be after today (``x-carepath-not-after``): a diagnosis
dated 2031 for 2021 moved every review and the survey counted from it years away, and was accepted."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import CarePath, ManualClock
from engine.errors import StartDataError, TaskDataError

from .journeys import SITES, _mdt, _start, _support

BREAST = {"diagnosis": "breast", "age": 52, "treatment_intent": "curative"}


def test_a_diagnosis_after_today_is_refused_and_nothing_starts(bundled: CarePath, journey_clock: ManualClock) -> None:
    tomorrow = (journey_clock.now() + timedelta(days=2)).date().isoformat()
    with pytest.raises(StartDataError) as refused:
        bundled.instances.start("breast_cancer", "SYN-D-0001", "clinician:test", {**BREAST, "diagnosis_date": tomorrow})
    [problem] = refused.value.problems
    assert (problem.field, problem.message) == ("/data/diagnosis_date", "cannot be after today")
    assert tomorrow not in str(refused.value.problems)
    today = journey_clock.now().date().isoformat()  # today itself is a date that has happened
    started = bundled.instances.start(
        "breast_cancer", "SYN-D-0001", "clinician:test", {**BREAST, "diagnosis_date": today}
    )
    assert started.ready_tasks


def test_a_correction_cannot_move_the_diagnosis_after_today(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _start(bundled, journey_clock, SITES["lung"], "SYN-D-0002")
    later = (journey_clock.now() + timedelta(days=400)).date().isoformat()
    with pytest.raises(StartDataError) as refused:
        bundled.instances.correct_data(j.view.id, {"diagnosis_date": later}, "transcription_error", "clinician:test")
    assert [p.field for p in refused.value.problems] == ["/data/diagnosis_date"]


def test_a_course_of_treatment_completed_after_today_is_refused_and_the_task_stays(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    site = SITES["breast"]
    j = _start(bundled, journey_clock, site, "SYN-D-0003")
    _support(j, "no")
    _mdt(j, site, prehab=False, special=False)
    task = j.task("treatment")
    answers = {"treatments_received": site.treatments, "completed_on": "2031-01-05"}
    with pytest.raises(TaskDataError) as refused:
        bundled.instances.complete_task(j.view.id, task["id"], answers, "clinician:test")
    assert [(p.field, p.code) for p in refused.value.problems] == [("/completed_on", "x-carepath-not-after")]
    assert "treatment" in j.ready


def test_the_date_is_today_wherever_it_is_latest_on_earth(bundled: CarePath, journey_clock: ManualClock) -> None:
    """A nurse in Stockholm recording at 00:30 (22:30 UTC) types tomorrow's UTC date: accepted, whatever
    the deployment's time zone; two days ahead is refused."""
    journey_clock.advance(timedelta(hours=13, minutes=30))  # 22:30 UTC
    local = (journey_clock.now() + timedelta(hours=2)).date().isoformat()
    bundled.instances.start("breast_cancer", "SYN-D-0004", "clinician:test", {**BREAST, "diagnosis_date": local})
    ahead = (journey_clock.now() + timedelta(days=2)).date().isoformat()
    with pytest.raises(StartDataError):
        bundled.instances.start("breast_cancer", "SYN-D-0005", "clinician:test", {**BREAST, "diagnosis_date": ahead})


def test_a_last_dose_after_today_is_refused_over_the_engine_too(bundled: CarePath, journey_clock: ManualClock) -> None:
    """The record page refused it; a message from the patient's record system was taken (a last dose "next
    month" reads as on treatment for weeks). Both are refused now, the value never quoted."""
    j = _start(bundled, journey_clock, SITES["breast"], "SYN-D-0006")
    version = j.view.version
    with pytest.raises(TaskDataError) as refused:
        bundled.instances.send_message(
            "treatment_status_changed", "system:ehr", instance_id=j.view.id, payload={"last_sact_date": "2026-02-20"}
        )
    assert [(p.field, p.message) for p in refused.value.problems] == [("/last_sact_date", "cannot be after today")]
    assert bundled.instances.get(j.view.id).version == version
    bundled.instances.send_message(
        "treatment_status_changed", "system:ehr", instance_id=j.view.id, payload={"last_sact_date": "2026-01-15"}
    )
