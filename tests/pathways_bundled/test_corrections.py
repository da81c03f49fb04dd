"""The pathway corrections a nurse specialist asked for (issue 14 point 4), each shown on a bundled
pathway where a journey's coverage alone would not show it."""

from __future__ import annotations

from engine import CarePath, ManualClock

from .correction_journeys import reviews_independent
from .journeys import SITES, _review, _start


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
