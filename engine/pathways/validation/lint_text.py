"""Lint of the text inside a diagram: conditions, scripts, timers and service-task parameters.

Private to :mod:`engine.pathways.validation`. Every check reads the author's tree (never the prepared copy),
so a problem's line is the line in the author's file: the element's ``sourceline`` is the line where
its start tag ends, which is where its text begins, so line *n* of the text is ``sourceline + n - 1``.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from engine.errors import ERROR, Problem
from engine.expressions import check_expression, check_script
from engine.pathways.diagrams import BPMN_NS, NSMAP, SPIFF_NS, juel_to_python, timer_literal
from engine.spiff.patches import timer_value_problem

__all__ = ["PYTHON_FORMATS", "LintContext", "lint_expressions", "lint_timers"]

# What an author meant as a bare ISO-8601 value (P18M, PT12H, R3/P1M, 2025-06-01...) rather than an
# expression: such text is checked as a timer value, so "P18 months" reads as a bad timer and not as
# a syntax error.
_MEANT_AS_ISO = re.compile(r"^(P\d|PT\d|R\d*/|\d{4}-\d)")
# Quartz cron, as Camunda Modeler offers for a timeCycle: "0 0 9 * * ?" (six or seven fields).
_CRON = re.compile(r"^[0-9*?/,LW#A-Z-]+(\s+[0-9*?/,LW#A-Z-]+){5,6}$", re.IGNORECASE)
_WHERE_SUFFIX = re.compile(r"\s*\(line \d+, col (\d+)\)$")
# Script formats that mean the safe (Python) language; modellers leave it empty or write "python".
PYTHON_FORMATS = frozenset({"", "python", "python3", "text/x-python"})
_TIMER_TAGS = ("timeDate", "timeDuration", "timeCycle")
# Other text SpiffWorkflow evaluates as an expression while a pathway runs: a conditional event's
# condition, a loop's cardinality and conditions, message correlations and event payloads.
_EXPRESSION_TAGS = (
    f"{{{BPMN_NS}}}condition",
    f"{{{BPMN_NS}}}loopCardinality",
    f"{{{BPMN_NS}}}completionCondition",
    f"{{{BPMN_NS}}}loopCondition",
    f"{{{BPMN_NS}}}messagePath",
    f"{{{SPIFF_NS}}}messagePayload",
    f"{{{SPIFF_NS}}}payloadExpression",
)
_TIMER_KIND = {"timeDate": "date", "timeDuration": "duration", "timeCycle": "cycle"}


@dataclass
class LintContext:
    """One author's file being linted: where problems are reported."""

    display: str  # the file name shown to authors
    root: Any  # lxml root element of the author's XML

    def problem(
        self,
        code: str,
        message: str,
        node: Any,
        *,
        line: int | None = None,
        element: str | None = None,
        severity: str = ERROR,
    ) -> Problem:
        return Problem(
            message=message,
            file=self.display,
            line=line or node.sourceline,
            element=element or owner_id(node),
            code=code,
            severity=severity,
        )


def owner_id(node: Any) -> str | None:
    """The id of the BPMN element a node belongs to (event definitions report their event)."""
    while node is not None:
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag.startswith(f"{{{BPMN_NS}}}") and node.get("id") and not tag.endswith("EventDefinition"):
            return str(node.get("id"))
        node = node.getparent()
    return None


def _strip(text: str) -> tuple[str, int]:
    """Text without surrounding blank space, and how many lines were dropped before it."""
    stripped = text.lstrip()
    return stripped.rstrip(), text[: len(text) - len(stripped)].count("\n")


def _expression_problems(ctx: LintContext, node: Any, text: str, *, script: bool) -> Iterator[Problem]:
    """Check ``text`` against the safe language; one problem per offending line of the text."""

    body, skipped = _strip(text)
    if not body:
        return
    found = check_script(body) if script else check_expression(body)
    by_line: dict[tuple[int, bool], list[Problem]] = {}
    for problem in found:
        by_line.setdefault((problem.line or 1, problem.code == "size-limit"), []).append(problem)
    start = node.sourceline
    kind = "script" if script else "expression"
    for (line, too_large), problems in sorted(by_line.items()):
        messages = "; ".join(dict.fromkeys(_WHERE_SUFFIX.sub("", p.message) for p in problems))
        if too_large:  # in the language, but past the evaluator's limits whatever the data
            code, message = "expression-too-large", f"{kind} past the evaluator's limits: {messages}"
        else:
            code = "expression-syntax" if problems[0].code == "syntax-error" else "unsafe-expression"
            message = f"{kind} outside the safe language: {messages}"
        yield ctx.problem(code, message, node, line=start + skipped + line - 1)


