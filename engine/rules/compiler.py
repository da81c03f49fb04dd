"""Compiling rule files to durable-rules' own ruleset form (plain dicts, no decorators).

The fact vocabulary is defined here too, because the compiled patterns and the facts must
agree:

- one ``context`` fact (id ``context``) with the patient context fields that are known;
- one ``concern`` fact per assessed concern (id ``concern:<code>``: code, domain, score, and
  ``change``, the score minus the score at the patient's previous assessment, when there was one:
  a concern not scored then counts as 0, as the checklist says);
- a last ``complete`` fact (id ``assessment-complete``). Every compiled rule joins on it, so
  no rule can fire before the whole assessment is in. durable-rules evaluates ``none``
  (absence) as each fact arrives; without this marker "worry and no pain" could fire before
  the pain score was asserted (LIBRARY_NOTES).

Conditions are expanded to alternatives (any/none multiplied out, De Morgan for ``none``):
each alternative becomes one durable-rules rule ``<rule id>#<n>`` of the form ``all: [complete,
context?, concern..., absent$not...]``, the shape durable-rules handles best.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InvalidInputError, Problem
from engine.rules.assessment import Assessment
from engine.rules.catalogue import Catalogue
from engine.rules.model import SCORE_OPERATORS, AllOf, ConcernCondition, Condition, ContextCondition, NoneOf, RuleFile
from engine.rules.yaml_source import did_you_mean

__all__ = [
    "COMPLETE_FACT_ID",
    "CONTEXT_FACT_ID",
    "Alternative",
    "CanonicalFacts",
    "CompiledRuleset",
    "alternatives",
    "build_facts",
    "canonical_facts",
    "compile_rule_file",
    "concern_fact_id",
]

CONTEXT_FACT_ID = "context"
COMPLETE_FACT_ID = "assessment-complete"
_PRI = {"high": 1, "medium": 2, "low": 3}  # durable-rules fires lower ``pri`` first

Leaf = ConcernCondition | ContextCondition


@dataclass(frozen=True)
class Alternative:
    """One way a rule's condition can hold: concerns present (each a different concern),
    context tests on the one context fact, and conditions that must be absent."""

    concerns: tuple[ConcernCondition, ...] = ()
    context: tuple[ContextCondition, ...] = ()
    absent: tuple[Leaf, ...] = ()

    def __add__(self, other: Alternative) -> Alternative:
        return Alternative(self.concerns + other.concerns, self.context + other.context, self.absent + other.absent)


@dataclass(frozen=True)
class CompiledRuleset:
    """A rule file compiled for durable-rules, registered under ``durable_name``."""

    rule_file: RuleFile
    durable_name: str
    definition: dict[str, dict[str, Any]]  # JSON form, without "run"
    rule_of: dict[str, str] = field(default_factory=dict)  # durable rule name -> rule id
    # What any pattern can match: a concern fact outside these can match nothing, so it need
    # not be asserted (it would only raise MessageNotHandledException).
    concern_codes: frozenset[str] = frozenset()
    concern_domains: frozenset[str] = frozenset()
    any_concern: bool = False  # some pattern matches a concern of any code ("any concern rose by 3")

    def could_match(self, fact: dict[str, Any]) -> bool:
        if fact["t"] != "concern" or self.any_concern:
            return True
        return fact["code"] in self.concern_codes or fact["domain"] in self.concern_domains

    @property
    def name(self) -> str:
        return self.rule_file.name

    @property
    def version(self) -> str:
        return self.rule_file.version

    def definition_with_actions(self) -> dict[str, dict[str, Any]]:
        """A deep copy with ``run`` set to each durable rule's name (durable-rules deletes ``run``
        from the dict it is given, so the stored definition is never handed over)."""
        out = copy.deepcopy(self.definition)
        for name, rule in out.items():
            rule["run"] = name
        return out

    def to_json(self) -> str:
        return json.dumps(self.definition, sort_keys=True, indent=2)


def compile_rule_file(rule_file: RuleFile) -> CompiledRuleset:
    """Compile a checked rule file. Pure and fast (~1 ms for the bundled rules)."""
    definition: dict[str, dict[str, Any]] = {}
    rule_of: dict[str, str] = {}
    codes: set[str] = set()
    domains: set[str] = set()
    any_concern = False
    for rule in rule_file.rules:
        for index, alt in enumerate(alternatives(rule.when)):
            name = f"{rule.id}#{index}"
            definition[name] = {"all": _patterns(alt), "pri": _PRI[rule.priority]}
            rule_of[name] = rule.id
            for leaf in (*alt.concerns, *alt.absent):
                if isinstance(leaf, ConcernCondition):
                    if leaf.code:
                        codes.add(leaf.code)
                    elif leaf.domain:
                        domains.add(leaf.domain)
                    else:
                        any_concern = True
    durable_name = f"{rule_file.name}_{rule_file.version[:16]}"
    return CompiledRuleset(
        rule_file, durable_name, definition, rule_of, frozenset(codes), frozenset(domains), any_concern
    )


def alternatives(condition: Condition, limit: int | None = None) -> list[Alternative]:
    """The condition as a list of alternatives (disjunctive normal form).

    ``limit`` stops expanding once more alternatives than that are produced.
    """
    return _expand(condition, negate=False, limit=limit or 1_000_000)


def _expand(condition: Condition, negate: bool, limit: int) -> list[Alternative]:
    if isinstance(condition, ConcernCondition):
        return [Alternative(absent=(condition,))] if negate else [Alternative(concerns=(condition,))]
    if isinstance(condition, ContextCondition):
        return [Alternative(absent=(condition,))] if negate else [Alternative(context=(condition,))]
    if isinstance(condition, NoneOf):  # none(a, b) == all(not a, not b)
        if negate:  # not none(a, b) == any(a, b)
            return _union((_expand(c, False, limit) for c in condition.children), limit)
        return _product((_expand(c, True, limit) for c in condition.children), limit)
    conjunctive = isinstance(condition, AllOf) != negate  # De Morgan
    parts = (_expand(c, negate, limit) for c in condition.children)
    return _product(parts, limit) if conjunctive else _union(parts, limit)


def _union(parts: Iterable[list[Alternative]], limit: int) -> list[Alternative]:
    out: list[Alternative] = []
    for part in parts:
        out.extend(part)
        if len(out) > limit:
            break
    return out


def _product(parts: Iterable[list[Alternative]], limit: int) -> list[Alternative]:
    out = [Alternative()]
    for part in parts:
        out = [a + b for a in out for b in part][: limit + 1]
    return out


def _patterns(alt: Alternative) -> list[dict[str, Any]]:
    # durable-rules leaves a fact already bound by one of the rule's positive patterns out of
    # its ``$not`` checks. "weight_change >= 5 and none(weight_change >= 8)" would then fire
    # for a weight_change of 8. So each absence test is also folded, negated, into the
    # positive patterns: the bound facts must not match it either.
    absent_concerns = [a for a in alt.absent if isinstance(a, ConcernCondition)]
    absent_context = [a for a in alt.absent if isinstance(a, ContextCondition)]
    patterns: list[dict[str, Any]] = [{"complete": {"t": "complete"}}]
    if alt.context:
        tests = [_context_test(c) for c in alt.context] + [_negated_context_test(c) for c in absent_context]
        patterns.append({"ctx": {"$and": [{"t": "context"}, *tests]}})
        absent_context = []  # the context fact is bound: its absence tests are in its pattern
    for i, c in enumerate(alt.concerns):
        pattern = _concern_pattern(c)
        pattern["$and"].extend(_negated_concern_test(a) for a in absent_concerns)
        patterns.append({f"c{i}": pattern})
    negated: list[Leaf] = [*absent_concerns, *absent_context]
    for i, leaf in enumerate(negated):
        pattern = (
            _concern_pattern(leaf)
            if isinstance(leaf, ConcernCondition)
            else {"$and": [{"t": "context"}, _context_test(leaf)]}
        )
        patterns.append({f"n{i}$not": pattern})
    return patterns


_NEGATED = {"$gte": "$lt", "$lte": "$gt", "$gt": "$lte", "$lt": "$gte", "$eq": "$neq"}


def _negated_concern_test(c: ConcernCondition) -> dict[str, Any]:
    """A concern fact does NOT match ``c`` (code, domain and score are always present; change is
    present only when there was a previous assessment, and a fact without it does not match)."""
    alternatives: list[dict[str, Any]] = []
    if c.code:
        alternatives.append({"$neq": {"code": c.code}})
    elif c.domain:
        alternatives.append({"$neq": {"domain": c.domain}})
    alternatives.extend({_NEGATED[SCORE_OPERATORS[op]]: {"score": v}} for op, v in c.score)
    if c.change:
        alternatives.append({"$nex": {"change": 1}})
        alternatives.extend({_NEGATED[SCORE_OPERATORS[op]]: {"change": v}} for op, v in c.change)
    return {"$or": alternatives}


def _negated_context_test(c: ContextCondition) -> dict[str, Any]:
    """The context fact does NOT match ``c``; a field that is not recorded does not match."""
    missing = {"$nex": {c.field: 1}}
    if c.op == "is":
        differs: dict[str, Any] = {"$neq": {c.field: c.value}}
    elif c.op == "in":
        differs = {"$and": [{"$neq": {c.field: v}} for v in c.value]}
    else:
        differs = {_NEGATED[SCORE_OPERATORS[c.op]]: {c.field: c.value}}
    return {"$or": [missing, differs]}


def _concern_pattern(c: ConcernCondition) -> dict[str, Any]:
    tests: list[dict[str, Any]] = [{"t": "concern"}]
    if c.code:
        tests.append({"code": c.code})
    elif c.domain:
        tests.append({"domain": c.domain})
    tests.extend(_compare("score", op, value) for op, value in c.score)
    tests.extend(_compare("change", op, value) for op, value in c.change)
    return {"$and": tests}


def _context_test(c: ContextCondition) -> dict[str, Any]:
    if c.op == "is":
        return {c.field: c.value}
    if c.op == "in":
        return {"$or": [{c.field: v} for v in c.value]}
    return _compare(c.field, c.op, c.value)


def _compare(name: str, op: str, value: Any) -> dict[str, Any]:
    operator = SCORE_OPERATORS[op]
    return {name: value} if operator == "$eq" else {operator: {name: value}}


def concern_fact_id(code: str) -> str:
    return f"concern:{code}"


def build_facts(assessment: Assessment, catalogue: Catalogue) -> list[dict[str, Any]]:
    """The facts for one assessment, in the canonical order every evaluation uses.

    Context first, then concerns sorted by (domain, code), then the completion marker. Each
    fact has a unique id (durable-rules refuses a fact it has already seen).

    Raises:
        InvalidInputError: for concern codes not in the catalogue.
    """
    return canonical_facts(assessment, catalogue).facts


_engine_json = json.JSONEncoder(ensure_ascii=False).encode  # as durable-rules' assert_fact encodes


@dataclass(frozen=True)
class CanonicalFacts:
    """The facts of one assessment in canonical order, each also as JSON text.

    ``texts[i]`` is ``json.dumps(facts[i], ensure_ascii=False)`` without its closing brace, so
    the session id can be appended for the engine (giving exactly the text durable-rules' own
    ``assert_fact`` would send) and the same text serves the stored row. Every evaluation needs
    both; encoding each fact for each of them would be a good part of the cost of an evaluation.
    """

    facts: list[dict[str, Any]]
    texts: list[str]

    def for_session(self, sid: str) -> list[str]:
        """Each fact as durable-rules' ``assert_fact`` sends it in session ``sid``."""
        end = f', "sid": {_engine_json(sid)}}}'
        return [text + end for text in self.texts]

    def stored_json(self) -> str:
        """The facts as one JSON array, the text ``json.dumps(facts)`` gives."""
        text = "[" + "}, ".join(self.texts) + "}]"
        return text if text.isascii() else json.dumps(self.facts)


