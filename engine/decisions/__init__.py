"""Decision tables (DMN): reading them as modellers draw them, evaluating them safely, recording each
evaluation.

A business rule task names a decision (``camunda:decisionRef``, or SpiffWorkflow's
``spiffworkflow:calledDecisionId``) in a ``.dmn`` file of the pathway's bundle, drawn in Camunda
Modeler or bpmn.io (DMN 1.1, 1.2, 1.3). SpiffWorkflow would evaluate every cell with Python ``eval``
and knows only the UNIQUE and COLLECT hit policies (UNIQUE silently returning the first match);
CarePath never lets it: :func:`read_decisions` translates each cell from the FEEL that authors write
into the safe expression language (:mod:`engine.expressions`) when the pathway is validated and
deployed -- refusing anything else with ``file:line: decision-id: message`` -- and
:func:`evaluate_decision` runs the translated table with the hit policies' defined semantics
(UNIQUE, FIRST, PRIORITY, ANY, COLLECT with SUM/MIN/MAX/COUNT, RULE ORDER, OUTPUT ORDER). Each
evaluation is stored (:mod:`engine.decisions.store`) with its inputs, the matched rule ids, the
outputs and the table's version, and can be explained rule by rule.

Owns: the ``decision_evaluations`` table's writes and reads.

May import: ``engine.expressions`` (to check and run cells), ``engine.db`` and the shared modules,
lxml. Never ``pathways`` or ``instances`` (they import this package).
"""

from __future__ import annotations

from engine.decisions.evaluate import DecisionOutcome, evaluate_decision
from engine.decisions.explain import DecisionExplanation, RuleVerdict, explain_decision
from engine.decisions.store import (
    StoredDecisionEvaluation,
    get_decision_evaluation,
    list_decision_evaluations,
    record_decision_evaluation,
)
from engine.decisions.table import (
    DECISION_PROPERTY,
    DecisionTable,
    decision_ids,
    read_decisions,
    table_from_json,
    translate_unary_tests,
)

__all__ = [
    "DECISION_PROPERTY",
    "DecisionExplanation",
    "DecisionOutcome",
    "DecisionTable",
    "RuleVerdict",
    "StoredDecisionEvaluation",
    "decision_ids",
    "evaluate_decision",
    "explain_decision",
    "get_decision_evaluation",
    "list_decision_evaluations",
    "read_decisions",
    "record_decision_evaluation",
    "table_from_json",
    "translate_unary_tests",
]
