"""Loading rule files: YAML -> checked :class:`RuleFile`, every problem with file:line:column.

The grammar is documented in ``docs/rules.md``. Checks: the shape of every field (unknown
fields get a "did you mean"), types and ranges, concern / domain / intervention / service codes
against the catalogue, duplicate rule ids (both places named) and conditions too complex to
compile.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.errors import RuleFileError
from engine.rules.catalogue import Catalogue, read_guidance
from engine.rules.compiler import alternatives
from engine.rules.diagnoses import DiagnosisVocabulary
from engine.rules.model import (
    CONTEXT_FIELDS,
    PRIORITIES,
    SCORE_OPERATORS,
    URGENCIES,
    AllOf,
    AnyOf,
    ConcernCondition,
    Condition,
    ContextCondition,
    Loc,
    NoneOf,
    NotRecommendedSpec,
    ReferralSpec,
    Rule,
    RuleFile,
    RuleOutcomeSpec,
    normalised_text,
)
from engine.rules.yaml_source import YamlReader, did_you_mean, read_yaml_file

__all__ = ["MAX_ALTERNATIVES", "MAX_RULESET_ALTERNATIVES", "file_version", "load_rule_file", "parse_rule_text"]

MAX_ALTERNATIVES = 64  # alternatives after expanding any/none; keeps compiled rule sets small
# Alternatives one rule set may hold in all: durable-rules 2.0.28 (pinned) joins each to the one node of the
# completion fact, whose list of joins is full at 257 (rete.c, BETA_LIST_LENGTH); with one more the rule set
# cannot be registered, and that would only show at its first evaluation ("error code: 108").
MAX_RULESET_ALTERNATIVES = 257
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
_CONDITION_KEYS = ("concern", "context", "all", "any", "none")
_RULE_REQUIRED = ("id", "title", "description", "guidance", "when", "then")
_THEN_KEYS = ("refer", "offer", "inform", "not_recommended")


def file_version(data: bytes) -> str:
    """A rule file's version: the sha256 of its exact bytes (``sha256sum`` gives the same)."""
    return hashlib.sha256(data).hexdigest()


def load_rule_file(path: Path | str, catalogue: Catalogue) -> RuleFile:
    """Read and check one rule file.

    Raises:
        RuleFileError: naming file, line and column of every problem found.
    """
    path = Path(path)
    return parse_rule_text(read_yaml_file(path), str(path), catalogue)


def parse_rule_text(text: str, file: str, catalogue: Catalogue) -> RuleFile:
    """Check rule file text (read from a file, or as stored with an evaluation).

    Raises:
        RuleFileError: naming file, line and column of every problem found.
    """
    reader = YamlReader(file)
    root = reader.compose(text)
    top = reader.mapping(root, "a rule file", ("ruleset", "title", "rules"), ("description",)) if root else None
    name = title = ""
    rules: list[Rule] = []
    if top is not None:
        if "ruleset" in top:
            name = reader.text(top["ruleset"][1], "ruleset") or ""
            if name and not _ID.match(name):
                reader.problem(top["ruleset"][1], "a ruleset name uses a-z, 0-9, '-' and '_' only")
        if "title" in top:
            title = reader.text(top["title"][1], "title") or ""
        if "description" in top:
            reader.text(top["description"][1], "description")
        if "rules" in top:
            rules = _read_rules(reader, top["rules"][1], catalogue)
            if not reader.problems:
                _check_size(reader, top["rules"][1], rules)
    if reader.problems:
        raise RuleFileError(f"{file}: the rule file is not valid", reader.problems)
    return RuleFile(
        name=name,
        title=title,
        path=file,
        version=file_version(text.encode("utf-8")),
        source=text,
        rules=tuple(rules),
        catalogue_version=catalogue.version,
    )


