"""Lint of a diagram's structure: XSD, forms, gateways, service tasks, call activities, constructs.

Private to :mod:`engine.pathways.validation`, which lists the problem codes. Each function takes the author's
tree (never the prepared copy) so that lines are the author's lines.
"""

from __future__ import annotations

import ast
import copy
import difflib
import re
from collections import defaultdict
from collections.abc import Collection
from typing import Any

import jsonschema

from engine.errors import ERROR, WARNING, DiagramError, Problem
from engine.expressions import ALLOWED_FUNCTIONS
from engine.pathways.diagrams import (
    ACTIVITIES,
    BPMN_NS,
    CAMUNDA_NS,
    FLOW_NODES,
    FORM_FILE_PROPERTY,
    NSMAP,
    SCOPES,
    SPIFF_NS,
    Diagram,
    business_rule_tasks,
    decision_table,
    drop_layout_extras,
    form_schema,
    juel_to_python,
    process_is_executable,
)
from engine.pathways.sources import XSD_LOCK
from engine.pathways.validation.lint_text import PYTHON_FORMATS, LintContext, literal_name, owner_id
from engine.spiff.form_keywords import keyword_mistakes

__all__ = [
    "KNOWN_OPERATORS",
    "RULES_OPERATOR",
    "call_graph",
    "lint_call_activities",
    "lint_call_cycles",
    "lint_executable",
    "lint_flow_references",
    "lint_forms",
    "lint_identifiers",
    "lint_gateways",
    "lint_schema",
    "lint_service_tasks",
    "lint_unconnected",
    "lint_unset_names",
    "provided_names",
    "lint_unsupported",
]

RULES_OPERATOR = "carepath.rules"
CAREPLAN_OPERATOR = "carepath.careplan"
REFERRALS_OPERATOR = "carepath.referrals"
# Service-task operators the engine runs (engine.careplan.service.care_plan_operators; a test keeps the
# two in step); any other would fail at run time.
KNOWN_OPERATORS = frozenset(
    {
        RULES_OPERATOR,
        CAREPLAN_OPERATOR,
        REFERRALS_OPERATOR,
        "carepath.patient_status",
        "carepath.warning_sign",
        "carepath.reassessment",
        "carepath.end_of_treatment_summary",
        "carepath.health_system",
    }
)

# Form field keys: they name a field in the task's data, the web form's HTML and JSON pointers.
FIELD_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_FIELD_KEY = 64

_SHORT_NAMES = {
    f"{{{BPMN_NS}}}": "bpmn:",
    f"{{{SPIFF_NS}}}": "spiffworkflow:",
    f"{{{CAMUNDA_NS}}}": "camunda:",
}


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
    drop_layout_extras(checked)  # as diagrams.prepare_for_engine drops them for the engine
    schema = VALIDATOR.validator
    # BpmnValidator.validate keeps only the last error; the schema's own log has all of them. The
    # schema object (and its log) is process-wide: validate and copy the log under the lock.
    with XSD_LOCK:
        if schema.validate(checked):
            return []
        errors = list(schema.error_log)
    by_line: dict[int, Any] = {}
    for node in checked.getroot().iter():
        by_line.setdefault(node.sourceline, node)
    problems = []
    for error in errors:
        message = error.message
        for long, short in _SHORT_NAMES.items():
            message = message.replace(long, short)
        node = by_line.get(error.line)
        element = owner_id(node) if node is not None else None
        problems.append(
            Problem(f"XSD: {message}", file=ctx.display, line=error.line or None, element=element, code="xsd")
        )
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
        if schema is not None:
            problems += _field_key_problems(ctx, task, schema)
            problems += _form_schema_problems(ctx, task, schema)
            continue
        form_key = task.get(f"{{{CAMUNDA_NS}}}formKey")
        if task.tag != _bpmn("userTask"):
            continue
        # Run as a confirmation step (diagrams.CONFIRMATION_FORM): the clinician confirms, nothing is recorded.
        if form_key:
            message = (
                f"camunda:formKey {form_key!r} names a form CarePath cannot read, so the task is a "
                "confirmation step that accepts no data; for a form use generated form fields "
                "(camunda:formData) or a spiffworkflow formJsonSchemaFilename"
            )
        else:
            message = (
                "user task has no form, so it is a confirmation step that accepts no data (for a form: "
                "camunda:formData fields or a spiffworkflow formJsonSchemaFilename property)"
            )
        problems.append(ctx.problem("form-missing", message, task, severity=WARNING))
    return problems