@dataclass(frozen=True)
class _ConcernFacts:
    """What the concern facts of one catalogue version have in common, worked out once."""

    rank: dict[str, int]  # code -> position in (domain, code) order: the canonical order
    fields: dict[str, dict[str, Any]]  # code -> the fact without its score
    texts: dict[str, str]  # code -> the fact's JSON text up to its score: '{"id": ..., "score": '


_CONCERN_FACTS: dict[str, _ConcernFacts] = {}  # by catalogue version (a handful per process)
_COMPLETE_TEXT = _engine_json({"id": COMPLETE_FACT_ID, "t": "complete"})[:-1]


def _concern_facts(catalogue: Catalogue) -> _ConcernFacts:
    table = _CONCERN_FACTS.get(catalogue.version)
    if table is None:
        ordered = sorted(catalogue.concerns.values(), key=lambda c: (c.domain, c.code))
        fields = {
            c.code: {"id": concern_fact_id(c.code), "t": "concern", "code": c.code, "domain": c.domain} for c in ordered
        }
        texts = {code: _engine_json({**f, "score": 0}).removesuffix("0}") for code, f in fields.items()}
        table = _CONCERN_FACTS[catalogue.version] = _ConcernFacts(
            {c.code: rank for rank, c in enumerate(ordered)}, fields, texts
        )
    return table


