"""The bundled safety rules (issue 13): they key on treatment, not the pathway phase, and every one of them
is exercised by the clinicians' cases, each emergency in at least two phases."""

from __future__ import annotations

from pathlib import Path

from engine.rules import Assessment, LoadedRuleset, PatientContext, RuleSetRegistry, evaluate, run_rule_tests
from engine.rules.model import URGENCIES, AllOf, AnyOf, Condition, ContextCondition, NoneOf, Rule

ACUTE_ONCOLOGY = {"acute-oncology-assessment", "acute-oncology-review"}


def _context_fields(condition: Condition) -> set[str]:
    if isinstance(condition, ContextCondition):
        return {condition.field}
    if isinstance(condition, AllOf | AnyOf | NoneOf):
        return set().union(*(_context_fields(c) for c in condition.children))
    return set()


def _safety_rules(bundled: LoadedRuleset) -> list[Rule]:
    return [r for r in bundled.compiled.rule_file.rules if {x.intervention for x in r.then.refer} & ACUTE_ONCOLOGY]


def test_acute_oncology_rules_never_read_the_pathway_phase(bundled: LoadedRuleset) -> None:
    rules = _safety_rules(bundled)
    assert len(rules) >= 10  # the premise: fever, SACT and immunotherapy red/amber, breathlessness, MSCC
    assert [r.id for r in rules if "treatment_phase" in _context_fields(r.when)] == []


def test_each_referral_to_acute_oncology_has_one_urgency(bundled: LoadedRuleset) -> None:
    """Assessment now is always an emergency, the same-day review always urgent: never a contradiction."""
    urgencies = {
        (x.intervention, x.urgency)
        for r in bundled.compiled.rule_file.rules
        for x in r.then.refer
        if x.intervention in ACUTE_ONCOLOGY
    }
    assert urgencies == {("acute-oncology-assessment", "emergency"), ("acute-oncology-review", "urgent")}


def test_every_safety_rule_has_cases_and_every_emergency_is_tested_in_two_phases(
    registry: RuleSetRegistry, rules_dir: Path, bundled: LoadedRuleset
) -> None:
    report = run_rule_tests([rules_dir / "tests"], registry, cohort=50)
    assert report.failures == [], report.text()
    phases: dict[str, set[str]] = {}
    for result in report.results:
        phase = result.case.given.context.treatment_phase or "not recorded"
        for rule_id in result.fired:
            phases.setdefault(rule_id, set()).add(phase)
    emergencies = [
        r.id for r in bundled.compiled.rule_file.rules if any(x.urgency == "emergency" for x in r.then.refer)
    ]
    assert len(emergencies) >= 6
    assert {r: sorted(phases.get(r, ())) for r in emergencies if len(phases.get(r, ())) < 2} == {}
    assert [r.id for r in _safety_rules(bundled) if r.id not in phases] == []


def test_the_same_fever_on_chemotherapy_is_an_emergency_in_every_phase(bundled: LoadedRuleset) -> None:
    for phase in ("diagnosis", "prehabilitation", "treatment", "end_of_treatment", "follow_up", "palliative", None):
        e = evaluate(
            bundled.compiled,
            bundled.catalogue,
            Assessment({"fever": 5}, PatientContext(treatment_phase=phase, on_sact=True)),
        )
        assert [(r.intervention, r.urgency) for r in e.outcomes.referrals] == [
            ("acute-oncology-assessment", "emergency")
        ], phase


def test_a_current_smoker_is_referred_whatever_the_worry_score(bundled: LoadedRuleset) -> None:
    for score in (None, 0, 9):
        concerns = {} if score is None else {"smoking": score}
        e = evaluate(
            bundled.compiled,
            bundled.catalogue,
            Assessment(concerns, PatientContext(treatment_phase="follow_up", smoking_status="current")),
        )
        assert [(r.intervention, r.urgency) for r in e.outcomes.referrals] == [("stop-smoking-referral", "routine")]
    never = evaluate(
        bundled.compiled,
        bundled.catalogue,
        Assessment({"smoking": 9}, PatientContext(treatment_phase="follow_up", smoking_status="never")),
    )
    assert never.outcomes.referrals == ()


def test_a_higher_score_never_gets_a_lower_urgency(bundled: LoadedRuleset) -> None:
    """One concern raised from 0 to 10, the others not scored: the most urgent referral proposed never
    drops (clinical safety review: on SACT eating 7 was reviewed the same day, eating 8 got only a
    dietitian and skin 8 nothing, because the red rules left out findings the amber rules cover)."""
    contexts = {
        "on SACT": PatientContext(on_sact=True, on_immunotherapy=False),
        "on immunotherapy": PatientContext(on_sact=True, on_immunotherapy=True),
        "treatment not recorded": PatientContext(),
        "off SACT, immunotherapy not recorded": PatientContext(on_sact=False),
        "SACT not recorded, off immunotherapy": PatientContext(on_immunotherapy=False),
        "kidney cancer, off treatment": PatientContext(diagnosis="kidney", on_sact=False, on_immunotherapy=False),
    }
    drops = []
    for name, context in contexts.items():
        for code in bundled.catalogue.concerns:
            highest = -1
            for score in range(11):
                outcomes = evaluate(bundled.compiled, bundled.catalogue, Assessment({code: score}, context)).outcomes
                urgency = max((URGENCIES.index(r.urgency) for r in outcomes.referrals), default=-1)
                if urgency < highest:
                    drops.append(f"{name}: {code} {score}")
                highest = max(highest, urgency)
    assert drops == []