def _field_key_problems(ctx: LintContext, task: Any, schema: dict[str, Any]) -> list[Problem]:
    """A problem per form field key (a JSON Schema property, nested ones too, or a camunda:formField id)
    that is not an identifier: the key names the field in the task's data, in the web form's HTML
    (``name``, ``id``) and in JSON pointers, so a quote, space or slash in it is refused here."""
    form_file = task.find(
        f"bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property[@name='{FORM_FILE_PROPERTY}']", NSMAP
    )
    where = f" in form schema {form_file.get('value')}" if form_file is not None and form_file.get("value") else ""
    lines = {
        str(f.get("id")): f.sourceline
        for f in task.iterfind("bpmn:extensionElements/camunda:formData/camunda:formField", NSMAP)
    }
    problems: list[Problem] = []
    pending: list[tuple[str, Any]] = [("", schema)]
    while pending:  # no recursion: a schema may nest as deep as JSON allows
        pointer, node = pending.pop()
        properties = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(properties, dict):
            continue
        for key, sub in properties.items():
            shown = _shown_key(str(key))
            if FIELD_KEY.fullmatch(str(key)) and len(str(key)) <= MAX_FIELD_KEY:
                pending.append((f"{pointer}/{key}", sub))
                continue
            problems.append(
                Problem(
                    f"form field key {shown!r}{where} is not an identifier: use letters, digits and _ "
                    f"(not starting with a digit), at most {MAX_FIELD_KEY} characters",
                    file=ctx.display,
                    line=(lines.get(str(key)) if not where else None) or task.sourceline,
                    element=task.get("id"),
                    field=f"{pointer}/{shown}",
                    code="form-field",
                )
            )
    return problems


def _form_file(task: Any) -> str | None:
    node = task.find(
        f"bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property[@name='{FORM_FILE_PROPERTY}']", NSMAP
    )
    return str(node.get("value")) if node is not None and node.get("value") else None


# Rules of an object schema that admit fields beyond its properties.
_OWN_FIELD_RULES = ("additionalProperties", "patternProperties", "unevaluatedProperties")


def _form_schema_problems(ctx: LintContext, task: Any, schema: dict[str, Any]) -> list[Problem]:
    """A form must be a valid JSON Schema (draft 2020-12, as engine.instances.forms checks data with
    it): ``"type": "integr"`` passed the gate and stopped the task at run time (UnknownType). And a
    ``required`` field must be one of its ``properties`` where no other field is accepted: the task
    could never be completed (the field is required, and refused when sent)."""
    file = _form_file(task)
    shown = f"form schema {file}" if file else "the form"
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/" + "/".join(str(p) for p in exc.absolute_path)
        why = exc.message if len(exc.message) <= 200 else exc.message[:200] + "..."
        message = f"{shown} is not a valid JSON Schema (draft 2020-12) at {where}: {why}"
        if exc.absolute_path and exc.absolute_path[-1] == "type":
            message += " (a type is one of: string, integer, number, boolean, object, array, null)"
        return [ctx.problem("form-schema", message, task)]
    except RecursionError:
        return [ctx.problem("form-schema", f"{shown} nests too deeply", task)]
    problems: list[Problem] = [
        ctx.problem("form-schema", f"{shown} at {mistake}", task) for mistake in keyword_mistakes(schema)
    ]
    pending: list[tuple[str, Any, bool]] = [("", schema, True)]
    while pending:  # no recursion: a schema may nest as deep as JSON allows
        pointer, node, top = pending.pop()
        if not isinstance(node, dict):
            continue
        properties = node.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        pending += [(f"{pointer}/properties/{key}", sub, False) for key, sub in properties.items()]
        required = node.get("required")
        if top and isinstance(required, list):
            # A read-only field shows what the task holds: the web page never sends it, so requiring it
            # would leave the task impossible to complete there (and an API client must echo it unchanged).
            for name in required:
                field = properties.get(name) if isinstance(name, str) else None
                if isinstance(field, dict) and field.get("readOnly") is True:
                    problems.append(
                        ctx.problem(
                            "form-schema",
                            f"{shown} requires {_shown_key(name)!r}, which it marks readOnly: a read-only field shows "
                            "what the task holds and the web page never sends it, so the task could not be completed "
                            "there (leave it out of required)",
                            task,
                        )
                    )
        # The task refuses any field its form does not declare (engine.instances.forms), unless the
        # form has a rule of its own for other fields; a nested object only with additionalProperties false.
        closed = (
            not any(rule in node for rule in _OWN_FIELD_RULES)
            if top
            else node.get("additionalProperties") is False and "patternProperties" not in node
        )
        if not closed or not isinstance(required, list):
            continue
        for name in required:
            if isinstance(name, str) and name not in properties:
                problems.append(
                    ctx.problem(
                        "form-schema",
                        f"{shown} requires {_shown_key(name)!r}{' at ' + pointer if pointer else ''}, which is "
                        f"not one of its properties{_suggest(name, properties)}: the task could never be completed",
                        task,
                    )
                )
    return problems


