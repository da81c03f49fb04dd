"""The evaluator on real durable-rules: every crash mode in LIBRARY_NOTES, by test."""

from __future__ import annotations

import json
import random
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import durable_rules_engine
import pytest

from engine.errors import InvalidInputError, RuleEvaluationError
from engine.rules import (
    Assessment,
    Catalogue,
    LoadedRuleset,
    PatientContext,
    RuleSetRegistry,
    RulesHost,
    build_facts,
    evaluate,
    rule_fires,
    synthetic_assessments,
)
from engine.rules.compiler import canonical_facts
from engine.rules.evaluator import run_facts

FIFTEEN = {
    "worry_fear_anxiety": 9,
    "sadness_depression": 6,
    "fatigue": 7,
    "pain": 5,
    "sleep_problems": 6,
    "eating_appetite": 5,
    "money_housing": 8,
    "work_education": 4,
    "relationship_children": 6,
    "loss_of_meaning": 3,
    "information_needs": 6,
    "body_image": 2,
    "fever": 0,
    "mobility": 3,
    "caring_responsibilities": 4,
}
CONTEXT = PatientContext(age=38, treatment_phase="treatment", caring_duties=True, wants_to_return_to_work=True)


def test_outcomes_of_a_fifteen_concern_assessment(bundled: LoadedRuleset) -> None:
    e = evaluate(bundled.compiled, bundled.catalogue, Assessment(FIFTEEN, CONTEXT))
    referrals = {(r.intervention, r.urgency) for r in e.outcomes.referrals}
    assert ("psychological-support-referral", "urgent") in referrals
    assert ("psychological-support-referral", "routine") not in referrals
    assert e.outcomes.priority == "high"
    assert e.ruleset_version == bundled.version
    assert e.facts[0]["id"] == "context" and e.facts[-1]["id"] == "assessment-complete"
    # fever 0 is not a fever: the activity programme is still offered
    assert "physical-activity-programme" in {i.code for i in e.outcomes.interventions}


def test_no_background_dispatcher_thread() -> None:
    before = {t.ident for t in threading.enumerate()}
    host = RulesHost()
    after = {t.ident for t in threading.enumerate()}
    assert after == before
    assert not hasattr(host, "_d_timer") and not hasattr(host, "_t_timer")


def test_fact_matching_nothing_is_normal(bundled: LoadedRuleset) -> None:
    # 'speech' scored 2 is below every rule's threshold: durable-rules raises
    # MessageNotHandledException for it, which is normal
    e = evaluate(bundled.compiled, bundled.catalogue, Assessment({"speech": 2}))
    assert e.firings == ()
    assert e.outcomes.referrals == ()


def test_unknown_concern_is_invalid_input(bundled: LoadedRuleset) -> None:
    with pytest.raises(InvalidInputError) as info:
        evaluate(bundled.compiled, bundled.catalogue, Assessment({"worry_fear_anxeity": 9}))
    assert "did you mean 'worry_fear_anxiety'" in str(info.value)


def test_shuffled_input_gives_identical_firings(bundled: LoadedRuleset) -> None:
    rng = random.Random(3)
    expected = evaluate(bundled.compiled, bundled.catalogue, Assessment(FIFTEEN, CONTEXT))
    items = list(FIFTEEN.items())
    for _ in range(50):
        rng.shuffle(items)
        e = evaluate(bundled.compiled, bundled.catalogue, Assessment(dict(items), CONTEXT))
        assert e.firings == expected.firings
        assert e.facts == expected.facts


def test_completion_marker_makes_raw_fact_order_irrelevant(bundled: LoadedRuleset) -> None:
    """Even bypassing the canonical sort, ``none`` cannot misfire: rules wait for the marker."""
    facts = build_facts(Assessment({"worry_fear_anxiety": 6, "hopelessness": 9, "fatigue": 6}), bundled.catalogue)
    body, marker = facts[:-1], facts[-1]
    rng = random.Random(5)
    results = set()
    for _ in range(100):
        rng.shuffle(body)
        fired = run_facts(bundled.compiled, [*body, marker])
        results.add(frozenset(bundled.compiled.rule_of[name] for name, _ in fired))
    assert results == {
        frozenset({"psych-support-urgent", "mental-health-risk-check", "fatigue-support", "fatigue-physical-activity"})
    }


