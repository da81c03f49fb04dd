"""Why a stored decision evaluation gave its outputs: rule by rule, from the table it used.

For each rule, in table order: matched (and what it output), not matched (the first input entry
that did not hold, with the input's value as evaluated), or not evaluated (FIRST stops at the first
match). The table is read again from the ``.dmn`` file of the pathway version the instance ran,
whose SHA-256 must be the evaluation's ``table_version``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from engine.decisions.store import StoredDecisionEvaluation
from engine.decisions.table import read_decisions
from engine.errors import NotFoundError

__all__ = ["DecisionExplanation", "RuleVerdict", "explain_decision"]


@dataclass(frozen=True)
class RuleVerdict:
    rule: str
    row: int
    verdict: str  # "matched" | "not matched" | "not evaluated"
    entries: list[str]  # the author's input entries
    failed_input: str | None  # the label of the first input entry that did not hold
    outputs: list[str]  # the author's output entries


@dataclass(frozen=True)
class DecisionExplanation:
    decision: str
    hit_policy: str
    table_version: str
    file: str
    rules: list[RuleVerdict]
    text: str


def explain_decision(stored: StoredDecisionEvaluation, dmn_content: bytes) -> DecisionExplanation:
    """Explain ``stored`` with the table in ``dmn_content`` (the file it was evaluated with).

    Raises:
        NotFoundError: the content is not the table version evaluated, or lacks the decision.
    """
    tables, _ = read_decisions(dmn_content, stored.file)
    table = tables.get(stored.decision_id)
    if table is None or table.digest != stored.table_version:
        raise NotFoundError(f"the decision table of evaluation {stored.id} is not in its pathway version")
    values = {item["label"]: item["value"] for item in stored.inputs}
    verdicts, lines = (
        [],
        [
            f"Decision {table.decision_id} ({table.name}), hit policy {stored.hit_policy}, "
            f"table {table.file} version {table.digest[:12]}."
        ],
    )
    lines += [f"Input {label} = {json.dumps(value)}" for label, value in values.items()]
    matched = set(stored.matched)
    for rule in table.rules:
        outputs = [
            f"{column.name} = {text if text is not None else 'null'}"
            for column, text in zip(table.outputs, rule.outputs, strict=True)
        ]
        failed = stored.misses.get(rule.id)
        if rule.id in matched:
            verdict, why = "matched", "matched: " + ", ".join(outputs)
        elif failed is not None:
            label = table.inputs[failed].label
            verdict = "not matched"
            why = f"not matched: {label} is {json.dumps(values.get(label))}, the entry says {rule.texts[failed]}"
        else:
            verdict, why = "not evaluated", "not evaluated (hit policy FIRST stops at the first match)"
        verdicts.append(
            RuleVerdict(
                rule.id,
                rule.row,
                verdict,
                list(rule.texts),
                None if failed is None else table.inputs[failed].label,
                outputs,
            )
        )
        lines.append(f"Rule {rule.row} ({rule.id}): {why}")
    lines.append("Outputs: " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in stored.outputs.items()))
    return DecisionExplanation(
        table.decision_id, stored.hit_policy, table.digest, table.file, verdicts, "\n".join(lines)
    )