def _shown_key(key: str) -> str:
    """A key as a problem may show it: short, and without control characters."""
    short = key if len(key) <= 40 else key[:40] + "..."
    return short if short.isprintable() else repr(short)[1:-1]


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
        unconditioned = [f for f in flows if f.get("id") != default and not _has_condition(f)]
        if not default:
            # Conditions on every flow: the author may have covered every case (a warning); a flow
            # without one as well could never be taken (an error, with condition-missing).
            problems.append(
                ctx.problem(
                    "gateway-no-default",
                    f"exclusive gateway has {len(flows)} outgoing flows and no default flow: if no "
                    "condition holds, the pathway stops with an incident",
                    gateway,
                    severity=WARNING if not unconditioned else ERROR,
                )
            )
        for flow in unconditioned:
            problems.append(
                ctx.problem(
                    "condition-missing",
                    f"flow out of exclusive gateway {gateway.get('id')} has no condition and is not its default flow",
                    flow,
                )
            )
    return problems


def _has_condition(flow: Any) -> bool:
    condition = flow.find("bpmn:conditionExpression", NSMAP)
    return condition is not None and bool((condition.text or "").strip())


def lint_service_tasks(
    ctx: LintContext, known_rule_sets: Collection[str] | None, known_operators: Collection[str] = KNOWN_OPERATORS
) -> list[Problem]:
    """Service tasks must name an operator (one this server does not run is a warning: a deployment
    may register its own, and a task calling a missing one stops with an incident naming it); rules
    tasks must name a known rule set."""
    problems: list[Problem] = []
    for task in ctx.root.iter(_bpmn("serviceTask")):
        operator = task.find("bpmn:extensionElements/spiffworkflow:serviceTaskOperator", NSMAP)
        if operator is None:
            problems.append(ctx.problem("service-no-operator", _no_operator(task), task))
            continue
        name = operator.get("id") or ""
        if name not in known_operators:
            problems.append(
                ctx.problem(
                    "unknown-operator",
                    f"unknown service operator {name!r}{_suggest(name, known_operators)}; known: "
                    f"{', '.join(sorted(known_operators))} (the task stops with an incident unless the "
                    "server registers it)",
                    operator,
                    element=task.get("id"),
                    severity=WARNING,
                )
            )
        parameters = {
            p.get("id"): p for p in operator.iterfind("spiffworkflow:parameters/spiffworkflow:parameter", NSMAP)
        }
        for param in parameters.values():
            if param.get("value") is not None and param.get("type") is None:
                # SpiffWorkflow's parser reads the type attribute unconditionally (KeyError otherwise).
                problems.append(
                    ctx.problem(
                        "service-parameter",
                        f"parameter {param.get('id')!r} needs a type attribute",
                        param,
                        element=task.get("id"),
                    )
                )
        if name == RULES_OPERATOR:
            problems += _rule_set_problems(ctx, task, operator, parameters.get("ruleset"), known_rule_sets)
    return problems


_JAVA = {
    "class": "a Java class",
    "delegateExpression": "a Java delegate expression",
    "expression": "a Java (JUEL) expression",
}


# Camunda Modeler before 3.0 (and Activiti) wrote Camunda 7's extensions in this namespace.
_CAMUNDA_NAMESPACES = (CAMUNDA_NS, "http://activiti.org/bpmn")
_ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"  # Camunda 8