def _read_rules(reader: YamlReader, node: Node, catalogue: Catalogue) -> list[Rule]:
    items = reader.sequence(node, "rules")
    if items is None:
        return []
    if not items:
        reader.problem(node, "a rule file needs at least one rule")
    rules: list[Rule] = []
    seen: dict[str, Loc] = {}
    for item in items:
        rule = _read_rule(reader, item, catalogue)
        if rule is None:
            continue
        if rule.id in seen:
            first = seen[rule.id]
            reader.problem(first, f"duplicate rule id '{rule.id}' (again at line {rule.loc.line})", rule.id)
            reader.problem(rule.loc, f"duplicate rule id '{rule.id}' (first at line {first.line})", rule.id)
            continue
        seen[rule.id] = rule.loc
        rules.append(rule)
    return rules


def _read_rule(reader: YamlReader, node: Node, catalogue: Catalogue) -> Rule | None:
    reader.element = _peek_id(node)  # so every problem in the rule names it
    try:
        entries = reader.mapping(node, "a rule", _RULE_REQUIRED, ("priority",))
        if entries is None:
            return None
        rule_id = reader.text(entries["id"][1], "rule id") if "id" in entries else None
        if rule_id and not _ID.match(rule_id):
            reader.problem(entries["id"][1], "a rule id uses a-z, 0-9, '-' and '_' only (at most 80)")
            rule_id = None
        title = reader.text(entries["title"][1], "title") if "title" in entries else None
        description = reader.text(entries["description"][1], "description") if "description" in entries else None
        guidance = read_guidance(reader, entries["guidance"][1]) if "guidance" in entries else ()
        priority = "medium"
        if "priority" in entries:
            priority = reader.choice(entries["priority"][1], "priority", PRIORITIES) or "medium"
        when = _read_condition(reader, entries["when"][1], catalogue) if "when" in entries else None
        then = _read_then(reader, entries["then"][1], catalogue) if "then" in entries else None
        if when is not None:
            _check_complexity(reader, entries["when"][1], when)
    finally:
        reader.element = None
    if not (rule_id and title and description and guidance and when and then):
        return None
    return Rule(rule_id, title, description, guidance, when, then, priority, reader.loc(node))


def _peek_id(node: Node) -> str | None:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == "id" and isinstance(value, ScalarNode):
                return str(value.value) or None
    return None


def _read_condition(reader: YamlReader, node: Node, catalogue: Catalogue) -> Condition | None:
    if isinstance(node, SequenceNode):  # a bare list means "all of"
        return _read_group(reader, node, "all", catalogue)
    if not isinstance(node, MappingNode):
        reader.problem(node, f"expected a condition ({', '.join(_CONDITION_KEYS)}), got {reader.kind(node)}")
        return None
    entries = reader.mapping(node, "a condition", optional=_CONDITION_KEYS)
    if entries is None:
        return None
    if len(entries) != 1:
        if len(entries) > 1:
            reader.problem(
                node,
                f"a condition has exactly one of {', '.join(_CONDITION_KEYS)}; got {', '.join(entries)}"
                " (put them in a list under 'all')",
            )
        elif not node.value:
            reader.problem(node, f"empty condition; expected one of {', '.join(_CONDITION_KEYS)}")
        return None
    key, (_key_node, value) = next(iter(entries.items()))
    if key == "concern":
        return _read_concern(reader, value, catalogue)
    if key == "context":
        return _read_context(reader, value, catalogue)
    return _read_group(reader, value, key, catalogue)


def _read_group(reader: YamlReader, node: Node, key: str, catalogue: Catalogue) -> Condition | None:
    items = reader.sequence(node, f"'{key}'")
    if items is None:
        return None
    if not items:
        reader.problem(node, f"'{key}' needs at least one condition")
        return None
    children = [_read_condition(reader, item, catalogue) for item in items]
    kept = tuple(c for c in children if c is not None)
    if len(kept) != len(children):
        return None
    loc = reader.loc(node)
    return AllOf(kept, loc) if key == "all" else AnyOf(kept, loc) if key == "any" else NoneOf(kept, loc)


