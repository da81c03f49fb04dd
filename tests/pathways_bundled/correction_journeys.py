"""Journeys through the pathway corrections a nurse specialist asked for (issue 14 point 4), mirroring
the YAML scenarios in pathways/tests/: each checks on the way what the correction promises."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from engine import CarePath, ManualClock

from .journey import Journey
from .journeys import SITES, _review, _start

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


CORRECTION_JOURNEYS: dict[str, JourneyFn] = {
    "reviews-independent": partial(reviews_independent, patient="SYN-1501"),
}