def _no_operator(task: Any) -> str:
    """Why a service task without a CarePath operator would do nothing, naming what it has instead."""
    use = "use a spiffworkflow:serviceTaskOperator (carepath.rules, carepath.careplan, ...)"
    for namespace in _CAMUNDA_NAMESPACES:
        for attribute, what in _JAVA.items():
            if task.get(f"{{{namespace}}}{attribute}"):
                return f"service task runs {what} (camunda:{attribute}), and CarePath runs no Java: {use}"
        if task.get(f"{{{namespace}}}type") == "external":
            return (
                f'service task is a Camunda external task (camunda:type="external"), which CarePath does not run: {use}'
            )
        if task.find(f"bpmn:extensionElements/{{{namespace}}}connector", NSMAP) is not None:
            return f"service task uses a Camunda connector, which CarePath does not run: {use}"
    if task.find(f"bpmn:extensionElements/{{{_ZEEBE_NS}}}taskDefinition", NSMAP) is not None:
        return f"service task is a Camunda 8 job (zeebe:taskDefinition) for a worker CarePath does not run: {use}"
    return "service task has no spiffworkflow:serviceTaskOperator, so it would do nothing"


def _rule_set_problems(
    ctx: LintContext, task: Any, operator: Any, param: Any, known: Collection[str] | None
) -> list[Problem]:
    element = task.get("id")
    if param is None or not (param.get("value") or "").strip():
        return [
            ctx.problem(
                "rule-set-missing",
                f"{RULES_OPERATOR} needs a 'ruleset' parameter naming the rule set to evaluate",
                operator,
                element=element,
            )
        ]
    name = literal_name(param.get("value"))
    if name is None:
        return [
            ctx.problem(
                "unknown-rule-set",
                "the 'ruleset' parameter must be a rule set name, such as "
                f'"breast_hna", not the expression {param.get("value")!r}',
                param,
                element=element,
            )
        ]
    if known is not None and name not in known:
        listed = ", ".join(sorted(known)) or "none"
        return [
            ctx.problem(
                "unknown-rule-set",
                f"unknown rule set {name!r}{_suggest(name, known)}; known: {listed}",
                param,
                element=element,
            )
        ]
    return []


_NOT_SUPPORTED = "not supported by SpiffWorkflow"
_UNSUPPORTED = {
    _bpmn("complexGateway"): f"complex gateways are {_NOT_SUPPORTED}: use an exclusive, inclusive or parallel gateway",
    _bpmn("linkEventDefinition"): f"link events are {_NOT_SUPPORTED}: draw the sequence flow instead",
    _bpmn("compensateEventDefinition"): f"compensation is {_NOT_SUPPORTED}: model the undo steps as ordinary tasks",
}


def _camunda_skipped(ctx: LintContext) -> list[Problem]:
    """Camunda's listeners and input/output mappings (7 and 8): CarePath would skip them silently."""
    problems: list[Problem] = []
    for namespace in _CAMUNDA_NAMESPACES:
        for node in ctx.root.iter(f"{{{namespace}}}executionListener", f"{{{namespace}}}taskListener"):
            kind = "task" if node.tag.endswith("taskListener") else "execution"
            problems.append(
                ctx.problem(
                    "listener",
                    f"a Camunda {kind} listener runs Java or script code when "
                    f"'{node.get('event') or '?'}' happens, which CarePath would skip "
                    "silently: draw that work as a task of the pathway",
                    node,
                )
            )
        for node in ctx.root.iter(f"{{{namespace}}}inputOutput"):
            problems.append(
                ctx.problem(
                    "io-mapping",
                    "Camunda input/output mappings (camunda:inputOutput) are not "
                    "run by CarePath, so the values they map would be missing: set them in a "
                    "script task or collect them with the task's form",
                    node,
                )
            )
    # Camunda 8 (Zeebe) writes the same two constructs its own way: job workers for listeners, FEEL mappings.
    for node in ctx.root.iter(f"{{{_ZEEBE_NS}}}executionListener", f"{{{_ZEEBE_NS}}}taskListener"):
        kind = "task" if node.tag.endswith("taskListener") else "execution"
        problems.append(
            ctx.problem(
                "listener",
                f"a Camunda 8 {kind} listener runs a job "
                f"'{node.get('type') or '?'}' when '{node.get('eventType') or '?'}' happens, "
                "which CarePath would skip silently: draw that work as a task of the pathway",
                node,
            )
        )
    for node in ctx.root.iter(f"{{{_ZEEBE_NS}}}ioMapping"):
        problems.append(
            ctx.problem(
                "io-mapping",
                "Camunda 8 input/output mappings (zeebe:ioMapping) are not run by "
                "CarePath, so the values they map would be missing: set them in a script task "
                "or collect them with the task's form",
                node,
            )
        )
    return problems


