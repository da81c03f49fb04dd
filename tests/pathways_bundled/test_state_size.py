"""The live state of a bundled pathway stays small for the whole 18-month journey (issue 3: at most
20 KB once the standard pathway completes): finished history is in the event trail, not the state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text

from engine import CarePath, ManualClock
from engine.db.models import InstanceEvent, PathwayInstance
from engine.db.stored_state import encode_state
from engine.instances import store
from engine.instances.step import Step

from .journey import NURSE, PATIENT, Journey, contact
from .journeys import SITES, Options, full_journey

LIMIT = 20 * 1024
# While the pathway runs, the live state holds every open branch: care, reviews, survey and four listeners
# (warning signs and treatment status from the start, named contact, recurrence), each with its predicted
# next tasks, plus the sub-pathways in progress. It depends on the diagram, never on how long the patient
# has been on the pathway; the treatment status listener and the escalation timers (issue 13) took the
# largest live state of these journeys from about 60 KB to about 68 KB; the re-assessment listener (issue
# 14 point 1: one more open branch, waiting in its sub-pathway, and the trigger notes in the needs
# assessment, the care plan and the reviews) to about 78 KB; the corrections of issue 14 point 4 (the
# needs assessment at diagnosis open alongside the MDT and treatment instead of before them, the two
# cancer care reviews as two branches) to about 94 KB, and the surveillance schedule (a sub-pathway
# open for the years of follow-up, alongside the reviews and the survey) to about 107 KB. It does not
# grow with the rounds of re-assessment or the time spent waiting
# (tests/pathways_bundled/test_reassessment.py).
LIVE_LIMIT = 112 * 1024


@pytest.mark.parametrize("site", ["breast", "children_young_people"])
def test_state_stays_under_20_kb_through_a_full_journey(
    site: str, bundled: CarePath, journey_clock: ManualClock
) -> None:
    sizes: list[int] = []
    runner = bundled.instances.steps
    original = runner.settle

    def measuring(step: Step) -> None:  # every step's state, as it is about to be written
        original(step)
        sizes.append(len(step.instance.state.encode()))

    runner.settle = measuring  # type: ignore[method-assign]
    journey = full_journey(bundled, journey_clock, SITES[site], f"SYN-SIZE-{site}", Options())
    with bundled.sessions() as session:
        row = session.get(PathwayInstance, journey.view.id)
        assert row is not None and row.status == "completed"
        events = session.scalar(select(func.count()).where(InstanceEvent.instance_id == row.id))
        final = len(row.state.encode())
    assert final <= LIMIT, f"{final} bytes"
    assert max(sizes) <= LIVE_LIMIT, f"largest state during the journey: {max(sizes)} bytes"
    assert events and events > 50  # the history is in the trail


# Issue 19: at most 10 KB stored (compressed: engine.db.stored_state) at every point of a breast journey.
STORED_LIMIT = 10 * 1024


def _stored_bytes(app: CarePath, instance_id: str) -> int:
    with app.sessions() as session:  # the bytes the column holds, not the text they inflate to
        return int(
            session.execute(
                text("SELECT length(state) FROM pathway_instances WHERE id = :id"), {"id": instance_id}
            ).scalar_one()
        )


@pytest.fixture
def stored_sizes(bundled: CarePath, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of every state a step stores, as written."""
    sizes: list[int] = []

    def measured(state: str) -> bytes:
        stored = encode_state(state)
        sizes.append(len(stored))
        return stored

    monkeypatch.setattr(store, "encode_state", measured)
    return sizes


def test_a_breast_journey_stores_at_most_10_kb_at_every_step(
    bundled: CarePath, journey_clock: ManualClock, stored_sizes: list[int]
) -> None:
    journey = full_journey(bundled, journey_clock, SITES["breast"], "SYN-SIZE-STORED", Options())
    assert journey.status == "completed"
    assert len(stored_sizes) > 40  # every step that changed the state after the first was measured
    assert max(stored_sizes) <= STORED_LIMIT, f"largest stored state: {max(stored_sizes)} bytes"
    assert _stored_bytes(bundled, journey.view.id) == stored_sizes[-1]


def test_two_years_of_warning_signs_and_reviews_do_not_grow_the_stored_state(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    """A breast pathway waiting at the MDT for two years, a warning sign reported and triaged every month
    and the reviews answered as they fall due: the stored state stays under 10 KB and no larger after two
    years than after the first month."""
    j = Journey(
        bundled,
        journey_clock,
        "breast_cancer",
        "SYN-SIZE-WAIT",
        {"diagnosis": "breast", "diagnosis_date": "2026-01-12", "age": 52, "treatment_intent": "curative"},
    )
    j.do("assign_contact", contact())
    j.do("offer_support", {"support_wanted": "no", "support_types": [], "consent_to_share_contact": False})
    j.do("offer_hna", {"hna_accepted": False}).do("record_declined", {"reason": "Not now"})
    monthly = []
    for _ in range(24):
        sign = "diarrhoea_or_vomiting_on_treatment"
        j.message("warning_sign_reported", {"warning_sign": sign, "description": "Unwell since this morning"})
        j.do(
            "triage",
            {
                "warning_sign": sign,
                "on_systemic_treatment": False,
                "triage_rating": "green",
                "advice_given": "As the triage tool advises",
            },
        )
        j.do("self_care", {"advice_given": "Fluids, loperamide, call again if worse"})
        j.do("inform_team", {"informed_on": j.today()})
        for element in [e for e in j.ready if e in _REVIEWS]:
            j.do(element, _REVIEWS[element](j), actor=PATIENT if element == "survey" else NURSE)
        monthly.append(_stored_bytes(bundled, j.view.id))
        j.wait(30)
    assert j.status == "running"
    assert max(monthly) <= STORED_LIMIT, monthly
    assert monthly[-1] <= monthly[0] + 256, monthly  # what a month's dates and ids vary by, not growth


def _review(j: Journey) -> dict[str, Any]:
    return {"reviewed_on": j.today(), "reviewed_by": "gp", "topics": ["support_available"], "new_needs": False}


_REVIEWS: dict[str, Callable[[Journey], dict[str, Any]]] = {
    "first_review": _review,
    "second_review": _review,
    "remind_first": lambda j: {"reminded_on": j.today()},
    "remind_second": lambda j: {"reminded_on": j.today()},
    "send_reminder": lambda j: {"reminded_on": j.today(), "channel": "nhs_app"},
    "survey": lambda j: {
        "mobility": 1,
        "self_care": 1,
        "usual_activities": 2,
        "pain_discomfort": 2,
        "anxiety_depression": 1,
        "overall_health": 80,
        "survey_wants_contact": False,
    },
}
