"""Needs-to-interventions rules: YAML rule files evaluated on durable-rules, explainable.

The public surface. Typical use (what a pathway task does)::

    registry = RuleSetRegistry(settings.rules_dir)
    assessment = Assessment.from_dict(task_data)          # {"concerns": {...}, "context": {...}}
    evaluation = evaluate_and_record(session, registry, "supportive_care", assessment,
                                     clock=clock, instance_id=instance.id, task_id=task_id)
    evaluation.id, evaluation.outcomes.referrals           # the caller commits the session

See ``docs/rules.md`` for the rule format.

Four eyes: evaluations in pathways use a rule set's active version, recorded in the database and
activated by a second author (``activation``); ``rules test`` reads the folder's text.

May import: durable-rules, PyYAML, ``engine.db`` (evaluations and rule versions are stored),
``engine.four_eyes`` (who may activate a version) and the shared modules. Never ``instances`` or
``pathways``: a pathway calls rules through a care plan operator.
"""

from engine.rules.activation import RuleSetActivations, RuleSetVersionInfo, active_ruleset
from engine.rules.assessment import Assessment, Firing, Outcomes, PatientContext, ResolvedItem, ResolvedReferral
from engine.rules.catalogue import Catalogue, load_catalogue
from engine.rules.compiler import CompiledRuleset, build_facts, compile_rule_file
from engine.rules.evaluator import ENGINE_LOCK, Evaluation, RulesHost, evaluate, resolve_outcomes
from engine.rules.explain import (
    WhyExplanation,
    WhyNotExplanation,
    explain_evaluation,
    explain_why,
    explain_why_not,
    rule_fires,
)
from engine.rules.loader import load_rule_file, parse_rule_text
from engine.rules.model import Rule, RuleFile
from engine.rules.registry import LoadedRuleset, RuleSetRegistry
from engine.rules.simulate import CohortModel, SimulationReport, simulate, synthetic_assessments
from engine.rules.store import (
    RuleEvaluationRecord,
    RuleVersionRecord,
    StoredEvaluation,
    evaluate_and_record,
    get_evaluation,
    list_evaluations,
    record_evaluation,
)
from engine.rules.testing import RuleTestReport, load_cases, run_rule_tests
from engine.rules.trends import AssessedConcerns, ConcernTrends, concern_trends, deteriorated, latest_scores

__all__ = [
    "ENGINE_LOCK",
    "AssessedConcerns",
    "Assessment",
    "Catalogue",
    "CohortModel",
    "CompiledRuleset",
    "ConcernTrends",
    "Evaluation",
    "Firing",
    "LoadedRuleset",
    "Outcomes",
    "PatientContext",
    "ResolvedItem",
    "ResolvedReferral",
    "Rule",
    "RuleEvaluationRecord",
    "RuleFile",
    "RuleSetActivations",
    "RuleSetRegistry",
    "RuleSetVersionInfo",
    "RuleTestReport",
    "RuleVersionRecord",
    "RulesHost",
    "SimulationReport",
    "StoredEvaluation",
    "WhyExplanation",
    "WhyNotExplanation",
    "active_ruleset",
    "build_facts",
    "compile_rule_file",
    "concern_trends",
    "deteriorated",
    "evaluate",
    "evaluate_and_record",
    "explain_evaluation",
    "explain_why",
    "explain_why_not",
    "get_evaluation",
    "latest_scores",
    "list_evaluations",
    "load_cases",
    "load_catalogue",
    "load_rule_file",
    "parse_rule_text",
    "record_evaluation",
    "resolve_outcomes",
    "rule_fires",
    "run_rule_tests",
    "simulate",
    "synthetic_assessments",
]