def lint_unsupported(ctx: LintContext) -> list[Problem]:
    """Constructs SpiffWorkflow 3.2 cannot run (LIBRARY_NOTES), reported before its parser does, and
    what CarePath does not run: scripts in other languages, empty script tasks, data stores, Camunda
    listeners and input/output mappings."""
    problems = [ctx.problem("unsupported", _UNSUPPORTED[node.tag], node) for node in ctx.root.iter(*_UNSUPPORTED)]
    for task in ctx.root.iter(_bpmn("scriptTask")):
        language = (task.get("scriptFormat") or "").strip().lower()
        script = task.find("bpmn:script", NSMAP)
        if language not in PYTHON_FORMATS:
            problems.append(
                ctx.problem(
                    "script-format",
                    f"script task is written in {task.get('scriptFormat')!r}; "
                    "CarePath runs scripts in its safe Python expression language only "
                    "(docs/expressions.md)",
                    task,
                )
            )
        elif task.find(f"bpmn:extensionElements/{{{_ZEEBE_NS}}}script", NSMAP) is not None:
            problems.append(
                ctx.problem(
                    "script-format",
                    "script task is a Camunda 8 FEEL expression (zeebe:script); "
                    "CarePath runs scripts in its safe Python expression language only "
                    "(docs/expressions.md)",
                    task,
                )
            )
        elif script is None or not (script.text or "").strip():
            problems.append(
                ctx.problem(
                    "script-empty",
                    "script task has no script: write one, or use a plain task if nothing is to be worked out",
                    task,
                )
            )
    for node in ctx.root.iter(_bpmn("dataStoreReference"), _bpmn("dataStore")):
        problems.append(
            ctx.problem(
                "data-store",
                "data stores are not run by CarePath: keep the data in the pathway's task data (data objects)",
                node,
            )
        )
    problems += _camunda_skipped(ctx)
    for node in ctx.root.iter():
        if node.get("isForCompensation") == "true":
            message = f"compensation activities are {_NOT_SUPPORTED}: model the undo steps as ordinary tasks"
            problems.append(ctx.problem("unsupported", message, node))
    return problems


def lint_call_activities(
    ctx: LintContext, known_processes: Collection[str], executable: Collection[str] | None = None
) -> list[Problem]:
    """Every call activity must call a process defined by some diagram (inputs or library), and one
    SpiffWorkflow runs (not ``isExecutable="false"``)."""
    problems: list[Problem] = []
    for call in ctx.root.iter(_bpmn("callActivity")):
        called = (call.get("calledElement") or "").strip()
        if not called:
            problems.append(
                ctx.problem(
                    "unresolved-call",
                    "call activity does not name the process it calls (calledElement is empty)",
                    call,
                )
            )
        elif called not in known_processes:
            problems.append(
                ctx.problem(
                    "unresolved-call",
                    f"call activity calls {called!r}, which no diagram defines" + _suggest(called, known_processes),
                    call,
                )
            )
        elif executable is not None and called not in executable:
            problems.append(
                ctx.problem(
                    "unresolved-call",
                    f'call activity calls {called!r}, which is not executable (isExecutable="false"): '
                    "SpiffWorkflow will not run it; mark it executable",
                    call,
                )
            )
    return problems


# --- call activity cycles ------------------------------------------------------------------------


def call_graph(diagrams: Collection[Diagram]) -> dict[str, set[str]]:
    """Process id -> the process ids its call activities call (also from inside its subprocesses)."""
    graph: dict[str, set[str]] = {}
    for diagram in diagrams:
        for process in diagram.tree.getroot().iterfind("bpmn:process", NSMAP):
            called = graph.setdefault(str(process.get("id")), set())
            called.update(
                str(c.get("calledElement")).strip()
                for c in process.iter(_bpmn("callActivity"))
                if (c.get("calledElement") or "").strip()
            )
    return graph


