"""Why a care plan item was proposed, in the reader's words: "you scored worry, fear or anxiety 8 out of 10".

A stored rule evaluation says which rules fired and which facts each matched (engine.rules.store).
The concerns a firing matched give "you scored <concern> <score> out of 10"; the context tests of the
way the rule held (one alternative of its condition, engine.rules.compiler) give "you live alone",
"your journey to the treatment centre takes 95 minutes". The wording is in the locale files
(``reasons``); a context field they do not know yet is shown as its name and value, never dropped.
The rule ids, the evaluation and the rule-set version stay in the document for clinicians and
auditors (``why``); these sentences are for the patient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from engine.rules.compiler import Alternative, alternatives
from engine.rules.explain import leaf_holds
from engine.rules.model import RuleFile

__all__ = ["plain_reasons"]

Fact = dict[str, Any]
# (group, code) -> label in the document's language (build._Labels.of)
Label = Callable[[str, Any], str]


def plain_reasons(
    rule_ids: Sequence[str],
    firings: Sequence[dict[str, Any]],
    facts: Sequence[Fact],
    rule_file: RuleFile | None,
    phrases: dict[str, Any],
    concern_name: Callable[[str], str],
    label: Label,
) -> list[dict[str, Any]]:
    """The reasons for an item proposed by ``rule_ids``, from the evaluation's ``firings`` (stored
    ``{"rule", "matched"}``) and ``facts``: each concern once (its highest score first), then each
    context fact once. ``rule_file`` is the rule-set version evaluated (None when this process cannot
    load it: the concerns alone are given)."""
    by_id = {f.get("id"): f for f in facts}
    context = next((f for f in facts if f.get("t") == "context"), {})
    concerns: dict[str, Fact] = {}
    fields: dict[str, Any] = {}
    for firing in firings:
        if firing.get("rule") not in rule_ids:
            continue
        matched = [by_id[i] for i in firing.get("matched", []) if i in by_id]
        for fact in matched:
            if fact.get("t") == "concern" and fact.get("code") not in concerns:
                concerns[fact["code"]] = fact
        for leaf in _context_tests(rule_file, firing["rule"], matched, context):
            fields.setdefault(leaf, context.get(leaf))
    reasons = [
        _concern_reason(f, phrases, concern_name)
        for f in sorted(concerns.values(), key=lambda f: (-int(f.get("score") or 0), f["code"]))
    ]
    reasons += [_context_reason(name, value, phrases, label) for name, value in fields.items()]
    return reasons


def _context_tests(rule_file: RuleFile | None, rule_id: str, matched: list[Fact], context: Fact) -> list[str]:
    """The context fields tested by the alternative of the rule's condition that held for these facts."""
    if rule_file is None:
        return []
    try:
        rule = rule_file.rule(rule_id)
    except KeyError:
        return []
    concerns = [f for f in matched if f.get("t") == "concern"]
    for alternative in alternatives(rule.when, limit=256):
        if _held(alternative, concerns, context):
            return [leaf.field for leaf in alternative.context]
    return []


def _held(alternative: Alternative, concerns: list[Fact], context: Fact) -> bool:
    if not all(leaf_holds(leaf, context) for leaf in alternative.context):
        return False
    return all(any(leaf_holds(leaf, fact) for fact in concerns) for leaf in alternative.concerns)


def _concern_reason(fact: Fact, phrases: dict[str, Any], concern_name: Callable[[str], str]) -> dict[str, Any]:
    name = concern_name(fact["code"])
    text = phrases["concern"].format(concern=_lower_first(name), score=fact.get("score"))
    return {"kind": "concern", "code": fact["code"], "score": fact.get("score"), "text": text}


def _context_reason(name: str, value: Any, phrases: dict[str, Any], label: Label) -> dict[str, Any]:
    phrase = phrases["context"].get(name)
    if isinstance(phrase, dict):  # yes/no and choice fields: one sentence per value
        text = phrase.get(str(value).lower() if isinstance(value, bool) else str(value))
    elif isinstance(phrase, str):
        text = phrase.format(value=value, label=label(name, value))
    else:
        text = None
    if text is None:  # a field the locale does not know yet: its name and value, readably
        shown = phrases["yes"] if value is True else phrases["no"] if value is False else label(name, value)
        text = phrases["fallback"].format(field=name.replace("_", " ").capitalize(), value=shown)
    return {"kind": "context", "field": name, "value": value, "text": text}


def _lower_first(name: str) -> str:
    """ "Worry, fear or anxiety" -> "worry, fear or anxiety"; an acronym ("HPV") stays."""
    if len(name) > 1 and name[1].isupper():
        return name
    return name[:1].lower() + name[1:]
