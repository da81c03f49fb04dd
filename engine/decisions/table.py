"""Decision tables read from DMN files, their cells translated from FEEL to the safe language.

What authors write in Camunda Modeler and bpmn.io, and what each becomes (``v`` is the input's value)::

    input entry (FEEL unary tests)      safe expression
    -  or empty                         (any value)
    "a"   5   true   name               v == "a"   v == 5   v == True   v == name
    "a","b"                             v == "a" or v == "b"
    < 5   <= 5   > 5   >= 8             v < 5 ...
    [1..5]   ]1..5[   (1..5)   [1..5)   1 <= v <= 5, open ends with <
    (a comparison or range never holds for null, as in FEEL)
    null                                v is None
    not("a","b")   not([1..5])          not (...)

Input expressions and output entries are FEEL expressions: ``true false null`` become ``True False
None``, ``a.b`` becomes ``a["b"]``, a lone ``=`` becomes ``==``; the result must be in the safe
expression language. Anything else is refused where it is written (``file:line: decision-id:
message``): CarePath runs no FEEL it has not translated.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from lxml import etree

from engine.errors import Problem
from engine.expressions import check_expression

__all__ = [
    "CELL",
    "DECISION_PROPERTY",
    "DMN_NAMESPACES",
    "HIT_POLICIES",
    "DecisionTable",
    "InputColumn",
    "OutputColumn",
    "Rule",
    "decision_ids",
    "read_decisions",
    "table_from_json",
    "translate_expression",
    "translate_unary_tests",
]

# The task-spec property a business rule task's translated table is kept under (written when the
# diagram is prepared for the engine, so the table is part of the stored pathway version).
DECISION_PROPERTY = "carepath.decisionTable"
DMN_NAMESPACES = (
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd",
    "http://www.omg.org/spec/DMN/20180521/MODEL/",
    "https://www.omg.org/spec/DMN/20191111/MODEL/",
)
HIT_POLICIES = ("UNIQUE", "FIRST", "PRIORITY", "ANY", "COLLECT", "RULE ORDER", "OUTPUT ORDER")
AGGREGATIONS = ("SUM", "MIN", "MAX", "COUNT")
CELL = "dmn_input_value"  # the name an input entry's translated test reads the input's value from
MAX_RULES = 1000
MAX_COLUMNS = 50
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_STRING = re.compile(r'^"(?:[^"\\]|\\.)*"$')
_PATH = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
_OUTPUT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
_RANGE = re.compile(r"^([\[\]\(])\s*(.+?)\s*\.\.\s*(.+?)\s*([\[\]\)])$", re.DOTALL)
_COMPARISON = re.compile(r"^(<=|>=|<|>)\s*(.+)$", re.DOTALL)
_NOT = re.compile(r"^not\s*\((.*)\)$", re.DOTALL)
# FEEL tokens outside text literals: literals kept; words and '=' translated.
_FEEL_TOKENS = re.compile(
    r'(?P<text>"(?:[^"\\]|\\.)*")|(?P<path>\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)'
    r"|(?P<word>\b(?:true|false|null)\b)|(?P<eq>(?<![<>=!])=(?!=))"
)
_FEEL_WORDS = {"true": "True", "false": "False", "null": "None"}


@dataclass(frozen=True)
class InputColumn:
    id: str
    label: str
    text: str  # the author's FEEL
    expression: str  # safe language


@dataclass(frozen=True)
class OutputColumn:
    id: str
    name: str
    priorities: tuple[Any, ...]  # the output values list, highest priority first (PRIORITY, OUTPUT ORDER)


@dataclass(frozen=True)
class Rule:
    id: str
    row: int
    line: int
    texts: tuple[str, ...]  # the author's input entries
    tests: tuple[str | None, ...]  # safe expressions over CELL; None: any value
    outputs: tuple[str | None, ...]  # safe expressions; None: null


@dataclass(frozen=True)
class DecisionTable:
    """One decision's table, translated (module docstring), with where it came from."""

    decision_id: str
    name: str
    file: str
    digest: str  # SHA-256 of the .dmn file: the table's version
    hit_policy: str
    aggregation: str | None
    inputs: tuple[InputColumn, ...]
    outputs: tuple[OutputColumn, ...]
    rules: tuple[Rule, ...]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def table_from_json(text: str) -> DecisionTable:
    """A table as :meth:`DecisionTable.to_json` wrote it (no checks: it was checked at deploy)."""
    data = json.loads(text)
    return DecisionTable(
        decision_id=data["decision_id"],
        name=data["name"],
        file=data["file"],
        digest=data["digest"],
        hit_policy=data["hit_policy"],
        aggregation=data["aggregation"],
        inputs=tuple(InputColumn(**item) for item in data["inputs"]),
        outputs=tuple(OutputColumn(item["id"], item["name"], tuple(item["priorities"])) for item in data["outputs"]),
        rules=tuple(
            Rule(
                item["id"],
                item["row"],
                item["line"],
                tuple(item["texts"]),
                tuple(item["tests"]),
                tuple(item["outputs"]),
            )
            for item in data["rules"]
        ),
    )


