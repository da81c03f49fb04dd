"""Journeys through the re-assessment listener (shared/needs_reassessment.bpmn, issue 14 point 1),
mirroring the YAML scenario in pathways/tests/breast.yaml: the plan's review date, a carer's request,
a deterioration, a re-offer date and the patient's request each start a needs assessment."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from engine import CarePath, ManualClock

from .journey import PATIENT, Journey
from .journeys import SITES, Site, _start, _support

LOW = {"worry_fear_anxiety": 2}


def checklist(j: Journey, concerns: dict[str, int]) -> Journey:
    """Accept the offered assessment and complete the checklist the pathway asks for."""
    j.do("offer_hna", {"hna_accepted": True})
    if "complete_checklist_cyp" in j.ready:
        return j.do("complete_checklist_cyp", {"concerns": concerns, "about_you": {}}, actor=PATIENT)
    return j.do("complete_checklist", {"concerns": concerns, "about_you": {}}, actor=PATIENT)


def agree(j: Journey, review_on: str | None = None) -> Journey:
    """Agree the plan (every proposal declined, so no referral to send), with ``review_on`` if given."""
    decisions = {item.id: "declined" for item in j.proposals()}
    j.do(
        "agree",
        {"decisions": decisions, "what_matters": "Gardening", **({"review_on": review_on} if review_on else {})},
    )
    return j.do("share_plan", {"shared_with_patient": ["nhs_app"], "shared_with_gp": True})


def assessed(app: CarePath, clock: ManualClock, site: Site, patient: str, review_on: str | None = None) -> Journey:
    """Diagnosed and assessed once (a low worry score), the plan agreed with ``review_on``."""
    j = _start(app, clock, site, patient)
    _support(j, "no")
    checklist(j, LOW)
    return agree(j, review_on)


def every_trigger(app: CarePath, clock: ManualClock, *, site: Site, patient: str) -> Journey:
    j = assessed(app, clock, site, patient, review_on="2026-03-01")  # the listener now waits for that date
    # The GP review sets no trigger but wakes the listener, which reads the triggers again.
    j.do("first_review", {"reviewed_on": j.today(), "reviewed_by": "gp", "new_needs": False})
    assert "offer_hna" not in j.ready
    j.message("reassessment_requested", {"asked_by": "carer"})
    checklist(j, {"worry_fear_anxiety": 6})  # rose from 2 to 6: a deterioration
    assert "deterioration-review" in {item.code for item in j.proposals()}
    agree(j)
    j.wait(14)  # assessed again 2 weeks after the deterioration (the review date was met by the assessment)
    j.do("offer_hna", {"hna_accepted": False})
    j.do("record_declined", {"reoffer_on": j.today(), "reason": "Not today"})
    checklist(j, {"worry_fear_anxiety": 6})  # the re-offer date is today: offered again at once
    # Compared with the carer's request's assessment (6), not the first one (2) made at the same time.
    assert "deterioration-review" not in {item.code for item in j.proposals()}
    agree(j)
    assert "offer_hna" not in j.ready  # nothing pending: the listener waits for a request only
    j.message("reassessment_requested", {"asked_by": "patient"})
    checklist(j, {"worry_fear_anxiety": 5})
    agree(j)
    j.wait_until("2026-11-12")  # the 12-month cancer care review, which finds new needs
    j.do("second_review", {"reviewed_on": j.today(), "reviewed_by": "gp", "new_needs": True})
    assert "offer_hna" in j.ready
    j.message("patient_died")
    assert (j.status, j.ready) == ("completed", [])
    return j


JourneyFn = Callable[[CarePath, ManualClock], Journey]
REASSESSMENT_JOURNEYS: dict[str, JourneyFn] = {
    f"reassessment-every-trigger-{key}": partial(every_trigger, site=SITES[key], patient=f"SYN-{501 + n:04d}")
    for n, key in enumerate(sorted(SITES))
}
