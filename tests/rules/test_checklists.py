"""The two needs checklists (issue 14 point 5): the adult one and the children's one (under 16), against
the concern catalogue and the supportive care rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.rules import Assessment, LoadedRuleset, evaluate

FORMS = Path(__file__).resolve().parents[2] / "pathways" / "shared" / "forms"
ADDED = (
    "swallowing",
    "stoma_bowel_control",
    "fear_of_recurrence",
    "fertility",
    "carer_own_needs",
    "safeguarding",
    "children_needs",
    "interpreter_communication",
    "other_concern",
)
CHILDREN_ONLY = ("school", "friends", "family_life")
# What a 9-year-old is not asked: work, money, housing, insurance, caring for others, sex.
NOT_FOR_CHILDREN = {
    "work_education",
    "money_housing",
    "insurance_travel",
    "caring_responsibilities",
    "sex_intimacy",
    "housework_shopping",
    "meals_drinks",
    "smoking",
    "alcohol_drugs",
    "carer_own_needs",
    "children_needs",
    "fertility",
}


def _form(name: str) -> dict[str, Any]:
    form: dict[str, Any] = json.loads((FORMS / name).read_text(encoding="utf-8"))
    return form


def _concerns(form: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = form["properties"]["concerns"]["properties"]
    return found


def test_the_adult_checklist_asks_every_added_need_and_something_else_in_words(bundled: LoadedRuleset) -> None:
    form = _form("hna_checklist.json")
    assert set(ADDED) <= set(_concerns(form))
    assert set(_concerns(form)) <= set(bundled.catalogue.concerns)
    assert not set(CHILDREN_ONLY) & set(_concerns(form))
    words = form["properties"]["other_concern_text"]
    assert words["type"] == "string" and 0 < words["maxLength"] <= 1000  # bounded like what_matters
    for code in ADDED:
        assert _concerns(form)[code]["title"] == bundled.catalogue.concerns[code].name_en


def test_the_childrens_checklist_asks_about_school_friends_and_family_not_work_or_money(bundled: LoadedRuleset) -> None:
    form = _form("hna_checklist_cyp.json")
    codes = set(_concerns(form))
    assert codes <= set(bundled.catalogue.concerns)
    assert set(CHILDREN_ONLY) <= codes and not codes & NOT_FOR_CHILDREN
    assert {"safeguarding", "fever", "back_pain", "limb_weakness", "other_concern"} <= codes  # safety items stay
    assert set(form["properties"]["about_you"]["properties"]) == {"travel_minutes", "travel_km"}
    assert form["x-carepath-safety-notice"] == "twenty_four_hour_line"
    assert form["properties"]["concerns"]["additionalProperties"] is False


@pytest.mark.parametrize("code", ADDED + CHILDREN_ONLY)
def test_each_added_concern_reaches_a_rule(code: str, bundled: LoadedRuleset) -> None:
    """Scored 9 in follow-up with nothing else: a rule of its own fires and proposes something."""
    evaluation = evaluate(
        bundled.compiled,
        bundled.catalogue,
        Assessment.from_dict({"concerns": {code: 9}, "context": {"treatment_phase": "follow_up"}}),
    )
    fired = evaluation.fired_rule_ids()
    assert fired, code
    assert any(
        code in json.dumps([r.when for r in bundled.compiled.rule_file.rules if r.id == rule_id], default=str)
        for rule_id in fired
    ), (code, fired)


def test_safeguarding_is_never_merely_information(bundled: LoadedRuleset) -> None:
    """Any score: the safeguarding lead the same day and the named contact's talk today, not a leaflet."""
    for score in (1, 5, 10):
        assessment = Assessment.from_dict({"concerns": {"safeguarding": score}})
        outcomes = evaluate(bundled.compiled, bundled.catalogue, assessment).outcomes
        assert [(r.intervention, r.urgency) for r in outcomes.referrals] == [("safeguarding-referral", "urgent")]
        assert [i.code for i in outcomes.interventions] == ["safeguarding-discussion-now"]
        assert not outcomes.information and outcomes.priority == "high"
