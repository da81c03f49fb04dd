"""A concern's change since the patient's previous assessment: in the facts, in conditions, in the
engine and in its plain-Python restatement, and in the explanations."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import InvalidInputError, RuleFileError
from engine.rules import Assessment, Catalogue, LoadedRuleset, RuleSetRegistry, evaluate, list_evaluations, rule_fires
from engine.rules.compiler import build_facts

CHANGES = """\
ruleset: changes
title: Conditions on the change since the last assessment
rules:
  - id: any-rose-3
    title: Any concern rose by 3 or more
    description: t
    guidance: [{source: test, title: test}]
    when: {concern: {change: {at_least: 3}}}
    then: {inform: [info-fatigue]}
  - id: worry-high-and-rose
    title: Worry 5 or more that rose by at least 2
    description: t
    guidance: [{source: test, title: test}]
    when: {concern: {code: worry_fear_anxiety, score: {at_least: 5}, change: {at_least: 2}}}
    then: {inform: [info-emotional-support]}
  - id: pain-not-risen
    title: Pain scored, and no concern rose by 3
    description: t
    guidance: [{source: test, title: test}]
    when:
      all:
        - concern: {code: pain, score: {at_least: 1}}
        - none: [{concern: {change: {at_least: 3}}}]
    then: {inform: [info-pain]}
