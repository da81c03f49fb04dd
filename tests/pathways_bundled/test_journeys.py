"""Synthetic patients through the real bundled pathways, one journey per test (journeys.py)."""

from __future__ import annotations

import pytest

from engine import CarePath, ManualClock

from .correction_journeys import CORRECTION_JOURNEYS
from .journey import FlowCoverage
from .journeys import JOURNEYS as SITE_JOURNEYS
from .palliative_journeys import PALLIATIVE_JOURNEYS
from .reassessment_journeys import REASSESSMENT_JOURNEYS
from .safety_journeys import SAFETY_JOURNEYS

JOURNEYS = {**SITE_JOURNEYS, **SAFETY_JOURNEYS, **REASSESSMENT_JOURNEYS, **CORRECTION_JOURNEYS, **PALLIATIVE_JOURNEYS}


@pytest.mark.parametrize("name", sorted(JOURNEYS))
def test_journey(name: str, bundled: CarePath, journey_clock: ManualClock, flow_coverage: FlowCoverage) -> None:
    journey = JOURNEYS[name](bundled, journey_clock)
    assert journey.view.incident is None
    flow_coverage.journeys.add(name)
