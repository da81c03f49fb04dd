"""Clinician-written rule tests: YAML cases, a readable diff per failure, and rule-set checks.

A case file (``rules/tests/*.yaml``)::

    ruleset: supportive_care
    cases:
      - name: severe anxiety gets an urgent referral
        given:
          concerns: {worry_fear_anxiety: 9}
          context: {age: 54, treatment_phase: treatment}
        expect:                      # exactly these outcomes (omitted kinds: none)
          refer: {psychological-support-referral: urgent}
          inform: [info-emotional-support]
      - name: ...
        includes: {offer: [fatigue-management]}    # at least these
        excludes: {refer: [dietitian-referral]}    # none of these (any urgency)

Besides pass/fail the runner reports every rule no case fires, and pairs of rules that
contradict: two rules that fire for the same patient (in a case, or in a seeded synthetic
cohort) where one recommends an intervention the other marks ``not_recommended``, or both
refer to the same intervention with different urgencies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from yaml.nodes import MappingNode, Node

from engine.errors import InvalidInputError, Problem, RuleFileError
from engine.rules.assessment import Assessment, Outcomes
from engine.rules.catalogue import Catalogue
from engine.rules.evaluator import Evaluation, evaluate
from engine.rules.model import URGENCIES, Loc, RuleFile
from engine.rules.registry import LoadedRuleset, RuleSetRegistry
from engine.rules.simulate import synthetic_assessments
from engine.rules.yaml_source import YamlReader, did_you_mean, read_yaml_file

__all__ = [
    "CaseResult",
    "Contradiction",
    "RuleTestCase",
    "RuleTestReport",
    "find_contradictions",
    "load_cases",
    "outcome_lines",
    "run_rule_tests",
]

_KINDS = ("refer", "offer", "inform", "not_recommended")


@dataclass(frozen=True)
class RuleTestCase:
    name: str
    ruleset: str
    given: Assessment
    expect: frozenset[str] | None
    includes: frozenset[str]
    excludes: frozenset[str]  # "refer X" matches "refer X (any urgency)"
    loc: Loc


@dataclass(frozen=True)
class CaseResult:
    case: RuleTestCase
    passed: bool
    missing: tuple[str, ...]  # expected / included but not proposed
    unexpected: tuple[str, ...]  # proposed but not expected, or excluded
    fired: tuple[str, ...]

    def diff(self) -> str:
        lines = [f"FAIL {self.case.loc}: {self.case.name}"]
        lines += [f"  - {line}    (expected, not proposed)" for line in self.missing]
        lines += [f"  + {line}    (proposed, not expected)" for line in self.unexpected]
        lines.append(f"    rules fired: {', '.join(self.fired) or 'none'}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Contradiction:
    ruleset: str
    rule_a: str
    rule_b: str
    code: str
    kind: str  # "recommended and not recommended" | "different urgencies"
    example: str

    def text(self) -> str:
        return f"{self.ruleset}: {self.rule_a} and {self.rule_b}: {self.code} {self.kind} (e.g. {self.example})"


@dataclass
class RuleTestReport:
    results: list[CaseResult] = field(default_factory=list)
    unfired: dict[str, list[str]] = field(default_factory=dict)  # ruleset -> rule ids
    contradictions: list[Contradiction] = field(default_factory=list)

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.contradictions

    def text(self) -> str:
        lines = [r.diff() for r in self.failures]
        for ruleset, rules in sorted(self.unfired.items()):
            if rules:
                lines.append(f"Rules in {ruleset} that no case fires: {', '.join(rules)}")
        lines += [f"Contradiction: {c.text()}" for c in self.contradictions]
        passed = len(self.results) - len(self.failures)
        lines.append(
            f"{passed} passed, {len(self.failures)} failed, {len(self.contradictions)} contradiction(s), "
            f"{sum(len(v) for v in self.unfired.values())} rule(s) not fired by any case"
        )
        return "\n".join(lines)


def outcome_lines(outcomes: Outcomes) -> set[str]:
    """Outcomes as comparable lines: ``refer X (urgency)``, ``offer X``, ``inform X``, ..."""
    return (
        {f"refer {r.intervention} ({r.urgency})" for r in outcomes.referrals}
        | {f"offer {i.code}" for i in outcomes.interventions}
        | {f"inform {i.code}" for i in outcomes.information}
        | {f"not_recommended {i.code}" for i in outcomes.not_recommended}
    )


def load_cases(paths: Iterable[Path | str], catalogue: Catalogue | None = None) -> list[RuleTestCase]:
    """Read case files (folders are searched for ``*.yaml``). With a ``catalogue``, every concern and
    intervention code a case names must be in it, under the kind it is (a misspelt code under
    ``excludes`` made a case that could never fail; one under ``concerns`` stopped the whole run).

    Raises:
        RuleFileError: naming file, line and column of every problem found.
    """
    cases: list[RuleTestCase] = []
    problems: list[Problem] = []
    for path in _expand(paths):
        reader = YamlReader(str(path))
        try:
            text = read_yaml_file(path)
        except RuleFileError as exc:  # unreadable, or not UTF-8 (with the line and column)
            problems.extend(exc.problems)
            continue
        cases.extend(_read_case_file(reader, text, catalogue))
        problems.extend(reader.problems)
    if problems:
        raise RuleFileError("the rule tests are not valid", problems)
    return cases


def _expand(paths: Iterable[Path | str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(p.glob("*.yaml")) if p.is_dir() else [p])
    return out


def _read_case_file(reader: YamlReader, text: str, catalogue: Catalogue | None = None) -> list[RuleTestCase]:
    root = reader.compose(text)
    top = reader.mapping(root, "a rule test file", ("ruleset", "cases")) if root else None
    if top is None or "ruleset" not in top or "cases" not in top:
        return []
    ruleset = reader.text(top["ruleset"][1], "ruleset") or ""
    out: list[RuleTestCase] = []
    for node in reader.sequence(top["cases"][1], "cases") or []:
        case = _read_case(reader, node, ruleset, catalogue)
        if case is not None:
            out.append(case)
    return out


def _read_case(reader: YamlReader, node: Node, ruleset: str, catalogue: Catalogue | None) -> RuleTestCase | None:
    e = reader.mapping(node, "a test case", ("name", "given"), ("expect", "includes", "excludes"))
    if e is None or "name" not in e or "given" not in e:
        return None
    name = reader.text(e["name"][1], "name") or "?"
    if "expect" in e and ("includes" in e or "excludes" in e):
        reader.problem(node, "use either 'expect' (exact) or 'includes'/'excludes', not both", name)
    if not any(k in e for k in ("expect", "includes", "excludes")):
        reader.problem(node, "a test case needs 'expect', 'includes' or 'excludes'", name)
    given = _read_given(reader, e["given"][1], name, catalogue)
    expect = _read_outcomes(reader, e["expect"][1], False, catalogue, name) if "expect" in e else None
    includes = _read_outcomes(reader, e["includes"][1], False, catalogue, name) if "includes" in e else set()
    excludes = _read_outcomes(reader, e["excludes"][1], True, catalogue, name) if "excludes" in e else set()
    if given is None or None in (includes, excludes) or ("expect" in e and expect is None):
        return None
    return RuleTestCase(
        name,
        ruleset,
        given,
        frozenset(expect) if expect is not None else None,
        frozenset(includes or ()),
        frozenset(excludes or ()),
        reader.loc(node),
    )


def _read_given(reader: YamlReader, node: Node, name: str, catalogue: Catalogue | None = None) -> Assessment | None:
    e = reader.mapping(node, "'given'", optional=("concerns", "context", "previous"))
    if e is None:
        return None
    if catalogue is not None:
        unknown = False
        for key in ("concerns", "previous"):
            scores = e[key][1] if key in e else None
            for key_node, _value in scores.value if isinstance(scores, MappingNode) else ():
                code = str(key_node.value)
                if code not in catalogue.concerns:
                    unknown = True
                    reader.problem(key_node, f"unknown concern '{code}'{did_you_mean(code, catalogue.concerns)}", name)
        if unknown:
            return None
    data = {key: reader.value(value) for key, (_k, value) in e.items()}
    try:
        return Assessment.from_dict(data)
    except InvalidInputError as exc:
        for p in exc.problems:
            key, _, sub = (p.field or "").strip("/").partition("/")
            where: Node = node
            if key in e and isinstance(e[key][1], MappingNode):
                where = next((v for k, v in e[key][1].value if k.value == sub), e[key][1])
            reader.problem(where, f"{p.field}: {p.message}", name)
        return None


# The catalogue kind an outcome's code must be (not_recommended: any kind).
_CATALOGUE_KIND = {"refer": "referral", "offer": "intervention", "inform": "information"}


def _read_outcomes(
    reader: YamlReader, node: Node, exclude: bool, catalogue: Catalogue | None = None, name: str | None = None
) -> set[str] | None:
    e = reader.mapping(node, "expected outcomes", optional=_KINDS)
    if e is None:
        return None
    before = len(reader.problems)
    lines: set[str] = set()
    for kind, (_k, value) in e.items():
        if kind == "refer" and isinstance(value, MappingNode) and not exclude:
            for code, code_node, urgency_node in reader.free_mapping(value, "refer") or []:
                _check_code(reader, code_node, code, kind, catalogue, name)
                urgency = reader.choice(urgency_node, "urgency", URGENCIES)
                lines.add(f"refer {code} ({urgency})")
            continue
        for item in reader.sequence(value, kind) or []:
            item_code = reader.text(item, "an intervention code")
            if item_code:
                _check_code(reader, item, item_code, kind, catalogue, name)
                lines.add(f"{kind} {item_code}")
    return lines if len(reader.problems) == before else None


def _check_code(
    reader: YamlReader, node: Node, code: str, kind: str, catalogue: Catalogue | None, name: str | None
) -> None:
    """A problem when ``code`` is not a catalogue intervention of the kind ``kind`` proposes."""
    if catalogue is None:
        return
    found = catalogue.interventions.get(code)
    if found is None:
        reader.problem(node, f"unknown intervention '{code}'{did_you_mean(code, catalogue.interventions)}", name)
    elif kind in _CATALOGUE_KIND and found.kind != _CATALOGUE_KIND[kind]:
        where = {v: k for k, v in _CATALOGUE_KIND.items()}[found.kind]
        reader.problem(
            node, f"'{code}' is a catalogue {found.kind}, not {_CATALOGUE_KIND[kind]}; put it under '{where}'", name
        )


def run_case(loaded: LoadedRuleset, case: RuleTestCase) -> tuple[CaseResult, Evaluation]:
    evaluation = evaluate(loaded.compiled, loaded.catalogue, case.given)
    actual = outcome_lines(evaluation.outcomes)
    missing: set[str]
    unexpected: set[str]
    if case.expect is not None:
        missing = set(case.expect - actual)
        unexpected = set(actual - case.expect)
    else:
        missing = {x for x in case.includes if not any(_same(a, x) for a in actual)}
        unexpected = {a for a in actual if any(_same(a, x) for x in case.excludes)}
    result = CaseResult(
        case,
        not missing and not unexpected,
        tuple(sorted(missing)),
        tuple(sorted(unexpected)),
        tuple(evaluation.fired_rule_ids()),
    )
    return result, evaluation


def _same(actual: str, wanted: str) -> bool:
    """``refer X`` (no urgency given) matches ``refer X (any urgency)``."""
    return actual == wanted or actual.startswith(wanted + " (")


def run_rule_tests(
    paths: Sequence[Path | str], registry: RuleSetRegistry, *, cohort: int = 500, seed: int = 0
) -> RuleTestReport:
    """Run every case; list unfired rules; look for contradictions in cases and a cohort.

    Raises:
        RuleFileError: a case file or a rule file is invalid.
        NotFoundError: a case names a rule set that does not exist.
    """
    report = RuleTestReport()
    fired: dict[str, set[str]] = {}
    seen: dict[tuple[str, str, str, str], Contradiction] = {}
    loaded_by_name: dict[str, LoadedRuleset] = {}
    for case in load_cases(paths, registry.catalogue()):
        loaded = loaded_by_name.get(case.ruleset) or registry.current(case.ruleset)
        loaded_by_name[case.ruleset] = loaded
        result, evaluation = run_case(loaded, case)
        report.results.append(result)
        fired.setdefault(case.ruleset, set()).update(result.fired)
        for c in find_contradictions(loaded.compiled.rule_file, evaluation, f"case '{case.name}'"):
            seen.setdefault((c.ruleset, c.rule_a, c.rule_b, c.code), c)
    for name, loaded in loaded_by_name.items():
        report.unfired[name] = [r.id for r in loaded.compiled.rule_file.rules if r.id not in fired[name]]
        for i, assessment in enumerate(synthetic_assessments(loaded.catalogue, cohort, seed)):
            evaluation = evaluate(loaded.compiled, loaded.catalogue, assessment)
            example = f"synthetic patient {i} of seed {seed}"
            for c in find_contradictions(loaded.compiled.rule_file, evaluation, example):
                seen.setdefault((c.ruleset, c.rule_a, c.rule_b, c.code), c)
    report.contradictions = sorted(seen.values(), key=lambda c: (c.ruleset, c.rule_a, c.rule_b, c.code))
    return report


def find_contradictions(rule_file: RuleFile, evaluation: Evaluation, example: str) -> list[Contradiction]:
    """Pairs of rules that fired together here and disagree (see the module docstring)."""
    rules = [rule_file.rule(r) for r in evaluation.fired_rule_ids()]
    out: list[Contradiction] = []
    for i, a in enumerate(rules):
        for b in rules[i + 1 :]:
            for x, y in ((a, b), (b, a)):
                for n in y.then.not_recommended:
                    if n.intervention in x.then.recommended_codes():
                        out.append(
                            _contradiction(
                                rule_file,
                                x.id,
                                y.id,
                                n.intervention,
                                "recommended and not recommended",
                                example,
                            )
                        )
            urgencies_a = {r.intervention: r.urgency for r in a.then.refer}
            for r in b.then.refer:
                if r.intervention in urgencies_a and urgencies_a[r.intervention] != r.urgency:
                    out.append(
                        _contradiction(
                            rule_file,
                            a.id,
                            b.id,
                            r.intervention,
                            f"referred with different urgencies ({urgencies_a[r.intervention]} vs {r.urgency})",
                            example,
                        )
                    )
    return out


def _contradiction(rf: RuleFile, a: str, b: str, code: str, kind: str, example: str) -> Contradiction:
    first, second = sorted((a, b))
    return Contradiction(rf.name, first, second, code, kind, example)