def _path_back(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """The shortest chain of calls from ``start`` to ``goal`` (both included), or None."""
    previous: dict[str, str | None] = {start: None}
    queue = [start]
    for current in queue:  # breadth first; the queue grows while it is walked
        if current == goal:
            chain = [current]
            while (before := previous[chain[-1]]) is not None:
                chain.append(before)
            return chain[::-1]
        for following in sorted(graph.get(current, ())):
            if following not in previous:
                previous[following] = current
                queue.append(following)
    return None


def lint_call_cycles(ctx: LintContext, graph: dict[str, set[str]]) -> list[Problem]:
    """A call activity whose called process leads back to the calling process: starting it would
    call processes without end (it hung a request at 100% CPU). Reported at each such call."""
    problems: list[Problem] = []
    for process in ctx.root.iterfind("bpmn:process", NSMAP):
        caller = str(process.get("id"))
        for call in process.iter(_bpmn("callActivity")):
            called = (call.get("calledElement") or "").strip()
            chain = _path_back(graph, called, caller) if called else None
            if chain is not None:
                loop = " -> ".join([caller, *chain])
                problems.append(
                    ctx.problem(
                        "call-cycle",
                        f"call activity makes process {caller!r} call itself ({loop}): a pathway may "
                        "not call itself, directly or through other processes",
                        call,
                    )
                )
    return problems


# --- identifiers and executable processes --------------------------------------------------------

# Columns that keep diagram text (engine.db.models): element ids in events, pathway ids, titles.
MAX_ID = 200
MAX_PROCESS_NAME = 300
_PATHWAY_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")  # as the API names pathways (api/pathways.py)


def lint_identifiers(ctx: LintContext) -> list[Problem]:
    """Ids and process names the database can keep, and executable process ids that can name a pathway."""
    problems: list[Problem] = []
    for node in ctx.root.iter():
        if not isinstance(node.tag, str):
            continue
        value = node.get("id")
        if value is not None and len(value) > MAX_ID:
            problems.append(
                Problem(
                    f"id is {len(value)} characters long; at most {MAX_ID} are kept",
                    file=ctx.display,
                    line=node.sourceline,
                    element=value[:40] + "...",
                    code="too-long",
                )
            )
    for process in ctx.root.iterfind("bpmn:process", NSMAP):
        name, pid = process.get("name") or "", str(process.get("id") or "")
        if len(name) > MAX_PROCESS_NAME:
            problems.append(
                ctx.problem(
                    "too-long",
                    f"process name is {len(name)} characters long; at most {MAX_PROCESS_NAME} are kept",
                    process,
                )
            )
        if process_is_executable(process) and len(pid) <= MAX_ID and not _PATHWAY_ID.match(pid):
            problems.append(
                ctx.problem(
                    "pathway-id",
                    f"process id {pid!r} cannot name a pathway: use letters, "
                    "digits, '_', '.' and '-', starting with a letter or '_'",
                    process,
                )
            )
    return problems


def lint_executable(ctx: LintContext, top_level: bool) -> list[Problem]:
    """A pathway file (top level) must hold a process SpiffWorkflow runs, or it would deploy nothing;
    a process without ``isExecutable`` is run, as SpiffWorkflow runs it, and the author is told."""
    if not top_level:
        return []
    processes = list(ctx.root.iterfind("bpmn:process", NSMAP))
    if any(process_is_executable(p) for p in processes):
        return [
            ctx.problem(
                "executable-implied",
                f"process {p.get('id')!r} does not say whether it is executable: "
                'CarePath runs it as a pathway, as SpiffWorkflow does (set isExecutable="true" to '
                "say so)",
                p,
                severity=WARNING,
            )
            for p in processes
            if p.get("isExecutable") is None
        ]
    if not processes:
        message = "the file defines no bpmn:process, so it holds no pathway to run"
        return [ctx.problem("no-executable-process", message, ctx.root)]
    ids = ", ".join(repr(p.get("id")) for p in processes)
    message = (
        f"no executable process: {ids} {'is' if len(processes) == 1 else 'are'} marked "
        "isExecutable=\"false\", which SpiffWorkflow will not run (tick 'Executable' in the modeller)"
    )
    return [ctx.problem("no-executable-process", message, processes[0])]


# Event definition -> (its reference attribute, the root element it must name).
_REFERENCES = {
    "messageEventDefinition": ("messageRef", "message"),
    "signalEventDefinition": ("signalRef", "signal"),
    "errorEventDefinition": ("errorRef", "error"),
    "escalationEventDefinition": ("escalationRef", "escalation"),
    "sendTask": ("messageRef", "message"),
    "receiveTask": ("messageRef", "message"),
}


def defined_references(root: Any) -> dict[str, set[str]]:
    """Ids of the messages, signals, errors and escalations a diagram defines."""
    kinds = {kind for _, kind in _REFERENCES.values()}
    return {kind: {str(n.get("id")) for n in root.iterfind(f"bpmn:{kind}", NSMAP)} for kind in kinds}


def lint_references(ctx: LintContext, known: dict[str, set[str]]) -> list[Problem]:
    """Message, signal, error and escalation references must name a defined element.

    SpiffWorkflow's parser would fail on them with a TypeError of its own (its error path passes
    an argument its raise helper does not take), so the author would not learn what is wrong.
    """
    problems: list[Problem] = []
    for tag, (attribute, kind) in _REFERENCES.items():
        for node in ctx.root.iter(_bpmn(tag)):
            ref = (node.get(attribute) or "").split(":")[-1]
            if ref and ref not in known.get(kind, set()):
                message = f"{attribute} {ref!r} names no bpmn:{kind}{_suggest(ref, known.get(kind, set()))}"
                problems.append(ctx.problem("unknown-reference", message, node))
    return problems


# --- references between the elements of a process ------------------------------------------------


def _scope_name(scope: Any) -> str:
    kind = "process" if scope.tag == _bpmn("process") else "sub-process"
    return f"{kind} {scope.get('id')!r}"


def _dangling(
    ctx: LintContext,
    scope: Any,
    nodes: Collection[str],
    everywhere: Collection[str],
    node: Any,
    attribute: str,
    known: Collection[str],
    what: str,
) -> Problem | None:
    """The problem with ``node``'s reference ``attribute`` when it names nothing in ``known`` (the
    ``what`` of ``scope``); None when it does."""
    ref = (node.get(attribute) or "").strip()
    if ref in known:
        return None
    if not ref:
        message = f"{attribute} is empty: it must name {what} of {_scope_name(scope)}"
    elif ref in nodes:
        message = f"{attribute} {ref!r} is not {what} of {_scope_name(scope)}"
    elif ref in everywhere:
        message = (
            f"{attribute} {ref!r} names an element outside {_scope_name(scope)}: only "
            f"{what} of the same process or sub-process can be named here"
        )
    else:
        message = f"{attribute} {ref!r} names no element of {_scope_name(scope)}{_suggest(ref, known)}"
    return ctx.problem("unknown-reference", message, node, element=node.get("id"))


def lint_flow_references(ctx: LintContext) -> list[Problem]:
    """A sequence flow's ``sourceRef`` and ``targetRef``, a boundary event's ``attachedToRef`` and a
    gateway's (or activity's) ``default`` must name an element of the same process or sub-process.

    SpiffWorkflow's parser drops a boundary event attached to nothing without a word (its timer
    never fires), and fails on a dangling flow with a message about duplicate ids at another line.
    """
    everywhere = {str(n.get("id")) for n in ctx.root.iter() if isinstance(n.tag, str) and n.get("id")}
    problems: list[Problem] = []
    for scope in ctx.root.iter(*SCOPES):
        nodes = {str(n.get("id")): n for n in scope if n.tag in FLOW_NODES and n.get("id")}
        activities = {i for i, n in nodes.items() if n.tag in ACTIVITIES}
        flows = [n for n in scope if n.tag == _bpmn("sequenceFlow")]

        for flow in flows:
            for attribute in ("sourceRef", "targetRef"):
                found = _dangling(ctx, scope, nodes, everywhere, flow, attribute, nodes, "a task, event or gateway")
                if found:
                    problems.append(found)
        for event in scope.iterfind("bpmn:boundaryEvent", NSMAP):
            found = _dangling(
                ctx, scope, nodes, everywhere, event, "attachedToRef", activities, "a task or sub-process"
            )
            if found:
                problems.append(found)
        for node_id, node in nodes.items():
            default = node.get("default")
            if default is None:
                continue
            leaving = [str(f.get("id")) for f in flows if f.get("sourceRef") == node_id and f.get("id")]
            if default.strip() not in leaving:
                problems.append(
                    ctx.problem(
                        "unknown-reference",
                        f"default flow {default!r} is not a sequence flow leaving {node_id!r}"
                        f"{_suggest(default, leaving)}",
                        node,
                    )
                )
    return problems


def lint_unconnected(ctx: LintContext) -> list[Problem]:
    """A warning for each element no sequence flow reaches, or that none leaves: an orphan task never
    runs, and a branch without an end stops there. Start events, boundary events and event
    sub-processes need no incoming flow, end events no outgoing one; the parts of an ad-hoc
    sub-process need neither."""
    problems: list[Problem] = []
    for scope in ctx.root.iter(_bpmn("process"), _bpmn("subProcess"), _bpmn("transaction")):
        flows = [n for n in scope if n.tag == _bpmn("sequenceFlow")]
        targets = {str(f.get("targetRef") or "").strip() for f in flows}
        sources = {str(f.get("sourceRef") or "").strip() for f in flows}
        for node in scope:
            if node.tag not in FLOW_NODES or not node.get("id") or node.get("isForCompensation") == "true":
                continue
            node_id = str(node.get("id"))
            event_sub_process = node.get("triggeredByEvent") == "true"
            missing = []
            entered = node.tag in (_bpmn("startEvent"), _bpmn("boundaryEvent")) or event_sub_process
            if node_id not in targets and not entered:
                missing.append("no incoming sequence flow, so it never runs")
            if node_id not in sources and node.tag != _bpmn("endEvent") and not event_sub_process:
                missing.append("no outgoing sequence flow, so its branch stops there without an end event")
            if missing:
                kind = node.tag.split("}", 1)[-1]
                message = f"{kind} is not connected: it has {' and '.join(missing)}"
                problems.append(ctx.problem("unconnected", message, node, severity=WARNING))
    return problems


# --- data a condition reads ----------------------------------------------------------------------


def provided_names(diagram: Diagram) -> set[str]:
    """The task data names a diagram sets: its forms' fields, what its scripts assign, service and
    other results (``resultVariable``), decision outputs, multi-instance items, data objects and
    message variables."""
    root = diagram.tree.getroot()
    names: set[str] = set()
    for task in root.iter(_bpmn("userTask"), _bpmn("manualTask")):
        try:
            schema = form_schema(task, diagram)
        except (DiagramError, ValueError, TypeError):
            continue
        if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
            names.update(str(key) for key in schema["properties"])
    for node in root.iter(_bpmn("script"), f"{{{SPIFF_NS}}}preScript", f"{{{SPIFF_NS}}}postScript"):
        try:
            tree = ast.parse((node.text or "").strip())
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        names.update(n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load))
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        names.update(str(v) for k, v in node.attrib.items() if k.rsplit("}", 1)[-1] == "resultVariable" and v)
        tag = node.tag.rsplit("}", 1)[-1]
        if tag in ("loopDataInputRef", "loopDataOutputRef", "messageVariable") and (node.text or "").strip():
            names.add((node.text or "").strip())
        if tag in ("inputDataItem", "outputDataItem", "dataObject", "dataObjectReference", "dataInput", "dataOutput"):
            names.update(str(node.get(a)) for a in ("id", "name") if node.get(a))
    for task in business_rule_tasks(diagram):
        try:
            names.update(column.name for column in decision_table(task, diagram)[1].outputs)
        except (DiagramError, OSError):
            continue
    return names


def lint_unset_names(ctx: LintContext, provided: Collection[str]) -> list[Problem]:
    """A warning for each name a flow's condition reads that no form, start data schema, script,
    service result or decision of the pathway sets: the condition fails when it is evaluated
    (``fatigue_scor``, where the form has ``fatigue_score``)."""
    problems: list[Problem] = []
    for node in ctx.root.iter(_bpmn("conditionExpression")):
        text = (node.text or "").strip()
        text = juel_to_python(text) or text
        try:
            tree = ast.parse(text, mode="eval")
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue  # reported by lint_expressions
        bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        read = dict.fromkeys(
            n.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in bound
        )
        for name in read:
            if name in provided or name in ALLOWED_FUNCTIONS or name in ("True", "False", "None"):
                continue
            problems.append(
                ctx.problem(
                    "unset-variable",
                    f"condition reads {name!r}, which no form, start data schema, script or service task of "
                    f"the pathway sets{_suggest(name, provided)}: evaluating it stops the pathway with an "
                    "incident",
                    node,
                    severity=WARNING,
                )
            )
    return problems