def _condition_text(text: str) -> str:
    """A condition as the engine runs it: Camunda's ``${...}`` / ``#{...}`` converted as
    diagrams.prepare_for_engine converts it (line breaks kept, so lines are the author's)."""
    converted = juel_to_python(text)
    return text if converted is None else converted


def _other_language(node: Any) -> str | None:
    """Why a condition is not in CarePath's language, when it says so itself: a ``language`` attribute
    (JavaScript, Groovy...) or Camunda 8's FEEL, whose expressions start with ``=``."""
    language = (node.get("language") or "").strip()
    if language.lower() not in PYTHON_FORMATS:
        return f"condition is written in {language!r}"
    if (node.text or "").lstrip().startswith("=") and not (node.text or "").lstrip().startswith("=="):
        return "condition is a Camunda 8 FEEL expression (it starts with '=')"
    return None


def lint_expressions(ctx: LintContext) -> list[Problem]:
    """Conditions, scripts, pre/post scripts, service-task parameter values, and every other text
    SpiffWorkflow evaluates (conditional events, loops, message correlations, event payloads)."""
    problems: list[Problem] = []
    for node in ctx.root.iter(f"{{{BPMN_NS}}}conditionExpression"):
        other = _other_language(node)
        if other:
            problems.append(
                ctx.problem(
                    "script-format",
                    f"{other}; CarePath runs conditions in its safe Python "
                    "expression language only (docs/expressions.md)",
                    node,
                )
            )
        else:
            problems += _expression_problems(ctx, node, _condition_text(node.text or ""), script=False)
    for node in ctx.root.iter(*_EXPRESSION_TAGS):
        problems += _expression_problems(ctx, node, node.text or "", script=False)
    for path in (
        ".//spiffworkflow:processVariableCorrelation/spiffworkflow:expression",
        ".//bpmn:correlationPropertyRetrievalExpression/bpmn:formalExpression",
    ):  # read as messagePath
        for node in ctx.root.iterfind(path, NSMAP):
            problems += _expression_problems(ctx, node, node.text or "", script=False)
    for node in ctx.root.iter(f"{{{BPMN_NS}}}script", f"{{{SPIFF_NS}}}preScript", f"{{{SPIFF_NS}}}postScript"):
        language = (node.getparent().get("scriptFormat") or "").strip().lower()
        if node.tag == f"{{{BPMN_NS}}}script" and language not in PYTHON_FORMATS:
            continue  # another language: reported once as such (lint_elements), not line by line as Python
        problems += _expression_problems(ctx, node, node.text or "", script=True)
    for node in ctx.root.iterfind(".//spiffworkflow:serviceTaskOperator//spiffworkflow:parameter", NSMAP):
        if node.get("value") is not None:
            # An attribute value has no lines of its own: report the parameter's line.
            for problem in _expression_problems(ctx, node, node.get("value"), script=False):
                message = f"parameter {node.get('id')!r}: {problem.message}"
                problems.append(dataclasses.replace(problem, line=node.sourceline, message=message))
    return problems


# --- timers ---------------------------------------------------------------------------------------


def _iso_error(kind: str, value: str) -> tuple[str, str] | None:
    """(code, why) when SpiffWorkflow could not use ``value`` as a timer of this kind, or when CarePath
    refuses it as out of bounds (:func:`engine.spiff.patches.timer_value_problem`, the bounds the
    running engine applies too); None when it can run."""
    from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition as Timer

    checks: dict[str, tuple[str, Callable[[str], Any]]] = {
        "duration": ("an ISO-8601 duration such as P18M or PT12H", Timer.parse_iso_duration),
        "date": ("an ISO-8601 date such as 2025-06-01 or 2025-06-01T09:00:00Z", Timer.parse_time_or_duration),
        "cycle": ("an ISO-8601 repeating interval such as R4/P3M", Timer.parse_iso_recurring_interval),
    }
    wanted, parse = checks[kind]
    reason = f"{value!r} is not {wanted}"
    if not timer_literal(value):
        return "timer-invalid", reason
    bounds = timer_value_problem(kind, value)
    refused = ("timer-bounds", f"timer {kind} {value!r} is refused: {bounds}")
    try:
        parsed = parse(value)
    except Exception:  # noqa: BLE001 - SpiffWorkflow raises bare Exception / ValueError / KeyError here
        # Out of bounds can also mean SpiffWorkflow's arithmetic overflowed: say which bound.
        return refused if bounds is not None and not bounds.startswith("it is not") else ("timer-invalid", reason)
    if kind == "date" and not hasattr(parsed, "tzinfo"):
        return "timer-invalid", f"{reason} (a timeDate takes a date, not a duration: use a timeDuration)"
    return refused if bounds is not None else None


