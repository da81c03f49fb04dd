"""Two gaps in the bundled pathways' clinical content, closed.

Surveillance (shared/surveillance_schedule.bpmn): a missed test marked rebooked is waited for, with its
own timer and a second missed-test task, and a missed test that is not rebooked reaches a clinician
(NICE NG101, NG151, NG131, NG122 follow-up).
"""

from __future__ import annotations

import pytest

from engine import CarePath, ManualClock
from engine.errors import TaskDataError
from engine.instances.progress import instance_progress

from .journey import Journey
from .journeys import SITES, _end_of_treatment, _mdt, _start, _support, _treatment


def _lung_follow_up(bundled: CarePath, clock: ManualClock, patient: str) -> Journey:
    """Lung cancer treated with curative intent; follow-up appointments from 2026-01-15 (the first due
    2026-02-15, missed after 14 days), the end of treatment summary done."""
    site = SITES["lung"]
    j = _start(bundled, clock, site, patient)
    _support(j, "no")
    j.hna_declined()
    _mdt(j, site, prehab=False, special=False)
    _treatment(j, site, special=False)
    j.hna_declined()
    _end_of_treatment(j, "scheduled")
    return j


def _missed_first_appointment(bundled: CarePath, clock: ManualClock, patient: str) -> Journey:
    j = _lung_follow_up(bundled, clock, patient)
    j.wait_until("2026-03-01")
    assert "follow_up_missed" in j.ready and "record_result" not in j.ready
    return j


def _timers(j: Journey) -> dict[str, str]:
    """The waiting timers, element -> the day each is due."""
    return {e.element: e.due_at[:10] for e in instance_progress(j.app.instances, j.view.id).elements
            if e.state == "waiting" and e.due_at}


def test_a_rebooked_test_is_waited_for_before_the_schedule_moves_on(bundled: CarePath,
                                                                    journey_clock: ManualClock) -> None:
    j = _missed_first_appointment(bundled, journey_clock, "SYN-FR-0001")
    j.do("follow_up_missed", {"contacted_on": j.today(), "outcome": "rebooked", "rebooked_on": "2026-03-10"})
    assert _timers(j)["wait_rebooked"] == "2026-03-10"  # the rebooked appointment, not the next one
    assert "wait_due" not in _timers(j)
    j.wait_until("2026-03-09")
    assert not {"record_result", "record_rebooked_result"} & set(j.ready)
    j.wait_until("2026-03-10")
    form = j.task("record_rebooked_result", "surveillance_schedule")["form"]["properties"]
    assert (form["test_code"]["default"], form["test_due_on"]["default"], form["test_rebooked_on"]["default"]) == (
        "lung_cancer_review", "2026-02-15", "2026-03-10")
    j.do("record_rebooked_result", {"done_on": j.today(), "result": "as_expected"})
    assert "review_rebooked_missed" not in j.ready
    assert _timers(j)["wait_due"] == "2026-05-15"  # recorded: now the schedule goes on
    j.wait_until("2026-05-15")
    assert j.task("record_result")["form"]["properties"]["test_due_on"]["default"] == "2026-05-15"


def test_a_rebooked_test_missed_too_reaches_a_clinician_and_is_not_rebooked_again(
        bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _missed_first_appointment(bundled, journey_clock, "SYN-FR-0002")
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
def test_a_missed_test_that_is_not_rebooked_reaches_a_clinician(bundled: CarePath, journey_clock: ManualClock,
                                                                outcome: str) -> None:
    j = _missed_first_appointment(bundled, journey_clock, f"SYN-FR-01{len(outcome):02d}")
    j.do("follow_up_missed", {"contacted_on": j.today(), "outcome": outcome})
    review = j.task("review_missed", "surveillance_schedule")["form"]["properties"]
    assert (review["test_due_on"]["default"], review["outcome"]["default"]) == ("2026-02-15", outcome)
    assert "wait_due" not in _timers(j)  # nothing moves on before the review
    j.do("review_missed", {"reviewed_on": j.today(),
                           "clinician_decision": "patient_informed_of_risk_schedule_continues"})
    assert _timers(j)["wait_due"] == "2026-05-15"


def test_rebooked_without_a_date_is_refused_naming_the_field(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _missed_first_appointment(bundled, journey_clock, "SYN-FR-0003")
    with pytest.raises(TaskDataError) as refused:
        j.do("follow_up_missed", {"contacted_on": j.today(), "outcome": "rebooked"})
    assert [p.field for p in refused.value.problems] == ["/rebooked_on"]
    assert "follow_up_missed" in j.ready


def test_a_rebooked_date_already_past_counts_the_grace_from_today(bundled: CarePath,
                                                                  journey_clock: ManualClock) -> None:
    j = _missed_first_appointment(bundled, journey_clock, "SYN-FR-0004")
    j.do("follow_up_missed", {"contacted_on": j.today(), "outcome": "rebooked", "rebooked_on": "2026-02-20"})
    assert "record_rebooked_result" in j.ready  # its date has passed: recorded now, not missed at once
    assert "review_rebooked_missed" not in j.ready
    assert _timers(j)["rebooked_missed"] == "2026-03-15"  # 14 days from today (1 March)
