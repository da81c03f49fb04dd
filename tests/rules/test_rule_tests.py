"""The clinician rule-test runner, contradictions, and the synthetic cohort."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.errors import RuleFileError
from engine.rules import LoadedRuleset, RuleSetRegistry, run_rule_tests, simulate
from engine.rules.testing import load_cases


def test_bundled_cases_pass_and_fire_every_rule(registry: RuleSetRegistry, rules_dir: Path) -> None:
    report = run_rule_tests([rules_dir / "tests"], registry, cohort=300)
    assert report.failures == [], report.text()
    assert report.contradictions == [], report.text()
    assert report.unfired == {"supportive_care": []}, "every bundled rule is fired by some case"
    assert len(report.results) >= 25


CASES = """\
ruleset: mini
cases:
  - name: severe anxiety
    given: {concerns: {worry_fear_anxiety: 9}}
    expect:
      refer: {psychological-support-referral: routine}
  - name: mild anxiety
    given: {concerns: {worry_fear_anxiety: 3}}
    excludes:
      refer: [psychological-support-referral]
"""


def test_failure_prints_a_readable_diff(rules_copy: Path, write_mini: Callable[..., Path]) -> None:
    write_mini(rules_copy)
    cases = rules_copy / "tests"
    cases.mkdir()
    (cases / "mini.yaml").write_text(CASES)
    report = run_rule_tests([cases], RuleSetRegistry(rules_copy), cohort=0)
    (failure,) = report.failures
    assert failure.diff() == (
        f"FAIL {cases / 'mini.yaml'}:3:5: severe anxiety\n"
        "  - refer psychological-support-referral (routine)    (expected, not proposed)\n"
        "  + refer psychological-support-referral (urgent)    (proposed, not expected)\n"
        "    rules fired: anxiety-urgent"
    )
    assert not report.ok
    assert "1 passed, 1 failed" in report.text()


CONTRADICTING = """\
ruleset: clash
title: Rules that contradict
rules:
  - id: activity
    title: Activity for fatigue
    description: t
    guidance: [{source: test, title: test}]
    when: {concern: {code: fatigue, score: {at_least: 5}}}
    then: {offer: [physical-activity-programme]}
  - id: fever
    title: Fever
    description: t
    guidance: [{source: test, title: test}]
    when: {concern: {code: fever, score: {at_least: 1}}}
    then:
      not_recommended: [{intervention: physical-activity-programme, reason: fever first}]
  - id: diet-a
    title: Diet routine
    description: t
    guidance: [{source: test, title: test}]
    when: {concern: {code: diet_nutrition, score: {at_least: 5}}}
    then: {refer: [{intervention: dietitian-referral, urgency: routine}]}
  - id: diet-b
    title: Diet soon
    description: t
    guidance: [{source: test, title: test}]
    when: {concern: {code: weight_change, score: {at_least: 5}}}
    then: {refer: [{intervention: dietitian-referral, urgency: soon}]}
  - id: never
    title: Never fired by the cases
    description: t
    guidance: [{source: test, title: test}]
    when: {concern: {code: speech, score: {at_least: 9}}}
    then: {inform: [info-pain]}
"""
CLASH_CASES = """\
ruleset: clash
cases:
  - name: fatigue and fever
    given: {concerns: {fatigue: 6, fever: 2}}
    includes: {not_recommended: [physical-activity-programme]}
"""


def test_contradictions_and_unfired_rules_are_listed(rules_copy: Path) -> None:
    (rules_copy / "clash.yaml").write_text(CONTRADICTING)
    (rules_copy / "tests").mkdir()
    (rules_copy / "tests" / "clash.yaml").write_text(CLASH_CASES)
    report = run_rule_tests([rules_copy / "tests"], RuleSetRegistry(rules_copy), cohort=400)
    assert report.failures == []
    found = {(c.rule_a, c.rule_b, c.code) for c in report.contradictions}
    assert found == {
        ("activity", "fever", "physical-activity-programme"),
        ("diet-a", "diet-b", "dietitian-referral"),
    }
    first = next(c for c in report.contradictions if c.rule_a == "activity")
    assert first.example == "case 'fatigue and fever'"
    assert "different urgencies (routine vs soon)" in report.text() or "(soon vs routine)" in report.text()
    assert "never" in report.unfired["clash"]
    assert not report.ok


def test_case_files_are_validated_with_positions(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ruleset: x\ncases:\n  - name: a\n    given: {concerns: {pain: 12}}\n    expect: {}\n")
    with pytest.raises(RuleFileError) as info:
        load_cases([bad])
    (problem,) = info.value.problems
    assert str(problem) == f"{bad}:4:30: a: /concerns/pain: expected a whole number from 0 to 10"


MISSPELT = """\
ruleset: mini
cases:
  - name: fine
    given: {concerns: {worry_fear_anxiety: 9}}
    includes: {refer: [psychological-support-referral]}
  - name: misspelt concern
    given: {concerns: {fatigeu: 8}}
    expect: {}
  - name: misspelt exclusion
    given: {concerns: {worry_fear_anxiety: 2}}
    excludes: {offer: [fatigue-managment]}
  - name: wrong kind
    given: {concerns: {worry_fear_anxiety: 9}}
    includes: {offer: [psychological-support-referral]}
"""


def test_case_codes_are_checked_against_the_catalogue(
    rules_copy: Path, write_mini: Callable[..., Path], registry: RuleSetRegistry
) -> None:
    # A misspelt concern stopped the whole run with no file, line or case; a misspelt code under
    # excludes made a case that could never fail.
    write_mini(rules_copy)
    (rules_copy / "tests").mkdir()
    cases = rules_copy / "tests" / "mini.yaml"
    cases.write_text(MISSPELT)
    with pytest.raises(RuleFileError) as info:
        run_rule_tests([rules_copy / "tests"], RuleSetRegistry(rules_copy), cohort=1)
    assert [str(p) for p in info.value.problems] == [
        f"{cases}:7:24: misspelt concern: unknown concern 'fatigeu'; did you mean 'fatigue'?",
        f"{cases}:11:24: misspelt exclusion: unknown intervention 'fatigue-managment'; did you mean "
        "'fatigue-management'?",
        f"{cases}:14:24: wrong kind: 'psychological-support-referral' is a catalogue referral, not intervention; "
        "put it under 'refer'",
    ]
    with pytest.raises(RuleFileError) as info:
        load_cases([cases], registry.catalogue())
    assert len(info.value.problems) == 3


def test_validate_checks_case_codes_against_the_catalogue(rules_copy: Path, write_mini: Callable[..., Path]) -> None:
    from click.testing import CliRunner

    from api.cli import main

    write_mini(rules_copy)
    (rules_copy / "tests").mkdir()
    (rules_copy / "tests" / "mini.yaml").write_text(MISSPELT)
    result = CliRunner().invoke(main, ["validate", str(rules_copy)])
    assert result.exit_code == 1, result.output
    assert "mini.yaml:7:24: misspelt concern: unknown concern 'fatigeu'" in result.output
    assert "3 problem(s)" in result.output


def test_simulation_is_reproducible_and_counts_services(bundled: LoadedRuleset) -> None:
    first = simulate(bundled, cohort=200, seed=42)
    second = simulate(bundled, cohort=200, seed=42)
    assert first.as_dict() == second.as_dict()
    data = first.as_dict()
    assert data["cohort"] == 200 and data["version"] == bundled.version
    services = data["referrals_per_service"]
    assert "psychological_support" in services
    assert services["psychological_support"]["total"] <= 200
    assert "Expected referrals per service" in first.text()
    assert simulate(bundled, cohort=200, seed=43).as_dict() != data