"""


def test_facts_carry_the_change_only_after_a_previous_assessment(catalogue: Catalogue) -> None:
    first = build_facts(Assessment({"fatigue": 4}), catalogue)
    assert "change" not in next(f for f in first if f["t"] == "concern")
    later = build_facts(Assessment({"fatigue": 4, "pain": 2}, previous={"pain": 5}), catalogue)
    changes = {f["code"]: f["change"] for f in later if f["t"] == "concern"}
    assert changes == {"fatigue": 4, "pain": -3}  # fatigue not scored then: from no concern (0)


def test_previous_scores_are_checked_like_scores() -> None:
    with pytest.raises(InvalidInputError) as caught:
        Assessment.from_dict({"concerns": {"pain": 3}, "previous": {"pain": 11, "fatigue": True}})
    assert {p.field for p in caught.value.problems} == {"/previous/pain", "/previous/fatigue"}
    assert Assessment.from_dict({"concerns": {}, "previous": {"pain": 3}}).previous == {"pain": 3}


def test_change_conditions_in_the_engine(rules_copy: Path) -> None:
    (rules_copy / "changes.yaml").write_text(CHANGES)
    loaded = RuleSetRegistry(rules_copy).current("changes")

    def fired(a: Assessment) -> set[str]:
        e = evaluate(loaded.compiled, loaded.catalogue, a)
        by_python = {r.id for r in loaded.compiled.rule_file.rules if rule_fires(r, list(e.facts))}
        assert by_python == set(e.fired_rule_ids())
        return by_python

    assert fired(Assessment({"fatigue": 5, "pain": 2}, previous={"fatigue": 2})) == {"any-rose-3"}
    assert fired(Assessment({"fatigue": 4, "pain": 2}, previous={"fatigue": 2})) == {"pain-not-risen"}
    assert fired(Assessment({"pain": 2})) == {"pain-not-risen"}  # no previous: no change is known
    assert fired(Assessment({"worry_fear_anxiety": 6}, previous={"worry_fear_anxiety": 4})) == {"worry-high-and-rose"}
    # the pain fact itself rose by 3: `none` sees the fact the rule matched, too
    assert fired(Assessment({"pain": 5}, previous={"pain": 2})) == {"any-rose-3"}


def test_change_is_bounded_and_needs_a_concern_to_test(rules_copy: Path) -> None:
    bad = CHANGES.replace(
        "change: {at_least: 3}}}\n    then: {inform: [info-fatigue]}",
        "change: {at_least: 12}}}\n    then: {inform: [info-fatigue]}",
        1,
    )
    bad = bad.replace("{concern: {code: pain, score: {at_least: 1}}}", "{concern: {score: {at_least: 1}}}")
    bad = bad.replace("- concern: {code: pain, score: {at_least: 1}}", "- concern: {score: {at_least: 1}}")
    (rules_copy / "changes.yaml").write_text(bad)
    with pytest.raises(RuleFileError) as caught:
        RuleSetRegistry(rules_copy).current("changes")
    messages = [p.message for p in caught.value.problems]
    assert any("change 12 is out of range; expected -10 to 10" in m for m in messages), messages
    assert any("needs 'code' or 'domain'" in m for m in messages), messages


def test_the_bundled_deterioration_rule_adds_a_review_and_hides_nothing(
    bundled: LoadedRuleset, catalogue: Catalogue
) -> None:
    before = evaluate(bundled.compiled, catalogue, Assessment({"fever": 6}, previous=None))
    after = evaluate(bundled.compiled, catalogue, Assessment({"fever": 6}, previous={"fever": 1}))
    assert "concern-deteriorated" in after.fired_rule_ids()
    assert set(before.fired_rule_ids()) | {"concern-deteriorated"} == set(after.fired_rule_ids())
    assert {i.code for i in after.outcomes.interventions} == {i.code for i in before.outcomes.interventions} | {
        "deterioration-review"
    }
    assert after.outcomes.referrals == before.outcomes.referrals
    assert after.outcomes.priority == "high"


def test_deterioration_is_a_rise_of_three_or_reaching_eight() -> None:
    from engine.rules import deteriorated

    assert deteriorated(
        {"pain": 2, "fatigue": 7, "worry_fear_anxiety": 8},
        {
            "pain": 5,  # rose by 3
            "fatigue": 8,  # reached 8 (rose by 1)
            "worry_fear_anxiety": 9,  # was 8 already, rose by 1
            "nausea": 2,  # from no concern, rose by 2
            "sleep_problems": 3,  # from no concern, rose by 3
        },
    ) == ["fatigue", "pain", "sleep_problems"]
    assert deteriorated({"pain": 9}, {"pain": 1}) == []


def test_trends_list_every_assessment_of_the_instance_oldest_first(registry: RuleSetRegistry, db_session) -> None:
    from datetime import UTC, datetime, timedelta

    from engine.clock import ManualClock
    from engine.rules import concern_trends, evaluate_and_record, latest_scores

    clock = ManualClock(datetime(2026, 1, 12, 9, tzinfo=UTC))
    assert latest_scores(db_session, "inst-1") is None
    for scores in ({"pain": 2, "fatigue": 6}, {"pain": 6}, {"pain": 6, "fatigue": 8}):
        evaluate_and_record(
            db_session, registry, "supportive_care", Assessment(scores), clock=clock, instance_id="inst-1", task_id="t"
        )
        clock.advance(timedelta(days=30))
    evaluate_and_record(
        db_session,
        registry,
        "supportive_care",
        Assessment({"pain": 10}),
        clock=clock,
        instance_id="another-patient",
        task_id="t",
    )
    trends = concern_trends(db_session, "inst-1").as_dict()
    assert [a["at"][:10] for a in trends["assessments"]] == ["2026-01-12", "2026-02-11", "2026-03-13"]
    series = {s["code"]: [(p["score"], p["change"]) for p in s["points"]] for s in trends["concerns"]}
    assert series == {"fatigue": [(6, None), (0, -6), (8, 8)], "pain": [(2, None), (6, 4), (6, 0)]}
    assert trends["deteriorated"] == ["fatigue"]
    assert latest_scores(db_session, "inst-1") == {"pain": 6, "fatigue": 8}


def test_the_previous_assessment_is_the_one_made_before_whatever_the_clocks_said(
    registry: RuleSetRegistry, db_session
) -> None:
    """Two assessments with the same time, and one from a host whose clock is a second behind: the
    order is the order they were made in (rule_evaluations.ordinal), so a deterioration is never
    found, or missed, by the chance order of random ids or by clock skew."""
    from datetime import UTC, datetime, timedelta

    from engine.clock import ManualClock
    from engine.rules import concern_trends, evaluate_and_record, latest_scores

    clock = ManualClock(datetime(2026, 1, 12, 9, tzinfo=UTC))
    made = []
    for scores, back in (({"pain": 2}, 0), ({"pain": 6}, 0), ({"pain": 7}, 1), ({"pain": 4}, 0)):
        clock.advance(timedelta(seconds=-back))
        made.append(
            evaluate_and_record(
                db_session, registry, "supportive_care", Assessment(scores), clock=clock, instance_id="i", task_id="t"
            ).id
        )
        assert latest_scores(db_session, "i") == scores
    trends = concern_trends(db_session, "i").as_dict()
    assert [a["evaluation_id"] for a in trends["assessments"]] == made
    assert [p["score"] for p in trends["concerns"][0]["points"]] == [2, 6, 7, 4]
    assert [e.id for e in list_evaluations(db_session, instance_id="i")] == made
    assert [e.ordinal for e in list_evaluations(db_session, instance_id="i")] == [1, 2, 3, 4]