PHASES = ("diagnosis", "prehabilitation", "treatment", "end_of_treatment", "follow_up", "palliative", None)
# A treatment field not known: left out of the context, or sent as null (Assessment.from_dict drops a null).
NOT_RECORDED = ("absent", None)


def _context(phase: str | None, **known: object) -> dict[str, object]:
    context: dict[str, object] = {} if phase is None else {"treatment_phase": phase}
    context.update({field: value for field, value in known.items() if value != "absent"})
    return context


def _referrals(bundled: LoadedRuleset, concerns: dict[str, int], context: dict[str, object]) -> set[tuple[str, str]]:
    e = evaluate(bundled.compiled, bundled.catalogue, Assessment.from_dict({"concerns": concerns, "context": context}))
    return {(r.intervention, r.urgency) for r in e.outcomes.referrals}


def test_a_fever_off_sact_with_immunotherapy_not_recorded_is_an_emergency(bundled: LoadedRuleset) -> None:
    """SACT recorded off (none in 6 weeks) says nothing of immunotherapy in the last 12 months: a fever
    with immunotherapy not recorded (absent or null) is assessed now, as with SACT not recorded; only
    immunotherapy recorded off gets the symptom review (clinical review: it got only the review)."""
    for phase in PHASES:
        for immunotherapy in NOT_RECORDED:
            context = _context(phase, on_sact=False, on_immunotherapy=immunotherapy)
            assert _referrals(bundled, {"fever": 3}, context) == {("acute-oncology-assessment", "emergency")}, context
        for sact in NOT_RECORDED:
            context = _context(phase, on_sact=sact, on_immunotherapy=False)
            assert _referrals(bundled, {"fever": 3}, context) == {("acute-oncology-assessment", "emergency")}, context
        off = evaluate(
            bundled.compiled,
            bundled.catalogue,
            Assessment({"fever": 3}, PatientContext(treatment_phase=phase, on_sact=False, on_immunotherapy=False)),
        )
        assert off.outcomes.referrals == (), phase
        assert "symptom-review" in {i.code for i in off.outcomes.interventions}, phase


def test_every_severe_side_effect_with_treatment_not_recorded_is_an_emergency(bundled: LoadedRuleset) -> None:
    """Diarrhoea, nausea or vomiting, a sore mouth, eating or drinking and skin at 8 or more are red on SACT
    and on immunotherapy (UKONS v3): with either status not recorded (absent or null) and neither recorded
    on, each is assessed now, as the fever and severe breathlessness are (clinical review: these got no
    acute oncology referral at all). Both recorded off leaves them to the symptom rules."""
    statuses = ("absent", None, False)
    for code in ("diarrhoea", "nausea_vomiting", "sore_dry_mouth", "eating_appetite", "skin"):
        for phase in PHASES:
            for sact in statuses:
                for immunotherapy in statuses:
                    context = _context(phase, on_sact=sact, on_immunotherapy=immunotherapy)
                    both_off = sact is False and immunotherapy is False
                    for score in (8, 10):
                        emergency = ("acute-oncology-assessment", "emergency") in _referrals(
                            bundled, {code: score}, context
                        )
                        assert emergency != both_off, (code, context, score)


def test_severe_breathlessness_with_treatment_not_recorded_is_an_emergency(bundled: LoadedRuleset) -> None:
    """Breathlessness 8 or more (read as at rest) is red on or after SACT and on immunotherapy (UKONS v3):
    with either status not recorded (absent or null) and neither recorded on, it is assessed now, as the
    fever is; only both recorded off keeps the same-day review (clinical review: it stayed urgent)."""
    statuses = ("absent", None, False)
    for phase in PHASES:
        for sact in statuses:
            for immunotherapy in statuses:
                context = _context(phase, on_sact=sact, on_immunotherapy=immunotherapy)
                both_off = sact is False and immunotherapy is False
                for score in (8, 9, 10):
                    acute = {
                        r
                        for r in _referrals(bundled, {"breathing_difficulties": score}, context)
                        if r[0] in ACUTE_ONCOLOGY
                    }
                    expected = (
                        ("acute-oncology-review", "urgent") if both_off else ("acute-oncology-assessment", "emergency")
                    )
                    assert acute == {expected}, (context, score)