def _read_concern(reader: YamlReader, node: Node, catalogue: Catalogue) -> Condition | None:
    entries = reader.mapping(node, "a concern condition", optional=("code", "domain", "score", "change"))
    if entries is None:
        return None
    code = domain = None
    ok = True
    if "code" in entries:
        code = reader.text(entries["code"][1], "concern code")
        if code and code not in catalogue.concerns:
            reader.problem(entries["code"][1], f"unknown concern '{code}'{did_you_mean(code, catalogue.concerns)}")
            ok = False
    if "domain" in entries:
        domain = reader.text(entries["domain"][1], "domain")
        if domain and domain not in catalogue.domains:
            reader.problem(entries["domain"][1], f"unknown domain '{domain}'{did_you_mean(domain, catalogue.domains)}")
            ok = False
    if "score" not in entries and "change" not in entries:
        reader.problem(node, "a concern condition needs 'score' or 'change' (or both)")
        return None
    # Only a change may be asked of any concern at all ("any concern rose by 3 or more"): a score
    # test on any concern would fire for nearly every patient.
    if "code" not in entries and "domain" not in entries and "score" in entries:
        reader.problem(node, "a concern condition needs 'code' or 'domain'")
        return None
    if ok and code and domain and catalogue.concerns[code].domain != domain:
        reader.problem(
            entries["domain"][1],
            f"concern '{code}' is in domain '{catalogue.concerns[code].domain}', not '{domain}'",
        )
        ok = False
    score = _read_tests(reader, entries["score"][1], "score", 0, 10) if "score" in entries else []
    change = _read_tests(reader, entries["change"][1], "change", -10, 10) if "change" in entries else []
    if not ok or score is None or change is None:
        return None
    return ConcernCondition(code, domain, tuple(score), reader.loc(node), tuple(change))


def _read_tests(
    reader: YamlReader, node: Node, what: str, minimum: float | None, maximum: float | None
) -> list[tuple[str, float]] | None:
    """``{at_least: 8}`` / ``{at_least: 5, at_most: 7}`` / a bare number meaning ``equals``."""
    if isinstance(node, ScalarNode):
        value = reader.number(node, what)
        return (
            None if value is None or not _in_range(reader, node, what, value, minimum, maximum) else [("equals", value)]
        )
    entries = reader.mapping(node, f"the {what} test", optional=tuple(SCORE_OPERATORS))
    if entries is None:
        return None
    if not entries:
        reader.problem(node, f"the {what} test needs one of {', '.join(SCORE_OPERATORS)}")
        return None
    tests: list[tuple[str, float]] = []
    for op, (_k, value_node) in entries.items():
        value = reader.number(value_node, f"{what} {op.replace('_', ' ')}")
        if value is None or not _in_range(reader, value_node, what, value, minimum, maximum):
            return None
        tests.append((op, value))
    if _empty(tests):
        written = " and ".join(f"{op.replace('_', ' ')} {value:g}" for op, value in tests)
        reader.problem(node, f"the {what} test can never hold: no {what} is {written}")
        return None
    return tests


def _empty(tests: list[tuple[str, float]]) -> bool:
    """Whether no number passes every test: ``at_least 8`` and ``at_most 5``, ``more_than 5`` and
    ``less_than 5``, ``equals 3`` and ``at_least 4``."""
    low, low_open, high, high_open = -math.inf, False, math.inf, False
    for op, value in tests:
        if op in ("at_least", "more_than", "equals") and (value > low or value == low and op == "more_than"):
            low, low_open = value, op == "more_than"
        if op in ("at_most", "less_than", "equals") and (value < high or value == high and op == "less_than"):
            high, high_open = value, op == "less_than"
    return low > high or (low == high and (low_open or high_open))


def _in_range(
    reader: YamlReader, node: Node, what: str, value: float, minimum: float | None, maximum: float | None
) -> bool:
    if not math.isfinite(value):
        # NaN fails every comparison (the rule could never fire); infinity is no score or age.
        reader.problem(node, f"{what} must be a finite number, not {value}")
        return False
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        reader.problem(node, f"{what} {value:g} is out of range; expected {minimum:g} to {maximum:g}")
        return False
    return True