def test_none_also_covers_the_fact_a_rule_already_matched(bundled: LoadedRuleset) -> None:
    """durable-rules skips bound facts in ``$not``; the compiler folds the test into the pattern."""
    e = evaluate(bundled.compiled, bundled.catalogue, Assessment({"weight_change": 8}))
    assert [r.urgency for r in e.outcomes.referrals] == ["soon"]
    assert e.fired_rule_ids() == ["dietitian-soon"]


class _FailingHost(RulesHost):
    def record(self, rule_name: str, message: dict[str, Any]) -> None:
        raise ValueError("boom in action")


def test_exception_inside_an_action_is_raised(bundled: LoadedRuleset) -> None:
    host = _FailingHost()
    with pytest.raises(RuleEvaluationError) as info:
        evaluate(bundled.compiled, bundled.catalogue, Assessment({"pain": 9}), host=host)
    assert "boom in action" in str(info.value)
    # the session was deleted and the engine still works afterwards, on both hosts
    with pytest.raises(RuleEvaluationError):
        evaluate(bundled.compiled, bundled.catalogue, Assessment({"pain": 9}), host=host)
    ok = evaluate(bundled.compiled, bundled.catalogue, Assessment({"pain": 9}))
    assert ok.fired_rule_ids() == ["pain-severe"]


def test_sessions_are_deleted_past_the_live_session_ceiling(bundled: LoadedRuleset) -> None:
    """1,024 live sessions would raise MemoryError; 1,100 evaluations must not."""
    assessment = Assessment({"pain": 9, "fatigue": 6})
    for _ in range(1_100):
        e = evaluate(bundled.compiled, bundled.catalogue, assessment)
        assert len(e.firings) == 3


def test_session_is_deleted_after_each_evaluation(bundled: LoadedRuleset) -> None:
    sids: list[str] = []

    class _Spy(RulesHost):
        def record(self, rule_name: str, message: dict[str, Any]) -> None:
            sids.append(message["complete"]["sid"])
            super().record(rule_name, message)

    host = _Spy()
    evaluate(bundled.compiled, bundled.catalogue, Assessment({"pain": 9}), host=host)
    evaluate(bundled.compiled, bundled.catalogue, Assessment({"pain": 9}), host=host)
    assert len(sids) == 2 and sids[0] != sids[1]  # one fresh session per evaluation
    ruleset = host.get_ruleset(bundled.compiled.durable_name)
    for sid in sids:
        with pytest.raises(durable_rules_engine.error, match="309"):  # 309: no such session
            ruleset.get_state(sid)


def test_four_threads_give_identical_results(bundled: LoadedRuleset, catalogue: Catalogue) -> None:
    cohort = list(synthetic_assessments(catalogue, 150, seed=11))
    expected = [evaluate(bundled.compiled, catalogue, a) for a in cohort]
    expected_sig = [(e.firings, e.outcomes) for e in expected]
    results: dict[int, list[Any]] = {}
    errors: list[BaseException] = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # force thread switches inside the engine calls

    def work(n: int) -> None:
        try:
            out = []
            for a in cohort:
                e = evaluate(bundled.compiled, catalogue, a)
                out.append((e.firings, e.outcomes))
            results[n] = out
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    assert not errors
    assert all(results[n] == expected_sig for n in range(4))


def test_python_restatement_agrees_with_the_engine(bundled: LoadedRuleset, catalogue: Catalogue) -> None:
    for a in synthetic_assessments(catalogue, 1_500, seed=21):
        e = evaluate(bundled.compiled, catalogue, a)
        by_python = {r.id for r in bundled.compiled.rule_file.rules if rule_fires(r, list(e.facts))}
        assert by_python == set(e.fired_rule_ids()), a


