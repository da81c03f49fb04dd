"""A journey of a patient in Sweden: the England-only steps (cancer care reviews in primary care, the
NHS England Cancer Quality of Life Survey) give way to what Sweden has (primary care told of the
diagnosis; the 1177 evaluation survey of Min vårdplan cancer recorded)."""

from __future__ import annotations

from functools import partial
from typing import Any

from engine import CarePath, ManualClock

from .journey import Journey
from .journeys import DIAGNOSED, SITES, JourneyFn, contact


def start(app: CarePath, clock: ManualClock, patient: str, **extra: Any) -> Journey:
    site = SITES["breast"]
    data = {"diagnosis": site.diagnosis, "diagnosis_date": DIAGNOSED, "age": site.age, "treatment_intent": "curative"}
    journey = Journey(app, clock, site.pathway, patient, {**data, **extra})
    journey.do("assign_contact", contact())
    return journey


def sweden(app: CarePath, clock: ManualClock, *, patient: str) -> Journey:
    """Primary care told, no reviews or reminders; at 18 months the Min vårdplan survey, not England's."""
    j = start(app, clock, patient, health_system="sweden")
    assert "tell_practice" not in j.ready
    j.do("tell_primary_care", {"told_on": j.today(), "told_via": "letter"})
    j.wait_until("2027-01-13")  # past both reviews' due dates
    assert not {"tell_practice", "first_review", "remind_first", "second_review", "remind_second"} & set(j.ready)
    j.wait_until("2027-07-12")
    assert not {"survey_invitation", "check_age_now"} & set(j.ready)
    j.do("mvp_survey", {"mvp_survey": "sent", "recorded_on": j.today()})
    assert "mvp_survey" not in j.ready
    return j


HEALTH_SYSTEM_JOURNEYS: dict[str, JourneyFn] = {"sweden": partial(sweden, patient="SYN-1601")}