def _read_context(reader: YamlReader, node: Node, catalogue: Catalogue) -> Condition | None:
    entries = reader.mapping(node, "a context condition", optional=tuple(CONTEXT_FIELDS))
    if entries is None:
        return None
    if not entries:
        if isinstance(node, MappingNode) and not node.value:
            reader.problem(node, f"a context condition needs a field: {', '.join(CONTEXT_FIELDS)}")
        return None
    tests: list[ContextCondition] = []
    ok = True
    for name, (_k, value_node) in entries.items():
        spec = CONTEXT_FIELDS[name]
        loc = reader.loc(value_node)
        if spec.kind == "number":
            number_tests = _read_tests(reader, value_node, name, spec.minimum, spec.maximum)
            if number_tests is None:
                ok = False
                continue
            tests.extend(ContextCondition(name, op, v, loc) for op, v in number_tests)
        elif spec.kind == "date":
            # A date is recorded with the assessment; rules test what is worked out from it
            # (on_sact from last_sact_date), so "6 weeks ago" is decided where today is known.
            reader.problem(
                value_node,
                f"{name} is a date recorded with the assessment; rules cannot test it "
                "(test the field worked out from it, such as on_sact)",
            )
            ok = False
        elif spec.kind == "boolean":
            flag = reader.boolean(value_node, name)
            ok = ok and flag is not None
            if flag is not None:
                tests.append(ContextCondition(name, "is", flag, loc))
        else:
            values = _read_choices(reader, value_node, name, spec.choices, catalogue.diagnoses)
            ok = ok and values is not None
            if values is not None:
                op, value = ("is", values[0]) if len(values) == 1 else ("in", tuple(values))
                tests.append(ContextCondition(name, op, value, loc))
    if not ok:
        return None
    return tests[0] if len(tests) == 1 else AllOf(tuple(tests), reader.loc(node))


def _read_choices(
    reader: YamlReader, node: Node, name: str, choices: tuple[str, ...], vocabulary: DiagnosisVocabulary
) -> list[str] | None:
    """``treatment_phase: diagnosis`` or ``treatment_phase: {in: [diagnosis, treatment]}``; a diagnosis
    must be one of the vocabulary's sites (when it has any)."""
    items = [node]
    if isinstance(node, MappingNode):
        entries = reader.mapping(node, f"the {name} test", ("in",))
        if entries is None or "in" not in entries:
            return None
        listed = reader.sequence(entries["in"][1], f"{name} values")
        if not listed:
            if listed is not None:
                reader.problem(entries["in"][1], f"'in' needs at least one {name} value")
            return None
        items = listed
    values: list[str] = []
    for item in items:
        value = reader.choice(item, name, choices) if choices else reader.text(item, name)
        if value is None:
            return None
        if not choices and value != normalised_text(value):
            # The context fact holds the normalised text: any other spelling would never match.
            reader.problem(
                item,
                f"{name} '{value}' would never match: {name} is compared in lower case with _ between words; "
                f"write '{normalised_text(value)}'",
            )
            return None
        if name == "diagnosis" and vocabulary.sites and value not in vocabulary.sites:
            # The fact holds a site whenever the diagnosis names one: a rule naming anything else
            # (a typo, a synonym) would never match a patient whose diagnosis is that site.
            site = vocabulary.site_of(value)
            reader.problem(
                item,
                f"unknown diagnosis '{value}'; it means the site '{site}': write '{site}'"
                if site in vocabulary.sites
                else f"unknown diagnosis '{value}'{did_you_mean(value, tuple(vocabulary.sites))} Rules name a site "
                f"of catalogues/diagnoses.yaml ({', '.join(vocabulary.sites)}); a new site is added there first",
            )
            return None
        values.append(value)
    return values


