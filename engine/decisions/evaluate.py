"""Evaluating a translated decision table against task data, with each hit policy's semantics.

=============  ====================================================================================
UNIQUE         at most one rule may match; two or more is an error (an incident on the instance)
FIRST          the first matching rule, in table order
PRIORITY       the matching rule whose outputs come first in the output values lists
ANY            any matching rule: all must give the same outputs, else an error
COLLECT        every matching rule's outputs, in table order, as a list per output; with SUM, MIN,
               MAX (numbers; null when nothing matched) or COUNT (how many matched), one value
RULE ORDER     as COLLECT without aggregation
OUTPUT ORDER   as RULE ORDER, sorted by the output values lists
=============  ====================================================================================

A single-result policy with no matching rule sets each output to null. Every cell runs in the safe
expression language's environment (bounded); nothing is given to ``eval``. Error messages name
the decision and rule ids, never a value.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.decisions.table import CELL, DecisionTable, Rule
from engine.errors import Problem, WorkflowError

__all__ = ["MAX_DECISION_SECONDS", "DecisionOutcome", "Environment", "evaluate_decision"]

_SINGLE = ("UNIQUE", "FIRST", "PRIORITY", "ANY")
MAX_DECISION_SECONDS = 1.0  # a clinical table of a few hundred rules takes milliseconds


class Environment(Protocol):
    """The safe expression environment (``engine.expressions.SafeEnvironment``)."""

    def evaluate(self, expression: str, context: dict[str, Any],
                 external_context: dict[str, Any] | None = None) -> Any: ...  # fmt: skip


@dataclass(frozen=True)
class DecisionOutcome:
    """One evaluation: the inputs' values, the matched rules (table order), the outputs set, and for
    each rule that did not match the position of the first input entry that did not hold."""

    table: DecisionTable
    inputs: list[dict[str, Any]]  # {"id", "label", "value"} per input column
    matched: list[str]
    outputs: dict[str, Any]
    misses: dict[str, int] = field(default_factory=dict)


def _refuse(table: DecisionTable, message: str) -> WorkflowError:
    # No element: the incident is located at the business rule task that was running.
    text = f"decision {table.decision_id}: {message}"
    return WorkflowError(text, [Problem(text, code="decision-failed")])


def _first_miss(rule: Rule, values: list[Any], data: dict[str, Any], environment: Environment) -> int | None:
    for index, test in enumerate(rule.tests):
        if test is not None and environment.evaluate(test, data, {CELL: values[index]}) is not True:
            return index
    return None


def _rule_outputs(table: DecisionTable, rule: Rule, data: dict[str, Any], environment: Environment) -> dict[str, Any]:
    outputs = {
        column.name: None if expression is None else environment.evaluate(expression, data)
        for column, expression in zip(table.outputs, rule.outputs, strict=True)
    }
    try:  # task data and the evaluation record are JSON: a set or a tuple would not come back as it went in
        return dict(json.loads(json.dumps(outputs, allow_nan=False)))
    except (TypeError, ValueError):
        raise _refuse(
            table, f"rule {rule.id} gives an output task data cannot hold (a set, or not a finite number)"
        ) from None


def _priority(table: DecisionTable, outputs: dict[str, Any]) -> tuple[int, ...]:
    def rank(values: tuple[Any, ...], value: Any) -> int:
        return values.index(value) if value in values else len(values)

    return tuple(rank(column.priorities, outputs[column.name]) for column in table.outputs)


def evaluate_decision(
    table: DecisionTable, data: dict[str, Any], environment: Environment, *, max_seconds: float = MAX_DECISION_SECONDS
) -> DecisionOutcome:
    """Evaluate ``table`` against task ``data`` (unchanged). Each cell is bounded by the
    environment; the whole table by ``max_seconds`` (checked after each rule), so a table of many
    rules cannot hold a request.

    Raises:
        ExpressionError: a cell failed while running (unknown variable, types, limits).
        WorkflowError: the hit policy was broken (UNIQUE with several matches, ANY with differing
            outputs), an aggregation met values it cannot add or compare, or the table ran past
            ``max_seconds``.
    """
    deadline = time.monotonic() + max_seconds
    values = [environment.evaluate(column.expression, data) for column in table.inputs]
    inputs = [{"id": c.id, "label": c.label, "value": v} for c, v in zip(table.inputs, values, strict=True)]
    matched: list[Rule] = []
    misses: dict[str, int] = {}
    for rule in table.rules:
        if time.monotonic() > deadline:
            raise _refuse(table, f"the table ran longer than {max_seconds:g} s (rule {rule.row} of {len(table.rules)})")
        miss = _first_miss(rule, values, data, environment)
        if miss is not None:
            misses[rule.id] = miss
            continue
        matched.append(rule)
        if table.hit_policy == "FIRST":
            break
    results = [_rule_outputs(table, rule, data, environment) for rule in matched]
    outcome = _combine(table, matched, results)
    return DecisionOutcome(table, inputs, [rule.id for rule in matched], outcome, misses)


def _combine(table: DecisionTable, matched: list[Rule], results: list[dict[str, Any]]) -> dict[str, Any]:
    policy = table.hit_policy
    if policy in _SINGLE:
        if not results:
            return {column.name: None for column in table.outputs}
        if policy == "UNIQUE" and len(results) > 1:
            raise _refuse(
                table, f"hit policy UNIQUE, but {len(results)} rules match: {', '.join(rule.id for rule in matched)}"
            )
        if policy == "ANY" and any(result != results[0] for result in results):
            raise _refuse(
                table,
                "hit policy ANY, but the matching rules give different outputs: "
                f"{', '.join(rule.id for rule in matched)}",
            )
        if policy == "PRIORITY":
            return min(results, key=lambda result: _priority(table, result))
        return results[0]
    if policy == "OUTPUT ORDER":
        results = sorted(results, key=lambda result: _priority(table, result))
    if table.aggregation is not None:
        return {table.outputs[0].name: _aggregate(table, [next(iter(r.values())) for r in results])}
    return {column.name: [result[column.name] for result in results] for column in table.outputs}


def _aggregate(table: DecisionTable, values: list[Any]) -> Any:
    if table.aggregation == "COUNT":
        return len(values)
    if not values:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise _refuse(table, f"aggregation {table.aggregation} needs numbers from every matching rule")
    if table.aggregation == "SUM":
        return sum(values)
    return min(values) if table.aggregation == "MIN" else max(values)
