"""Lint of a diagram's structure: XSD, forms, gateways, service tasks, call activities, constructs.

Private to :mod:`engine.validation`, which lists the problem codes. Each function takes the author's
tree (never the prepared copy) so that lines are the author's lines.
"""

from __future__ import annotations

import copy
import difflib
from collections import defaultdict
from collections.abc import Collection
from typing import Any

from ._lint_expressions import LintContext, literal_name, owner_id
from .diagrams import BPMN_NS, CAMUNDA_NS, NSMAP, SPIFF_NS, Diagram, form_schema
from .errors import DiagramError, Problem

__all__ = [
    "KNOWN_OPERATORS",
    "RULES_OPERATOR",
    "lint_call_activities",
    "lint_forms",
    "lint_gateways",
    "lint_schema",
    "lint_service_tasks",
    "lint_unsupported",
]

RULES_OPERATOR = "carepath.rules"
# Service-task operators the engine runs; any other would leave the task STARTED forever.
KNOWN_OPERATORS = frozenset({RULES_OPERATOR})

_SHORT_NAMES = {f"{{{BPMN_NS}}}": "bpmn:", f"{{{SPIFF_NS}}}": "spiffworkflow:", f"{{{CAMUNDA_NS}}}": "camunda:"}


def _bpmn(tag: str) -> str:
    return f"{{{BPMN_NS}}}{tag}"