def lint_timers(ctx: LintContext) -> list[Problem]:
    """Empty timers, bare ISO values SpiffWorkflow cannot parse, and timer expressions."""
    problems: list[Problem] = []
    for definition in ctx.root.iter(f"{{{BPMN_NS}}}timerEventDefinition"):
        # SpiffWorkflow uses a timeDate if there is one, else a timeDuration, else a timeCycle.
        found_tags = [(t, definition.find(f".//bpmn:{t}", NSMAP)) for t in _TIMER_TAGS]
        present = [(tag, node) for tag, node in found_tags if node is not None]
        if not present:
            problems.append(ctx.problem("timer-empty", "timer has no date, duration or cycle", definition))
            continue
        tag, node = present[0]
        kind = _TIMER_KIND[tag]
        text, _ = _strip(node.text or "")
        if not text:
            problems.append(ctx.problem("timer-empty", f"timer {kind} is empty", node))
        elif _CRON.match(text):
            problems.append(
                ctx.problem(
                    "timer-cron",
                    f"timer {kind} {text!r} is a cron expression (Quartz, as "
                    "Camunda runs it), which CarePath does not run: use an ISO-8601 repeating "
                    "interval such as R52/2026-01-05T09:00:00Z/P1W",
                    node,
                )
            )
        elif _MEANT_AS_ISO.match(text):
            error = _iso_error(kind, text)
            if error:
                problems.append(ctx.problem(*error, node))
        elif juel_to_python(text) is not None:
            # JUEL is converted in conditions only (diagrams.prepare_for_engine): read as Python it is a
            # bare syntax error, which would not tell a Camunda author what to change.
            problems.append(
                ctx.problem(
                    "expression-syntax",
                    f"timer {kind} {text!r} is a Camunda (JUEL) expression, "
                    "which CarePath reads in conditions only: write the expression without "
                    "'${ }' in the safe language (docs/expressions.md)",
                    node,
                )
            )
        else:
            found = list(_expression_problems(ctx, node, node.text or "", script=False))
            problems += found
            literal = _string_literal(text)
            if not found and literal is not None and (error := _iso_error(kind, literal)):
                problems.append(ctx.problem(*error, node))
            elif not found and literal is None and (constant := _other_constant(text)) is not None:
                # A bare 28 passed the gate, and the timer stopped its step with an AttributeError.
                problems.append(ctx.problem("timer-invalid", _not_text(kind, constant), node))
    return problems


def _string_literal(text: str) -> str | None:
    """The value of a quoted text literal such as ``"P18M"``; None for any other expression."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None
    return value if isinstance(value, str) else None


def _other_constant(text: str) -> object | None:
    """The value of a constant that is not text (``28``, ``2.5``, ``True``, ``None``, ``[1]``) as a
    one-element list's item, or None for text and for any expression that is not a constant."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None
    return None if isinstance(value, str) else [value]


def _not_text(kind: str, constant: object) -> str:
    value = constant[0] if isinstance(constant, list) else constant
    example = {
        "duration": f'"P{value}D" for {value} days' if isinstance(value, int) and value >= 0 else '"P28D"',
        "date": '"2026-06-01"',
        "cycle": '"R4/P28D"',
    }[kind]
    return (
        f"timer {kind} {_short(repr(value))} is not ISO 8601 text: a timer needs a quoted ISO 8601 {kind} "
        f"or an expression giving one; write {example}"
    )


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "..."


def literal_name(text: str) -> str | None:
    """A rule set name given as a quoted literal (SpiffArena's style) or as a bare name."""
    text = text.strip()
    literal = _string_literal(text)
    if literal is not None:
        return literal
    return text if re.fullmatch(r"[A-Za-z][\w.\-]*", text) else None
