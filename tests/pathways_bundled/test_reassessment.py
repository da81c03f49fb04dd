"""Re-assessment triggers (issue 14 point 1): each starts a holistic needs assessment in every diagnosis
pathway -- the care plan's review date, a deterioration, a request from the patient, a carer or the GP,
the re-offer date of a declined assessment, the GP review's "new needs" -- and a death still ends it all."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import InstanceEvent, PathwayInstance
from engine.errors import TaskDataError

from .journey import Journey
from .journeys import SITES, _start, _support
from .reassessment_journeys import LOW, assessed
from .reassessment_journeys import agree as _agree
from .reassessment_journeys import checklist as _checklist


def _started(app: CarePath, j: Journey) -> list[dict]:
    with app.sessions() as session:
        rows = session.scalars(
            select(InstanceEvent)
            .where(InstanceEvent.instance_id == j.view.id, InstanceEvent.type == "reassessment_started")
            .order_by(InstanceEvent.seq)
        )
        return [json.loads(e.payload) for e in rows]


def _assessed(app: CarePath, clock: ManualClock, site: str, patient: str, review_on: str | None = None) -> Journey:
    return assessed(app, clock, SITES[site], patient, review_on)


@pytest.mark.parametrize("site", sorted(SITES))
def test_a_request_starts_an_assessment_and_a_death_still_ends_everything(
    bundled: CarePath, journey_clock: ManualClock, site: str
) -> None:
    j = _assessed(bundled, journey_clock, site, "SYN-1401")
    assert "offer_hna" not in j.ready
    j.message("reassessment_requested", {"asked_by": "carer"})
    assert "offer_hna" in j.ready
    assert _started(bundled, j) == [{"reasons": ["request"], "asked_by": "carer"}]
    if site == "children_young_people":  # a child keeps the age-appropriate checklist
        j.do("offer_hna", {"hna_accepted": True})
        assert "complete_checklist_cyp" in j.ready and "complete_checklist" not in j.ready
    j.message("patient_died")
    assert (j.status, j.ready) == ("completed", [])


def test_a_wrong_request_is_refused_naming_the_field_and_nothing_is_recorded(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _assessed(bundled, journey_clock, "breast", "SYN-1402")
    before = bundled.instances.get(j.view.id).version
    for payload, fields in (
        ({"asked_by": "neighbour"}, ["/asked_by"]),
        ({}, ["/asked_by"]),
        ({"asked_by": "gp", "why": "SYN words"}, ["/why"]),
    ):
        with pytest.raises(TaskDataError) as refused:
            j.message("reassessment_requested", payload)
        assert [p.field for p in refused.value.problems] == fields
        assert "SYN words" not in str(refused.value)
    assert bundled.instances.get(j.view.id).version == before
    assert _started(bundled, j) == []


def test_the_care_plan_review_date_starts_an_assessment(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _assessed(bundled, journey_clock, "lung", "SYN-1403", review_on="2026-03-01")
    j.wait_until("2026-02-28")
    assert "offer_hna" not in j.ready
    j.wait_until("2026-03-01")
    assert "offer_hna" in j.ready
    assert _started(bundled, j) == [{"reasons": ["review_date"]}]


def test_a_new_earlier_review_date_replaces_the_one_waited_for(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _assessed(bundled, journey_clock, "colorectal", "SYN-1404", review_on="2026-06-01")
    j.message("recurrence_confirmed")  # an assessment on recurrence agrees a plan with an earlier date
    _checklist(j, LOW)
    _agree(j, review_on="2026-02-01")
    j.wait_until("2026-02-01")
    assert "offer_hna" in j.ready
    assert _started(bundled, j) == [{"reasons": ["review_date"]}]


def test_a_deterioration_starts_an_assessment_two_weeks_later(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _assessed(bundled, journey_clock, "prostate", "SYN-1405")
    j.message("reassessment_requested", {"asked_by": "patient"})
    _checklist(j, {"worry_fear_anxiety": 6})  # rose from 2 to 6
    assert "deterioration-review" in {item.code for item in j.proposals()}
    _agree(j)
    j.wait(13)
    assert "offer_hna" not in j.ready
    j.wait(1)
    assert "offer_hna" in j.ready
    assert _started(bundled, j)[-1] == {"reasons": ["deterioration"]}


def test_no_deterioration_no_early_assessment(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _assessed(bundled, journey_clock, "general", "SYN-1406")
    j.message("reassessment_requested", {"asked_by": "gp"})
    _checklist(j, {"worry_fear_anxiety": 4})  # rose by 2 only
    _agree(j)
    j.wait(60)
    assert "offer_hna" not in j.ready


def test_the_reoffer_date_of_a_declined_assessment_starts_one(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _assessed(bundled, journey_clock, "breast", "SYN-1407")
    j.message("reassessment_requested", {"asked_by": "patient"})
    j.do("offer_hna", {"hna_accepted": False})
    j.do("record_declined", {"reoffer_on": "2026-02-20", "reason": "Not now"})
    assert "offer_hna" not in j.ready
    j.wait_until("2026-02-20")
    assert "offer_hna" in j.ready
    assert _started(bundled, j)[-1] == {"reasons": ["reoffer_date"]}


def test_the_gp_reviews_new_needs_start_an_assessment(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _assessed(bundled, journey_clock, "children_young_people", "SYN-1408")
    j.do("first_review", {"reviewed_on": j.today(), "reviewed_by": "gp", "new_needs": False})
    assert "offer_hna" not in j.ready
    j.wait_until("2026-11-12")  # the 12-month review is invited at 10 months
    j.do("second_review", {"reviewed_on": j.today(), "reviewed_by": "gp", "new_needs": True})
    assert "offer_hna" in j.ready
    assert _started(bundled, j) == [{"reasons": ["gp_new_needs"]}]


def _state_size(app: CarePath, j: Journey) -> int:
    with app.sessions() as session:
        row = session.get(PathwayInstance, j.view.id)
        assert row is not None
        return len(row.state.encode())


def test_the_listener_adds_nothing_to_the_state_while_waiting_or_round_after_round(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _assessed(bundled, journey_clock, "general", "SYN-1409", review_on="2026-03-10")
    waiting = _state_size(bundled, j)
    j.wait(30)  # nothing falls due: the listener, the reviews and the survey wait
    assert _state_size(bundled, j) == waiting

    def round_() -> int:
        j.message("reassessment_requested", {"asked_by": "patient"})
        _checklist(j, LOW)
        _agree(j, review_on="2026-03-10")
        return _state_size(bundled, j)

    after_one = round_()
    sizes = [round_() for _ in range(8)]
    assert max(sizes) <= after_one + 256, (after_one, sizes)  # ids and dates only; no history kept


def test_a_concern_that_reached_8_is_a_deterioration_too(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _start_low(bundled, journey_clock, {"fatigue": 6})
    j.message("reassessment_requested", {"asked_by": "carer"})
    _checklist(j, {"fatigue": 8})  # rose by 2 only, but reached 8: discussed promptly, assessed again soon
    j.do("priority_review", {"discussed_on": j.today(), "urgent_action": "none_needed"})
    _agree(j)
    j.wait(14)
    assert "offer_hna" in j.ready
    assert _started(bundled, j)[-1] == {"reasons": ["deterioration"]}


def _start_low(app: CarePath, clock: ManualClock, concerns: dict[str, int]) -> Journey:
    j = _start(app, clock, SITES["breast"], "SYN-1410")
    _support(j, "no")
    _checklist(j, concerns)
    return _agree(j)
