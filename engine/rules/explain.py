"""Why was a referral made, and why not: answers from a stored evaluation.

"Why" lists the rules that fired and proposed the code, their version and guidance, and the
facts that matched. "Why not" takes the rules that name the code in their outcomes and did not
fire, finds for each the smallest set of conditions that failed (for ``any``, the alternative
closest to holding), and reports the nearest rule with the patient's actual values next to what
the rule needed.

:func:`rule_fires` restates durable-rules' matching in plain Python (each concern condition in
an alternative needs a different concern). The tests check it agrees with the engine on
thousands of synthetic assessments, which is what makes these explanations trustworthy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from engine.rules.assessment import Firing
from engine.rules.compiler import CONTEXT_FACT_ID, Alternative, alternatives
from engine.rules.model import (
    SCORE_OPERATORS,
    AllOf,
    AnyOf,
    ConcernCondition,
    Condition,
    ContextCondition,
    Guidance,
    Loc,
    Rule,
    RuleFile,
)
from engine.rules.registry import RuleSetRegistry
from engine.rules.store import get_evaluation
from engine.rules.yaml_source import did_you_mean

__all__ = [
    "FailedCondition",
    "NearMiss",
    "RuleReason",
    "WhyExplanation",
    "WhyNotExplanation",
    "explain_evaluation",
    "explain_why",
    "explain_why_not",
    "leaf_holds",
    "rule_fires",
]

Fact = dict[str, Any]


@dataclass(frozen=True)
class RuleReason:
    rule_id: str
    title: str
    guidance: tuple[Guidance, ...]
    matched: tuple[Fact, ...]
    proposes: str
    loc: Loc


@dataclass(frozen=True)
class WhyExplanation:
    evaluation_id: str
    ruleset: str
    version: str
    code: str
    made: bool
    reasons: tuple[RuleReason, ...]

    def text(self) -> str:
        head = f"Evaluation {self.evaluation_id} (rule set {self.ruleset}, version {self.version[:12]})"
        if not self.made:
            return f"{head}\n'{self.code}' was not proposed: ask why not instead."
        lines = [head, f"'{self.code}' was proposed by {len(self.reasons)} rule(s):"]
        for r in self.reasons:
            lines.append(f"- {r.rule_id}: {r.title}  [{r.loc}]")
            lines.append(f"    proposes: {r.proposes}")
            for fact in r.matched:
                lines.append(f"    matched: {_show_fact(fact)}")
            for g in r.guidance:
                lines.append(f"    guidance: {g}")
        return "\n".join(lines)


@dataclass(frozen=True)
class FailedCondition:
    condition: str
    actual: str
    loc: Loc
    gap: float = 10.0  # how far the actual value is from passing (ranks near misses)


@dataclass(frozen=True)
class NearMiss:
    rule_id: str
    title: str
    guidance: tuple[Guidance, ...]
    failed: tuple[FailedCondition, ...]
    loc: Loc


@dataclass(frozen=True)
class WhyNotExplanation:
    evaluation_id: str
    ruleset: str
    version: str
    code: str
    made: bool
    nearest: NearMiss | None
    others: tuple[NearMiss, ...]
    note: str | None = None

    def text(self) -> str:
        head = f"Evaluation {self.evaluation_id} (rule set {self.ruleset}, version {self.version[:12]})"
        lines = [head]
        if self.made:
            lines.append(f"'{self.code}' WAS proposed: ask why instead.")
        if self.note:
            lines.append(self.note)
        if self.nearest is not None:
            lines.append(f"Nearest rule that did not fire: {self.nearest.rule_id}: {self.nearest.title}")
            lines.extend(_miss_lines(self.nearest))
            for g in self.nearest.guidance:
                lines.append(f"    guidance: {g}")
        for other in self.others:
            lines.append(f"Also did not fire: {other.rule_id}: {other.title}")
            lines.extend(_miss_lines(other))
        return "\n".join(lines)


def _miss_lines(miss: NearMiss) -> list[str]:
    if not miss.failed:
        return ["    every condition holds on its own, but each concern condition needs a different concern"]
    return [f"    failed: {f.condition}; actual: {f.actual}  [{f.loc}]" for f in miss.failed]


# --- exact semantics --------------------------------------------------------------------


def leaf_holds(leaf: ConcernCondition | ContextCondition, fact: Fact) -> bool:
    """Does ``fact`` satisfy ``leaf`` (as the compiled durable-rules pattern would)?"""
    if isinstance(leaf, ConcernCondition):
        if fact.get("t") != "concern":
            return False
        if (leaf.code and fact.get("code") != leaf.code) or (leaf.domain and fact.get("domain") != leaf.domain):
            return False
        return all(_compare(fact.get("score"), op, v) for op, v in leaf.score) and all(
            _compare(fact.get("change"), op, v) for op, v in leaf.change
        )
    if fact.get("t") != "context" or leaf.field not in fact:
        return False
    value = fact[leaf.field]
    if leaf.op == "is":
        return bool(value == leaf.value) and isinstance(value, bool) == isinstance(leaf.value, bool)
    if leaf.op == "in":
        return value in leaf.value
    return _compare(value, leaf.op, leaf.value)


def _compare(actual: Any, op: str, threshold: Any) -> bool:
    if not isinstance(actual, int | float) or isinstance(actual, bool):
        return False
    return {
        "$gte": actual >= threshold,
        "$lte": actual <= threshold,
        "$gt": actual > threshold,
        "$lt": actual < threshold,
        "$eq": actual == threshold,
    }[SCORE_OPERATORS[op]]


def rule_fires(rule: Rule, facts: Sequence[Fact]) -> bool:
    """Whether ``rule`` fires for these facts (plain-Python restatement of the engine)."""
    return any(_alternative_holds(alt, facts) for alt in alternatives(rule.when))


def _alternative_holds(alt: Alternative, facts: Sequence[Fact]) -> bool:
    context = next((f for f in facts if f.get("t") == "context"), None)
    if alt.context and (context is None or not all(leaf_holds(c, context) for c in alt.context)):
        return False
    if any(leaf_holds(leaf, f) for leaf in alt.absent for f in facts):
        return False
    concerns = [f for f in facts if f.get("t") == "concern"]
    return _assign(list(alt.concerns), concerns, set())


def _assign(leaves: list[ConcernCondition], concerns: list[Fact], used: set[str]) -> bool:
    """Can each leaf be matched by a different concern? (small backtracking search)"""
    if not leaves:
        return True
    first, rest = leaves[0], leaves[1:]
    for fact in concerns:
        if fact["id"] not in used and leaf_holds(first, fact) and _assign(rest, concerns, used | {fact["id"]}):
            return True
    return False


# --- why --------------------------------------------------------------------------------


def explain_why(
    evaluation_id: str, rule_file: RuleFile, facts: Sequence[Fact], firings: Sequence[Firing], code: str
) -> WhyExplanation:
    """Which fired rules proposed ``code``, with their facts and guidance."""
    by_id = {f["id"]: f for f in facts}
    reasons: list[RuleReason] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for firing in firings:
        rule = rule_file.rule(firing.rule_id)
        proposes = _proposes(rule, code)
        key = (firing.rule_id, tuple(sorted(firing.matched)))
        if proposes is None or key in seen:
            continue
        seen.add(key)
        matched = tuple(by_id[i] for i in firing.matched if i in by_id)
        reasons.append(RuleReason(rule.id, rule.title, rule.guidance, matched, proposes, rule.loc))
    return WhyExplanation(evaluation_id, rule_file.name, rule_file.version, code, bool(reasons), tuple(reasons))


def _proposes(rule: Rule, code: str) -> str | None:
    for r in rule.then.refer:
        if r.intervention == code:
            return f"refer {code} to {r.service} ({r.urgency})"
    if code in rule.then.offer:
        return f"offer {code}"
    if code in rule.then.inform:
        return f"inform {code}"
    for n in rule.then.not_recommended:
        if n.intervention == code:
            return f"not recommended: {code} ({n.reason})"
    return None


# --- why not ----------------------------------------------------------------------------


def explain_why_not(
    evaluation_id: str,
    rule_file: RuleFile,
    facts: Sequence[Fact],
    firings: Sequence[Firing],
    code: str,
    known_codes: Sequence[str] = (),
) -> WhyNotExplanation:
    """The nearest rule naming ``code`` that did not fire, and which conditions failed."""
    fired = {f.rule_id for f in firings}
    made = any(_proposes(rule_file.rule(r), code) for r in fired)
    candidates = [r for r in rule_file.rules if code in r.then.recommended_codes() and r.id not in fired]
    note = None
    if not any(code in r.then.recommended_codes() for r in rule_file.rules):
        hint = did_you_mean(code, list(known_codes)) if known_codes else ""
        note = f"No rule in this version proposes '{code}'{hint}"
    misses = [NearMiss(r.id, r.title, r.guidance, tuple(_failures(r.when, facts)), r.loc) for r in candidates]
    # fewest failed conditions first, then the smallest distance to passing; then file order
    misses.sort(key=lambda m: (len(m.failed), sum(f.gap for f in m.failed)))
    return WhyNotExplanation(
        evaluation_id,
        rule_file.name,
        rule_file.version,
        code,
        made,
        misses[0] if misses else None,
        tuple(misses[1:]),
        note,
    )


def _failures(cond: Condition, facts: Sequence[Fact]) -> list[FailedCondition]:
    """The fewest conditions that would have to change for ``cond`` to hold."""
    if isinstance(cond, ConcernCondition | ContextCondition):
        return [] if _leaf_anywhere(cond, facts) else [_leaf_failure(cond, facts)]
    if isinstance(cond, AllOf):
        return [f for c in cond.children for f in _failures(c, facts)]
    if isinstance(cond, AnyOf):
        return min((_failures(c, facts) for c in cond.children), key=len)
    out: list[FailedCondition] = []
    for child in cond.children:  # NoneOf: every child that holds is a failure
        if not _failures(child, facts):
            out.append(_none_failure(child, facts))
    return out


def _leaf_anywhere(leaf: ConcernCondition | ContextCondition, facts: Sequence[Fact]) -> bool:
    return any(leaf_holds(leaf, f) for f in facts)


def _leaf_failure(leaf: ConcernCondition | ContextCondition, facts: Sequence[Fact]) -> FailedCondition:
    if isinstance(leaf, ContextCondition):
        context = next((f for f in facts if f["id"] == CONTEXT_FACT_ID), {})
        if leaf.field not in context:
            return FailedCondition(leaf.describe(), f"{leaf.field} is not recorded", leaf.loc)
        value = context[leaf.field]
        gap = _gap(value, [(leaf.op, leaf.value)]) if leaf.op in SCORE_OPERATORS else 1.0
        return FailedCondition(leaf.describe(), f"{leaf.field} is {_show(value)}", leaf.loc, gap)
    candidates = [
        f
        for f in facts
        if f.get("t") == "concern"
        and (not leaf.code or f.get("code") == leaf.code)
        and (not leaf.domain or f.get("domain") == leaf.domain)
    ]
    if not candidates:
        what = leaf.code or f"any {leaf.domain} concern"
        return FailedCondition(leaf.describe(), f"{what} not assessed (no score)", leaf.loc)
    best = min(candidates, key=lambda f: _concern_gap(f, leaf))
    scores = ", ".join(_scored(f) for f in candidates[:5])
    actual = scores if not leaf.code else _scored(best)
    return FailedCondition(leaf.describe(), actual, leaf.loc, _concern_gap(best, leaf))


def _concern_gap(fact: Fact, leaf: ConcernCondition) -> float:
    gap = _gap(fact["score"], leaf.score) if leaf.score else 0.0
    return gap + (_gap(fact.get("change"), leaf.change) if leaf.change else 0.0)


def _scored(fact: Fact) -> str:
    """``fatigue scored 7`` and, after an earlier assessment, ``(changed by +3)``."""
    change = fact.get("change")
    return f"{fact['code']} scored {fact['score']}" + ("" if change is None else f" (changed by {change:+d})")


def _gap(actual: Any, tests: Sequence[tuple[str, Any]]) -> float:
    """Distance from ``actual`` to satisfying every test (0 when it does)."""
    if not isinstance(actual, int | float) or isinstance(actual, bool):
        return 10.0
    total = 0.0
    for op, threshold in tests:
        if not _compare(actual, op, threshold):
            total += abs(actual - threshold) + (1 if op in ("more_than", "less_than") else 0)
    return total


def _none_failure(child: Condition, facts: Sequence[Fact]) -> FailedCondition:
    loc = getattr(child, "loc", Loc("?", 0, 0))
    if isinstance(child, ConcernCondition | ContextCondition):
        hit = next(f for f in facts if leaf_holds(child, f))
        actual = (
            _scored(hit)
            if hit.get("t") == "concern"
            else (f"{child.field} is {_show(hit.get(child.field))}" if isinstance(child, ContextCondition) else "")
        )
        return FailedCondition(f"none of: {child.describe()}", actual, loc)
    return FailedCondition("a 'none' group that holds", "its conditions hold", loc)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _show_fact(fact: Fact) -> str:
    if fact.get("t") == "concern":
        return f"{fact['code']} ({fact['domain']}) scored {fact['score']}" + (
            "" if fact.get("change") is None else f", changed by {fact['change']:+d}"
        )
    fields = ", ".join(f"{k}={_show(v)}" for k, v in fact.items() if k not in ("id", "t"))
    return f"context: {fields}"


# --- from the database ------------------------------------------------------------------


def explain_evaluation(
    session: Session,
    registry: RuleSetRegistry,
    evaluation_id: str,
    *,
    why: str | None = None,
    why_not: str | None = None,
) -> WhyExplanation | WhyNotExplanation:
    """Explain a stored evaluation using exactly the rule and catalogue texts it used.

    Raises:
        NotFoundError: no such evaluation.
        ValueError: neither or both of ``why`` and ``why_not`` given.
        RuleFileError: the stored texts no longer parse (a catalogue-format change).
    """

    if (why is None) == (why_not is None):
        raise ValueError("give exactly one of why / why_not")
    stored = get_evaluation(session, evaluation_id)
    loaded = registry.load_text(stored.rule_source, stored.rule_path, stored.catalogue_sources)
    rule_file = loaded.compiled.rule_file
    if why is not None:
        return explain_why(stored.id, rule_file, stored.facts, stored.firings, why)
    assert why_not is not None
    return explain_why_not(
        stored.id, rule_file, stored.facts, stored.firings, why_not, list(loaded.catalogue.interventions)
    )