TRICKY = """\
ruleset: tricky
title: Conditions that are easy to get wrong
rules:
  - id: not-young
    title: Context absence while the context fact is bound
    description: t
    guidance: [{source: test, title: test}]
    when:
      all:
        - context: {treatment_phase: {in: [treatment, follow_up]}}
        - none: [{context: {age: {less_than: 25}}}]
    then: {inform: [info-fatigue]}
  - id: no-context-needed
    title: Absence of a context value alone
    description: t
    guidance: [{source: test, title: test}]
    when: {none: [{context: {lives_alone: true}}]}
    then: {inform: [info-sleep]}
  - id: two-emotional
    title: Two different emotional concerns
    description: t
    guidance: [{source: test, title: test}]
    when:
      all:
        - concern: {domain: emotional, score: {at_least: 5}}
        - concern: {domain: emotional, score: {at_least: 5}}
    then: {inform: [info-emotional-support]}
  - id: not-all
    title: None of an all group
    description: t
    guidance: [{source: test, title: test}]
    when:
      all:
        - concern: {code: pain, score: {at_least: 3}}
        - none:
            - all:
                - concern: {code: fatigue, score: {at_least: 5}}
                - concern: {code: sleep_problems, score: {at_least: 5}}
    then: {inform: [info-pain]}
"""


def test_tricky_conditions_agree_with_the_python_restatement(rules_copy: Path, catalogue: Catalogue) -> None:
    (rules_copy / "tricky.yaml").write_text(TRICKY)
    loaded = RuleSetRegistry(rules_copy).current("tricky")
    fired_counts: dict[str, int] = {}
    for a in synthetic_assessments(catalogue, 1_500, seed=4):
        e = evaluate(loaded.compiled, loaded.catalogue, a)
        by_python = {r.id for r in loaded.compiled.rule_file.rules if rule_fires(r, list(e.facts))}
        assert by_python == set(e.fired_rule_ids()), a
        for r in by_python:
            fired_counts[r] = fired_counts.get(r, 0) + 1
    assert set(fired_counts) == {"not-young", "no-context-needed", "two-emotional", "not-all"}
    one = evaluate(loaded.compiled, loaded.catalogue, Assessment({"worry_fear_anxiety": 9}))
    assert "two-emotional" not in one.fired_rule_ids()  # one concern cannot count twice
    unknown_age = evaluate(
        loaded.compiled, loaded.catalogue, Assessment({}, PatientContext(treatment_phase="treatment"))
    )
    assert "not-young" in unknown_age.fired_rule_ids()  # age not recorded: not "under 25"


def test_compiled_definition_is_not_consumed_by_registration(bundled: LoadedRuleset) -> None:
    before = bundled.compiled.to_json()
    host = RulesHost()
    evaluate(bundled.compiled, bundled.catalogue, Assessment({"pain": 6}), host=host)
    assert bundled.compiled.to_json() == before
    assert all("run" not in rule for rule in bundled.compiled.definition.values())
    assert bundled.compiled.durable_name == f"supportive_care_{bundled.version[:16]}"


def test_assessment_from_task_data() -> None:
    a = Assessment.from_dict({"concerns": {"pain": 7}, "context": {"age": 30, "caring_duties": True}})
    assert a.context.age == 30 and a.concerns == {"pain": 7}
    with pytest.raises(InvalidInputError) as info:
        Assessment.from_dict({"concerns": {"pain": 11}, "context": {"agee": 3, "caring_duties": "yes"}})
    assert {p.field for p in info.value.problems} == {"/concerns/pain", "/context/agee", "/context/caring_duties"}


def test_first_evaluation_of_a_new_rule_set_may_fire_nothing(rules_copy: Path, write_mini: Callable[..., Path]) -> None:
    """durable-rules segfaults deleting a session of a rule set that never ran an action;
    the warm-up at registration prevents it (a crash here kills the test process)."""
    write_mini(rules_copy)
    registry = RuleSetRegistry(rules_copy)
    host = RulesHost()
    assert registry.evaluate("mini", Assessment({}), host=host).firings == ()
    assert registry.evaluate("mini", Assessment({"pain": 3}), host=host).firings == ()