class _Refused(Exception):
    """A cell CarePath cannot translate; the message says why (caught where the cell is located)."""


def _split(text: str) -> list[str]:
    """Split at commas outside text literals, brackets and parentheses."""
    parts, depth, quoted, start, index = [], 0, False, 0, 0
    while index < len(text):
        char = text[index]
        if quoted:
            if char == "\\":
                index += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth <= 0:
            parts.append(text[start:index].strip())
            start = index + 1
        index += 1
    parts.append(text[start:].strip())
    return parts


def _checked(expression: str, author_text: str) -> str:
    problems = check_expression(expression)
    if problems:
        raise _Refused(f"{author_text!r} is outside the safe expression language: {problems[0].message}")
    return expression


def translate_expression(text: str) -> str:
    """A FEEL expression (an input expression or an output entry) in the safe language.

    Raises: _Refused (module-private) with the reason; callers outside use :func:`read_decisions`.
    """

    def convert(token: re.Match[str]) -> str:
        if token.group("text"):
            return token.group("text")
        if token.group("path"):
            first, *rest = token.group("path").split(".")
            return first + "".join(f'["{part}"]' for part in rest)
        if token.group("word"):
            return _FEEL_WORDS[token.group("word")]
        return "=="

    return _checked(_FEEL_TOKENS.sub(convert, text.strip()), text.strip())


def _endpoint(text: str) -> str:
    if _NUMBER.match(text) or _STRING.match(text) or text in ("true", "false") or _PATH.match(text):
        return translate_expression(text)
    raise _Refused(
        f'{text!r} is not a value CarePath reads in an input entry: write a number, "text", '
        "true, false or a variable name"
    )


def _one_test(text: str) -> str:
    if not text:
        raise _Refused("an empty test between commas")
    interval = _RANGE.match(text)
    if interval:
        opening, low, high, closing = interval.groups()
        low_op = "<=" if opening == "[" else "<"
        high_op = "<=" if closing == "]" else "<"
        return f"({CELL} is not None and {_endpoint(low)} {low_op} {CELL} {high_op} {_endpoint(high)})"
    comparison = _COMPARISON.match(text)
    if comparison:  # FEEL: comparing null gives null, which does not satisfy the test
        return f"({CELL} is not None and {CELL} {comparison.group(1)} {_endpoint(comparison.group(2).strip())})"
    if text == "null":
        return f"({CELL} is None)"
    return f"({CELL} == {_endpoint(text)})"


def translate_unary_tests(text: str) -> str | None:
    """An input entry (FEEL unary tests, module docstring) as a safe expression over :data:`CELL`;
    None when it accepts any value (``-`` or empty).

    Raises:
        ValueError: naming what CarePath does not run.
    """
    try:
        return _unary_tests(text)
    except _Refused as exc:
        raise ValueError(str(exc)) from None


def _unary_tests(text: str) -> str | None:
    text = text.strip()
    if text in ("", "-"):
        return None
    negated = _NOT.match(text)
    if negated:
        inner = _unary_tests(negated.group(1))
        if inner is None:
            raise _Refused("not() needs a test inside")
        return _checked(f"not ({inner})", text)
    tests = [_one_test(part) for part in _split(text)]
    return _checked(" or ".join(tests), text)


def _literal(text: str) -> Any:
    if _STRING.match(text):
        return json.loads(text)
    if _NUMBER.match(text):
        return float(text) if "." in text else int(text)
    raise _Refused(f'{text!r} is not a literal ("text" or a number) in an output values list')


