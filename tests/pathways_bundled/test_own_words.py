""" "Something else" on the needs checklist: the patient's own words appear in their care plan beside the
concern, and nowhere that rules, evaluations or the trail keep (only its score reaches the rules)."""

from __future__ import annotations

import json

from sqlalchemy import select

from engine import CarePath, ManualClock
from engine.db.models import InstanceEvent, RuleEvaluationRecord
from engine.documents.build import care_plan_document
from engine.documents.render import render_html

from .journey import PATIENT
from .journeys import SITES, _start, _support

WORDS = "SYN my <b>dog</b> is poorly and I cannot walk him"


def test_the_patients_own_words_are_shown_with_something_else_and_kept_out_of_the_trail(
    bundled: CarePath, journey_clock: ManualClock
) -> None:
    j = _start(bundled, journey_clock, SITES["breast"], "SYN-0961")
    _support(j, "no")
    j.do("offer_hna", {"hna_accepted": True})
    j.do(
        "complete_checklist",
        {"concerns": {"other_concern": 6, "fatigue": 4}, "other_concern_text": WORDS, "about_you": {}},
        actor=PATIENT,
    )

    for language in ("en", "sv"):
        document = care_plan_document(bundled, j.view.id, language)
        needs = {n["code"]: n for n in document["needs"]}
        assert needs["other_concern"]["own_words"] == WORDS and needs["fatigue"]["own_words"] is None
        page = render_html(document)
        assert "SYN my &lt;b&gt;dog&lt;/b&gt; is poorly" in page and "<b>dog</b>" not in page  # escaped
    with bundled.sessions() as session:
        trail = json.dumps(
            [e.payload for e in session.scalars(select(InstanceEvent).where(InstanceEvent.instance_id == j.view.id))]
        )
        evaluations = json.dumps(
            [
                [r.facts, r.outcomes]
                for r in session.scalars(
                    select(RuleEvaluationRecord).where(RuleEvaluationRecord.instance_id == j.view.id)
                )
            ]
        )
    assert "dog" not in trail and "dog" not in evaluations and '"other_concern"' in evaluations


def test_no_own_words_no_quote(bundled: CarePath, journey_clock: ManualClock) -> None:
    j = _start(bundled, journey_clock, SITES["general"], "SYN-0962")
    _support(j, "no")
    j.do("offer_hna", {"hna_accepted": True})
    j.do(
        "complete_checklist",
        {"concerns": {"other_concern": 6}, "other_concern_text": "   ", "about_you": {}},
        actor=PATIENT,
    )
    [need] = care_plan_document(bundled, j.view.id, "en")["needs"]
    assert need["code"] == "other_concern" and need["own_words"] is None