def test_facts_reach_the_engine_as_durable_rules_itself_would_send_them(catalogue: Catalogue) -> None:
    """The evaluator hands the native engine fact texts made from pieces prepared once per
    catalogue; they must be exactly what ``Host.assert_fact`` encodes, and the stored text
    exactly ``json.dumps`` of the facts."""
    scores: dict[str, Any] = {"pain": 7.5, "fatigue": 3}  # a score that is not an int is encoded too
    unusual = Assessment(scores, PatientContext(diagnosis='lymfom "B", \u00f6', travel_km=12.25, lives_alone=False))
    sid = "5f0c-\u00f6"
    for assessment in [*synthetic_assessments(catalogue, 300, seed=8), unusual, Assessment({})]:
        facts = canonical_facts(assessment, catalogue)
        assert facts.facts == build_facts(assessment, catalogue)
        assert facts.for_session(sid) == [json.dumps({**f, "sid": sid}, ensure_ascii=False) for f in facts.facts]
        assert facts.stored_json() == json.dumps(facts.facts)


def test_the_diagnosis_is_compared_in_lower_case_with_underscores(bundled: LoadedRuleset) -> None:
    """A diagnosis written "Breast" or " BREAST " is the rules' ``breast`` (clinical safety review: a
    case-sensitive match sent breast cancer with suspected spinal cord compression down the wrong rule)."""
    for written in ("Breast", " BREAST ", "breast"):
        facts = build_facts(Assessment({}, PatientContext(diagnosis=written)), bundled.catalogue)
        assert facts[0]["diagnosis"] == "breast"
    assert PatientContext(diagnosis=" Non-Hodgkin  lymphoma").as_fact_fields() == {"diagnosis": "non_hodgkin_lymphoma"}
    back_pain = Assessment({"back_pain": 6}, PatientContext(diagnosis="Prostate"))
    assert evaluate(bundled.compiled, bundled.catalogue, back_pain).fired_rule_ids() == ["mscc-back-pain"]
    # The site with the word cancer after it, as an EHR writes it, is the site: the same rule fires.
    for written in ("Breast cancer", "breast_cancer", "LUNG-CANCER"):
        site = Assessment({"back_pain": 6}, PatientContext(diagnosis=written))
        assert evaluate(bundled.compiled, bundled.catalogue, site).fired_rule_ids() == ["mscc-back-pain"], written
    assert PatientContext(diagnosis="cancer").as_fact_fields() == {"diagnosis": "cancer"}  # nothing left: kept
    rule = bundled.compiled.rule_file.rule("mscc-back-pain")
    assert rule is not None and rule_fires(rule, build_facts(back_pain, bundled.catalogue))


def test_a_fact_asserted_twice_is_an_error(bundled: LoadedRuleset) -> None:
    facts = build_facts(Assessment({"pain": 9}), bundled.catalogue)
    with pytest.raises(RuleEvaluationError, match="concern:pain was asserted twice"):
        run_facts(bundled.compiled, [facts[0], facts[1], facts[1], facts[2]])
    # the session was deleted: the engine carries on
    assert evaluate(bundled.compiled, bundled.catalogue, Assessment({"pain": 9})).fired_rule_ids() == ["pain-severe"]


def test_firings_text_is_their_json_from_the_first_evaluation_and_the_next(bundled: LoadedRuleset) -> None:
    """The firings' JSON text is made once per (rule, facts) and kept: the first evaluation and a
    later one with the same firings give json.dumps' very text, and so does a hostile rule id."""
    from engine.rules import Firing
    from engine.rules.evaluator import firings_json

    first = evaluate(bundled.compiled, bundled.catalogue, Assessment(FIFTEEN))
    again = evaluate(bundled.compiled, bundled.catalogue, Assessment(FIFTEEN))
    expected = json.dumps([f.as_dict() for f in first.firings])
    assert len(first.firings) > 3
    assert first.fired_json == again.fired_json == expected
    assert firings_json(first.firings) == expected
    odd = (Firing('r-"\u00f6\\', ("concern:a", "b\u2028")), Firing("x", ()))
    assert firings_json(odd) == json.dumps([f.as_dict() for f in odd])
    assert evaluate(bundled.compiled, bundled.catalogue, Assessment({})).fired_json == "[]"