def canonical_facts(assessment: Assessment, catalogue: Catalogue) -> CanonicalFacts:
    """:func:`build_facts`, with each fact's JSON text (see :class:`CanonicalFacts`).

    Raises:
        InvalidInputError: for concern codes not in the catalogue.
    """
    table = _concern_facts(catalogue)
    scores = assessment.concerns
    if not table.rank.keys() >= scores.keys():
        problems = [
            Problem(f"unknown concern '{code}'{did_you_mean(code, catalogue.concerns)}", field=f"/concerns/{code}")
            for code in scores
            if code not in table.rank
        ]
        raise InvalidInputError("the assessment names unknown concerns", problems)
    context = {"id": CONTEXT_FACT_ID, "t": "context", **assessment.context.as_fact_fields()}
    if isinstance(diagnosis := context.get("diagnosis"), str):
        context["diagnosis"] = catalogue.diagnoses.site_of(diagnosis, assessment.pathway_site)  # NSCLC -> lung
    facts: list[dict[str, Any]] = [context]
    texts = [_engine_json(context)[:-1]]
    previous = assessment.previous
    for code in sorted(scores, key=table.rank.__getitem__):
        score = scores[code]
        # an int is written as its repr, as json.dumps does; anything else is encoded
        text = table.texts[code] + (repr(score) if type(score) is int else _engine_json(score))
        if previous is None:
            facts.append({**table.fields[code], "score": score})
        else:
            change = score - previous.get(code, 0)  # not scored then: no concern (the checklist's rule)
            facts.append({**table.fields[code], "score": score, "change": change})
            text += ', "change": ' + repr(change)
        texts.append(text)
    facts.append({"id": COMPLETE_FACT_ID, "t": "complete"})
    texts.append(_COMPLETE_TEXT)
    return CanonicalFacts(facts, texts)