def decision_ids(content: bytes) -> list[str]:
    """The ids of the decisions in DMN content (none when it is not readable DMN)."""
    try:
        root = etree.fromstring(content, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return []
    namespace = etree.QName(root).namespace
    if namespace not in DMN_NAMESPACES:
        return []
    return [str(d.get("id")) for d in root.iterfind(f"{{{namespace}}}decision") if d.get("id")]


class _Reader:
    """Reads one .dmn file; every refusal becomes a located Problem."""

    def __init__(self, content: bytes, file: str) -> None:
        self.content = content
        self.file = file
        self.problems: list[Problem] = []
        self.ns = ""

    def problem(self, message: str, node: Any, decision: str | None, code: str = "decision-table") -> None:
        self.problems.append(
            Problem(message, file=self.file, line=getattr(node, "sourceline", None), element=decision, code=code)
        )

    def q(self, tag: str) -> str:
        return f"{{{self.ns}}}{tag}"

    def text_of(self, node: Any) -> str:
        child = node.find(self.q("text"))
        return (child.text or "") if child is not None else ""

    def root(self) -> Any | None:
        doctype = self.content.find(b"<!DOCTYPE", 0, 4096)
        if doctype >= 0:
            self.problems.append(
                Problem(
                    "the file has a document type declaration (<!DOCTYPE ...>), which may "
                    "declare entities: remove it (no modeller writes one)",
                    file=self.file,
                    line=self.content.count(b"\n", 0, doctype) + 1,
                    code="dtd",
                )
            )
            return None
        try:
            self.content.decode("utf-8")
            root = etree.fromstring(self.content, _PARSER)
        except UnicodeDecodeError:
            self.problem("the file is not UTF-8 text: save it as UTF-8", None, None, "encoding")
            return None
        except etree.XMLSyntaxError as exc:
            self.problems.append(
                Problem(f"not well-formed XML: {exc.msg}", file=self.file, line=exc.lineno or None, code="xml-syntax")
            )
            return None
        self.ns = etree.QName(root).namespace or ""
        if etree.QName(root).localname != "definitions" or self.ns not in DMN_NAMESPACES:
            self.problem("not a DMN 1.1, 1.2 or 1.3 file (the root must be dmn:definitions)", root, None, "not-dmn")
            return None
        return root

    def tables(self) -> Iterator[DecisionTable]:
        root = self.root()
        if root is None:
            return
        decisions = list(root.iterfind(self.q("decision")))
        if not decisions:
            self.problem("the file holds no decision", root, None)
        for index, decision in enumerate(decisions):
            decision_id = str(decision.get("id") or "")
            if index > 0:  # SpiffWorkflow's DMN parser reads only one decision per file
                self.problem(
                    "a .dmn file holds one decision in CarePath: move this one to a file of its own",
                    decision,
                    decision_id,
                )
                continue
            table = self.table(decision, decision_id)
            if table is not None:
                yield table

    def table(self, decision: Any, decision_id: str) -> DecisionTable | None:
        if decision.find(self.q("informationRequirement")) is not None:
            self.problem(
                "a decision that requires other decisions is not run: join them into one table", decision, decision_id
            )
        element = decision.find(self.q("decisionTable"))
        if element is None:
            self.problem(
                "only decision tables are run (not literal expressions or other decision logic)", decision, decision_id
            )
            return None
        before = len(self.problems)
        hit_policy = (element.get("hitPolicy") or "UNIQUE").upper()
        aggregation = element.get("aggregation")
        if hit_policy not in HIT_POLICIES:
            self.problem(f"hit policy {hit_policy} is not one of {', '.join(HIT_POLICIES)}", element, decision_id)
        if aggregation is not None and (hit_policy != "COLLECT" or aggregation not in AGGREGATIONS):
            self.problem(
                f"aggregation {aggregation} is run only with COLLECT, as one of {', '.join(AGGREGATIONS)}",
                element,
                decision_id,
            )
        inputs = tuple(self.input(node, decision_id) for node in element.iterfind(self.q("input")))
        outputs = tuple(self.output(node, decision_id) for node in element.iterfind(self.q("output")))
        self.check_shape(element, decision_id, hit_policy, aggregation, inputs, outputs)
        rules = []
        for row, node in enumerate(element.iterfind(self.q("rule")), start=1):
            if row > MAX_RULES:
                self.problem(f"more than {MAX_RULES} rules", node, decision_id)
                break
            rules.append(self.rule(node, row, len(inputs), len(outputs), decision_id))
        ids = [str(node.get("id") or "") for node in element.iter(self.q("input"), self.q("output"), self.q("rule"))]
        if "" in ids or len(set(ids)) != len(ids):
            self.problem(
                "every input, output and rule needs an id of its own (the records name rules by id)",
                element,
                decision_id,
            )
        if len(self.problems) > before:
            return None
        return DecisionTable(
            decision_id,
            str(decision.get("name") or decision_id),
            self.file,
            hashlib.sha256(self.content).hexdigest(),
            hit_policy,
            aggregation,
            inputs,
            outputs,
            tuple(rules),
        )

    def check_shape(
        self,
        element: Any,
        decision_id: str,
        hit_policy: str,
        aggregation: str | None,
        inputs: tuple[InputColumn, ...],
        outputs: tuple[OutputColumn, ...],
    ) -> None:
        """The columns fit the hit policy: outputs exist, one for an aggregation, priorities listed."""
        if not outputs:
            self.problem("the table has no output column", element, decision_id)
        if len(inputs) > MAX_COLUMNS or len(outputs) > MAX_COLUMNS:
            self.problem(f"more than {MAX_COLUMNS} input or output columns", element, decision_id)
        if aggregation and len(outputs) > 1:
            self.problem(f"aggregation {aggregation} needs a table with one output column", element, decision_id)
        if hit_policy in ("PRIORITY", "OUTPUT ORDER") and not any(o.priorities for o in outputs):
            self.problem(
                f"hit policy {hit_policy} needs the output values listed in priority order on an output column",
                element,
                decision_id,
            )

    def input(self, node: Any, decision_id: str) -> InputColumn:
        expression = node.find(self.q("inputExpression"))
        text = self.text_of(expression).strip() if expression is not None else ""
        label = str(node.get("label") or text)
        if not text:
            self.problem("the input column has no expression (say which data it reads, e.g. age)", node, decision_id)
            return InputColumn(str(node.get("id")), label, text, "None")
        try:
            return InputColumn(str(node.get("id")), label, text, translate_expression(text))
        except _Refused as exc:
            self.problem(f"input expression: {exc}", expression, decision_id, "unsafe-expression")
            return InputColumn(str(node.get("id")), label, text, "None")

    def output(self, node: Any, decision_id: str) -> OutputColumn:
        name = str(node.get("name") or "")
        if not _OUTPUT_NAME.match(name):
            self.problem(
                "the output column needs a name that can be a variable (letters, digits, '_'), the task data it sets",
                node,
                decision_id,
            )
        priorities: tuple[Any, ...] = ()
        values = node.find(self.q("outputValues"))
        if values is not None and self.text_of(values).strip():
            try:
                priorities = tuple(_literal(part) for part in _split(self.text_of(values).strip()))
            except _Refused as exc:
                self.problem(str(exc), values, decision_id)
        return OutputColumn(str(node.get("id")), name, priorities)

    def rule(self, node: Any, row: int, inputs: int, outputs: int, decision_id: str) -> Rule:
        entries = list(node.iterfind(self.q("inputEntry")))
        results = list(node.iterfind(self.q("outputEntry")))
        if len(entries) != inputs or len(results) != outputs:
            self.problem(
                f"rule {row} has {len(entries)} input and {len(results)} output entries; the table has "
                f"{inputs} and {outputs}",
                node,
                decision_id,
            )
        texts, tests, values = [], [], []
        for entry in entries:
            text = self.text_of(entry)
            texts.append(text.strip())
            try:
                tests.append(translate_unary_tests(text))
            except ValueError as exc:
                self.problem(
                    f"rule {row} ({node.get('id')}): input entry: {exc}", entry, decision_id, "unsafe-expression"
                )
                tests.append(None)
        for entry in results:
            text = self.text_of(entry).strip()
            try:
                values.append(translate_expression(text) if text else None)
            except _Refused as exc:
                self.problem(
                    f"rule {row} ({node.get('id')}): output entry: {exc}", entry, decision_id, "unsafe-expression"
                )
                values.append(None)
        return Rule(str(node.get("id")), row, node.sourceline, tuple(texts), tuple(tests), tuple(values))


def read_decisions(content: bytes, file: str) -> tuple[dict[str, DecisionTable], list[Problem]]:
    """The decision tables of a .dmn file by decision id, and every problem found, each located
    ``file:line: decision-id``. A decision with any problem is left out of the tables."""
    reader = _Reader(content, file)
    tables = {table.decision_id: table for table in reader.tables()}
    return tables, reader.problems