def _suggest(name: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def lint_schema(ctx: LintContext, tree: Any) -> list[Problem]:
    """Every XSD error of the author's XML, using SpiffWorkflow's own BPMN + spiffworkflow schema."""
    from SpiffWorkflow.spiff.parser.process import VALIDATOR

    checked = copy.deepcopy(tree)  # preprocess renames tags in place; deepcopy keeps source lines
    VALIDATOR.preprocess(checked)  # the same bpmn-js correlation fix-up the parser applies
    schema = VALIDATOR.validator
    # BpmnValidator.validate keeps only the last error; the schema's own log has all of them. The
    # schema object is process-wide, so validate and read its log without yielding in between.
    if schema.validate(checked):
        return []
    by_line: dict[int, Any] = {}
    for node in checked.getroot().iter():
        by_line.setdefault(node.sourceline, node)
    problems = []
    for error in schema.error_log:
        message = error.message
        for long, short in _SHORT_NAMES.items():
            message = message.replace(long, short)
        node = by_line.get(error.line)
        element = owner_id(node) if node is not None else None
        problems.append(Problem(f"XSD: {message}", file=ctx.display, line=error.line or None,
                                element=element, code="xsd"))  # fmt: skip
    return problems


def lint_forms(ctx: LintContext, diagram: Diagram) -> list[Problem]:
    """User tasks need a form the engine can show; named form files must exist and be JSON."""
    problems: list[Problem] = []
    for task in ctx.root.iter(_bpmn("userTask"), _bpmn("manualTask")):
        try:
            schema = form_schema(task, diagram)
        except DiagramError as exc:
            problems += exc.problems
            continue
        except (ValueError, TypeError) as exc:
            # diagrams.form_schema converts camunda:constraint config with int()/float().
            problems.append(ctx.problem("form-field", f"form constraint value is not a number: {exc}", task))
            continue
        form_key = task.get(f"{{{CAMUNDA_NS}}}formKey")
        if schema is not None:
            continue
        if form_key:
            problems.append(ctx.problem("form-missing", f"camunda:formKey {form_key!r} names a form CarePath "
                                        "cannot read: use generated form fields (camunda:formData) or a "
                                        "spiffworkflow formJsonSchemaFilename", task))  # fmt: skip
        elif task.tag == _bpmn("userTask"):
            problems.append(ctx.problem("form-missing", "user task has no form (camunda:formData fields or a "
                                        "spiffworkflow formJsonSchemaFilename property)", task))  # fmt: skip
    return problems


def lint_gateways(ctx: LintContext) -> list[Problem]:
    """Exclusive gateways need a default flow, and a condition on every other outgoing flow."""
    outgoing: dict[str, list[Any]] = defaultdict(list)
    for flow in ctx.root.iter(_bpmn("sequenceFlow")):
        outgoing[str(flow.get("sourceRef"))].append(flow)
    problems: list[Problem] = []
    for gateway in ctx.root.iter(_bpmn("exclusiveGateway")):
        flows = outgoing.get(str(gateway.get("id")), [])
        if len(flows) < 2:
            continue
        default = gateway.get("default")
        if not default:
            problems.append(ctx.problem("gateway-no-default", f"exclusive gateway has {len(flows)} outgoing "
                                        "flows and no default flow: if no condition holds, the pathway "
                                        "stops with an error", gateway))  # fmt: skip
        for flow in flows:
            condition = flow.find("bpmn:conditionExpression", NSMAP)
            if flow.get("id") != default and (condition is None or not (condition.text or "").strip()):
                problems.append(ctx.problem("condition-missing", f"flow out of exclusive gateway "
                                            f"{gateway.get('id')} has no condition and is not its default "
                                            "flow", flow))  # fmt: skip
    return problems


def lint_service_tasks(ctx: LintContext, known_rule_sets: Collection[str] | None) -> list[Problem]:
    """Service tasks must name a known operator; rules tasks a known rule set."""
    problems: list[Problem] = []
    for task in ctx.root.iter(_bpmn("serviceTask")):
        operator = task.find("bpmn:extensionElements/spiffworkflow:serviceTaskOperator", NSMAP)
        if operator is None:
            problems.append(ctx.problem("service-no-operator", "service task has no "
                                        "spiffworkflow:serviceTaskOperator, so it would do nothing", task))
            continue
        name = operator.get("id") or ""
        if name not in KNOWN_OPERATORS:
            problems.append(ctx.problem("unknown-operator", f"unknown service operator {name!r}; known: "
                                        f"{', '.join(sorted(KNOWN_OPERATORS))}", operator, element=task.get("id")))
            continue
        parameters = {p.get("id"): p for p in operator.iterfind("spiffworkflow:parameters/spiffworkflow:parameter",
                                                                 NSMAP)}  # fmt: skip
        for param in parameters.values():
            if param.get("value") is not None and param.get("type") is None:
                # SpiffWorkflow's parser reads the type attribute unconditionally (KeyError otherwise).
                problems.append(ctx.problem("service-parameter", f"parameter {param.get('id')!r} needs a "
                                            "type attribute", param, element=task.get("id")))  # fmt: skip
        problems += _rule_set_problems(ctx, task, operator, parameters.get("ruleset"), known_rule_sets)
    return problems


def _rule_set_problems(ctx: LintContext, task: Any, operator: Any, param: Any,
                       known: Collection[str] | None) -> list[Problem]:  # fmt: skip
    element = task.get("id")
    if param is None or not (param.get("value") or "").strip():
        return [ctx.problem("rule-set-missing", f"{RULES_OPERATOR} needs a 'ruleset' parameter naming the "
                            "rule set to evaluate", operator, element=element)]  # fmt: skip
    name = literal_name(param.get("value"))
    if name is None:
        return [ctx.problem("unknown-rule-set", "the 'ruleset' parameter must be a rule set name, such as "
                            f"\"breast_hna\", not the expression {param.get('value')!r}", param,
                            element=element)]  # fmt: skip
    if known is not None and name not in known:
        listed = ", ".join(sorted(known)) or "none"
        return [ctx.problem("unknown-rule-set", f"unknown rule set {name!r}{_suggest(name, known)}; known: "
                            f"{listed}", param, element=element)]  # fmt: skip
    return []


_UNSUPPORTED = {
    _bpmn("complexGateway"): "complex gateways are not supported by SpiffWorkflow: use an exclusive, "
    "inclusive or parallel gateway",
    _bpmn("linkEventDefinition"): "link events are not supported by SpiffWorkflow: draw the sequence flow "
    "instead",
    _bpmn("compensateEventDefinition"): "compensation is not supported by SpiffWorkflow: model the undo "
    "steps as ordinary tasks",
}


def lint_unsupported(ctx: LintContext) -> list[Problem]:
    """Constructs SpiffWorkflow 3.2 cannot run (LIBRARY_NOTES), reported before its parser does."""
    problems = [ctx.problem("unsupported", message, node)
                for node in ctx.root.iter(*_UNSUPPORTED) for message in [_UNSUPPORTED[node.tag]]]  # fmt: skip
    for node in ctx.root.iter():
        if node.get("isForCompensation") == "true":
            problems.append(ctx.problem("unsupported", "compensation activities are not supported by "
                                        "SpiffWorkflow: model the undo steps as ordinary tasks", node))  # fmt: skip
    return problems


def lint_call_activities(ctx: LintContext, known_processes: Collection[str]) -> list[Problem]:
    """Every call activity must call a process defined by some diagram (inputs or library)."""
    problems: list[Problem] = []
    for call in ctx.root.iter(_bpmn("callActivity")):
        called = (call.get("calledElement") or "").strip()
        if not called:
            problems.append(ctx.problem("unresolved-call", "call activity does not name the process it "
                                        "calls (calledElement is empty)", call))  # fmt: skip
        elif called not in known_processes:
            problems.append(ctx.problem("unresolved-call", f"call activity calls {called!r}, which no diagram "
                                        f"defines{_suggest(called, known_processes)}", call))  # fmt: skip
    return problems
