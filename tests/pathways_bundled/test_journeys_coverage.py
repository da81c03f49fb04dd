"""The journeys together take every sequence flow and reach every element of every bundled diagram."""

from __future__ import annotations

from pathlib import Path

from engine import ManualClock

from .conftest import START, bundled_app
from .correction_journeys import CORRECTION_JOURNEYS
from .health_system_journeys import HEALTH_SYSTEM_JOURNEYS
from .journey import FlowCoverage, bundled_diagrams, missing_nodes
from .journeys import JOURNEYS as SITE_JOURNEYS
from .palliative_journeys import PALLIATIVE_JOURNEYS
from .reassessment_journeys import REASSESSMENT_JOURNEYS
from .safety_journeys import SAFETY_JOURNEYS

JOURNEYS = {
    **SITE_JOURNEYS,
    **SAFETY_JOURNEYS,
    **REASSESSMENT_JOURNEYS,
    **CORRECTION_JOURNEYS,
    **PALLIATIVE_JOURNEYS,
    **HEALTH_SYSTEM_JOURNEYS,
}

BUNDLED_PATHWAYS = {
    "breast_cancer",
    "prostate_cancer",
    "colorectal_cancer",
    "lung_cancer",
    "children_young_people_cancer",
    "general_cancer",
}
SHARED = {
    "support_connection",
    "holistic_needs_assessment",
    "care_and_support_plan",
    "prehabilitation",
    "end_of_treatment_summary",
    "cancer_care_reviews",
    "quality_of_life_survey",
    "patient_feedback",
    "warning_sign_triage",
    "needs_reassessment",
    "surveillance_schedule",
    "palliative_care",
    "palliative_care_children",
}


def test_every_diagnosis_pathway_and_shared_sub_pathway_is_bundled() -> None:
    assert set(bundled_diagrams().flows) == BUNDLED_PATHWAYS | SHARED


def test_every_flow_and_element_of_every_bundled_diagram_is_taken(
    bundled_template: Path, tmp_path: Path, flow_coverage: FlowCoverage
) -> None:
    # Journeys this session has not run (this module run alone, or a -k selection) run here.
    for index, name in enumerate(sorted(set(JOURNEYS) - flow_coverage.journeys)):
        clock = ManualClock(START)
        app = bundled_app(bundled_template, tmp_path / f"journey{index}", clock)
        flow_coverage.watch(app)
        try:
            JOURNEYS[name](app, clock)
        finally:
            app.close()
        flow_coverage.journeys.add(name)
    diagrams = bundled_diagrams()
    missing = [flow.text() for flows in diagrams.untaken(flow_coverage).values() for flow in flows]
    assert missing == [], "flows no journey takes:\n" + "\n".join(missing)
    assert missing_nodes(diagrams, flow_coverage) == []
    assert diagrams.count() > 300  # the check read the real diagrams