def _read_then(reader: YamlReader, node: Node, catalogue: Catalogue) -> RuleOutcomeSpec | None:
    entries = reader.mapping(node, "'then'", optional=_THEN_KEYS)
    if entries is None:
        return None
    if not entries:
        reader.problem(node, f"'then' needs at least one of {', '.join(_THEN_KEYS)}")
        return None
    before = len(reader.problems)
    refer = [_read_referral(reader, n, catalogue) for n in _items(reader, entries, "refer")]
    offer = [_code(reader, n, catalogue, "intervention") for n in _items(reader, entries, "offer")]
    inform = [_code(reader, n, catalogue, "information") for n in _items(reader, entries, "inform")]
    avoid = [_read_not_recommended(reader, n, catalogue) for n in _items(reader, entries, "not_recommended")]
    if len(reader.problems) != before:
        return None
    return RuleOutcomeSpec(
        refer=tuple(r for r in refer if r),
        offer=tuple(c for c in offer if c),
        inform=tuple(c for c in inform if c),
        not_recommended=tuple(n for n in avoid if n),
    )


def _items(reader: YamlReader, entries: dict[str, tuple[Node, Node]], key: str) -> list[Node]:
    return reader.sequence_or_one(entries[key][1]) if key in entries else []


def _code(reader: YamlReader, node: Node, catalogue: Catalogue, kind: str | None) -> str | None:
    """An intervention code; ``kind`` (referral / intervention / information) when it must be one."""
    code = reader.text(node, "an intervention code")
    if code is None:
        return None
    found = catalogue.interventions.get(code)
    if found is None:
        reader.problem(node, f"unknown intervention '{code}'{did_you_mean(code, catalogue.interventions)}")
        return None
    if kind is not None and found.kind != kind:
        where = {"referral": "refer", "intervention": "offer", "information": "inform"}[found.kind]
        reader.problem(node, f"'{code}' is a catalogue {found.kind}, not {kind}; put it under '{where}'")
        return None
    return code


def _read_referral(reader: YamlReader, node: Node, catalogue: Catalogue) -> ReferralSpec | None:
    entries = reader.mapping(node, "a referral", ("intervention", "urgency"), ("service",))
    if entries is None or "intervention" not in entries or "urgency" not in entries:
        return None
    code = _code(reader, entries["intervention"][1], catalogue, "referral")
    urgency = reader.choice(entries["urgency"][1], "urgency", URGENCIES)
    service = catalogue.interventions[code].service if code else None
    if "service" in entries:
        service = reader.choice(entries["service"][1], "service type", tuple(sorted(catalogue.service_types)))
    if not (code and urgency and service):
        return None
    return ReferralSpec(code, service, urgency, reader.loc(node))


def _read_not_recommended(reader: YamlReader, node: Node, catalogue: Catalogue) -> NotRecommendedSpec | None:
    entries = reader.mapping(node, "a not_recommended entry", ("intervention", "reason"))
    if entries is None or "intervention" not in entries or "reason" not in entries:
        return None
    code = _code(reader, entries["intervention"][1], catalogue, None)
    reason = reader.text(entries["reason"][1], "reason")
    if not (code and reason):
        return None
    return NotRecommendedSpec(code, reason, reader.loc(node))


def _check_size(reader: YamlReader, node: Node, rules: list[Rule]) -> None:
    """Refuse a rule file the rules engine cannot hold as one rule set (:data:`MAX_RULESET_ALTERNATIVES`),
    naming the rules that take the most room."""
    sizes = {rule.id: len(alternatives(rule.when)) for rule in rules}
    total = sum(sizes.values())
    if total > MAX_RULESET_ALTERNATIVES:
        largest = ", ".join(f"{rule_id} ({n})" for rule_id, n in sorted(sizes.items(), key=lambda kv: -kv[1])[:3])
        reader.problem(
            node,
            f"the rules expand to {total} alternatives and one rule set holds at most {MAX_RULESET_ALTERNATIVES} "
            f"(the most: {largest}); simplify their conditions or move rules to a rule set of their own",
        )


def _check_complexity(reader: YamlReader, node: Node, when: Condition) -> None:

    count = len(alternatives(when, limit=MAX_ALTERNATIVES + 1))
    if count > MAX_ALTERNATIVES:
        reader.problem(node, f"the condition expands to more than {MAX_ALTERNATIVES} alternatives; split the rule")
